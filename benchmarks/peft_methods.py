"""One table per fine-tuning method on Financial PhraseBank AllAgree.

Built-in all-MiniLM-L6-v2, seeded 80/10/10 stratified split (seed 13), 2 Ray Train workers
with DeepSpeed ZeRO-2 on this machine's CPUs. For each method: the share of parameters that
train, peak memory per worker, time per optimizer step (batch 32), test accuracy and
macro-F1 of the best checkpoint (picked on validation macro-F1). Writes a PNG of accuracy
against step time.

    python benchmarks/peft_methods.py [--methods lora full ...]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

from common import RESULTS, phrasebank_data, steps_csv_rates, table, write_results

# Per method: epochs, peak learning rate and method options; higher rates for methods
# that train few parameters, the usual 1e-4 range for full fine-tuning.
SETTINGS = {
    "lora": (3, 2e-3, {"r": 16, "alpha": 32, "target_modules": ["query", "key", "value", "dense"]}),
    "adalora": (
        3,
        2e-3,
        {
            "r": 8,
            "adalora_init_r": 16,
            "alpha": 32,
            "target_modules": ["query", "key", "value", "dense"],
        },
    ),
    "ia3": (3, 2e-2, {}),
    "prefix": (3, 1e-2, {"num_virtual_tokens": 16}),
    "head_only": (3, 1e-2, {}),
    "full": (3, 1e-4, {}),
}


def recipe_dict(method: str, output_dir: str) -> dict:
    epochs, lr, options = SETTINGS[method]
    return {
        "name": f"fpb-{method}",
        "seed": 13,
        "output_dir": output_dir,
        "data": phrasebank_data(),
        "model": {"base": "builtin:minilm", "max_length": 64},
        "peft": {"method": method, **options},
        "train": {
            "workers": 2,
            "epochs": epochs,
            "batch_size": 16,
            "lr": lr,
            "zero_stage": 2,
            "log_every_steps": 5,
        },
    }


def step_seconds(artifact: Path) -> float:
    """Median seconds per optimizer step (global batch 32) over the logged windows, the
    first (start-up) dropped; windows restart after each evaluation, so it is excluded."""
    with open(artifact / "logs" / "steps.csv", newline="") as handle:
        rates = sorted(32 / float(row["samples_per_s"]) for row in list(csv.DictReader(handle))[1:])
    return rates[len(rates) // 2]


def plot(rows: list[dict], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.5, 4))
    for row in rows:
        axis.scatter(
            row["step_s"], row["test_accuracy"], s=40 + 400 * row["trainable_share"] ** 0.5
        )
        axis.annotate(
            row["method"],
            (row["step_s"], row["test_accuracy"]),
            textcoords="offset points",
            xytext=(6, 4),
        )
    axis.set(
        xlabel="seconds per optimizer step (batch 32, 2 CPU workers)",
        ylabel="test accuracy",
        title="Financial PhraseBank AllAgree, all-MiniLM-L6-v2\n(marker area ~ share of parameters trained)",
    )
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(target, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    args = parser.parse_args()

    from fulcrum.artifacts import open_artifact
    from fulcrum.recipe import validate_recipe
    from fulcrum.train.stage import train

    rows = []
    with tempfile.TemporaryDirectory() as output:
        for method in args.methods:
            started = time.time()
            artifact = open_artifact(
                train(validate_recipe(recipe_dict(method, output))), kind="train"
            )
            metrics = artifact.metrics
            parameters = metrics["parameters"]
            rows.append(
                {
                    "method": method,
                    "trainable_share": parameters["trainable"] / parameters["total"],
                    "trainable": parameters["trainable"],
                    "peak_rss_mb": steps_csv_rates(artifact.path)["peak_rss_mb"],
                    "step_s": step_seconds(artifact.path),
                    "test_accuracy": metrics["test"]["accuracy"],
                    "test_macro_f1": metrics["test"]["macro_f1"],
                    "best_epoch": metrics["best_epoch"],
                    "wall_s": time.time() - started,
                }
            )
            print(f"{method}: test accuracy {rows[-1]['test_accuracy']:.4f}", flush=True)
    for row in rows:
        row["trainable_pct"] = f"{100 * row['trainable_share']:.2f}%"
    print(
        table(
            rows,
            [
                ("method", "method"),
                ("trainable_pct", "trainable"),
                ("peak_rss_mb", "peak RSS MiB/worker"),
                ("step_s", "s/step"),
                ("test_accuracy", "test accuracy"),
                ("test_macro_f1", "test macro-F1"),
                ("best_epoch", "best epoch"),
                ("wall_s", "wall s"),
            ],
        )
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(rows, RESULTS / "peft_methods.png")
    print(
        f"\nwrote {write_results('peft_methods', {'settings': {m: SETTINGS[m] for m in args.methods}, 'rows': rows})}"
    )


if __name__ == "__main__":
    main()
