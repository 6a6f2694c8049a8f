"""One reply, decided in order: the intent's template when the model is sure of an intent
that has one; else the knowledge base's nearest entry when it is close enough; else the
hand-over. Every reply says what chose it, so a support team can count how often each
path answers, and which intents or questions fall through to a person.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from fulcrum.artifacts import open_artifact
from fulcrum.assistant.build import ANSWERS_FILE, EMBEDDINGS_FILE, ENTRIES_FILE, KIND
from fulcrum.assistant.content import fill

TEMPLATE, KNOWLEDGE_BASE, HANDOVER = "template", "knowledge_base", "handover"


class Assistant:
    """An assistant artifact, loaded in the replica that serves its classifier."""

    def __init__(self, path: str | Path, threads: int | None = None, verify: bool = True) -> None:
        from fulcrum.inference.embedder import OnnxEmbedder

        artifact = open_artifact(path, kind=KIND, verify=verify)
        manifest = artifact.manifest
        self.settings = manifest.settings
        self.embedder_name = manifest.embedder
        self.answers: dict[str, str] = json.loads(artifact.file(ANSWERS_FILE).read_text())
        self.entries: list[dict[str, Any]] = json.loads(artifact.file(ENTRIES_FILE).read_text())
        self.vectors = np.load(artifact.file(EMBEDDINGS_FILE)) if self.entries else np.zeros((0, 0))
        self.embedder = (
            OnnxEmbedder(
                artifact.path, self.settings["max_length"], manifest.embedder_prefix, threads
            )
            if self.entries
            else None
        )

    def describe(self) -> dict[str, Any]:
        """What GET /v1/models/{name} says of the assistant."""
        return {
            "answers": len(self.answers),
            "knowledge_base_rows": len(self.entries),
            "embedder": self.embedder_name,
            "similarity_floor": self.settings["similarity_floor"],
            "top_k": self.settings["top_k"],
        }

    def reply(self, text: str, prediction: dict[str, Any], values: dict[str, str]) -> dict:
        """`prediction`: the classifier's answer for `text` (OnnxClassifier.predict's)."""
        intent = prediction["label"]
        outside = bool(prediction.get("out_of_scope", False))
        reply: dict[str, Any] = {
            "intent": None if outside else intent,
            "confidence": prediction["score"],
            "out_of_scope": outside,
            "in_scope_score": prediction.get("in_scope_score"),
            "predicted_intent": intent,
        }
        if not outside and intent in self.answers:
            answer, missing = fill(self.answers[intent], values)
            return reply | {
                "answer": answer,
                "chosen_by": TEMPLATE,
                "reason": f"intent {intent!r} has a template",
                "missing_slots": missing,
                "passages": [],
            }
        why = "out of scope" if outside else f"intent {intent!r} has no template"
        passages = self.search(text)
        floor = self.settings["similarity_floor"]
        if passages and passages[0]["score"] >= floor:
            best = passages[0]
            return reply | {
                "answer": best["answer"],
                "chosen_by": KNOWLEDGE_BASE,
                "reason": f"{why}; the nearest knowledge-base entry scores "
                f"{best['score']:.2f} >= {floor:g}",
                "missing_slots": [],
                "passages": passages,
            }
        nearest = (
            f"the nearest scores {passages[0]['score']:.2f} < {floor:g}"
            if passages
            else ("no knowledge base")
        )
        return reply | {
            "answer": self.settings["handover"],
            "chosen_by": HANDOVER,
            "reason": f"{why}; {nearest}",
            "missing_slots": [],
            "passages": passages,
        }

    def search(self, text: str) -> list[dict[str, Any]]:
        """The knowledge base's top_k entries by cosine similarity, best first."""
        if self.embedder is None:
            return []
        query = self.embedder.embed([text])[0]
        scores = self.vectors @ query
        count = min(self.settings["top_k"], len(scores))
        best = np.argpartition(-scores, count - 1)[:count]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [self.entries[index] | {"score": float(scores[index])} for index in best]
