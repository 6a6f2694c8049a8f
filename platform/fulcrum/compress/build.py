"""What the export and compress stages share, so an ONNX model is made and judged one way.

`open_parent` opens a training artifact with the data it was trained on, tokenises validation
and test once and keeps the PyTorch parent's logits for them; `export_fp32` exports the merged
model to ONNX (the graph ONNX Runtime fuses whole where the architecture allows);
`build_and_gate` turns that into one variant and measures it against the parent (gate.py); and
`write_variant` writes it as an export artifact, which Serve loads. The export stage is the
fp32 variant alone, published only when it passes; the compress stage builds every variant
the recipe lists and keeps each with its verdict.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fulcrum.artifacts import (
    Artifact,
    artifact_dir,
    open_artifact,
    write_json_atomic,
    write_manifest,
)
from fulcrum.compress.gate import (
    GATE_BATCH,
    GateSplit,
    Tolerance,
    evaluate_variant,
    prepare_splits,
    session_logits,
    verdict,
)
from fulcrum.compress.onnx_export import export_onnx, export_onnx_for_fusion
from fulcrum.compress.variants import build_variant
from fulcrum.data import recipe_splits
from fulcrum.data.dataset import LabelledSplits
from fulcrum.errors import ArtifactError
from fulcrum.inference.session import open_session
from fulcrum.log import stage_log
from fulcrum.models.classifier import load_tokenizer
from fulcrum.models.families import FUSABLE_MODEL_TYPES
from fulcrum.out_of_scope import describe, measure
from fulcrum.recipe import CompressVariant, Recipe
from fulcrum.tasks import TASKS, Task
from fulcrum.train.merge import MERGED_DIR, TOKENIZER_DIR, load_merged, table_batches

log = stage_log("compress")


@dataclass(frozen=True)
class Parent:
    """A training artifact and everything its variants are built from and judged against."""

    artifact: Artifact
    trained_with: Recipe  # the settled recipe it was trained with
    task: Task
    splits: LabelledSplits
    model: Any  # the merged PyTorch model
    tokenizer: Any
    model_config: dict[str, Any]
    gate_splits: dict[str, GateSplit]
    # Per split, collated batches of the texts whose labels training never saw (out of
    # scope by definition; only with out-of-scope detection on).
    unseen_batches: dict[str, list[dict[str, Any]]]

    @property
    def labels(self) -> list[str]:
        return self.artifact.labels

    @property
    def metric(self) -> str:
        return self.trained_with.metric

    @property
    def max_length(self) -> int:
        return self.trained_with.model.max_length


def open_parent(
    recipe: Recipe, train_dir: str | Path | None, output_dir: str | Path | None, doing: str
) -> Parent:
    """`doing` names the stage in the error a changed dataset gets ("exporting")."""
    artifact = open_artifact(train_dir or artifact_dir(recipe, "train", output_dir), kind="train")
    trained_with = Recipe.model_validate(artifact.manifest.settled_recipe)
    task = TASKS[trained_with.task.type]
    splits = recipe_splits(trained_with)
    if splits.fingerprint != artifact.manifest.data_fingerprint:
        raise ArtifactError(
            f"{artifact.path}: the data changed since this model was trained "
            f"(fingerprint differs); retrain before {doing}"
        )
    model = load_merged(artifact.path, task.name)
    tokenizer = load_tokenizer(artifact.file(TOKENIZER_DIR))
    gate_splits = prepare_splits(
        model,
        tokenizer,
        task,
        {"validation": splits.validation, "test": splits.test},
        trained_with.model.max_length,
        artifact.labels,
    )
    model_config = json.loads(artifact.file(f"{MERGED_DIR}/config.json").read_text())
    collate = task.make_collate(tokenizer, trained_with.model.max_length)
    unseen_batches = {
        split: [collate(batch) for batch in table_batches(table, GATE_BATCH)]
        for split, table in splits.unseen.items()
    }
    return Parent(
        artifact,
        trained_with,
        task,
        splits,
        model,
        tokenizer,
        model_config,
        gate_splits,
        unseen_batches,
    )


def export_fp32(parent: Parent, target: Path, opset: int) -> tuple[list[str], str]:
    """(input names, exporter): the graph ONNX Runtime can fuse whole where the architecture
    allows, else (or if that exporter fails on this model) the dynamo exporter's."""
    if parent.model_config.get("model_type") in FUSABLE_MODEL_TYPES:
        try:
            names = export_onnx_for_fusion(parent.model, parent.tokenizer, target, opset)
            return names, "torchscript"
        except Exception as error:  # the deprecated exporter may not follow every model
            log.info(f"TorchScript export failed ({_first_line(error)}); using the dynamo exporter")
    return export_onnx(parent.model, parent.tokenizer, target, opset), "dynamo"


@dataclass(frozen=True)
class Built:
    steps: dict[str, Any]  # what was done to the fp32 graph (recorded in the manifest)
    session: Any  # an ONNX Runtime session on the variant
    gate: dict[str, Any]  # per split: evaluate_variant's report
    deployable: bool
    reasons: list[str]  # why it is not deployable; empty when it is
    # fulcrum.out_of_scope.measure's report on this variant's own scores; None: off.
    out_of_scope: dict[str, Any] | None = None


def build_and_gate(
    variant: CompressVariant,
    fp32: Path,
    target: Path,
    parent: Parent,
    tolerance: Tolerance,
    threads: int,
    calibration: list | None = None,
) -> Built:
    """An INT8 variant that fails its gate is built once more with its most outlier-prone
    MatMuls kept in float, and judged again; the steps record the first attempt."""
    steps = build_variant(variant, fp32, target, parent.model_config, calibration or [])
    built = _judge(variant, target, parent, tolerance, threads, steps)
    if not built.deployable and variant.kind.endswith("int8") and variant.exclude_sensitive:
        count = variant.exclude_sensitive
        log.info(
            f"{variant.artifact_name}: {'; '.join(built.reasons)}; retrying with its {count} "
            "most sensitive MatMuls in float"
        )
        first = {"gate": _drops(built.gate), "not_deployable_because": built.reasons}
        steps = build_variant(
            variant, fp32, target, parent.model_config, calibration or [], count
        ) | {"first_attempt": first}
        built = _judge(variant, target, parent, tolerance, threads, steps)
    return built


def _judge(variant, target, parent: Parent, tolerance: Tolerance, threads: int, steps) -> Built:
    session = open_session(target, threads)
    gate, logits = evaluate_variant(
        session, parent.gate_splits, parent.task, parent.labels, parent.metric
    )
    deployable, reasons = verdict(gate, variant.kind, tolerance)
    return Built(steps, session, gate, deployable, reasons, _out_of_scope(parent, session, logits))


def _out_of_scope(parent: Parent, session, logits: dict[str, list]) -> dict[str, Any] | None:
    """The detector recalibrated on this variant's own validation scores: INT8 moves them."""
    settings = parent.trained_with.out_of_scope
    if settings is None:
        return None
    report = measure(
        settings,
        parent.labels,
        {split: np.concatenate(batches) for split, batches in logits.items()},
        {
            split: np.concatenate([batch["labels"].numpy() for batch in item.batches])
            for split, item in parent.gate_splits.items()
        },
        {
            split: np.concatenate([session_logits(session, batch) for batch in batches])
            for split, batches in parent.unseen_batches.items()
        },
    )
    log.info(describe(report, "test" if "test" in logits else "validation"))
    return report


def write_variant(
    folder: Path,
    recipe: Recipe,
    parent: Parent,
    built: Built,
    onnx: dict[str, Any],
    metrics: dict[str, Any],
    variant: dict[str, Any] | None = None,
) -> None:
    """The export artifact Serve loads: the ONNX model already in `folder`, the tokenizer,
    the labels, what was measured, and whether it may be deployed. `variant`: a compressed
    variant's settings (its name goes into the name it is served under); None for the
    export stage's model."""
    shutil.copytree(parent.artifact.file(TOKENIZER_DIR), folder / "tokenizer")
    write_json_atomic(folder / "labels.json", {"labels": parent.labels})
    extra = {
        "task": parent.task.name,
        "max_length": parent.max_length,
        "onnx": onnx | {"dynamic_axes": ["batch", "sequence"]},
        "deployable": built.deployable,
        "not_deployable_because": built.reasons,
        "vocab_size": int(parent.model_config["vocab_size"]),
        "base_model": parent.artifact.manifest.base_model,
        # What training found about whether the model learned travels with it.
        "warnings": parent.artifact.manifest.warnings,
    }
    if built.out_of_scope is not None:
        extra["out_of_scope"] = built.out_of_scope["detector"]
        metrics = metrics | {"out_of_scope": built.out_of_scope}
    write_json_atomic(folder / "metrics.json", metrics)
    if variant is not None:
        extra["variant"] = variant
    write_manifest(
        folder,
        kind="export",
        recipe=recipe.to_dict(),
        recipe_hash=recipe.hash,
        labels=parent.labels,
        metrics=metrics,
        parent=parent.artifact.path,
        data_fingerprint=parent.splits.fingerprint,
        extra=extra,
    )


def threads_for(requested: int | None) -> int:
    return requested or os.cpu_count() or 1


def _drops(gate: dict[str, Any]) -> dict[str, float]:
    return {split: round(result["metric_drop_points"], 3) for split, result in gate.items()}


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
