"""Parity between an exported model and its PyTorch parent, on real validation data."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import torch

from fulcrum.metrics import metrics_from_predictions
from fulcrum.recipe import ExportSection
from fulcrum.train.merge import table_batches


def measure_parity(
    torch_model, hf_tokenizer, onnx_classifier, table: pa.Table, max_length: int, metric: str
) -> dict[str, Any]:
    """Run both models on the same texts, each through its own tokenizer (the HF tokenizer
    for PyTorch, the `tokenizers` one the predictor serves with), so a tokenizer mismatch
    shows up here too, not only a numerical one."""
    torch_logits, onnx_logits, labels = [], [], []
    torch_model.eval()
    for batch in table_batches(table, 32):
        texts = [str(text) for text in batch["text"]]
        encoded = hf_tokenizer(
            texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        with torch.no_grad():
            torch_logits.append(torch_model(**encoded).logits.numpy())
        onnx_logits.append(onnx_classifier.logits(texts))
        labels.append(batch["label"])
    reference, exported = np.concatenate(torch_logits), np.concatenate(onnx_logits)
    label_ids = np.concatenate(labels)
    num_labels = reference.shape[1]
    reference_metrics = metrics_from_predictions(label_ids, reference.argmax(1), num_labels)
    exported_metrics = metrics_from_predictions(label_ids, exported.argmax(1), num_labels)
    return {
        "examples": int(len(label_ids)),
        "max_abs_logit_diff": float(np.abs(reference - exported).max()),
        "prediction_agreement": float((reference.argmax(1) == exported.argmax(1)).mean()),
        "metric": metric,
        "pytorch": reference_metrics,
        "onnx": exported_metrics,
        "metric_drop_points": 100.0 * (reference_metrics[metric] - exported_metrics[metric]),
    }


def parity_problems(parity: dict[str, Any], tolerance: ExportSection) -> list[str]:
    """What makes an export unacceptable, in the recipe's own terms; empty when none."""
    problems = []
    if parity["max_abs_logit_diff"] > tolerance.max_abs_logit_diff:
        problems.append(
            f"max |logit difference| {parity['max_abs_logit_diff']:.3g} > "
            f"export.max_abs_logit_diff {tolerance.max_abs_logit_diff:g}"
        )
    if parity["metric_drop_points"] > tolerance.max_metric_drop:
        problems.append(
            f"{parity['metric']} drop {parity['metric_drop_points']:.2f} points > "
            f"export.max_metric_drop {tolerance.max_metric_drop:g}"
        )
    return problems
