"""What differs between the tasks Fulcrum trains: the model head, how a batch is tokenised,
and how predictions are counted. Everything else (loop, DeepSpeed, checkpoints, export)
is shared.

A task counts predictions into an additive array (a confusion matrix; entity counts), so
workers can sum their shards with one all-reduce and get exact global metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fulcrum.metrics import (
    classification_metrics,
    confusion_matrix,
    entity_counts,
    entity_metrics,
    entity_types,
)

IGNORE_INDEX = -100  # the label transformers' losses skip: padding and non-first subwords
Batch = dict[str, Any]


@dataclass(frozen=True)
class Task:
    name: str
    auto_model: str  # transformers Auto class
    peft_task_type: str
    make_collate: Callable[[Any, int], Callable[[Batch], Batch]]
    empty_counts: Callable[[list[str]], np.ndarray]
    count: Callable[[np.ndarray, Batch, list[str]], np.ndarray]
    metrics: Callable[[np.ndarray, list[str]], dict[str, Any]]

    def model_class(self):
        import transformers

        return getattr(transformers, self.auto_model)


def model_inputs(batch: Batch) -> Batch:
    """Collated batches carry extras for counting under keys starting with `_`."""
    return {name: value for name, value in batch.items() if not name.startswith("_")}


@torch.no_grad()
def evaluate_counts(
    forward: Callable[..., Any],
    batches: Iterable[Batch],
    task: Task,
    label_names: list[str],
    device="cpu",
) -> np.ndarray:
    """Additive prediction counts of `forward` over labelled batches (caller sets eval mode)."""
    total = task.empty_counts(label_names)
    for batch in batches:
        inputs = {
            name: tensor.to(device)
            for name, tensor in model_inputs(batch).items()
            if name != "labels"
        }
        logits = forward(**inputs).logits.float().cpu().numpy()
        total += task.count(logits, batch, label_names)
    return total


# --------------------------------------------------------------------------- sequences


def _sequence_collate(tokenizer, max_length: int) -> Callable[[Batch], Batch]:
    """Pad to the longest text in the batch, not to max_length: short customer messages
    would otherwise pay for 128 tokens."""

    def collate(batch: Batch) -> Batch:
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


def _sequence_count(logits: np.ndarray, batch: Batch, label_names: list[str]) -> np.ndarray:
    return confusion_matrix(batch["labels"].numpy(), logits.argmax(-1), len(label_names))


SEQUENCE_CLASSIFICATION = Task(
    name="sequence_classification",
    auto_model="AutoModelForSequenceClassification",
    peft_task_type="SEQ_CLS",
    make_collate=_sequence_collate,
    empty_counts=lambda names: np.zeros((len(names), len(names)), dtype=np.int64),
    count=_sequence_count,
    metrics=lambda counts, names: classification_metrics(counts),
)


# --------------------------------------------------------------------------- tokens


def _token_collate(tokenizer, max_length: int) -> Callable[[Batch], Batch]:
    """Tokenise pre-split words and give each word's tag to its first subword only; the
    other subwords, special tokens and padding get IGNORE_INDEX. Words cut off by
    truncation keep their gold tags in `_gold`, so evaluation counts them as missed."""

    def collate(batch: Batch) -> Batch:
        words = [[str(word) for word in sentence] for sentence in batch["tokens"]]
        encoded = tokenizer(
            words,
            is_split_into_words=True,
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        )
        result = {name: encoded[name] for name in encoded.keys()}
        if "label" in batch:
            gold = [list(map(int, tags)) for tags in batch["label"]]
            labels = torch.full(encoded["input_ids"].shape, IGNORE_INDEX, dtype=torch.long)
            for row, tags in enumerate(gold):
                previous = None
                for position, word in enumerate(encoded.word_ids(row)):
                    if word is not None and word != previous:
                        labels[row, position] = tags[word]
                    previous = word
            result["labels"] = labels
            result["_gold"] = gold
        return result

    return collate


def _token_count(logits: np.ndarray, batch: Batch, label_names: list[str]) -> np.ndarray:
    labels = batch["labels"].numpy()
    predicted_ids = logits.argmax(-1)
    gold_sequences, predicted_sequences = [], []
    for row, gold in enumerate(batch["_gold"]):
        kept = predicted_ids[row][labels[row] != IGNORE_INDEX].tolist()
        kept += [label_names.index("O") if "O" in label_names else 0] * (len(gold) - len(kept))
        gold_sequences.append([label_names[i] for i in gold])
        predicted_sequences.append([label_names[i] for i in kept])
    return entity_counts(gold_sequences, predicted_sequences, entity_types(label_names))


TOKEN_CLASSIFICATION = Task(
    name="token_classification",
    auto_model="AutoModelForTokenClassification",
    peft_task_type="TOKEN_CLS",
    make_collate=_token_collate,
    empty_counts=lambda names: np.zeros((len(entity_types(names)) + 1, 3), dtype=np.int64),
    count=_token_count,
    metrics=lambda counts, names: entity_metrics(counts, entity_types(names)),
)

TASKS: dict[str, Task] = {
    task.name: task for task in (SEQUENCE_CLASSIFICATION, TOKEN_CLASSIFICATION)
}
