"""Latency and throughput of a model as a replica would run it: one text at a time (p50,
p95) and batches of 32 (p50, p95, texts per second), on the same real texts for every
model, with the same thread count. Tokenisation is done once, outside the clock: it is the
same for every model and would only blur the comparison."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

BATCH = 32
WARMUP = 3
MIN_BATCHES = 6


def encode_for_timing(
    tokenizer,
    texts: list[str],
    max_length: int,
    input_names: list[str],
    batch_size: int = BATCH,
) -> tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
    """(one-text inputs, batch inputs of `batch_size` texts, at least MIN_BATCHES of them),
    each a feed of int64 arrays."""

    def encode(chunk: list[str]) -> dict[str, np.ndarray]:
        encoded = tokenizer(
            chunk, padding=True, truncation=True, max_length=max_length, return_tensors="np"
        )
        return {name: np.asarray(encoded[name], dtype=np.int64) for name in input_names}

    singles = [encode([text]) for text in texts]
    total = batch_size * MIN_BATCHES
    pool = texts * (1 + total // max(1, len(texts)))
    batches = [encode(pool[start : start + batch_size]) for start in range(0, total, batch_size)]
    return singles, batches


def measure(
    run: Callable[[dict[str, np.ndarray]], Any],
    singles: list[dict[str, np.ndarray]],
    batches: list[dict[str, np.ndarray]],
) -> dict[str, float]:
    one = _timings(run, singles)
    many = measure_batches(run, batches)
    return {
        "batch1_p50_ms": _percentile(one, 50),
        "batch1_p95_ms": _percentile(one, 95),
        "batch32_p50_ms": _percentile(many, 50),
        "batch32_p95_ms": _percentile(many, 95),
        "throughput_per_s": BATCH * len(many) / (sum(many) / 1000),
    }


def measure_batches(
    run: Callable[[dict[str, np.ndarray]], Any], batches: list[dict[str, np.ndarray]]
) -> list[float]:
    """Milliseconds per batch, after WARMUP untimed runs."""
    return _timings(run, batches)


def p50(timings: list[float]) -> float:
    return _percentile(timings, 50)


def onnx_runner(session) -> Callable[[dict[str, np.ndarray]], Any]:
    names = [item.name for item in session.get_inputs()]
    return lambda feed: session.run(["logits"], {name: feed[name] for name in names})


def torch_runner(model) -> Callable[[dict[str, np.ndarray]], Any]:
    import torch

    model.eval()

    def run(feed: dict[str, np.ndarray]):
        with torch.inference_mode():
            return model(**{name: torch.from_numpy(array) for name, array in feed.items()}).logits

    return run


def _timings(run, feeds: list[dict[str, np.ndarray]]) -> list[float]:
    for feed in feeds[:WARMUP]:
        run(feed)
    timings = []
    for feed in feeds:
        started = time.perf_counter()
        run(feed)
        timings.append(1000 * (time.perf_counter() - started))
    return timings


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))
