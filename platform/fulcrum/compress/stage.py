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

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fulcrum.artifacts import open_artifact, staged_artifact, write_json_atomic, write_manifest
from fulcrum.compress.gate import evaluate_variant, prepare_splits, verdict
from fulcrum.compress.latency import encode_for_timing, measure, onnx_runner, torch_runner
from fulcrum.compress.onnx_export import export_onnx, export_onnx_for_fusion
from fulcrum.compress.report import write_report
from fulcrum.compress.variants import FUSABLE_MODEL_TYPES, build_variant, calibration_batches
from fulcrum.data import load_splits
from fulcrum.errors import ArtifactError
from fulcrum.inference.predictor import MODEL_FILE
from fulcrum.inference.session import open_session
from fulcrum.log import stage_log
from fulcrum.models.classifier import load_tokenizer
from fulcrum.recipe import CompressSection, CompressVariant, Recipe
from fulcrum.storage import output_root
from fulcrum.tasks import TASKS
from fulcrum.train.merge import MERGED_DIR, TOKENIZER_DIR, load_merged
from fulcrum.train.stage import train_artifact_dir
from fulcrum.tune.cost import texts_of

log = stage_log("compress")

KIND = "compress"
VARIANTS_DIR = "variants"


def compress_artifact_dir(recipe: Recipe, output_dir: str | Path | None = None) -> Path:
    return output_root(output_dir or recipe.output_dir) / recipe.name / KIND


def compress(
    recipe: Recipe, train_dir: str | Path | None = None, output_dir: str | Path | None = None
) -> Path:
    started = time.time()
    parent = open_artifact(train_dir or train_artifact_dir(recipe, output_dir), kind="train")
    trained_with = Recipe.model_validate(parent.settled_recipe)
    settings = recipe.compress or CompressSection()
    task = TASKS[trained_with.task.type]
    splits = load_splits(trained_with.data, trained_with.seed, task.name)
    if splits.fingerprint != parent.manifest["data_fingerprint"]:
        raise ArtifactError(
            f"{parent.path}: the data changed since this model was trained "
            "(fingerprint differs); retrain before compressing"
        )
    labels = parent.labels
    metric = trained_with.metric
    max_length = trained_with.model.max_length
    model = load_merged(parent.path, task.name)
    tokenizer = load_tokenizer(parent.file(TOKENIZER_DIR))
    model_config = json.loads(parent.file(f"{MERGED_DIR}/config.json").read_text())
    threads = settings.threads or os.cpu_count() or 1
    log.info(
        f"{parent.path}: {len(settings.variants)} variant(s) "
        f"({', '.join(v.artifact_name for v in settings.variants)}), gated on validation and "
        f"test {metric} (drop <= {settings.max_metric_drop:g} points), timed with {threads} thread(s)"
    )
    gate_splits = prepare_splits(
        model,
        tokenizer,
        task,
        {"validation": splits.validation, "test": splits.test},
        max_length,
        labels,
    )
    timing_texts = texts_of(splits.validation, settings.latency_texts)
    target = compress_artifact_dir(recipe, output_dir)
    with (
        staged_artifact(target) as staging,
        tempfile.TemporaryDirectory(prefix="fulcrum-compress-") as scratch,
        _threads(threads),
    ):
        fp32 = Path(scratch) / MODEL_FILE
        input_names, exporter = _export(model, tokenizer, fp32, recipe.export.opset, model_config)
        singles, batches = encode_for_timing(tokenizer, timing_texts, max_length, input_names)
        rows = [
            {
                "variant": "pytorch-fp32",
                "kind": "pytorch",
                "deployable": None,
                "size_mb": _size_mb(parent.file(MERGED_DIR)),
                **_gate_summary(
                    {name: s.reference_metrics for name, s in gate_splits.items()}, metric
                ),
                **measure(torch_runner(model), singles, batches),
            }
        ]
        calibration_texts = texts_of(
            splits.train, max(v.calibration_rows for v in settings.variants)
        )
        context = _Context(fp32, model_config, gate_splits, task, labels, metric, settings, threads)
        for variant in settings.variants:
            folder = staging / VARIANTS_DIR / variant.artifact_name
            folder.mkdir(parents=True)
            calibration = calibration_batches(
                tokenizer, calibration_texts[: variant.calibration_rows], max_length, input_names
            )
            steps, session, gate, deployable, reasons = _build_and_gate(
                variant, folder / MODEL_FILE, calibration, context
            )
            timing = measure(onnx_runner(session), singles, batches)
            row = {
                "variant": variant.artifact_name,
                "kind": variant.kind,
                "deployable": deployable,
                "size_mb": _size_mb(folder / MODEL_FILE),
                **_gate_summary(
                    {split: result["metrics"] for split, result in gate.items()}, metric
                ),
                "max_metric_drop_points": max(r["metric_drop_points"] for r in gate.values()),
                "max_abs_logit_diff": max(r["max_abs_logit_diff"] for r in gate.values()),
                **timing,
                "not_deployable_because": "; ".join(reasons) or None,
            }
            rows.append(row)
            log.info(_describe(row, metric))
            shutil.copytree(parent.file(TOKENIZER_DIR), folder / "tokenizer")
            write_json_atomic(folder / "labels.json", {"labels": labels})
            metrics = {"gate": gate, "latency": timing, "validation": gate["validation"]["metrics"]}
            write_json_atomic(folder / "metrics.json", metrics)
            write_manifest(
                folder,
                kind="export",
                recipe=recipe.to_dict(),
                recipe_hash=recipe.hash,
                labels=labels,
                metrics=metrics,
                parent=parent.path,
                data_fingerprint=splits.fingerprint,
                extra={
                    "task": task.name,
                    "max_length": max_length,
                    "onnx": {
                        "opset": recipe.export.opset,
                        "inputs": input_names,
                        "dynamic_axes": ["batch", "sequence"],
                    },
                    "variant": variant.model_dump()
                    | {"name": variant.artifact_name, "exporter": exporter, "steps": steps},
                    "deployable": deployable,
                    "not_deployable_because": reasons,
                    "vocab_size": int(model_config["vocab_size"]),
                    "warnings": parent.manifest.get("warnings") or [],
                },
            )
        summary = write_report(staging, rows, recipe.name, metric, threads)
        write_manifest(
            staging,
            kind=KIND,
            recipe=recipe.to_dict(),
            recipe_hash=recipe.hash,
            labels=labels,
            metrics=summary | {"seconds": round(time.time() - started, 1)},
            parent=parent.path,
            data_fingerprint=splits.fingerprint,
            extra={"variants": [variant.artifact_name for variant in settings.variants]},
        )
    log.info(f"report: {target / 'report.md'}")
    return target


def _export(model, tokenizer, target: Path, opset: int, model_config: dict) -> tuple[list, str]:
    """(input names, exporter): the graph ONNX Runtime can fuse whole where the architecture
    allows, else (or if that exporter fails on this model) the dynamo exporter's."""
    if model_config.get("model_type") in FUSABLE_MODEL_TYPES:
        try:
            return export_onnx_for_fusion(model, tokenizer, target, opset), "torchscript"
        except Exception as error:  # the deprecated exporter may not follow every model
            log.info(f"TorchScript export failed ({_first_line(error)}); using the dynamo exporter")
    return export_onnx(model, tokenizer, target, opset), "dynamo"


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]


@dataclass(frozen=True)
class _Context:
    """What every variant is built from and judged against."""

    fp32: Path
    model_config: dict[str, Any]
    gate_splits: dict[str, Any]
    task: Any
    labels: list[str]
    metric: str
    settings: CompressSection
    threads: int


def _build_and_gate(variant: CompressVariant, target: Path, calibration, context: _Context):
    """(steps, session, gate, deployable, reasons). An INT8 variant that fails its gate is
    built once more with its most outlier-prone MatMuls kept in float, and judged again;
    the steps record the first attempt."""
    steps = build_variant(variant, context.fp32, target, context.model_config, calibration)
    session, gate, deployable, reasons = _judge(variant, target, context)
    if not deployable and variant.kind.endswith("int8") and variant.exclude_sensitive:
        count = variant.exclude_sensitive
        log.info(
            f"{variant.artifact_name}: {'; '.join(reasons)}; retrying with its {count} most "
            "sensitive MatMuls in float"
        )
        first = {"gate": _drops(gate), "not_deployable_because": reasons}
        steps = build_variant(
            variant, context.fp32, target, context.model_config, calibration, count
        ) | {"first_attempt": first}
        session, gate, deployable, reasons = _judge(variant, target, context)
    return steps, session, gate, deployable, reasons


def _judge(variant: CompressVariant, target: Path, context: _Context):
    session = open_session(target, context.threads)
    gate = evaluate_variant(
        session, context.gate_splits, context.task, context.labels, context.metric
    )
    return (session, gate, *verdict(gate, variant, context.settings))


def variant_dir(compress_dir: Path, name: str) -> Path:
    return Path(compress_dir) / VARIANTS_DIR / name


def _drops(gate: dict[str, Any]) -> dict[str, float]:
    return {split: round(result["metric_drop_points"], 3) for split, result in gate.items()}


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
