"""Learning curves and confusion matrices as PNGs in the training artifact: easier to read
than a history table or a matrix of numbers."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

MAX_TICK_LABELS = 40  # confusion matrix: label names on the axes up to this many labels
MAX_ANNOTATED = 15  # ... and counts in the cells up to this many


def plot_learning_curve(
    steps_csv: Path, history: list[dict[str, Any]], target: Path, title: str, metric: str
) -> None:
    """Training loss per logged step (left) and the validation metric at each checkpoint
    (right), both against the optimizer step."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and workers
    import matplotlib.pyplot as plt

    figure, (loss_axis, metric_axis) = plt.subplots(1, 2, figsize=(9.5, 3.5))
    if steps_csv.is_file():
        with open(steps_csv, newline="") as handle:
            rows = list(csv.DictReader(handle))
        loss_axis.plot([int(r["step"]) for r in rows], [float(r["loss"]) for r in rows], lw=1.2)
    else:  # no step log: one point per checkpoint
        loss_axis.plot([h["step"] for h in history], [h["train_loss"] for h in history], marker="o")
    loss_axis.set(xlabel="optimizer step", ylabel="training loss", title="loss")
    names = [f"val_{metric}"] + [
        k for k in ("val_accuracy",) if k != f"val_{metric}" and history and k in history[0]
    ]
    for name in names:
        metric_axis.plot(
            [h["step"] for h in history], [h[name] for h in history], marker="o", label=name[4:]
        )
    metric_axis.set(
        xlabel="optimizer step", ylabel="validation", title="validation", ylim=(0, 1.02)
    )
    metric_axis.legend(loc="lower right")
    for axis in (loss_axis, metric_axis):
        axis.grid(alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(target, dpi=110)
    plt.close(figure)


def plot_confusion(confusion, names: list[str], target: Path, title: str) -> None:
    """Gold (rows) against predicted (columns), each row as shares of its gold count so a
    rare label reads as clearly as a common one; counts are written in the cells while
    they fit, label names on the axes up to MAX_TICK_LABELS labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    matrix = np.asarray(confusion, dtype=np.float64)
    shares = np.divide(
        matrix,
        matrix.sum(axis=1, keepdims=True),
        out=np.zeros_like(matrix),
        where=matrix.sum(axis=1, keepdims=True) > 0,
    )
    size = min(4 + 0.32 * len(names), 16)
    figure, axis = plt.subplots(figsize=(size + 1.2, size))
    image = axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label="share of the gold label")
    if len(names) <= MAX_TICK_LABELS:
        axis.set_xticks(range(len(names)), names, rotation=90, fontsize=8)
        axis.set_yticks(range(len(names)), names, fontsize=8)
    if len(names) <= MAX_ANNOTATED:
        for row in range(len(names)):
            for column in range(len(names)):
                if matrix[row, column]:
                    axis.text(
                        column,
                        row,
                        f"{int(matrix[row, column])}",
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if shares[row, column] > 0.5 else "black",
                    )
    axis.set(xlabel="predicted", ylabel="gold", title=title)
    figure.tight_layout()
    figure.savefig(target, dpi=110)
    plt.close(figure)
