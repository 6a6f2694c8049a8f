"""From a training checkpoint's adapter to one model for inference, and measuring that
model as saved (so an artifact's metrics describe its files, not the training process)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from fulcrum.models.classifier import (
    load_model_from_config,
    load_tokenizer,
    name_deepspeed_accelerator,
)
from fulcrum.models.methods import restore_model
from fulcrum.models.prefix import prefix_tokens
from fulcrum.recipe import Recipe
from fulcrum.tasks import TASKS, batch_logits, evaluate_with_confusion

MERGED_DIR = "merged"
TOKENIZER_DIR = "tokenizer"
EVAL_BATCH = 64


def merge_adapter(
    model_dir: Path,
    adapter_dir: Path,
    label_names: list[str],
    recipe: Recipe,
    overrides: dict[str, Any] | None = None,
):
    import torch

    name_deepspeed_accelerator(torch.cuda.is_available())  # PEFT imports DeepSpeed
    return restore_model(
        model_dir, adapter_dir, label_names, recipe.peft, TASKS[recipe.task.type], overrides
    )


def load_merged(artifact_dir: Path, task_name: str):
    """The merged model of a training artifact. Prefix-tuned models carry parameters no
    transformers class knows, so they are rebuilt from the config and loaded by hand."""
    from safetensors.torch import load_file
    from transformers import AutoConfig

    task = TASKS[task_name]
    merged = artifact_dir / MERGED_DIR
    if prefix_tokens(AutoConfig.from_pretrained(merged)):
        model = load_model_from_config(merged, task)
        model.load_state_dict(load_file(str(merged / "model.safetensors")))
        return model.eval()
    from fulcrum.models.classifier import quiet_transformers

    quiet_transformers()
    return task.model_class().from_pretrained(merged, use_kernels=False).eval()


def table_batches(table: pa.Table, batch_size: int):
    """Batches of `batch_size` rows as column lists. A table with a `group` column (sorted
    by it, as fulcrum.data loads it) is cut only where a group ends, so each batch holds
    whole groups: ranking metrics are counted per group (fulcrum.ranking)."""
    ends = _batch_ends(table, batch_size)
    for start, end in zip([0, *ends[:-1]], ends):
        chunk = table.slice(start, end - start)
        yield {name: chunk.column(name).to_pylist() for name in chunk.column_names}


def _batch_ends(table: pa.Table, batch_size: int) -> list[int]:
    rows = table.num_rows
    if "group" not in table.column_names:
        return list(range(batch_size, rows, batch_size)) + [rows] * (rows > 0)
    groups = table.column("group").to_numpy(zero_copy_only=False)
    # Row i ends a group when the next row's group differs (or it is the last row).
    group_ends = np.flatnonzero(np.append(groups[1:] != groups[:-1], True)) + 1
    ends, start = [], 0
    for end in group_ends:
        if end - start >= batch_size or end == rows:
            ends.append(int(end))
            start = end
    return ends


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, Any]
    counts: np.ndarray  # the task's additive counts the metrics come from
    confusion: np.ndarray  # gold x predicted label (per word for tags)
    logits: np.ndarray | None = None  # [rows, labels], sequence classification only


def evaluate_merged(
    artifact_dir: Path,
    tables: dict[str, pa.Table],
    label_names: list[str],
    recipe: Recipe,
    unseen: dict[str, pa.Table] | None = None,
) -> tuple[dict[str, Evaluation | None], dict[str, np.ndarray]]:
    """Each split measured with the merged model as saved (None for an empty split), and
    the logits of each split's texts whose labels the model does not have."""
    task = TASKS[recipe.task.type]
    model = load_merged(artifact_dir, task.name)
    collate = task.make_collate(
        load_tokenizer(artifact_dir / TOKENIZER_DIR), recipe.model.max_length
    )
    evaluations: dict[str, Evaluation | None] = {}
    for split, table in tables.items():
        if table is None or table.num_rows == 0:
            evaluations[split] = None
            continue
        batches = (collate(batch) for batch in table_batches(table, EVAL_BATCH))
        kept: list[np.ndarray] = []
        counts, confusion = evaluate_with_confusion(
            model, batches, task, label_names, keep_logits=kept
        )
        logits = np.concatenate(kept) if task.name != "token_classification" else None
        evaluations[split] = Evaluation(
            task.metrics(counts, label_names), counts, confusion, logits
        )
    unseen_logits = {
        split: np.concatenate(
            batch_logits(model, (collate(b) for b in table_batches(table, EVAL_BATCH)))
        )
        for split, table in (unseen or {}).items()
    }
    return evaluations, unseen_logits
