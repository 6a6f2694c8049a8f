"""The parity gate: a compressed variant against its PyTorch parent, on the validation and
test splits, through the training code's own collate and metric functions (accuracy and
macro-F1, or entity F1), so "no worse than training measured" means exactly that.

The splits are tokenised once; the parent's logits are kept and every variant is run on
the very same arrays, so a difference is the model's, never the input's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from fulcrum.tasks import Task, model_inputs
from fulcrum.train.merge import table_batches

GATE_BATCH = 32


@dataclass
class GateSplit:
    name: str
    batches: list[dict[str, Any]]
    reference_logits: list[np.ndarray]
    reference_metrics: dict[str, Any]


def prepare_splits(
    model, tokenizer, task: Task, tables: dict[str, pa.Table], max_length: int, labels: list[str]
) -> dict[str, GateSplit]:
    """Collate each split once and keep the PyTorch parent's logits for it."""
    collate = task.make_collate(tokenizer, max_length)
    prepared = {}
    model.eval()
    for name, table in tables.items():
        if table is None or table.num_rows == 0:
            continue
        batches = [collate(batch) for batch in table_batches(table, GATE_BATCH)]
        with torch.no_grad():
            logits = [model(**_features(batch)).logits.float().numpy() for batch in batches]
        prepared[name] = GateSplit(name, batches, logits, _metrics(task, batches, logits, labels))
    return prepared


def evaluate_variant(
    session, splits: dict[str, GateSplit], task: Task, labels: list[str], metric: str
) -> tuple[dict[str, Any], dict[str, list[np.ndarray]]]:
    """Per split: the variant's metrics, the parent's, the metric drop in points, the largest
    |logit difference| (over real tokens only) and how often the two predict the same; and
    the variant's logits, batch by batch."""
    report: dict[str, Any] = {}
    kept: dict[str, list[np.ndarray]] = {}
    for name, split in splits.items():
        logits, differences, agreements = [], [], []
        for batch, reference in zip(split.batches, split.reference_logits, strict=True):
            out = session_logits(session, batch)
            logits.append(out)
            difference = np.abs(out - reference)
            predicted, expected = out.argmax(-1), reference.argmax(-1)
            if out.ndim == 3:  # token labels: padding positions' logits mean nothing
                real = batch["attention_mask"].numpy().astype(bool)
                difference, predicted, expected = difference[real], predicted[real], expected[real]
            differences.append(float(difference.max(initial=0.0)))
            agreements.append(predicted == expected)
        measured = _metrics(task, split.batches, logits, labels)
        report[name] = {
            "examples": sum(len(batch["labels"]) for batch in split.batches),
            "metrics": measured,
            "parent_metrics": split.reference_metrics,
            "metric": metric,
            "metric_drop_points": 100.0 * (split.reference_metrics[metric] - measured[metric]),
            "max_abs_logit_diff": max(differences),
            "prediction_agreement": float(np.concatenate(agreements).mean()),
        }
        kept[name] = logits
    return report, kept


def session_logits(session, batch: dict[str, Any]) -> np.ndarray:
    """An ONNX Runtime session's logits for one collated batch."""
    features = _features(batch)
    names = [item.name for item in session.get_inputs()]
    feed = {key: features[key].numpy().astype(np.int64) for key in names}
    return session.run(["logits"], feed)[0].astype(np.float32)


@dataclass(frozen=True)
class Tolerance:
    """How far a model may be from its PyTorch parent, and the recipe section that says so
    (the export stage's `export:`, the compress stage's `compress:`), named in the reasons."""

    section: str
    max_metric_drop: float
    max_abs_logit_diff: float

    @classmethod
    def of(cls, section: str, settings) -> Tolerance:
        return cls(section, settings.max_metric_drop, settings.max_abs_logit_diff)


def verdict(gate: dict[str, Any], kind: str, tolerance: Tolerance) -> tuple[bool, list[str]]:
    """(deployable, the reasons it is not), in the recipe's own terms. Every kind is held
    to the metric drop on each split; fp32, which only changes the runtime, must also match
    the parent's logits."""
    reasons = []
    key = tolerance.section
    for split, result in gate.items():
        if result["metric_drop_points"] > tolerance.max_metric_drop:
            reasons.append(
                f"{split} {result['metric']} drops {result['metric_drop_points']:.2f} points "
                f"> {key}.max_metric_drop {tolerance.max_metric_drop:g}"
            )
        if kind == "fp32" and result["max_abs_logit_diff"] > tolerance.max_abs_logit_diff:
            reasons.append(
                f"{split} max |logit difference| {result['max_abs_logit_diff']:.3g} > "
                f"{key}.max_abs_logit_diff {tolerance.max_abs_logit_diff:g} (fp32 must match)"
            )
    return not reasons, reasons


def _features(batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {key: value for key, value in model_inputs(batch).items() if key != "labels"}


def _metrics(task: Task, batches, logits, labels: list[str]) -> dict[str, Any]:
    counts = task.empty_counts(labels)
    for batch, batch_logits in zip(batches, logits, strict=True):
        counts += task.count(batch_logits, batch, labels)
    return task.metrics(counts, labels)
