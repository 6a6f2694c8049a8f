"""The export stage: training artifact in, ONNX artifact out, only if it matches its parent.

Reads top to bottom: open the parent (integrity-checked), export the merged weights to ONNX,
load the result the way Serve will (OnnxClassifier), measure parity on the validation split
the parent was trained against, and publish only within the recipe's tolerance.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

from fulcrum.artifacts import open_artifact, staged_artifact, write_json_atomic, write_manifest
from fulcrum.compress.onnx_export import export_onnx
from fulcrum.compress.parity import measure_parity, parity_problems
from fulcrum.data import load_splits
from fulcrum.errors import ArtifactError, ParityError
from fulcrum.inference.predictor import MODEL_FILE, OnnxClassifier
from fulcrum.log import stage_log
from fulcrum.models.classifier import load_tokenizer
from fulcrum.recipe import Recipe
from fulcrum.storage import output_root
from fulcrum.train.merge import load_merged
from fulcrum.train.stage import train_artifact_dir

log = stage_log("export")

KIND = "export"


def export_artifact_dir(recipe: Recipe, output_dir: str | Path | None = None) -> Path:
    return output_root(output_dir or recipe.output_dir) / recipe.name / KIND


def export(
    recipe: Recipe, train_dir: str | Path | None = None, output_dir: str | Path | None = None
) -> Path:
    parent = open_artifact(train_dir or train_artifact_dir(recipe, output_dir), kind="train")
    trained_with = Recipe.model_validate(parent.settled_recipe)
    if trained_with.task.type != "sequence_classification":
        raise ArtifactError(
            f"{parent.path}: ONNX export of {trained_with.task.type} models is not supported by "
            "this version; the training artifact's merged/ weights load with transformers"
        )
    splits = load_splits(trained_with.data, trained_with.seed, trained_with.task.type)
    if splits.fingerprint != parent.manifest["data_fingerprint"]:
        raise ArtifactError(
            f"{parent.path}: the data changed since this model was trained "
            "(fingerprint differs); retrain before exporting"
        )
    tolerance = recipe.export
    model = load_merged(parent.path, trained_with.task.type)
    tokenizer = load_tokenizer(parent.file("tokenizer"))
    target = export_artifact_dir(recipe, output_dir)
    log.info(f"exporting {parent.path} to ONNX (opset {tolerance.opset})")
    with staged_artifact(target) as staging:
        input_names = export_onnx(model, tokenizer, staging / MODEL_FILE, tolerance.opset)
        shutil.copytree(parent.file("tokenizer"), staging / "tokenizer")
        write_json_atomic(staging / "labels.json", {"labels": parent.labels})
        extra = {
            "task": parent.manifest["task"],
            "max_length": trained_with.model.max_length,
            "vocab_size": int(model.config.vocab_size),
            # What training found about whether the model learned travels with it.
            "warnings": parent.manifest.get("warnings") or [],
            "onnx": {
                "opset": tolerance.opset,
                "inputs": input_names,
                "dynamic_axes": ["batch", "sequence"],
            },
        }
        publish_manifest = functools.partial(
            write_manifest,
            staging,
            kind=KIND,
            recipe=recipe.to_dict(),
            recipe_hash=recipe.hash,
            labels=parent.labels,
            parent=parent.path,
            data_fingerprint=splits.fingerprint,
            extra=extra,
        )
        publish_manifest(metrics={})  # provisional: lets the predictor open the staging dir
        parity = measure_parity(
            model,
            tokenizer,
            OnnxClassifier(staging, verify=False),
            splits.validation,
            trained_with.model.max_length,
            trained_with.metric,
        )
        log.info(
            f"parity on {parity['examples']} validation texts: max |dlogit| "
            f"{parity['max_abs_logit_diff']:.2e} (limit {tolerance.max_abs_logit_diff:.0e}), "
            f"{parity['metric']} drop {parity['metric_drop_points']:+.2f} points "
            f"(limit {tolerance.max_metric_drop})"
        )
        problems = parity_problems(parity, tolerance)
        if problems:
            raise ParityError(f"{target}: ONNX export rejected: " + "; ".join(problems))
        metrics = {
            "parity": parity,
            "validation": parity["onnx"],
            "size_bytes": (staging / MODEL_FILE).stat().st_size,
        }
        write_json_atomic(staging / "metrics.json", metrics)
        publish_manifest(metrics=metrics)
    return target
