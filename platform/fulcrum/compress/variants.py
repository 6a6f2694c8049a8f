"""From the fp32 ONNX export to each compressed variant a recipe lists.

Fusions first (ONNX Runtime's transformer optimizer), then the precision change, so the
quantiser sees the fused graph the runtime will execute. Static INT8 learns its activation
ranges from training texts (never validation or test: those judge the variant).
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from fulcrum.compress.quantize import quantize_dynamic_int8
from fulcrum.models.families import FUSABLE_MODEL_TYPES
from fulcrum.recipe import CompressVariant

CALIBRATION_BATCH = 16


def build_variant(
    variant: CompressVariant,
    fp32_model: Path,
    target: Path,
    model_config: dict[str, Any],
    calibration: list[dict[str, np.ndarray]],
    exclude_sensitive: int = 0,
) -> dict[str, Any]:
    """Write `target` and return what was done to get it (recorded in the manifest).
    `exclude_sensitive`: INT8 only, keep that many of the most outlier-prone MatMuls in
    float (the retry after a variant failed its gate)."""
    steps: dict[str, Any] = {}
    fp32_model, target = fp32_model.resolve(), target.resolve()  # the tools run elsewhere
    source = fp32_model
    if variant.optimize or variant.kind == "fp16":
        fused = target.with_name("fused.onnx")
        steps["fusions"] = optimize_transformer(fp32_model, fused, model_config)
        if steps["fusions"] is not None:
            source = fused
    excluded = (
        sensitive_matmuls(source, calibration, exclude_sensitive) if exclude_sensitive else []
    )
    if excluded:
        steps["kept_in_float"] = excluded
    per_channel, weights = variant.resolved_per_channel, variant.weight_type
    if variant.kind == "fp32":
        shutil.copyfile(source, target)
    elif variant.kind == "fp16":
        to_fp16(source, target, model_config)
    elif variant.kind == "dynamic_int8":
        quantize_dynamic_int8(source, target, per_channel, weights, excluded)
    else:
        quantize_static_int8(source, target, calibration, per_channel, weights, excluded)
    if source != fp32_model:
        source.unlink()
    return steps


def optimize_transformer(
    source: Path, target: Path, model_config: dict[str, Any]
) -> dict[str, int] | None:
    """ONNX Runtime's transformer fusions; None (and no file) for architectures it does not
    know. Returns the count of each fused operator it made."""
    if model_config.get("model_type") not in FUSABLE_MODEL_TYPES:
        return None
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    # Left as Add + LayerNormalization: faster on CPU (fulcrum.inference.session), and a
    # CUDA session fuses the pair itself when it loads the model.
    options.enable_skip_layer_norm = False
    with _quiet():
        optimized = optimize_model(
            str(source),
            model_type="bert",
            num_heads=int(model_config["num_attention_heads"]),
            hidden_size=int(model_config["hidden_size"]),
            optimization_options=options,
        )
        optimized.save_model_to_file(str(target))
    return {op: count for op, count in optimized.get_fused_operator_statistics().items() if count}


def to_fp16(source: Path, target: Path, model_config: dict[str, Any]) -> None:
    """Half-precision weights and arithmetic with fp32 inputs and outputs, so a client and
    the predictor feed and read the same arrays as for fp32. Meant for GPUs: CPUs run it,
    but without fp16 arithmetic units it is no faster there."""
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    with _quiet():
        model = OnnxModel(onnx.load(str(source)))
        model.convert_float_to_float16(keep_io_types=True)
        model.save_model_to_file(str(target))


def quantize_static_int8(
    source: Path,
    target: Path,
    calibration: list[dict[str, np.ndarray]],
    per_channel: bool,
    weight_type: str,
    exclude: list[str] = (),
) -> None:
    """INT8 weights and activations (QDQ format), activation ranges from the calibration
    batches (min-max). Faster than dynamic INT8 where the runtime fuses the QDQ pairs, and
    more sensitive to outliers: the parity gate decides."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = target.with_name("prepared.onnx")
    with _quiet():
        # ONNX shape inference and constant folding, as the quantiser asks; the symbolic
        # pass cannot follow the exporter's dynamic shapes, and is not needed for MatMuls.
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(target),
            _Reader(calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            weight_type=QuantType.QInt8 if weight_type == "qint8" else QuantType.QUInt8,
            activation_type=QuantType.QUInt8,
            calibrate_method=CalibrationMethod.MinMax,
            # The matrix products are where the time goes. Quantising the residual adds
            # and the LayerNorm inputs too cost the demo model 58 points of macro-F1.
            op_types_to_quantize=["MatMul"],
            nodes_to_exclude=list(exclude),
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    prepared.unlink()


def calibration_batches(
    tokenizer, texts: list[str], max_length: int, input_names: list[str]
) -> list[dict[str, np.ndarray]]:
    batches = []
    for start in range(0, len(texts), CALIBRATION_BATCH):
        encoded = tokenizer(
            texts[start : start + CALIBRATION_BATCH],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="np",
        )
        batches.append({name: np.asarray(encoded[name], dtype=np.int64) for name in input_names})
    return batches


@contextlib.contextmanager
def _quiet():
    """The optimizer and quantisers log every pass and node (some through the root logger);
    a real failure still raises. They also leave scratch files in the working directory
    (symbolic shape inference saves a 90 MB `sym_shape_infer_temp.onnx` there when it gives
    up), so they run in a temporary one: every path handed to them is absolute."""
    loggers = [logging.getLogger(name) for name in ("onnxruntime", "onnx", "")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="fulcrum-onnx-") as scratch,
            contextlib.chdir(scratch),
            contextlib.redirect_stdout(io.StringIO()),
        ):
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def sensitive_matmuls(
    source: Path, calibration: list[dict[str, np.ndarray]], count: int
) -> list[str]:
    """The `count` weight MatMuls whose inputs carry the largest outliers relative to their
    bulk (max |x| over the 99.9th percentile of |x| on the calibration texts). An INT8
    scale stretched to reach a rare outlier leaves few levels for every other value: those
    layers lose the most to quantisation, and a handful kept in float recovers most of it."""
    import onnx
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        modify_model_output_intermediate_tensors,
    )

    model = onnx.load(str(source))
    weights = {initializer.name for initializer in model.graph.initializer}
    inputs = {
        node.name: node.input[0]
        for node in model.graph.node
        if node.op_type == "MatMul" and len(node.input) == 2 and node.input[1] in weights
    }
    augmented = source.with_name("augmented.onnx")
    with _quiet():
        modify_model_output_intermediate_tensors(str(source), str(augmented), ["MatMul"])
        activations = collect_activations(str(augmented), calibration)
    augmented.unlink()
    ratios = {}
    for node, tensor in inputs.items():
        values = activations.get(tensor)
        if not values:
            continue
        magnitude = np.abs(np.concatenate([np.ravel(value) for value in values]))
        bulk = float(np.quantile(magnitude, 0.999))
        ratios[node] = float(magnitude.max()) / bulk if bulk > 0 else float("inf")
    return sorted(ratios, key=ratios.get, reverse=True)[:count]


class _Reader:
    """ONNX Runtime's calibration protocol over a list of feeds."""

    def __init__(self, batches: list[dict[str, np.ndarray]]) -> None:
        self.batches = iter(batches)

    def get_next(self):
        return next(self.batches, None)
