"""Fold a LoRA adapter into its base weights, and measure the merged model as saved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from fulcrum.metrics import classification_metrics
from fulcrum.models.classifier import (
    load_base_classifier,
    load_tokenizer,
    name_deepspeed_accelerator,
    quiet_transformers,
)
from fulcrum.recipe import Recipe
from fulcrum.train.steps import evaluate_confusion, make_collate


def merge_adapter(model_dir: Path, adapter_dir: Path, label_names: list[str]):
    import torch

    name_deepspeed_accelerator(torch.cuda.is_available())
    from peft import PeftModel

    base = load_base_classifier(model_dir, label_names)
    return PeftModel.from_pretrained(base, adapter_dir).merge_and_unload().eval()


def load_merged(artifact_dir: Path):
    from transformers import AutoModelForSequenceClassification

    quiet_transformers()
    return AutoModelForSequenceClassification.from_pretrained(artifact_dir / "merged").eval()


def table_batches(table: pa.Table, batch_size: int):
    for start in range(0, table.num_rows, batch_size):
        chunk = table.slice(start, batch_size)
        yield {
            "text": np.asarray(chunk.column("text").to_pylist(), dtype=object),
            "label": chunk.column("label").to_numpy(),
        }


def evaluate_merged(
    artifact_dir: Path, table: pa.Table, num_labels: int, recipe: Recipe
) -> dict[str, Any]:
    model = load_merged(artifact_dir)
    collate = make_collate(load_tokenizer(artifact_dir / "tokenizer"), recipe.model.max_length)
    batches = (collate(batch) for batch in table_batches(table, 64))
    return classification_metrics(evaluate_confusion(model, batches, num_labels))
