"""Learning curves as a PNG in the training artifact: easier to read than a history table."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any


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
