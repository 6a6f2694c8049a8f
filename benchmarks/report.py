"""Write docs/benchmarks.md's tables from the benchmark scripts' results files.

Each table sits between `<!-- NAME table: begin -->` and `<!-- NAME table: end -->` and is
rendered here from benchmarks/results/*.json, so no figure in the docs is typed by hand; the
prose around them is. `--check` says which tables are stale without writing (a unit test
runs it, so docs and results cannot drift apart).

    python benchmarks/report.py            # rewrite the tables
    python benchmarks/report.py --check    # exit 1 if a table differs from its results
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from common import REPOSITORY, RESULTS, splice_block

DOCS = REPOSITORY / "docs" / "benchmarks.md"
Column = tuple[str, Callable[[dict[str, Any]], str]]


def markdown(columns: list[Column], rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(header for header, _ in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row) for _, cell in columns) + " |" for row in rows]
    return "\n".join(lines)


def number(value: float | None, digits: int = 0, suffix: str = "") -> str:
    """Thousands separated; None (not measured) as empty."""
    return "" if value is None else f"{value:,.{digits}f}{suffix}"


def rate(value: float) -> str:
    """Three significant figures, the precision a rate on a shared machine has."""
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def _results(name: str) -> dict[str, Any]:
    return json.loads((RESULTS / f"{name}.json").read_text())


# --------------------------------------------------------------------------- the tables


def train_throughput() -> str:
    return markdown(
        [
            ("run", lambda row: row["run"]),
            ("samples/s", lambda row: number(row["samples_per_s"], 1)),
            ("x plain", lambda row: number(row["vs_plain"], 2)),
            ("x 1 worker", lambda row: number(row["vs_1_worker"], 2)),
            ("peak RSS MiB/worker", lambda row: number(row.get("peak_rss_mb"))),
            ("wall s", lambda row: number(row["wall_s"])),
        ],
        _results("train_throughput")["rows"],
    )


def peft_methods() -> str:
    return markdown(
        [
            ("method", lambda row: row["method"]),
            ("trainable", lambda row: row["trainable_pct"]),
            ("peak RSS MiB/worker", lambda row: number(row["peak_rss_mb"])),
            ("s/step", lambda row: number(row["step_s"], 2)),
            ("test accuracy", lambda row: number(row["test_accuracy"], 3)),
            ("test macro-F1", lambda row: number(row["test_macro_f1"], 3)),
        ],
        _results("peft_methods")["rows"],
    )


NER_DATASETS = {"conll2003": "CoNLL-2003 (eng.testb)", "wnut17": "WNUT-17 (emerging.test)"}


def ner() -> str:
    def per_type(row: dict) -> str:
        ranked = sorted(row["per_type"].items(), key=lambda item: -item[1])
        return ", ".join(f"{name} {value:.3f}" for name, value in ranked)

    return markdown(
        [
            ("dataset", lambda row: NER_DATASETS.get(row["dataset"], row["dataset"])),
            ("test entity F1", lambda row: number(row["test_f1"], 3)),
            ("precision", lambda row: number(row["test_precision"], 3)),
            ("recall", lambda row: number(row["test_recall"], 3)),
            ("validation F1", lambda row: number(row["validation_f1"], 3)),
            ("per type (test F1)", per_type),
        ],
        _results("ner")["rows"],
    )


def distillation() -> str:
    return markdown(
        [
            ("model", lambda row: row["model"]),
            ("test accuracy", lambda row: number(row["test_accuracy"], 3)),
            ("of teacher's", lambda row: number(100 * row["accuracy_vs_teacher"], 1, "%")),
            ("ONNX ms / batch 32", lambda row: number(row["onnx_ms_batch32"])),
            ("speed-up", lambda row: number(row["speedup_vs_teacher"], 2, "x")),
            ("ONNX MB", lambda row: number(row["onnx_mb"])),
            ("train s", lambda row: number(row["train_s"])),
        ],
        _results("distillation")["rows"],
    )


def ablation() -> str:
    from ablation import report

    return report(_results("ablation")["rows"])


def tune_efficiency() -> str:
    names = {"full-search": "full search", "asha": "ASHA"}
    return markdown(
        [
            ("campaign", lambda row: names.get(row["campaign"], row["campaign"])),
            ("trials", lambda row: str(row["trials"])),
            ("stopped early", lambda row: str(row["stopped_early"])),
            ("trial-epochs", lambda row: number(row["trial_epochs"])),
            ("CPU s", lambda row: number(row["cpu_s"])),
            ("wall s", lambda row: number(row["wall_s"])),
            ("best val. accuracy", lambda row: number(row["best_val_accuracy"], 3)),
            ("its test accuracy", lambda row: number(row["best_test_accuracy"], 3)),
        ],
        _results("tune_efficiency")["campaigns"],
    )


VARIANT_NAMES = {
    "pytorch-fp32": "PyTorch fp32 eager",
    "fp32": "ONNX fp32 (fused)",
    "dynamic-int8": "dynamic INT8, per-tensor",
    "dynamic-int8-per-channel": "dynamic INT8, per-channel",
    "static-int8": "static INT8",
    "fp16": "fp16 (a GPU format)",
}


def compression(model: str) -> Callable[[], str]:
    """One model's variants against PyTorch; the variant the targets are judged on in bold."""

    def render() -> str:
        results = _results("compression")[model]
        metric = "accuracy" if model == "fpb" else "f1"

        def name(row: dict) -> str:
            label = VARIANT_NAMES.get(row["variant"], row["variant"])
            return f"**{label}**" if row["variant"] == results["judged_variant"] else label

        def deployable(row: dict) -> str:
            if row["deployable"] is None:
                return "(parent)"
            return "yes" if row["deployable"] else f"**no** ({row['not_deployable_because']})"

        def drop(row: dict) -> str:
            value = row.get(f"test_{metric}_drop_points")
            return "-" if row["kind"] == "pytorch" else number(value, 2)

        return markdown(
            [
                ("variant", name),
                ("deployable", deployable),
                ("MB", lambda row: number(row["size_mb"], 1)),
                ("size", lambda row: number(row["size_ratio"], 2)),
                (f"test {'accuracy' if model == 'fpb' else 'entity-F1'} drop (pts)", drop),
                ("b1 p50 ms", lambda row: number(row["batch1_p50_ms"], 1)),
                ("b1 p95 ms", lambda row: number(row["batch1_p95_ms"], 1)),
                ("b32 p50 ms", lambda row: number(row["batch32_p50_ms"])),
                ("texts/s (b32)", lambda row: number(row["throughput_per_s"])),
                ("b1 speed-up", lambda row: number(row["batch1_speedup"], 2)),
                ("b32 speed-up", lambda row: number(row["batch32_speedup"], 2)),
            ],
            results["rows"],
        )

    return render


def serve_load(name: str) -> Callable[[], str]:
    def render() -> str:
        def pair(server: str) -> Callable[[dict], str]:
            return lambda row: f"{number(row[f'{server}_p50'])} / {number(row[f'{server}_p99'])}"

        return markdown(
            [
                ("texts/request", lambda row: str(row["texts_per_request"])),
                ("concurrency", lambda row: str(row["concurrency"])),
                ("Fulcrum texts/s", lambda row: rate(row["fulcrum_tps"])),
                ("pipeline texts/s", lambda row: rate(row["baseline_tps"])),
                ("ratio", lambda row: number(row["speedup"], 2, "x")),
                ("Fulcrum p50 / p99 ms", pair("fulcrum")),
                ("pipeline p50 / p99 ms", pair("baseline")),
                ("Fulcrum / in-process", lambda row: number(row["vs_in_process"], 2)),
            ],
            _results(name)["comparison"],
        )

    return render


def serve_cpu() -> str:
    """CPU per request by process, Fulcrum's and the baseline's at the same level."""
    rows = _results("serve_load")["rows"]
    baseline = {
        (row["texts_per_request"], row["concurrency"]): sum(row["cpu_ms_per_request"].values())
        for row in rows
        if row["server"] == "pipeline"
    }

    def part(name: str) -> Callable[[dict], str]:
        return lambda row: number(row["cpu_ms_per_request"].get(name), 1)

    return markdown(
        [
            ("texts/request", lambda row: str(row["texts_per_request"])),
            ("concurrency", lambda row: str(row["concurrency"])),
            ("client", part("client")),
            ("Serve's HTTP proxy", part("proxy")),
            ("replica (gateway + model)", part("replicas")),
            ("total", lambda row: number(sum(row["cpu_ms_per_request"].values()), 1)),
            (
                "pipeline's total",
                lambda row: number(baseline.get((row["texts_per_request"], row["concurrency"])), 1),
            ),
        ],
        [row for row in rows if row["server"] == "fulcrum"],
    )


def serve_per_core() -> str:
    """Requests/s per CPU core the servers spent (the client's excluded), one text per
    request: what a machine with more cores gets, core for core."""
    runs = {"Python proxy": "serve_load_one_text", "HAProxy": "serve_load_one_text_haproxy"}
    table_rows = []
    for ingress, name in runs.items():
        for row in _results(name)["rows"]:
            if row["server"] == "pipeline" and ingress != "Python proxy":
                continue  # the same baseline measured in both runs: shown once
            spent = sum(ms for part, ms in row["cpu_ms_per_request"].items() if part != "client")
            label = "pipeline() + uvicorn" if row["server"] == "pipeline" else f"fulcrum, {ingress}"
            table_rows.append(
                {
                    "server": label,
                    "concurrency": row["concurrency"],
                    "spent": spent,
                    "per_core": 1000 / spent,
                }
            )
    return markdown(
        [
            ("server", lambda row: row["server"]),
            ("in flight", lambda row: str(row["concurrency"])),
            ("server CPU ms/request", lambda row: number(row["spent"], 1)),
            ("requests/s per core", lambda row: rate(row["per_core"])),
        ],
        table_rows,
    )


def faithfulness() -> str:
    results = _results("faithfulness")["results"]
    ig, occlusion = results["integrated_gradients"], results["occlusion"]
    return markdown(
        [
            ("k words deleted", lambda k: k),
            ("Integrated Gradients", lambda k: number(ig["aopc"][k], 3)),
            ("random k (PyTorch model)", lambda k: number(ig["random_aopc"][k], 3)),
            ("occlusion", lambda k: number(occlusion["aopc"][k], 3)),
            ("random k (INT8 model)", lambda k: number(occlusion["random_aopc"][k], 3)),
        ],
        sorted(ig["aopc"], key=int),
    )


def length_groups() -> str:
    return markdown(
        [
            ("batch", lambda row: str(row["batch"])),
            ("padded texts/s", lambda row: rate(row["padded_texts_per_s"])),
            ("length groups texts/s", lambda row: rate(row["grouped_texts_per_s"])),
            ("speed-up", lambda row: number(row["speedup"], 2, "x")),
            ("tokens computed, padded", lambda row: number(row["padded_tokens"])),
            ("tokens computed, length groups", lambda row: number(row["grouped_tokens"])),
        ],
        _results("length_groups")["rows"],
    )


def predict_throughput() -> str:
    result = _results("predict")["throughput"]
    return markdown(
        [
            ("OnnxClassifier in-process, 1 thread: texts/s", lambda r: rate(r["per_core"])),
            ("actors x threads", lambda r: f"{r['actors']} x {r['threads_per_actor']}"),
            ("ceiling: per-core x cores", lambda r: rate(r["per_core"] * r["cores_used"])),
            ("`fulcrum predict`: rows/s", lambda r: rate(r["predict_rows_per_s"])),
            ("ratio (target 0.8)", lambda r: number(r["ratio_to_per_core_times_cores"], 2)),
            ("start-up s", lambda r: number(r["start_up_seconds"], 1)),
        ],
        result["rows"],
    )


def predict_memory() -> str:
    def own(row: dict) -> str:
        return " / ".join(number(row[f"{role}_own_mb"]) for role in ("driver", "actor", "reader"))

    return markdown(
        [
            ("rows", lambda row: number(row["rows"])),
            ("wall s", lambda row: number(row["seconds"])),
            ("rows/s", lambda row: rate(row["rows_per_s"])),
            ("driver peak RSS MiB", lambda row: number(row["driver_mb"])),
            ("largest actor peak RSS MiB", lambda row: number(row["actor_mb"])),
            ("largest reader peak RSS MiB", lambda row: number(row["reader_mb"])),
            ("own MiB (outside the object store): driver / actor / reader", own),
        ],
        _results("predict")["memory"],
    )


TABLES: dict[str, Callable[[], str]] = {
    "train_throughput": train_throughput,
    "peft_methods": peft_methods,
    "ner": ner,
    "distillation": distillation,
    "ablation": ablation,
    "tune_efficiency": tune_efficiency,
    "compression_fpb": compression("fpb"),
    "compression_ner": compression("ner"),
    "length_groups": length_groups,
    "serve_load": serve_load("serve_load"),
    "serve_cpu": serve_cpu,
    "serve_load_two_deployments": serve_load("serve_load_two_deployments"),
    "serve_load_one_text": serve_load("serve_load_one_text"),
    "serve_load_one_text_haproxy": serve_load("serve_load_one_text_haproxy"),
    "serve_per_core": serve_per_core,
    "faithfulness": faithfulness,
    "predict_throughput": predict_throughput,
    "predict_memory": predict_memory,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    args = parser.parse_args()
    body = original = DOCS.read_text()
    for name, render in TABLES.items():
        body = splice_block(body, f"{name} table", render(), where=DOCS)
    if args.check:
        if body != original:
            sys.exit(f"{DOCS}: tables differ from benchmarks/results: run benchmarks/report.py")
        return
    DOCS.write_text(body)
    print(f"wrote {DOCS.relative_to(REPOSITORY)}")


if __name__ == "__main__":
    main()
