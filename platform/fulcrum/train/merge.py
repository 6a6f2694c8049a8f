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
from fulcrum.tasks import TASKS, evaluate_with_confusion

MERGED_DIR = "merged"
TOKENIZER_DIR = "tokenizer"


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
    return task.model_class().from_pretrained(merged).eval()


def table_batches(table: pa.Table, batch_size: int):
    for start in range(0, table.num_rows, batch_size):
        chunk = table.slice(start, batch_size)
        yield {name: chunk.column(name).to_pylist() for name in chunk.column_names}


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, Any]
    counts: np.ndarray  # the task's additive counts the metrics come from
    confusion: np.ndarray  # gold x predicted label (per word for tags)


def evaluate_merged(
    artifact_dir: Path, table: pa.Table, label_names: list[str], recipe: Recipe
) -> Evaluation:
    task = TASKS[recipe.task.type]
    model = load_merged(artifact_dir, task.name)
    collate = task.make_collate(
        load_tokenizer(artifact_dir / TOKENIZER_DIR), recipe.model.max_length
    )
    batches = (collate(batch) for batch in table_batches(table, 64))
    counts, confusion = evaluate_with_confusion(model, batches, task, label_names)
    return Evaluation(task.metrics(counts, label_names), counts, confusion)
