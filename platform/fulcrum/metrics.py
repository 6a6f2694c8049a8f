"""Classification metrics, the one implementation shared by training, export parity,
tuning and benchmarks.

Metrics are computed from a confusion matrix because confusion matrices add up: each worker
counts its own shard and an all-reduce sum gives the exact global matrix, whereas macro-F1
computed per shard and averaged would be wrong.
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(
    label_ids: np.ndarray, predicted_ids: np.ndarray, num_labels: int
) -> np.ndarray:
    """Rows are true labels, columns predictions."""
    flat = np.asarray(label_ids, dtype=np.int64) * num_labels + np.asarray(
        predicted_ids, dtype=np.int64
    )
    return np.bincount(flat, minlength=num_labels * num_labels).reshape(num_labels, num_labels)


def classification_metrics(confusion: np.ndarray) -> dict[str, float]:
    """Accuracy and macro-F1 (over labels that occur in the data or the predictions)."""
    confusion = np.asarray(confusion, dtype=np.float64)
    total = confusion.sum()
    true_positive = np.diag(confusion)
    predicted = confusion.sum(axis=0)
    actual = confusion.sum(axis=1)
    present = (predicted + actual) > 0
    denominator = predicted + actual
    f1 = np.divide(
        2 * true_positive, denominator, out=np.zeros_like(true_positive), where=denominator > 0
    )
    return {
        "accuracy": float(true_positive.sum() / total) if total else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "examples": int(total),
    }


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def per_label(confusion: np.ndarray, names: list[str]) -> list[dict[str, object]]:
    """Precision, recall, F1 and support of each label (the per-class report)."""
    confusion = np.asarray(confusion, dtype=np.float64)
    true_positive = np.diag(confusion)
    predicted, actual = confusion.sum(axis=0), confusion.sum(axis=1)
    rows = []
    for index, name in enumerate(names):
        rows.append(
            {
                "label": name,
                **_prf(true_positive[index], predicted[index], actual[index]),
                "support": int(actual[index]),
            }
        )
    return rows


def _prf(true_positive: float, predicted: float, gold: float) -> dict[str, float]:
    precision = float(true_positive / predicted) if predicted else 0.0
    recall = float(true_positive / gold) if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def metrics_from_predictions(label_ids, predicted_ids, num_labels: int) -> dict[str, float]:
    return classification_metrics(confusion_matrix(label_ids, predicted_ids, num_labels))


# --------------------------------------------------------------------------- named entities


def bio_spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """Entity spans (type, start, end-exclusive) in a BIO tag sequence, read as conlleval
    does: an I- tag after O or after another type also starts an entity, so a model that
    never predicts B- is scored on what it found rather than on a technicality."""
    spans: list[tuple[str, int, int]] = []
    current: tuple[str, int] | None = None
    for index, tag in enumerate([*tags, "O"]):
        prefix, _, kind = tag.partition("-") if tag != "O" else ("O", "", "")
        if current is not None and (prefix != "I" or kind != current[0]):
            spans.append((current[0], current[1], index))
            current = None
        if prefix == "B" or (prefix == "I" and current is None):
            current = (kind, index)
    return spans


def entity_types(tag_names: list[str]) -> list[str]:
    return sorted({name.split("-", 1)[1] for name in tag_names if name != "O"})


def entity_counts(
    gold: list[list[str]], predicted: list[list[str]], types: list[str]
) -> np.ndarray:
    """Per entity type [true positives, predicted, gold], plus a last row of
    [correct tokens, tokens, 0]. Rows add up across shards like confusion matrices."""
    counts = np.zeros((len(types) + 1, 3), dtype=np.int64)
    row = {kind: index for index, kind in enumerate(types)}
    for gold_tags, predicted_tags in zip(gold, predicted, strict=True):
        gold_spans, predicted_spans = set(bio_spans(gold_tags)), set(bio_spans(predicted_tags))
        for kind, *_ in gold_spans:
            counts[row[kind], 2] += 1
        for kind, *_ in predicted_spans:
            counts[row[kind], 1] += 1
        for kind, *_ in gold_spans & predicted_spans:
            counts[row[kind], 0] += 1
        counts[-1, 0] += sum(g == p for g, p in zip(gold_tags, predicted_tags, strict=True))
        counts[-1, 1] += len(gold_tags)
    return counts


def entity_metrics(counts: np.ndarray, types: list[str]) -> dict[str, object]:
    """Micro precision/recall/F1 over entities (exact type and span), and per type."""
    entity_rows = counts[:-1]
    totals = entity_rows.sum(axis=0)
    correct_tokens, tokens = counts[-1, 0], counts[-1, 1]
    return {
        **_prf(*totals.tolist()),
        "token_accuracy": float(correct_tokens / tokens) if tokens else 0.0,
        "entities": int(totals[2]),
        "per_type": {
            kind: {**_prf(*entity_rows[index].tolist()), "support": int(entity_rows[index, 2])}
            for index, kind in enumerate(types)
        },
    }
