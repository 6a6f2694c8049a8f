"""One served model: an export artifact on ONNX Runtime.

Texts from concurrent requests are pooled into one ONNX Runtime call (up to `max_batch_size`
texts; serve/batching.py), which is where a CPU replica gets its throughput, and a text at an
idle replica runs at once. The call runs in a worker thread (ONNX Runtime releases the GIL),
so the replica keeps taking requests while this one computes.

`Model` runs as its own deployment (`ModelServer`, when several models are served: each
scales on its own) or inside the gateway's process (one model, `colocate`: a request crosses
one Ray process instead of two, see `InProcess`).
"""

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

from ray import serve
from ray.serve import metrics

from fulcrum.artifacts import open_artifact
from fulcrum.catalog import lineage
from fulcrum.serve.batching import Batcher
from fulcrum.serve.config import ModelArgs

logger = logging.getLogger("ray.serve")

BATCH_BOUNDARIES = [1, 2, 4, 8, 16, 32, 64, 128]
LATENCY_BOUNDARIES_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]
# Texts whose /rank prefilter embeddings a replica keeps: a catalogue's items come back
# request after request. 384 floats each (MiniLM, multilingual-e5-small): about 30 MB.
PREFILTER_CACHE_TEXTS = 20_000
CONFIDENCE_BOUNDARIES = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]


class Model:
    def __init__(self, model: ModelArgs) -> None:
        from fulcrum.inference import OnnxClassifier

        self.name = model.name
        # `serve deploy` of a hand-written config skips the launcher's checks: repeat the
        # one that matters, so a variant that failed its parity gate never takes traffic.
        artifact = open_artifact(model.artifact, kind="export")  # a URI: fetched to this node
        if artifact.manifest.refusal and not model.force:
            raise RuntimeError(
                f"{model.artifact}: not deployable ({artifact.manifest.refusal}); set force: true"
            )
        # ONNX Runtime threads follow the replica's CPU share; more would only contend. Its
        # idle threads must not spin: they would take the CPU from the replica's own event
        # loop and the HTTP proxy (+20% requests/s at 8 in flight on 2 cores without).
        self.predictor = OnnxClassifier(
            artifact.path, threads=max(1, int(model.num_cpus)), spin=False, verify=False
        )
        self.description = describe(self.name, self.predictor)
        self.max_batch_size = model.max_batch_size
        self.running = asyncio.Lock()
        self.explainer = None  # built on the first /explain
        self.batcher = Batcher(self._run, model.max_batch_size, model.batch_wait_timeout_s)
        self.batch_sizes = metrics.Histogram(
            "fulcrum_batch_size",
            description="Texts per ONNX Runtime call.",
            boundaries=BATCH_BOUNDARIES,
            tag_keys=("model",),
        )
        self.batch_latency = metrics.Histogram(
            "fulcrum_batch_latency_ms",
            description="Milliseconds per ONNX Runtime call, tokenisation included.",
            boundaries=LATENCY_BOUNDARIES_MS,
            tag_keys=("model",),
        )
        for metric in (self.batch_sizes, self.batch_latency):
            metric.set_default_tags({"model": self.name})
        # The first ONNX Runtime calls allocate and plan; pay for them before taking traffic,
        # at the largest batch this replica will run.
        pairs = self.predictor.task == "text_pair_classification"
        warm_up = ("warm-up", "warm-up") if pairs else "warm-up"
        self.predictor.predict([warm_up] * model.max_batch_size)
        self.predictor.predict([warm_up])
        self.traffic = None
        if self.predictor.task != "token_classification":
            self.traffic = Traffic(self.name, model.traffic_log, model.traffic_window_s)
        self.prefilter, self.prefilter_keep = None, model.rank_prefilter
        self.description["rank_prefilter"] = None
        if model.rank_prefilter and pairs and len(self.predictor.labels) == 2:
            from fulcrum.inference.embedder import (
                EmbeddingCache,
                cached_embedder,
                default_embedder,
            )

            embedder = model.rank_embedder or default_embedder(artifact.manifest.base_model)
            self.prefilter = EmbeddingCache(
                cached_embedder(
                    embedder, self.predictor.max_length, threads=max(1, int(model.num_cpus))
                ),
                PREFILTER_CACHE_TEXTS,
            )
            self.prefilter.embedder.embed(["warm-up"] * min(model.rank_prefilter + 1, 64))
            self.description["rank_prefilter"] = {
                "keep": model.rank_prefilter,
                "embedder": embedder,
            }
        self.assistant = None
        if model.assistant:
            from fulcrum.assistant.reply import Assistant

            self.assistant = Assistant(model.assistant, threads=max(1, int(model.num_cpus)))
            self.assistant.search("warm-up")
        self.description["assistant"] = self.assistant.describe() if self.assistant else None

    async def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        """Whole batches of a large request run as they are; the rest (and every small
        request) queue for the batcher, which pools texts across requests."""
        size = self.max_batch_size
        whole = len(texts) - len(texts) % size
        queued = asyncio.gather(*(self.batcher.submit(text) for text in texts[whole:]))
        results = []
        for start in range(0, whole, size):
            results += await self._run(texts[start : start + size])
        return results + list(await queued)

    async def rank(self, query: str, candidates: list[str]) -> list[tuple[int, float]]:
        """(candidate index, score) best first. The (query, candidate) pairs go through
        predict, so they are batched with other requests' texts like any others. With a
        prefilter, only the candidates nearest the query by embedding are scored (and
        ranked); texts embedded before come from the replica's cache, the others run on
        its CPU share like a batch does."""
        indices = list(range(len(candidates)))
        if self.prefilter is not None and len(candidates) > self.prefilter_keep:
            from fulcrum.inference.embedder import nearest

            async with self.running:
                vectors = await asyncio.to_thread(self.prefilter.embed, [query, *candidates])
            indices = nearest(vectors[0], vectors[1:], self.prefilter_keep).tolist()
        positive = self.predictor.labels[1]
        answers = await self.predict([(query, candidates[index]) for index in indices])
        scores = [answer["probabilities"][positive] for answer in answers]
        order = sorted(range(len(scores)), key=lambda position: -scores[position])
        return [(indices[position], scores[position]) for position in order]

    async def _run(self, texts: list[str]) -> list[dict[str, Any]]:
        # One ONNX Runtime call at a time: its threads are the replica's whole CPU share.
        async with self.running:
            started = time.perf_counter()
            results = await asyncio.to_thread(self.predictor.predict, texts)
        self.batch_latency.observe(1000 * (time.perf_counter() - started))
        self.batch_sizes.observe(len(texts))
        if self.traffic is not None:
            self.traffic.record(results)
        return results

    async def explain(self, texts: list[str | tuple[str, str]], max_words: int) -> dict[str, Any]:
        """Occlusion on the served model itself (a forward pass per word, batched), so the
        explanation is of exactly what /predict answers. A text (or a pair, both sides
        together) with more than `max_words` words (explanation units as the model reads
        them, after truncation: a Chinese text counts its words or characters) is refused,
        naming it."""
        if self.explainer is None:
            from fulcrum.explain.explainer import OnnxModel

            self.explainer = OnnxModel(predictor=self.predictor)
        for index, text in enumerate(texts):
            words = len({w for w in self.explainer.encode(text).word_ids if w is not None})
            if words > max_words:
                field = f"{'texts' if isinstance(text, str) else 'pairs'}[{index}]"
                return {
                    "refused": f"{field}: {words} words, over the limit of {max_words} "
                    "for an explanation",
                    "field": field,
                }
        results = []
        for text in texts:
            async with self.running:
                explanations = await asyncio.to_thread(
                    self.explainer.explain, text, "occlusion", 0, None
                )
            results.append([explanation.to_dict() for explanation in explanations])
        return {"explanations": results}

    async def reply(self, text: str, values: dict[str, str]) -> dict[str, Any] | None:
        """The assistant's reply (None: this model has no assistant). The text is
        classified through the batcher, like any /predict text."""
        if self.assistant is None:
            return None
        (prediction,) = await self.predict([text])
        async with self.running:
            return await asyncio.to_thread(self.assistant.reply, text, prediction, values)

    def info(self) -> dict[str, Any]:
        return self.description

    def ready(self) -> bool:
        return True


ModelServer = serve.deployment(Model, name="ModelServer")


class InProcess:
    """A Model in the gateway's own process, called the way a DeploymentHandle is
    (`await model.predict.remote(texts)`), so the gateway has one code path for both."""

    def __init__(self, model: Model) -> None:
        self.model = model

    def __getattr__(self, method: str) -> "_Method":
        return _Method(getattr(self.model, method))


class _Method:
    def __init__(self, function) -> None:
        self.function = function

    def remote(self, *args, **kwargs):
        result = self.function(*args, **kwargs)
        return result if asyncio.iscoroutine(result) else _ready(result)


async def _ready(value):
    return value


class Traffic:
    """What a classifier's replica answered, for drift (fulcrum.drift): each label's count
    and the answers' confidence in Prometheus, and, with a traffic log folder, one window
    of `window_s` seconds per JSON line in this replica's own file there."""

    def __init__(self, name: str, folder: str | None, window_s: float) -> None:
        from fulcrum.drift import Window

        self.window_s = window_s
        self.window = Window(start=time.time())
        self.path = None
        if folder:
            import os
            import socket

            Path(folder).mkdir(parents=True, exist_ok=True)
            self.path = Path(folder) / f"{name}-{socket.gethostname()}-{os.getpid()}.jsonl"
        self.predictions = metrics.Counter(
            "fulcrum_predictions",
            description="Answers per predicted label.",
            tag_keys=("model", "label"),
        )
        self.confidence = metrics.Histogram(
            "fulcrum_prediction_confidence",
            description="The top probability of each answer.",
            boundaries=CONFIDENCE_BOUNDARIES,
            tag_keys=("model",),
        )
        for metric in (self.predictions, self.confidence):
            metric.set_default_tags({"model": name})

    def record(self, answers: list[dict[str, Any]]) -> None:
        for answer in answers:
            self.predictions.inc(tags={"label": answer["label"]})
            self.confidence.observe(answer["score"])
        self.window.record(answers)
        now = time.time()
        if now - self.window.start >= self.window_s:
            self.flush(now)

    def flush(self, now: float) -> None:
        """Append the window to the log (if any) and start the next one. A log that cannot
        be written costs the window, never a request."""
        from fulcrum.drift import Window

        self.window.end = now
        if self.path is not None and self.window.texts:
            try:
                with open(self.path, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(self.window.to_dict()) + "\n")
            except OSError as error:
                logger.warning(f"traffic log {self.path}: not written ({error.strerror})")
        self.window = Window(start=now)


def describe(name: str, predictor) -> dict[str, Any]:
    """What GET /v1/models says of a model, from its manifest and its parents'. The version
    is the model file's content hash: two replicas (or two clusters) that say the same
    version serve the same weights."""
    manifest = predictor.artifact.manifest
    metrics = manifest.metrics
    return {
        "name": name,
        "version": manifest.version,
        "task": predictor.task,
        "labels": predictor.labels,
        "max_length": predictor.max_length,
        "deployable": manifest.deployable,
        "variant": manifest.variant_name,
        "metrics": {key: metrics[key] for key in ("validation", "test") if key in metrics},
        # How "out of scope" is decided (score, threshold, trained class); None: never.
        "out_of_scope": manifest.out_of_scope,
        "lineage": lineage(predictor.artifact.path),
    }
