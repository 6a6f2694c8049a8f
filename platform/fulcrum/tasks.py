"""What differs between the tasks Fulcrum trains: the model head, how a batch is tokenised,
and how predictions are counted. Everything else (loop, DeepSpeed, checkpoints, export)
is shared.

A task counts predictions into an additive array (a confusion matrix; entity counts), so
workers can sum their shards with one all-reduce and get exact global metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from fulcrum.diagnosis import Finding, entity_findings, sequence_findings
from fulcrum.metrics import (
    classification_metrics,
    confusion_matrix,
    entity_counts,
    entity_metrics,
    entity_types,
    per_label,
    softmax,
)
from fulcrum.ranking import STATS, empty_ranking_counts, ranking_counts, ranking_metrics
from fulcrum.words import WordEncoder

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
    # Whether the model has learned, from the counts (fulcrum/diagnosis.py).
    findings: Callable[[np.ndarray, list[str]], list[Finding]]
    # Precision, recall, F1 and support per label (per entity type), from the counts.
    report: Callable[[np.ndarray, list[str]], list[dict[str, Any]]]
    # Gold x predicted label (per word for tags), for the confusion-matrix plot.
    confusion: Callable[[np.ndarray, Batch, list[str]], np.ndarray]

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
    for logits, batch in _logits(forward, batches, device):
        total += task.count(logits, batch, label_names)
    return total


@torch.no_grad()
def evaluate_with_confusion(
    forward: Callable[..., Any],
    batches: Iterable[Batch],
    task: Task,
    label_names: list[str],
    device="cpu",
    keep_logits: list | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(counts, gold x predicted confusion) in one pass: what an artifact reports. A list
    passed as `keep_logits` receives each batch's logits."""
    total = task.empty_counts(label_names)
    confusion = np.zeros((len(label_names), len(label_names)), dtype=np.int64)
    for logits, batch in _logits(forward, batches, device):
        total += task.count(logits, batch, label_names)
        confusion += task.confusion(logits, batch, label_names)
        if keep_logits is not None:
            keep_logits.append(logits)
    return total, confusion


@torch.no_grad()
def batch_logits(forward: Callable[..., Any], batches: Iterable[Batch], device="cpu"):
    """Each batch's logits, labelled or not."""
    return [logits for logits, _ in _logits(forward, batches, device)]


def _logits(forward, batches: Iterable[Batch], device):
    for batch in batches:
        inputs = {
            name: tensor.to(device)
            for name, tensor in model_inputs(batch).items()
            if name != "labels"
        }
        yield forward(**inputs).logits.float().cpu().numpy(), batch


# --------------------------------------------------------------------------- sequences


def _sequence_collate(tokenizer, max_length: int) -> Callable[[Batch], Batch]:
    """Pad to the longest text in the batch, not to max_length: short customer messages
    would otherwise pay for 128 tokens. A pair is encoded in the tokenizer's own pair format
    (`[CLS] a [SEP] b [SEP]`, segment ids 0 then 1), cut longest side first so both sides
    keep tokens."""

    def collate(batch: Batch) -> Batch:
        pairs = batch.get("text_pair")
        encoded = tokenizer(
            [str(text) for text in batch["text"]],
            None if pairs is None else [str(text) for text in pairs],
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
    findings=sequence_findings,
    report=per_label,
    confusion=_sequence_count,
)


# --------------------------------------------------------------------------- tokens


def _token_collate(tokenizer, max_length: int) -> Callable[[Batch], Batch]:
    """Tokenise pre-split words (fulcrum.words, as served) and give each word's tag to its
    first subword only; the other subwords, special tokens and padding get IGNORE_INDEX.
    Words cut off by truncation keep their gold tags in `_gold`, so evaluation counts them
    as missed."""
    encoder = WordEncoder(tokenizer)
    input_names = set(tokenizer.model_input_names)
    pad_id = tokenizer.pad_token_id or 0

    def collate(batch: Batch) -> Batch:
        words = [[str(word) for word in sentence] for sentence in batch["tokens"]]
        units = encoder.encode(words, max_length)
        shape = (len(units), max(len(unit.ids) for unit in units))
        input_ids = torch.full(shape, pad_id, dtype=torch.long)
        attention_mask = torch.zeros(shape, dtype=torch.long)
        for row, unit in enumerate(units):
            input_ids[row, : len(unit.ids)] = torch.tensor(unit.ids)
            attention_mask[row, : len(unit.ids)] = 1
        result = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in input_names:
            result["token_type_ids"] = torch.zeros(shape, dtype=torch.long)
        if "label" in batch:
            gold = [list(map(int, tags)) for tags in batch["label"]]
            labels = torch.full(shape, IGNORE_INDEX, dtype=torch.long)
            for row, tags in enumerate(gold):
                previous = None
                for position, word in enumerate(units[row].word_ids):
                    if word is not None and word != previous:
                        labels[row, position] = tags[word]
                    previous = word
            result["labels"] = labels
            result["_gold"] = gold
        return result

    return collate


def _word_tags(logits: np.ndarray, batch: Batch, label_names: list[str]):
    """(gold, predicted) tag ids per sentence, one per word: a word's prediction is its
    first subword's, and words cut off by truncation are predicted O."""
    labels = batch["labels"].numpy()
    predicted_ids = logits.argmax(-1)
    outside = label_names.index("O") if "O" in label_names else 0
    for row, gold in enumerate(batch["_gold"]):
        kept = predicted_ids[row][labels[row] != IGNORE_INDEX].tolist()
        yield gold, kept + [outside] * (len(gold) - len(kept))


def _token_count(logits: np.ndarray, batch: Batch, label_names: list[str]) -> np.ndarray:
    gold_sequences, predicted_sequences = [], []
    for gold, predicted in _word_tags(logits, batch, label_names):
        gold_sequences.append([label_names[i] for i in gold])
        predicted_sequences.append([label_names[i] for i in predicted])
    return entity_counts(gold_sequences, predicted_sequences, entity_types(label_names))


def _token_confusion(logits: np.ndarray, batch: Batch, label_names: list[str]) -> np.ndarray:
    pairs = list(_word_tags(logits, batch, label_names))
    gold = [tag for sentence, _ in pairs for tag in sentence]
    predicted = [tag for _, sentence in pairs for tag in sentence]
    return confusion_matrix(np.asarray(gold), np.asarray(predicted), len(label_names))


def _entity_report(counts: np.ndarray, label_names: list[str]) -> list[dict[str, Any]]:
    per_type = entity_metrics(counts, entity_types(label_names))["per_type"]
    return [{"label": kind, **values} for kind, values in per_type.items()]


TOKEN_CLASSIFICATION = Task(
    name="token_classification",
    auto_model="AutoModelForTokenClassification",
    peft_task_type="TOKEN_CLS",
    make_collate=_token_collate,
    empty_counts=lambda names: np.zeros((len(entity_types(names)) + 1, 3), dtype=np.int64),
    count=_token_count,
    metrics=lambda counts, names: entity_metrics(counts, entity_types(names)),
    findings=lambda counts, names: entity_findings(counts, entity_types(names)),
    report=_entity_report,
    confusion=_token_confusion,
)

# --------------------------------------------------------------------------- pairs
# A pair is a sequence to the model (one label from the [CLS] position); its input differs,
# which the collate reads from the batch, and two-label pairs are also scored as rankings
# (fulcrum.ranking): the counts are the confusion matrix, flattened, then ranking counts.


def _pair_collate(tokenizer, max_length: int) -> Callable[[Batch], Batch]:
    sequence = _sequence_collate(tokenizer, max_length)

    def collate(batch: Batch) -> Batch:
        encoded = sequence(batch)
        if "group" in batch:
            encoded["_group"] = list(batch["group"])
        return encoded

    return collate


def _pair_empty(names: list[str]) -> np.ndarray:
    return np.zeros(len(names) ** 2 + STATS, dtype=np.float64)


def _confusion_of(counts: np.ndarray, names: list[str]) -> np.ndarray:
    size = len(names)
    return np.asarray(counts[: size * size]).reshape(size, size).astype(np.int64)


def _pair_count(logits: np.ndarray, batch: Batch, label_names: list[str]) -> np.ndarray:
    confusion = _sequence_count(logits, batch, label_names).ravel().astype(np.float64)
    if len(label_names) != 2:
        return np.concatenate([confusion, empty_ranking_counts()])
    scores = softmax(logits)[:, 1]  # the second label is the positive one
    positive = batch["labels"].numpy() == 1
    return np.concatenate([confusion, ranking_counts(scores, positive, batch.get("_group"))])


def _pair_metrics(counts: np.ndarray, names: list[str]) -> dict[str, Any]:
    metrics: dict[str, Any] = classification_metrics(_confusion_of(counts, names))
    return metrics | ranking_metrics(np.asarray(counts[len(names) ** 2 :]))


TEXT_PAIR_CLASSIFICATION = replace(
    SEQUENCE_CLASSIFICATION,
    name="text_pair_classification",
    make_collate=_pair_collate,
    empty_counts=_pair_empty,
    count=_pair_count,
    metrics=_pair_metrics,
    findings=lambda counts, names: sequence_findings(_confusion_of(counts, names), names),
    report=lambda counts, names: per_label(_confusion_of(counts, names), names),
)

TASKS: dict[str, Task] = {
    task.name: task
    for task in (SEQUENCE_CLASSIFICATION, TEXT_PAIR_CLASSIFICATION, TOKEN_CLASSIFICATION)
}
