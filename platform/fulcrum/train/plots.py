"""Learning curves as a PNG in the training artifact: easier to read than a history table."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_learning_curve(history: list[dict[str, Any]], target: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and workers
    import matplotlib.pyplot as plt

    epochs = [entry["epoch"] for entry in history]
    figure, (loss_axis, metric_axis) = plt.subplots(1, 2, figsize=(9, 3.4))
    loss_axis.plot(epochs, [entry["train_loss"] for entry in history], marker="o")
    loss_axis.set(xlabel="epoch", ylabel="training loss", title="loss")
    for name in ("val_accuracy", "val_macro_f1"):
        metric_axis.plot(epochs, [entry[name] for entry in history], marker="o", label=name[4:])
    metric_axis.set(xlabel="epoch", ylabel="validation", title="validation metrics", ylim=(0, 1.02))
    metric_axis.legend(loc="lower right")
    for axis in (loss_axis, metric_axis):
        axis.grid(alpha=0.3)
        axis.set_xticks(epochs)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(target, dpi=110)
    plt.close(figure)
