"""Chinese with the built-in multilingual model: what the issue's anchors are measured against.

Each part trains (or reads back) recipes built on benchmarks/defaults.py's minimal recipes, so
its minimal runs are the same artifacts as the defaults benchmark's:

  chnsenticorp  ChnSentiCorp test accuracy, LoRA (the minimal recipe) and full fine-tuning,
                training reviews that also appear in dev or test left out; the LoRA model's
                dynamic INT8 variant: its accuracy drop, size and speed-up (anchors:
                BERT-base-chinese 0.94-0.95, ERNIE 1.0 0.95)
  fpb           Financial PhraseBank AllAgree, LoRA, on builtin:multilingual beside
                builtin:minilm (the minimal recipe picks MiniLM for English): what the extra
                languages cost in accuracy, latency and size (fp32 ONNX, same threads)
  cic           DataCLUE CIC test_public macro-F1, minimal recipe and with label smoothing 0.1
                (its training labels are noisy by design; published baseline 72.78, human 87.40)
  resume        Resume NER test entity F1, per type (anchors: BERT 95.53, Lattice LSTM 94.46);
                LOC has 6 test entities, so its F1 moves 17 points per entity

    python benchmarks/chinese.py [--parts chnsenticorp fpb cic resume] [--report]

JSON: benchmarks/results/chinese.json (each part kept as it finishes; a rerun does only what
is missing); the table goes into docs/chinese.md.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from common import REPOSITORY, RESULTS, splice_block, table, write_results
from defaults import artifact_summary, minimal_recipe, trained

RESULTS_NAME = "chinese"
DOCS = REPOSITORY / "docs" / "chinese.md"
COMMAND = "python benchmarks/chinese.py"
PARTS = ("chnsenticorp", "fpb", "cic", "resume")
ANCHORS = {
    "chnsenticorp": "BERT-base-chinese 94-95, ERNIE 1.0 95 (accuracy)",
    "fpb": "-",
    "cic": "RoBERTa-wwm 3-layer 72.78, human 87.40 (macro-F1)",
    "resume": "BERT 95.53, Lattice LSTM 94.46 (entity F1)",
}


def load_results() -> dict[str, Any]:
    path = RESULTS / f"{RESULTS_NAME}.json"
    return json.loads(path.read_text()).get("runs", {}) if path.is_file() else {}


def record(key: str, value: dict[str, Any]) -> None:
    runs = load_results()
    runs[key] = value
    write_results(RESULTS_NAME, {"command": COMMAND, "runs": runs})
    print(f"[benchmark] {key}: {json.dumps(value)[:300]}", flush=True)


def variant(dataset: str, name: str, **sections: dict[str, Any]) -> dict[str, Any]:
    """The minimal recipe with `sections` merged in, under its own name."""
    raw = minimal_recipe(dataset)
    raw["name"] = f"{raw['name']}-{name}"
    for section, values in sections.items():
        raw[section] = {**raw.get(section, {}), **values}
    return raw


def summary(artifact, started: float) -> dict[str, Any]:
    settled = artifact.manifest.settled_recipe
    return {
        "model": settled["model"]["base"],
        "method": settled["peft"]["method"],
        **artifact_summary(artifact, started),
        "artifact": str(artifact.path),
    }


def compressed(artifact, variants: list[str]) -> list[dict[str, Any]]:
    """The compress stage's own rows (size, latency at batch 1 and 32 against PyTorch, gate)."""
    from fulcrum.artifacts import open_artifact
    from fulcrum.compress.stage import compress
    from fulcrum.recipe import validate_recipe

    recipe = validate_recipe(
        {
            **artifact.manifest.settled_recipe,
            "compress": {"variants": variants, "threads": 2, "latency_texts": 128},
        }
    )
    report = open_artifact(compress(recipe, artifact.path), kind="compress")
    keep = ("variant", "kind", "deployable", "size_mb", "size_ratio", "batch1_p50_ms")
    keep += ("batch32_p50_ms", "throughput_per_s", "batch1_speedup", "batch32_speedup")
    rows = []
    for row in report.metrics["variants"]:
        gate = row.get("gate", {}) or {}
        rows.append({**{k: row.get(k) for k in keep}, "gate": gate})
    return rows


def run_part(part: str) -> dict[str, dict[str, Any]]:
    started = time.time()
    if part == "chnsenticorp":
        lora = trained(minimal_recipe("chnsenticorp"))
        out = {"chnsenticorp/lora": summary(lora, started)}
        out["chnsenticorp/lora"]["compressed"] = compressed(lora, ["dynamic_int8"])
        started = time.time()
        full = trained(variant("chnsenticorp", "full", peft={"method": "full"}))
        out["chnsenticorp/full"] = summary(full, started)
        return out
    if part == "fpb":
        out = {}
        for name, base in (("minilm", "builtin:minilm"), ("multilingual", "builtin:multilingual")):
            started = time.time()
            raw = (
                minimal_recipe("fpb_allagree")
                if name == "minilm"
                else variant("fpb_allagree", name, model={"base": base})
            )
            artifact = trained(raw)
            out[f"fpb/{name}"] = summary(artifact, started)
            out[f"fpb/{name}"]["compressed"] = compressed(artifact, ["fp32"])
        return out
    if part == "cic":
        out = {"cic/minimal": summary(trained(minimal_recipe("dataclue_cic")), started)}
        started = time.time()
        smoothed = trained(variant("dataclue_cic", "smoothing", train={"label_smoothing": 0.1}))
        out["cic/label_smoothing_0.1"] = summary(smoothed, started)
        return out
    artifact = trained(minimal_recipe("resume_ner"))
    out = summary(artifact, started)
    out["per_type"] = {
        kind: {
            key: round(value, 4) if isinstance(value, float) else value
            for key, value in row.items()
        }
        for kind, row in artifact.metrics["test"]["per_type"].items()
    }
    return {"resume/minimal": out}


# --------------------------------------------------------------------------- report


def report(runs: dict[str, Any]) -> str:
    rows = []
    for key, run in runs.items():
        part = key.split("/")[0]
        fp32 = next((r for r in run.get("compressed", []) if r["kind"] != "pytorch"), None)
        rows.append(
            {
                "run": key,
                "model": run["model"].removeprefix("builtin:"),
                "method": run["method"],
                "train": f"{run['rows']['train']:,}",
                "test": " / ".join(f"{v:.1f}" for v in run["test"].values()),
                "metric": " / ".join(run["test"]),
                "anchor": ANCHORS[part],
                "settled": ", ".join(
                    f"{k.split('.')[-1]} {v}"
                    for k, v in run["settled"].items()
                    if k in ("train.epochs", "model.max_length", "train.lr")
                ),
                "wall_s": run["wall_s"],
                "size_mb": fp32["size_mb"] if fp32 else "",
                "b1_ms": fp32["batch1_p50_ms"] if fp32 else "",
            }
        )
    text = [
        f"Test metrics in points. Command: `{COMMAND}`.",
        "",
        table(
            rows,
            [
                ("run", "run"),
                ("model", "model"),
                ("method", "method"),
                ("train", "train rows"),
                ("metric", "metric"),
                ("test", "test"),
                ("anchor", "published"),
                ("settled", "settled"),
                ("wall_s", "train s"),
                ("size_mb", "ONNX MB"),
                ("b1_ms", "batch-1 p50 ms"),
            ],
        ),
    ]
    resume = runs.get("resume/minimal")
    if resume:
        types = [
            {"type": kind, **{k: row[k] for k in ("precision", "recall", "f1", "support")}}
            for kind, row in sorted(resume["per_type"].items())
        ]
        text += [
            "",
            "Resume NER, test, per entity type (LOC: 6 entities):",
            "",
            table(
                types,
                [
                    ("type", "type"),
                    ("precision", "precision"),
                    ("recall", "recall"),
                    ("f1", "F1"),
                    ("support", "test entities"),
                ],
            ),
        ]
    return "\n".join(text)


def write_report() -> None:
    text = report(load_results())
    print(text)
    DOCS.write_text(splice_block(DOCS.read_text(), "chinese table", text, where=DOCS))
    print(f"[benchmark] wrote {DOCS.relative_to(REPOSITORY)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--report", action="store_true", help="only write the table")
    args = parser.parse_args()
    if not args.report:
        for part in args.parts:
            if not any(key.startswith(f"{part}/") for key in load_results()):
                for key, value in run_part(part).items():
                    record(key, value)
    write_report()


if __name__ == "__main__":
    main()
