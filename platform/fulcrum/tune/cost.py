"""What the model a trial would deploy costs: its dynamic-INT8 ONNX size and latency.

Measured the way it would be served (ONNX Runtime, INT8, batches of real validation texts,
timed as the compress stage times every variant: compress/latency.py), not estimated from
parameter counts: two trials with the same parameters can differ (a cut-down student, say),
and that difference is what a cost-aware campaign is for."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any


def deployed_cost(
    train_dir: Path,
    texts: list[str],
    batch_size: int,
    max_length: int,
    task: str,
    threads: int,
    opset: int,
) -> dict[str, float]:
    """{cost_latency_ms: median ms per batch of `batch_size`, cost_size_mb: INT8 model size}."""
    from fulcrum.compress.latency import encode_for_timing, measure_batches, onnx_runner, p50
    from fulcrum.compress.onnx_export import export_onnx
    from fulcrum.compress.quantize import quantize_dynamic_int8
    from fulcrum.inference.session import open_session
    from fulcrum.models.classifier import load_tokenizer
    from fulcrum.train.merge import TOKENIZER_DIR, load_merged

    model = load_merged(train_dir, task)
    tokenizer = load_tokenizer(train_dir / TOKENIZER_DIR)
    with tempfile.TemporaryDirectory(prefix="fulcrum-cost-") as folder:
        fp32, int8 = Path(folder) / "model.onnx", Path(folder) / "model.int8.onnx"
        input_names = export_onnx(model, tokenizer, fp32, opset=opset)
        quantize_dynamic_int8(fp32, int8)
        session = open_session(int8, threads, cpu_only=True)
        _, batches = encode_for_timing(tokenizer, texts, max_length, input_names, batch_size)
        latency = p50(measure_batches(onnx_runner(session), batches))
        size_mb = int8.stat().st_size / 2**20
    return {"cost_latency_ms": latency, "cost_size_mb": size_mb}


def describe(cost: dict[str, Any]) -> str:
    return f"INT8 ONNX {cost['cost_size_mb']:.1f} MB, {cost['cost_latency_ms']:.1f} ms/batch"
