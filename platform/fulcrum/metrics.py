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


def metrics_from_predictions(label_ids, predicted_ids, num_labels: int) -> dict[str, float]:
    return classification_metrics(confusion_matrix(label_ids, predicted_ids, num_labels))
