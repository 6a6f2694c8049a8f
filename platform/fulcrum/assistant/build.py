"""The assistant stage: the recipe's answers and knowledge base, embedded once, as an
artifact a model replica loads beside the classifier.

It holds the sentence embedder as ONNX (pooling inside the graph), the knowledge base's
rows and their unit-length embeddings (float32, one row each), the answer templates, and
the settings replies follow. Exact search over it is a matrix-vector product: a few
thousand entries cost well under a millisecond; past about a million, an approximate index
(FAISS, HNSW) would be needed, and memory (384 floats per entry) before that.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from fulcrum.artifacts import (
    artifact_dir,
    open_artifact,
    sha256_file,
    staged_artifact,
    write_json_atomic,
    write_manifest,
)
from fulcrum.assistant.content import read_answers, read_knowledge_base
from fulcrum.inference.embedder import (
    OnnxEmbedder,
    default_embedder,
    export_embedder,
    prefix_for,
)
from fulcrum.log import stage_log
from fulcrum.models.registry import resolve_model_dir
from fulcrum.recipe import Recipe

log = stage_log("assistant")

KIND = "assistant"
ENTRIES_FILE = "knowledge_base.json"
EMBEDDINGS_FILE = "knowledge_base.npy"
ANSWERS_FILE = "answers.json"
# Cosine similarity a knowledge-base match must reach, per embedder, when the recipe leaves
# it unset. Measured on examples/data's knowledge bases: MiniLM gives paraphrases 0.64-0.78
# and unrelated questions below 0.25; multilingual-e5 gives paraphrases 0.93-0.99 and
# unrelated Chinese questions 0.85-0.87 (its similarities sit high throughout).
SIMILARITY_FLOORS = {"builtin:minilm": 0.5, "builtin:multilingual": 0.9}


def embedder_name(recipe: Recipe, trained_base: str | None) -> str:
    """The recipe's, else the multilingual one when the classifier is multilingual (the
    knowledge base is in the customers' language), else MiniLM."""
    if recipe.assistant.embedder:
        return recipe.assistant.embedder
    return default_embedder(trained_base)


def similarity_floor(settings, embedder: str) -> float:
    if settings.similarity_floor is not None:
        return settings.similarity_floor
    return SIMILARITY_FLOORS.get(embedder, 0.5)


def files_fingerprint(recipe: Recipe) -> str:
    """Changes when the answers or the knowledge base change on disk."""
    import hashlib

    settings = recipe.assistant
    parts = [sha256_file(Path(p)) for p in (settings.answers, settings.knowledge_base) if p]
    return hashlib.sha256("".join(parts).encode()).hexdigest()


def build_assistant(
    recipe: Recipe,
    labels: list[str],
    trained_base: str | None,
    train_dir: Path | None = None,
    output_dir=None,
) -> Path:
    """`labels`: the served model's, which every templated intent must be one of;
    `train_dir`: its training artifact, recorded as the parent (retrained: rebuilt)."""
    settings = recipe.assistant
    started = time.time()
    answers = read_answers(settings.answers, labels) if settings.answers else {}
    entries = read_knowledge_base(settings.knowledge_base) if settings.knowledge_base else []
    name = embedder_name(recipe, trained_base)
    target = artifact_dir(recipe, KIND, output_dir)
    with staged_artifact(target) as staging:
        model_dir = resolve_model_dir(name)
        prefix = prefix_for(model_dir)
        dimension = 0
        if entries:
            log.info(f"embedding {len(entries)} knowledge-base rows with {name}")
            export_embedder(model_dir, staging, settings.max_length)
            embedder = OnnxEmbedder(staging, settings.max_length, prefix)
            vectors = embedder.embed([entry.matched for entry in entries])
            np.save(staging / EMBEDDINGS_FILE, vectors.astype(np.float32))
            dimension = int(vectors.shape[1])
        write_json_atomic(staging / ENTRIES_FILE, [entry.to_dict() for entry in entries])
        write_json_atomic(staging / ANSWERS_FILE, answers)
        uncovered = [label for label in labels if label not in answers]
        write_manifest(
            staging,
            kind=KIND,
            recipe=recipe.to_dict(),
            recipe_hash=recipe.hash,
            labels=labels,
            metrics={
                "answers": len(answers),
                "intents_without_answer": uncovered,
                "knowledge_base_rows": len(entries),
                "seconds": round(time.time() - started, 1),
            },
            parent=train_dir,
            data_fingerprint=files_fingerprint(recipe),
            extra={
                "embedder": name,
                "embedder_prefix": prefix,
                "dimension": dimension,
                "settings": settings.model_dump(mode="json")
                | {"similarity_floor": similarity_floor(settings, name)},
            },
        )
    log.info(
        f"{target}: {len(answers)} answer template(s), {len(entries)} knowledge-base row(s)"
        + (f"; {len(uncovered)} intent(s) answered from the knowledge base" if uncovered else "")
    )
    open_artifact(target, kind=KIND)  # what a replica will check, checked now
    return target
