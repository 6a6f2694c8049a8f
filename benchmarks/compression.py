"""Compression: each variant of `fulcrum compress` against PyTorch fp32 eager, same inputs.

Two models, trained here once (or read back when the same recipe was trained before):

  fpb    all-MiniLM-L6-v2 + LoRA (merged) on Financial PhraseBank AllAgree
  ner    all-MiniLM-L6-v2 fully fine-tuned on CoNLL-2003 (benchmarks/ner.py's model)

Every variant is built, gated (test and validation metric against the PyTorch parent) and
timed by the compress stage itself: batch 1 (p50, p95) and batch 32 (p50, p95, texts/s) on
the same tokenised validation texts as PyTorch, with the same threads, in the same process.
Targets for dynamic INT8 on the FPB model: >= 2x throughput at batch 32, >= 3x at batch 1,
<= 0.3x the size, <= 1 point of accuracy lost; on the NER model, <= 1 point of entity F1.

    python benchmarks/compression.py [--models fpb ner] [--threads 2]

Run it on a quiet machine: the timings are the point.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from common import RESULTS, phrasebank_data, table, train_or_reuse, write_results
from ner import recipe_dict as ner_recipe

OUTPUT_DIR = "artifacts/benchmarks"
TARGETS = {"batch32_speedup": 2.0, "batch1_speedup": 3.0, "size_ratio": 0.3, "drop_points": 1.0}


def fpb_recipe() -> dict:
    return {
        "name": "compress-fpb",
        "seed": 13,
        "output_dir": OUTPUT_DIR,
        "data": phrasebank_data("AllAgree"),
        "model": {"base": "builtin:minilm", "max_length": 64},
        "peft": {"method": "lora", "r": 16, "alpha": 32, "target_modules": ["query", "value"]},
        "train": {"workers": 2, "epochs": 3, "batch_size": 16, "lr": 2e-3, "zero_stage": 2},
    }


VARIANTS = {
    "fpb": [
        "fp32",
        "dynamic_int8",
        {"kind": "dynamic_int8", "per_channel": True, "name": "dynamic-int8-per-channel"},
        "static_int8",
        "fp16",
    ],
    "ner": ["fp32", "dynamic_int8", "static_int8"],
}


def ner_model():
    """benchmarks/ner.py's CoNLL-2003 model as it was trained (an artifact from before the
    recipe gained fields whose defaults change nothing is still that model); trained here
    only when missing."""
    from fulcrum.artifacts import artifact_dir, open_artifact
    from fulcrum.recipe import validate_recipe

    raw = ner_recipe("conll2003", 3, OUTPUT_DIR)
    existing = artifact_dir(validate_recipe(raw), "train")
    if (existing / "manifest.json").is_file():
        artifact = open_artifact(existing, kind="train")
        print(f"[benchmark] ner: using {existing}", flush=True)
        return validate_recipe(artifact.manifest.settled_recipe), artifact
    return train_or_reuse(raw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["fpb", "ner"], choices=["fpb", "ner"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--latency-texts", type=int, default=128)
    args = parser.parse_args()

    results = {name: compress_model(name, args.threads, args.latency_texts) for name in args.models}
    # A run over some of the models keeps the others' last figures.
    previous = RESULTS / "compression.json"
    kept = json.loads(previous.read_text()) if previous.is_file() else {}
    kept = {model: kept[model] for model in VARIANTS if model in kept and model not in results}
    path = write_results(
        "compression",
        {
            **kept,
            "threads": args.threads,
            "latency_texts": args.latency_texts,
            "targets": TARGETS,
            **results,
        },
    )
    print(f"\nwrote {path}")


def compress_model(name: str, threads: int, latency_texts: int) -> dict:
    """Train (or reuse) the model, compress it into every variant, print its table and
    whether the dynamic INT8 variant a user would deploy meets TARGETS."""
    from fulcrum.artifacts import open_artifact
    from fulcrum.compress.stage import compress
    from fulcrum.recipe import validate_recipe

    recipe, trained = train_or_reuse(fpb_recipe()) if name == "fpb" else ner_model()
    settings = {"variants": VARIANTS[name], "threads": threads, "latency_texts": latency_texts}
    recipe = validate_recipe({**recipe.to_dict(), "compress": settings})
    report = open_artifact(compress(recipe, trained.path), kind="compress")
    rows = report.metrics["variants"]
    _add_test_drops(report.path, rows)
    shutil.copyfile(report.file("report.png"), RESULTS / f"compression_{name}.png")
    metric = "accuracy" if name == "fpb" else "f1"
    print(f"\n{name}: {trained.path}")
    print(
        table(
            rows,
            [
                ("variant", "variant"),
                ("deployable", "deployable"),
                ("size_mb", "MB"),
                ("size_ratio", "size"),
                (f"test_{metric}_drop_points", f"test {metric} drop (pts)"),
                ("batch1_p50_ms", "b1 p50 ms"),
                ("batch1_p95_ms", "b1 p95 ms"),
                ("batch32_p50_ms", "b32 p50 ms"),
                ("throughput_per_s", "texts/s (b32)"),
                ("batch1_speedup", "b1 speed-up"),
                ("batch32_speedup", "b32 speed-up"),
            ],
        )
    )
    # The dynamic INT8 variant a user would deploy: the fastest that passed its gate.
    int8 = max(
        (row for row in rows if row["kind"] == "dynamic_int8" and row["deployable"]),
        key=lambda row: row["throughput_per_s"],
    )
    checks = {
        "batch32_speedup": int8["batch32_speedup"] >= TARGETS["batch32_speedup"],
        "batch1_speedup": int8["batch1_speedup"] >= TARGETS["batch1_speedup"],
        "size_ratio": int8["size_ratio"] <= TARGETS["size_ratio"],
        "drop_points": int8[f"test_{metric}_drop_points"] <= TARGETS["drop_points"],
    }
    if name == "ner":
        checks = {"drop_points": checks["drop_points"]}
    print(
        "dynamic INT8 targets: "
        + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in checks.items())
    )
    print(f"(judged on {int8['variant']})")
    return {
        "judged_variant": int8["variant"],
        "training_artifact": str(trained.path),
        "compress_artifact": str(report.path),
        "rows": rows,
        "recommended": report.metrics["recommended"],
        "targets_met": checks,
    }


def _add_test_drops(report_dir: Path, rows: list[dict]) -> None:
    """Each variant's test-metric drop from its gate, in points, into its row."""
    from fulcrum.artifacts import open_artifact
    from fulcrum.compress.stage import variant_dir

    for row in rows:
        if row["kind"] == "pytorch":
            continue
        gate = open_artifact(variant_dir(report_dir, row["variant"])).metrics["gate"]["test"]
        for key in ("accuracy", "macro_f1", "f1"):
            if key in gate["metrics"]:
                row[f"test_{key}_drop_points"] = 100 * (
                    gate["parent_metrics"][key] - gate["metrics"][key]
                )


if __name__ == "__main__":
    main()
