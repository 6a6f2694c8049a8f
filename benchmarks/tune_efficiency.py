"""What early stopping saves a hyperparameter campaign: ASHA against the same search run to
the end, side by side, on Financial PhraseBank AllAgree.

Both campaigns are `fulcrum tune` on the same recipe and the same random search (same seed,
so the same configurations in the same order); only the scheduler differs. Compute is
counted in trial-epochs (epochs actually trained, summed over trials) and CPU-seconds.
Target: ASHA's best validation accuracy within 0.5 points of the full search's, for at most
half its trial-epochs. The driver's memory after each trial is recorded too (it must stay
flat).

    python benchmarks/tune_efficiency.py [--trials 12] [--epochs 4] [--reduction-factor 3]
        [--train-rows 600]
    python benchmarks/tune_efficiency.py --driver-memory-trials 20

The second form runs one campaign of many short trials (one epoch on 100 sentences) and
records the driver's resident memory as each trial ends: resources must be released, so it
must not grow with the number of trials.
"""

from __future__ import annotations

import argparse
import shutil
import time

from common import (
    REPOSITORY,
    RESULTS,
    phrasebank_data,
    subsampled_splits,
    table,
    write_results,
)

OUTPUT = REPOSITORY / "artifacts" / "benchmarks" / "tune"
SPACE = {
    "train.lr": {"loguniform": [1e-4, 2e-2]},
    "peft.r": {"choice": [4, 8, 16]},
    "train.weight_decay": {"uniform": [0.0, 0.1]},
}


def campaign_recipe(
    name: str, data: dict, scheduler: str, trials: int, epochs: int, reduction_factor: float = 3
) -> dict:
    return {
        "name": name,
        "seed": 0,
        "output_dir": str(OUTPUT),
        "data": data,
        "model": {"base": "builtin:minilm", "max_length": 64},
        "peft": {"method": "lora", "alpha": 16, "target_modules": ["query", "value"]},
        "train": {
            "workers": 1,  # two single-worker trials at once on 2 CPUs: ASHA needs peers
            "epochs": epochs,
            "batch_size": 16,
            "zero_stage": 0,
            "metric": "accuracy",
            "log_every_steps": 50,
        },
        "tune": {
            "space": SPACE,
            "search": "random",
            "num_samples": trials,
            "scheduler": scheduler,
            "grace_period": 1,
            "reduction_factor": reduction_factor,
            "max_concurrent_trials": 2,
            "keep_artifacts": "best",
        },
    }


def run(name: str, raw: dict) -> dict:
    from fulcrum.artifacts import artifact_dir, open_artifact, recipe_hash_of
    from fulcrum.recipe import validate_recipe
    from fulcrum.tune.campaign import tune

    recipe = validate_recipe(raw)
    target = artifact_dir(recipe, "tune")
    if recipe_hash_of(target) == recipe.hash:
        print(f"[benchmark] {name}: reusing {target}", flush=True)
    else:
        shutil.rmtree(target, ignore_errors=True)
        tune(recipe)
    artifact = open_artifact(target, kind="tune")
    metrics = artifact.metrics
    best = metrics["best"]
    return {
        "campaign": name,
        "trials": metrics["trials"],
        "finished": metrics["finished"],
        "stopped_early": metrics["stopped"],
        "trial_epochs": metrics["trial_epochs"],
        "cpu_s": metrics["cpu_s"],
        "wall_s": metrics["wall_s"],
        "best_val_accuracy": best["val_accuracy"],
        "best_test_accuracy": best.get("test_accuracy"),
        "best_trial": best["trial_id"],
        "best_config": {k[7:]: v for k, v in best.items() if k.startswith("config/")},
        "driver_rss_mb": metrics["driver_rss_mb"],
        "artifact": str(target.relative_to(REPOSITORY)),
    }


def driver_memory(trials: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pyarrow.parquet as pq

    data = subsampled_splits(phrasebank_data("AllAgree"), OUTPUT / "data" / "allagree-100", 100)
    raw = campaign_recipe("driver-memory", data, "none", trials, 1)
    raw["tune"]["space"] = {"train.lr": {"loguniform": [1e-4, 1e-2]}}
    row = run("driver-memory", raw)
    results = pq.read_table(REPOSITORY / row["artifact"] / "results.parquet").to_pylist()
    ended = sorted(
        (r for r in results if r["driver_rss_mb"] is not None),
        key=lambda r: (r["started_s"] or 0) + r["wall_s"],
    )
    memory = [r["driver_rss_mb"] for r in ended]
    half = len(memory) // 2
    summary = {
        "trials": len(results),
        "driver_rss_mb": memory,
        "first_mb": memory[0],
        "last_mb": memory[-1],
        "max_mb": max(memory),
        "second_half_growth_mb": memory[-1] - memory[half],
    }
    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.plot(range(1, len(memory) + 1), memory, "o-")
    axis.set_xlabel("trials ended")
    axis.set_ylabel("driver RSS (MB)")
    axis.set_ylim(0, max(memory) * 1.2)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(RESULTS / "tune_driver_memory.png", dpi=110)
    write_results("tune_driver_memory", summary)
    print(
        f"driver RSS over {len(memory)} trials: first {memory[0]:.0f} MB, after half "
        f"{memory[half]:.0f} MB, last {memory[-1]:.0f} MB, max {max(memory):.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--reduction-factor", type=float, default=3)
    parser.add_argument("--train-rows", type=int, default=600)
    parser.add_argument("--driver-memory-trials", type=int, default=0)
    args = parser.parse_args()
    if args.driver_memory_trials:
        driver_memory(args.driver_memory_trials)
        return

    data = subsampled_splits(
        phrasebank_data("AllAgree"),
        OUTPUT / "data" / f"allagree-{args.train_rows}",
        args.train_rows,
    )
    started = time.time()
    rows = [
        run(
            name,
            campaign_recipe(name, data, scheduler, args.trials, args.epochs, args.reduction_factor),
        )
        for name, scheduler in (("full-search", "none"), ("asha", "asha"))
    ]
    full, asha = rows
    comparison = {
        "accuracy_gap_points": 100 * (full["best_val_accuracy"] - asha["best_val_accuracy"]),
        "trial_epochs_ratio": asha["trial_epochs"] / full["trial_epochs"],
        "cpu_s_ratio": asha["cpu_s"] / full["cpu_s"],
    }
    comparison["meets_target"] = (
        comparison["accuracy_gap_points"] <= 0.5 and comparison["trial_epochs_ratio"] <= 0.5
    )
    print(
        table(
            rows,
            [
                ("campaign", "campaign"),
                ("trials", "trials"),
                ("stopped_early", "stopped early"),
                ("trial_epochs", "trial-epochs"),
                ("cpu_s", "CPU s"),
                ("wall_s", "wall s"),
                ("best_val_accuracy", "best val acc."),
                ("best_test_accuracy", "its test acc."),
            ],
        )
    )
    print(
        f"\nASHA: {comparison['accuracy_gap_points']:+.2f} points below the full search's best "
        f"for {comparison['trial_epochs_ratio']:.2f}x its trial-epochs "
        f"({comparison['cpu_s_ratio']:.2f}x its CPU-seconds); target met: "
        f"{comparison['meets_target']} ({time.time() - started:.0f}s)"
    )
    target = write_results(
        "tune_efficiency",
        {
            "dataset": "financial_phrasebank AllAgree",
            "train_rows": args.train_rows,
            "trials": args.trials,
            "epochs": args.epochs,
            "reduction_factor": args.reduction_factor,
            "space": SPACE,
            "campaigns": rows,
            "comparison": comparison,
        },
    )
    for row in rows:
        shutil.copy(
            REPOSITORY / row["artifact"] / "progress.png", RESULTS / f"tune_{row['campaign']}.png"
        )
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
