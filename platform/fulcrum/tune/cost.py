"""What the model a trial would deploy costs: its dynamic-INT8 ONNX size and latency.

Measured the way it would be served (ONNX Runtime, INT8, a batch of real validation texts),
not estimated from parameter counts: two trials with the same parameters can differ (a
cut-down student, say), and that difference is what a cost-aware campaign is for."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

WARMUP_BATCHES = 2
TIMED_BATCHES = 10


def deployed_cost(
    train_dir: Path, texts: list[str], batch_size: int, max_length: int, task: str, threads: int
) -> dict[str, float]:
    """{cost_latency_ms: median ms per batch, cost_size_mb: INT8 model file size}."""
    from fulcrum.compress.onnx_export import export_onnx
    from fulcrum.compress.quantize import quantize_dynamic_int8
    from fulcrum.inference.session import open_session
    from fulcrum.models.classifier import load_tokenizer
    from fulcrum.train.merge import TOKENIZER_DIR, load_merged

    model = load_merged(train_dir, task)
    tokenizer = load_tokenizer(train_dir / TOKENIZER_DIR)
    with tempfile.TemporaryDirectory(prefix="fulcrum-cost-") as folder:
        fp32, int8 = Path(folder) / "model.onnx", Path(folder) / "model.int8.onnx"
        export_onnx(model, tokenizer, fp32, opset=18)
        quantize_dynamic_int8(fp32, int8)
        session = open_session(int8, threads, cpu_only=True)
        names = {item.name for item in session.get_inputs()}
        batches = [
            texts[start : start + batch_size]
            for start in range(0, len(texts) - batch_size + 1, batch_size)
        ] or [texts]
        batches = (batches * (1 + (WARMUP_BATCHES + TIMED_BATCHES) // len(batches)))[
            : WARMUP_BATCHES + TIMED_BATCHES
        ]
        timings = []
        for index, chunk in enumerate(batches):
            encoded = tokenizer(
                chunk, padding=True, truncation=True, max_length=max_length, return_tensors="np"
            )
            feed = {name: np.asarray(encoded[name], dtype=np.int64) for name in names}
            started = time.perf_counter()
            session.run(["logits"], feed)
            if index >= WARMUP_BATCHES:
                timings.append(1000 * (time.perf_counter() - started))
        size_mb = int8.stat().st_size / 2**20
    return {"cost_latency_ms": statistics.median(timings), "cost_size_mb": size_mb}


def texts_of(table: pa.Table, limit: int) -> list[str]:
    """Plain texts of a split (token lists joined with spaces), at most `limit`."""
    rows = table.slice(0, limit)
    if "text" in rows.column_names:
        return [str(text) for text in rows.column("text").to_pylist()]
    return [" ".join(tokens) for tokens in rows.column("tokens").to_pylist()]


def describe(cost: dict[str, Any]) -> str:
    return f"INT8 ONNX {cost['cost_size_mb']:.1f} MB, {cost['cost_latency_ms']:.1f} ms/batch"
