"""The compress stage: a training artifact in, a compressed variant per recipe entry out,
each measured against its PyTorch parent before anything may deploy it.

Reads top to bottom: open the parent (integrity-checked) and its data, export the merged
model to ONNX once, tokenise validation and test once and keep the parent's logits, then
for every variant: build it (fusions, then INT8 or fp16), gate it (metric drop and logit
difference on both splits), time it (batch 1 and 32), and write it as an export artifact
that says whether it is deployable and why not. A report compares them all with PyTorch
fp32 eager. Everything lands in one staged folder, renamed into place when complete.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from fulcrum.artifacts import artifact_dir, staged_artifact, write_manifest
from fulcrum.compress.build import (
    Built,
    Parent,
    build_and_gate,
    export_fp32,
    open_parent,
    threads_for,
    write_variant,
)
from fulcrum.compress.gate import Tolerance
from fulcrum.compress.latency import encode_for_timing, measure, onnx_runner, torch_runner
from fulcrum.compress.report import write_report
from fulcrum.compress.variants import calibration_batches
from fulcrum.data import texts_of
from fulcrum.inference.predictor import MODEL_FILE
from fulcrum.log import stage_log
from fulcrum.recipe import CompressSection, CompressVariant, Recipe
from fulcrum.train.merge import MERGED_DIR

log = stage_log("compress")

KIND = "compress"
VARIANTS_DIR = "variants"


def compress(
    recipe: Recipe, train_dir: str | Path | None = None, output_dir: str | Path | None = None
) -> Path:
    started = time.time()
    parent = open_parent(recipe, train_dir, output_dir, "compressing")
    settings = recipe.compress or CompressSection()
    tolerance = Tolerance.of("compress", settings)
    metric, max_length = parent.metric, parent.max_length
    threads = threads_for(settings.threads)
    log.info(
        f"{parent.artifact.path}: {len(settings.variants)} variant(s) "
        f"({', '.join(v.artifact_name for v in settings.variants)}), gated on validation and "
        f"test {metric} (drop <= {settings.max_metric_drop:g} points), timed with {threads} thread(s)"
    )
    timing_texts = texts_of(parent.splits.validation, settings.latency_texts)
    target = artifact_dir(recipe, "compress", output_dir)
    with (
        staged_artifact(target) as staging,
        tempfile.TemporaryDirectory(prefix="fulcrum-compress-") as scratch,
        _threads(threads),
    ):
        fp32 = Path(scratch) / MODEL_FILE
        input_names, exporter = export_fp32(parent, fp32, recipe.export.opset)
        singles, batches = encode_for_timing(
            parent.tokenizer, timing_texts, max_length, input_names
        )
        rows = [_parent_row(parent, singles, batches)]
        calibration_texts = texts_of(
            parent.splits.train, max(v.calibration_rows for v in settings.variants)
        )
        for variant in settings.variants:
            folder = staging / VARIANTS_DIR / variant.artifact_name
            folder.mkdir(parents=True)
            calibration = calibration_batches(
                parent.tokenizer,
                calibration_texts[: variant.calibration_rows],
                max_length,
                input_names,
            )
            built = build_and_gate(
                variant, fp32, folder / MODEL_FILE, parent, tolerance, threads, calibration
            )
            timing = measure(onnx_runner(built.session), singles, batches)
            row = _variant_row(variant, folder, built, timing, metric)
            rows.append(row)
            log.info(_describe(row, metric))
            metrics = {
                "gate": built.gate,
                "latency": timing,
                "validation": built.gate["validation"]["metrics"],
            }
            onnx = {"opset": recipe.export.opset, "inputs": input_names}
            described = variant.model_dump() | {
                "name": variant.artifact_name,
                "exporter": exporter,
                "steps": built.steps,
            }
            write_variant(folder, recipe, parent, built, onnx, metrics, described)
        summary = write_report(staging, rows, recipe.name, metric, threads)
        write_manifest(
            staging,
            kind=KIND,
            recipe=recipe.to_dict(),
            recipe_hash=recipe.hash,
            labels=parent.labels,
            metrics=summary | {"seconds": round(time.time() - started, 1)},
            parent=parent.artifact.path,
            data_fingerprint=parent.splits.fingerprint,
            extra={"variants": [variant.artifact_name for variant in settings.variants]},
        )
    log.info(f"report: {target / 'report.md'}")
    return target


def _parent_row(parent: Parent, singles, batches) -> dict[str, Any]:
    """The report's baseline: PyTorch fp32 eager, as training left it."""
    return {
        "variant": "pytorch-fp32",
        "kind": "pytorch",
        "deployable": None,
        "size_mb": _size_mb(parent.artifact.file(MERGED_DIR)),
        **_gate_summary(
            {name: s.reference_metrics for name, s in parent.gate_splits.items()}, parent.metric
        ),
        **measure(torch_runner(parent.model), singles, batches),
    }


def _variant_row(variant: CompressVariant, folder: Path, built: Built, timing, metric: str):
    gate = built.gate
    return {
        "variant": variant.artifact_name,
        "kind": variant.kind,
        "deployable": built.deployable,
        "size_mb": _size_mb(folder / MODEL_FILE),
        **_gate_summary({split: result["metrics"] for split, result in gate.items()}, metric),
        "max_metric_drop_points": max(r["metric_drop_points"] for r in gate.values()),
        "max_abs_logit_diff": max(r["max_abs_logit_diff"] for r in gate.values()),
        **timing,
        "not_deployable_because": "; ".join(built.reasons) or None,
    }


def variant_dir(compress_dir: Path, name: str) -> Path:
    return Path(compress_dir) / VARIANTS_DIR / name


def _gate_summary(metrics: dict[str, dict[str, Any]], metric: str) -> dict[str, float]:
    return {f"{split}_{metric}": float(values[metric]) for split, values in metrics.items()}


def _describe(row: dict[str, Any], metric: str) -> str:
    state = (
        "deployable" if row["deployable"] else f"NOT deployable: {row['not_deployable_because']}"
    )
    return (
        f"{row['variant']}: {row['size_mb']:.1f} MB, test {metric} {row.get(f'test_{metric}', float('nan')):.4f} "
        f"(drop {row['max_metric_drop_points']:+.2f} points), max |dlogit| {row['max_abs_logit_diff']:.2e}, "
        f"batch 1 p50 {row['batch1_p50_ms']:.1f} ms, batch 32 {row['throughput_per_s']:.0f} texts/s; {state}"
    )


def _size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
    weights = [f for f in files if f.suffix in (".onnx", ".safetensors", ".bin", ".data")]
    return sum(f.stat().st_size for f in weights) / 2**20


class _threads:
    """PyTorch's intra-op threads for the timed parent, put back afterwards."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __enter__(self):
        import torch

        self.previous = torch.get_num_threads()
        torch.set_num_threads(self.count)

    def __exit__(self, *exc) -> None:
        import torch

        torch.set_num_threads(self.previous)
