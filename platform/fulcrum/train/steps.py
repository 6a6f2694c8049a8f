"""The parts of a training run that need no Ray: batching, schedule, evaluation, seeding.

The Ray Train worker (worker.py) glues these together; unit tests call them directly.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from fulcrum.metrics import confusion_matrix


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_collate(tokenizer, max_length: int) -> Callable[[dict[str, Any]], dict[str, torch.Tensor]]:
    """Batch of {text, label} arrays -> model inputs, padded to the longest text in the batch
    (not to max_length: short customer messages would otherwise pay for 128 tokens)."""

    def collate(batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        encoded = tokenizer(
            [str(text) for text in batch["text"]],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        encoded = dict(encoded)
        if "label" in batch:
            encoded["labels"] = torch.tensor(np.asarray(batch["label"]), dtype=torch.long)
        return encoded

    return collate


def warmup_linear_decay(optimizer, warmup_steps: int, total_steps: int):
    """Linear warmup to the peak learning rate, then linear decay to zero."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        remaining = total_steps - step
        return max(0.0, remaining / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def steps_per_epoch(train_rows: int, workers: int, batch_size: int) -> int:
    """Ray Train splits the training set into equal shards (dropping the remainder) so every
    rank takes the same number of steps, which DeepSpeed's collectives require."""
    return max(1, math.ceil((train_rows // workers) / batch_size))


def to_device(inputs: dict[str, torch.Tensor], device) -> dict[str, torch.Tensor]:
    return {name: tensor.to(device) for name, tensor in inputs.items()}


@torch.no_grad()
def evaluate_confusion(
    forward: Callable[..., Any],
    batches: Iterable[dict[str, torch.Tensor]],
    num_labels: int,
    device="cpu",
) -> np.ndarray:
    """Confusion matrix of `forward` over labelled batches (the caller sets eval mode)."""
    total = np.zeros((num_labels, num_labels), dtype=np.int64)
    for inputs in batches:
        labels = inputs.pop("labels")
        logits = forward(**to_device(inputs, device)).logits
        predicted = logits.argmax(dim=-1).cpu().numpy()
        total += confusion_matrix(labels.numpy(), predicted, num_labels)
    return total
