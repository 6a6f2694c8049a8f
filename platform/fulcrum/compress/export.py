"""The export stage: training artifact in, ONNX artifact out, only if it matches its parent.

It is the compress stage's fp32 variant alone (build.py): the merged weights exported to
ONNX with ONNX Runtime's fusions, loaded as Serve will load them, and gated on the validation
and test splits the parent was trained against, with the same gate and metrics every variant
gets. Published within `export.max_abs_logit_diff` and `export.max_metric_drop`, else refused.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from fulcrum.artifacts import artifact_dir, staged_artifact
from fulcrum.compress.build import (
    Parent,
    build_and_gate,
    export_fp32,
    open_parent,
    threads_for,
    write_variant,
)
from fulcrum.compress.gate import Tolerance
from fulcrum.errors import ParityError
from fulcrum.inference.predictor import MODEL_FILE, OnnxClassifier
from fulcrum.log import stage_log
from fulcrum.recipe import CompressVariant, Recipe

log = stage_log("export")


def export(
    recipe: Recipe, train_dir: str | Path | None = None, output_dir: str | Path | None = None
) -> Path:
    parent = open_parent(recipe, train_dir, output_dir, "exporting")
    tolerance = Tolerance.of("export", recipe.export)
    target = artifact_dir(recipe, "export", output_dir)
    opset = recipe.export.opset
    log.info(f"exporting {parent.artifact.path} to ONNX (opset {opset})")
    with (
        staged_artifact(target) as staging,
        tempfile.TemporaryDirectory(prefix="fulcrum-export-") as scratch,
    ):
        fp32 = Path(scratch) / MODEL_FILE
        input_names, exporter = export_fp32(parent, fp32, opset)
        built = build_and_gate(
            CompressVariant(kind="fp32"),
            fp32,
            staging / MODEL_FILE,
            parent,
            tolerance,
            threads_for(None),
        )
        log.info(_parity_line(parent, built.gate, tolerance))
        if not built.deployable:
            raise ParityError(f"{target}: ONNX export rejected: " + "; ".join(built.reasons))
        metrics = {
            "gate": built.gate,
            "validation": built.gate["validation"]["metrics"],
            "size_bytes": (staging / MODEL_FILE).stat().st_size,
        }
        onnx = {"opset": opset, "inputs": input_names, "exporter": exporter, "steps": built.steps}
        write_variant(staging, recipe, parent, built, onnx, metrics)
        _check_served_tokenizer(staging, parent, tolerance, target)
    return target


def _check_served_tokenizer(staging: Path, parent: Parent, tolerance: Tolerance, target) -> None:
    """The gate fed both models the training code's tokenisation; Serve tokenises with the
    `tokenizers` library from the artifact's files. Run the artifact the way Serve does and
    hold it to the same logit limit, so a tokenizer that differs there is caught here."""
    if parent.task.name == "token_classification":
        return  # a tagger's served output is per word, checked by the gate's own alignment
    from fulcrum.data import texts_of

    split = parent.gate_splits["validation"]
    reference = np.concatenate(split.reference_logits)
    texts = texts_of(parent.splits.validation, len(reference))
    served = OnnxClassifier(staging, verify=False).logits(texts)
    difference = float(np.abs(served - reference).max())
    if difference > tolerance.max_abs_logit_diff:
        raise ParityError(
            f"{target}: ONNX export rejected: served as Serve runs it, its logits differ from "
            f"PyTorch's by {difference:.3g} > export.max_abs_logit_diff "
            f"{tolerance.max_abs_logit_diff:g}: the artifact's tokenizer files do not "
            "tokenise as the training tokenizer did"
        )


def _parity_line(parent: Parent, gate: dict, tolerance: Tolerance) -> str:
    splits = " and ".join(f"{result['examples']} {split}" for split, result in gate.items())
    worst_diff = max(result["max_abs_logit_diff"] for result in gate.values())
    worst_drop = max(result["metric_drop_points"] for result in gate.values())
    return (
        f"parity on {splits} texts: max |dlogit| {worst_diff:.2e} "
        f"(limit {tolerance.max_abs_logit_diff:.0e}), {parent.metric} drop {worst_drop:+.2f} "
        f"points (limit {tolerance.max_metric_drop:g})"
    )
