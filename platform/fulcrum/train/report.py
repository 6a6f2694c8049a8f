"""What a training artifact says about its model beyond one number: the per-label report,
the confusion matrices and their plot, and whether the model learned at all."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from fulcrum.artifacts import write_json_atomic
from fulcrum.diagnosis import advice
from fulcrum.recipe import Recipe
from fulcrum.tasks import Task
from fulcrum.train.merge import Evaluation
from fulcrum.train.plots import plot_confusion

REPORT_FIELDS = ["label", "precision", "recall", "f1", "support"]


def write_report(
    staging: Path,
    task: Task,
    evaluations: dict[str, Evaluation | None],
    label_names: list[str],
    name: str,
) -> dict[str, list[dict[str, Any]]]:
    """Per label precision, recall, F1 and support for each split (per_label.csv for the
    test split, else validation), the confusion matrices (confusion.json) and the
    confusion-matrix PNG of that split. Returns the per-split reports."""
    present = {split: item for split, item in evaluations.items() if item is not None}
    report = {split: task.report(item.counts, label_names) for split, item in present.items()}
    shown = "test" if "test" in present else "validation"
    with open(staging / "per_label.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=REPORT_FIELDS)
        writer.writeheader()
        writer.writerows(report[shown])
    write_json_atomic(
        staging / "confusion.json",
        {
            "labels": label_names,
            "rows": "gold",
            "columns": "predicted",
            **{split: item.confusion.tolist() for split, item in present.items()},
        },
    )
    unit = " (per word)" if task.name == "token_classification" else ""
    plot_confusion(
        present[shown].confusion,
        label_names,
        staging / "confusion_matrix.png",
        f"{name}: {shown} confusion{unit}",
    )
    return report


def learning_warnings(
    task: Task,
    validation: Evaluation,
    label_names: list[str],
    recipe: Recipe,
    history: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """What the artifact's own validation evaluation says about whether the model learned,
    with what to try where it did not: the manifest's `warnings`."""
    found = task.findings(validation.counts, label_names)
    tips = advice(recipe, history, recipe.metric) if any(f.blocking for f in found) else []
    return [
        {**finding.as_dict(), **({"try": tips} if finding.blocking else {})} for finding in found
    ]


def describe_warning(warning: dict[str, Any]) -> str:
    tips = "; try: " + "; ".join(warning["try"]) if warning.get("try") else ""
    return f"warning: {warning['text']}{tips}"
