"""What each resource-efficiency technique buys, and what distillation keeps.

Ablation: baseline LoRA against baseline + one technique at a time (weight decay, L1,
dropout, label smoothing, early stopping, FGM, PGD, augmentation), several seeds each, on
Financial PhraseBank 50Agree (the noisy subset) and Banking77, with a small training
split (the low-data regime these techniques are for). Reports mean ± std of test
macro-F1, train time, and for baseline/FGM/PGD/augmentation the test accuracy under an
embedding-space PGD attack and with typos.

Distillation: a 6-layer teacher (all-MiniLM-L6-v2, fully fine-tuned) against a 2-layer
student (its first two layers) trained with and without the teacher's logits; test
accuracy and ONNX Runtime latency at batch 32.

Splits: FPB 50Agree seeded (13) 80/10/10 stratified; Banking77 its own test file, 10% of
train held out for validation. The training split is then subsampled (stratified) to
--train-rows; validation and test stay whole. Seeds vary initialisation and data order.
Every run's result is kept in benchmarks/results/ablation.json as it finishes, so an
interrupted benchmark resumes from that file, even on a fresh checkout.

    python benchmarks/ablation.py [--datasets fpb50 banking77] [--seeds 3] [--train-rows 1000]
        [--techniques baseline fgm ...] [--skip-distill] [--skip-ablation] [--report]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    REPOSITORY,
    RESULTS,
    data_file,
    phrasebank_data,
    subsampled_splits,
    table,
    train_or_reuse,
    write_results,
)

OUTPUT = REPOSITORY / "artifacts" / "benchmarks" / "ablation"

TECHNIQUES: dict[str, dict[str, Any]] = {
    "baseline": {},
    "weight_decay": {"train": {"weight_decay": 0.1}},
    "l1": {"train": {"l1": 1e-5}},
    "dropout": {"model": {"hidden_dropout": 0.2, "attention_dropout": 0.2}},
    "label_smoothing": {"train": {"label_smoothing": 0.1}},
    "early_stopping": {"train": {"early_stopping_patience": 2}},
    "fgm": {"train": {"adversarial": {"method": "fgm", "epsilon": 0.25}}},
    "pgd": {
        "train": {"adversarial": {"method": "pgd", "epsilon": 0.25, "steps": 2, "step_size": 0.15}}
    },
    "augment": {"augment": {"multiplier": 2}},
}
ROBUSTNESS_FOR = ("baseline", "fgm", "pgd", "augment")
DEFAULT_TRAIN_ROWS = 1000
MEANS_OF_SEEDS_NOTE = (
    "Runs carrying means_of_seeds were recorded before per-run results were kept: their "
    "macro_f1 is the run's own, their other figures the mean over those seeds."
)
ROBUSTNESS_ROWS = 500  # a seeded sample of the test split (the attack costs several passes a row)


# --------------------------------------------------------------------------- data


def prepare(dataset: str, train_rows: int) -> dict[str, str]:
    """Write the benchmark's split of a dataset as JSONL (under artifacts/, not committed);
    returns the recipe's data section."""
    if dataset == "fpb50":
        section = phrasebank_data("50Agree")
    else:
        section = {
            "train": data_file("banking77", "train.csv"),
            "test": data_file("banking77", "test.csv"),
            "label_column": "category",
            "validation_fraction": 0.1,
        }
    return subsampled_splits(section, OUTPUT / "data" / f"{dataset}-{train_rows}", train_rows)


def recipe_dict(name: str, data: dict, seed: int, extra: dict, base: dict) -> dict:
    recipe = {
        "name": name,
        "seed": seed,
        "output_dir": str(OUTPUT / "runs"),
        "data": data,
        "model": {"base": "builtin:minilm", "max_length": 64},
        "peft": {"method": "lora", "r": 16, "alpha": 32, "target_modules": ["query", "value"]},
        "train": {
            "workers": 2,
            "epochs": 3,
            "batch_size": 8,
            "lr": 2e-3,
            "zero_stage": 2,
            "log_every_steps": 20,
        },
    }
    for section, values in (*base.items(), *extra.items()):
        recipe[section] = {**recipe.get(section, {}), **values}
    return recipe


# --------------------------------------------------------------------------- ablation


def ablation(datasets: list[str], techniques: list[str], seeds: int, train_rows: int) -> list:
    """Seed by seed over all datasets and techniques, so an interrupted benchmark leaves
    every row with the same number of seeds. Every run's result goes into the results file
    as it finishes, and a run already there is not trained again: the benchmark resumes
    from the committed file alone, on a checkout that has none of the run artifacts."""
    name = results_name(train_rows)
    runs = recorded_runs(name)
    data = {dataset: prepare(dataset, train_rows) for dataset in datasets}
    for seed in range(seeds):
        for dataset in datasets:
            for technique in techniques:
                if any(run_key(run) == (dataset, technique, seed) for run in runs):
                    continue
                started = time.time()
                recipe, artifact = train_or_reuse(
                    recipe_dict(
                        f"{dataset}-{technique}-s{seed}",
                        data[dataset],
                        seed,
                        TECHNIQUES[technique],
                        {},
                    )
                )
                test = artifact.metrics["test"]
                result = {
                    "macro_f1": test["macro_f1"],
                    "accuracy": test["accuracy"],
                    "train_s": artifact.metrics["train_seconds"],
                    "steps": artifact.metrics["history"][-1]["step"],
                }
                if technique in ROBUSTNESS_FOR:
                    result |= robustness_of(recipe, artifact, seed)
                runs.append({"dataset": dataset, "technique": technique, "seed": seed, **result})
                print(
                    f"[ablation] {dataset} {technique} seed {seed}: "
                    + ", ".join(f"{key} {value:.4f}" for key, value in result.items())
                    + f" ({time.time() - started:.0f}s)",
                    flush=True,
                )
                write_results(name, results_content(train_rows, runs))
    return [
        row
        for row in summaries(runs)
        if row["dataset"] in datasets and row["technique"] in techniques
    ]


def robustness_of(recipe, artifact, seed: int) -> dict[str, float]:
    from fulcrum.data import load_splits
    from fulcrum.train.robustness import robustness

    splits = load_splits(recipe.data, recipe.seed)
    rows = splits.test
    if rows.num_rows > ROBUSTNESS_ROWS:
        sample = np.random.default_rng(13).choice(rows.num_rows, ROBUSTNESS_ROWS, replace=False)
        rows = rows.take(np.sort(sample))
    report = robustness(
        artifact.path,
        rows,
        splits.label_names,
        recipe.task.type,
        recipe.model.max_length,
        seed=seed,
    )
    return {"pgd_accuracy": report["pgd"]["accuracy"], "typo_accuracy": report["typos"]["accuracy"]}


def results_name(train_rows: int) -> str:
    """Another training-set size gets its own file, so it never replaces the reported runs."""
    return "ablation" if train_rows == DEFAULT_TRAIN_ROWS else f"ablation-{train_rows}rows"


def recorded_runs(name: str) -> list[dict]:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()).get("runs", []) if path.is_file() else []


def results_content(train_rows: int, runs: list[dict]) -> dict[str, Any]:
    content: dict[str, Any] = {"train_rows": train_rows, "rows": summaries(runs), "runs": runs}
    if any("means_of_seeds" in run for run in runs):
        content["note"] = MEANS_OF_SEEDS_NOTE
    return content


def run_key(run: dict) -> tuple[str, str, int]:
    return run["dataset"], run["technique"], run["seed"]


def summaries(runs: list[dict]) -> list[dict[str, Any]]:
    """One row per (dataset, technique), in the order their first runs were recorded."""
    grouped: dict[tuple[str, str], list[dict]] = {}
    for run in sorted(runs, key=lambda run: run["seed"]):
        grouped.setdefault((run["dataset"], run["technique"]), []).append(run)
    order = list(dict.fromkeys((run["dataset"], run["technique"]) for run in runs))
    return [summary(key, grouped[key]) for key in order]


def summary(key: tuple[str, str], results: list[dict]) -> dict[str, Any]:
    scores = [result["macro_f1"] for result in results]
    row = {
        "dataset": key[0],
        "technique": key[1],
        "seeds": len(results),
        "macro_f1_mean": statistics.mean(scores),
        "macro_f1_std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
        "macro_f1": scores,
    }
    for name in ("accuracy", "train_s", "steps", "pgd_accuracy", "typo_accuracy"):
        if all(name in result for result in results):
            row[f"{name}_mean"] = statistics.mean(result[name] for result in results)
    return row


def save(name: str, rows: list[dict], key: tuple[str, ...], extra: dict) -> None:
    """Merge into the results file: rows of datasets or models not rerun are kept."""
    path = RESULTS / f"{name}.json"
    kept = json.loads(path.read_text()).get("rows", []) if path.is_file() else []
    fresh = {tuple(row[k] for k in key) for row in rows}
    merged = [row for row in kept if tuple(row[k] for k in key) not in fresh] + rows
    write_results(name, {**extra, "rows": merged})


# --------------------------------------------------------------------------- distillation

TEACHER = {"peft": {"method": "full"}, "train": {"lr": 1e-4}}
STUDENT = {"model": {"num_layers": 2}, "peft": {"method": "full"}, "train": {"lr": 3e-4}}


def distillation(dataset: str, train_rows: int) -> list[dict]:
    from fulcrum.compress.export import export
    from fulcrum.inference.predictor import OnnxClassifier

    data = prepare(dataset, train_rows)
    texts = [json.loads(line)["text"] for line in open(data["test"])]
    rows = []
    teacher_recipe, teacher = train_or_reuse(
        recipe_dict(f"{dataset}-teacher", data, 0, TEACHER, {})
    )
    candidates = [("teacher (6 layers)", teacher_recipe, teacher)]
    candidates.append(
        (
            "student (2 layers), no teacher",
            *train_or_reuse(recipe_dict(f"{dataset}-student", data, 0, STUDENT, {})),
        )
    )
    distilled = {"teacher": str(teacher.path.resolve()), "alpha": 0.5, "temperature": 2.0}
    candidates.append(
        (
            "student (2 layers), distilled",
            *train_or_reuse(
                recipe_dict(
                    f"{dataset}-student-distilled", data, 0, STUDENT, {"distill": distilled}
                )
            ),
        )
    )
    # TinyBERT-style: the teacher also labels augmented copies, and counts for more.
    candidates.append(
        (
            "student (2 layers), distilled + augmented x3",
            *train_or_reuse(
                recipe_dict(
                    f"{dataset}-student-distilled-augmented",
                    data,
                    0,
                    STUDENT,
                    {
                        "distill": {**distilled, "alpha": 0.3, "actors": 2},
                        "augment": {"multiplier": 3},
                    },
                )
            ),
        )
    )
    exported = [export(recipe, train_dir=artifact.path) for _, recipe, artifact in candidates]
    latencies = batch_latencies_ms(
        [OnnxClassifier(directory, threads=2) for directory in exported], texts, 32
    )
    for (label, _, artifact), directory, latency in zip(
        candidates, exported, latencies, strict=True
    ):
        test = artifact.metrics["test"]
        rows.append(
            {
                "dataset": dataset,
                "model": label,
                "test_accuracy": test["accuracy"],
                "test_macro_f1": test["macro_f1"],
                "onnx_ms_batch32": latency,
                "onnx_mb": (directory / "model.onnx").stat().st_size / 2**20,
                "train_s": artifact.metrics["train_seconds"],
            }
        )
    teacher_row = rows[0]
    for row in rows:
        row["accuracy_vs_teacher"] = row["test_accuracy"] / teacher_row["test_accuracy"]
        row["speedup_vs_teacher"] = teacher_row["onnx_ms_batch32"] / row["onnx_ms_batch32"]
    save("distillation", rows, ("dataset", "model"), {"train_rows": train_rows})
    return rows


def batch_latencies_ms(
    classifiers: list, texts: list[str], batch: int, repeats: int = 3
) -> list[float]:
    """Median milliseconds per batch of each classifier over the test texts, measured
    interleaved (every batch through every model in turn) so that anything else the
    machine does slows them alike and the ratios hold."""
    batches = [texts[i : i + batch] for i in range(0, len(texts) - batch + 1, batch)]
    for classifier in classifiers:  # warm-up
        for chunk in batches[:2]:
            classifier.logits(chunk)
    timings: list[list[float]] = [[] for _ in classifiers]
    for _ in range(repeats):
        for chunk in batches:
            for index, classifier in enumerate(classifiers):
                started = time.perf_counter()
                classifier.logits(chunk)
                timings[index].append(1000 * (time.perf_counter() - started))
    return [statistics.median(values) for values in timings]


# --------------------------------------------------------------------------- report


def plot(rows: list[dict], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({row["dataset"] for row in rows})
    figure, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4), squeeze=False)
    for axis, dataset in zip(axes[0], datasets, strict=True):
        mine = [row for row in rows if row["dataset"] == dataset]
        names = [row["technique"] for row in mine]
        axis.barh(
            names,
            [row["macro_f1_mean"] for row in mine],
            xerr=[row["macro_f1_std"] for row in mine],
            color=["#888" if name == "baseline" else "#3a7" for name in names],
        )
        low = min(row["macro_f1_mean"] - row["macro_f1_std"] for row in mine)
        axis.set_xlim(max(0.0, low - 0.05), 1.0)
        axis.invert_yaxis()
        axis.set_xlabel("test macro-F1 (mean ± std over seeds)")
        axis.set_title(dataset)
    figure.tight_layout()
    figure.savefig(target, dpi=120)


def paired_change(row: dict, base: dict) -> str:
    """The technique's macro-F1 minus the baseline's with the same seed, mean ± std over
    seeds: the seeds move both alike (same initialisation and data order), so the paired
    change is far less noisy than the difference of the two means' spreads suggests."""
    seeds = min(len(row["macro_f1"]), len(base["macro_f1"]))
    changes = [row["macro_f1"][i] - base["macro_f1"][i] for i in range(seeds)]
    spread = f" ± {statistics.stdev(changes):.3f}" if seeds > 1 else ""
    return f"{statistics.mean(changes):+.3f}{spread}"


def report(rows: list[dict]) -> str:
    """The table in docs/benchmarks.md: per technique, each dataset's test macro-F1 as mean ±
    std over seeds, its paired change against the baseline, robustness and train time."""
    datasets = sorted({row["dataset"] for row in rows}, key=["fpb50", "banking77"].index)
    by = {(row["dataset"], row["technique"]): row for row in rows}
    header = ["technique"]
    for dataset in datasets:
        header += [
            f"{dataset} macro-F1",
            "change vs baseline (paired)",
            "acc. under PGD",
            "acc. with typos",
            "train s",
        ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for technique in TECHNIQUES:
        cells = [technique.replace("_", " ")]
        for dataset in datasets:
            row, base = by.get((dataset, technique)), by.get((dataset, "baseline"))
            if row is None:
                cells += [""] * 5
                continue
            cells += [
                f"{row['macro_f1_mean']:.3f} ± {row['macro_f1_std']:.3f} (n={row['seeds']})",
                "" if technique == "baseline" or base is None else paired_change(row, base),
                f"{row['pgd_accuracy_mean']:.3f}" if "pgd_accuracy_mean" in row else "",
                f"{row['typo_accuracy_mean']:.3f}" if "typo_accuracy_mean" in row else "",
                f"{row['train_s_mean']:.0f}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["fpb50", "banking77"])
    parser.add_argument("--techniques", nargs="+", default=list(TECHNIQUES), choices=TECHNIQUES)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--train-rows", type=int, default=DEFAULT_TRAIN_ROWS)
    parser.add_argument("--distill-dataset", default="fpb50")
    parser.add_argument("--distill-train-rows", type=int, default=100_000)
    parser.add_argument("--skip-ablation", action="store_true")
    parser.add_argument("--skip-distill", action="store_true")
    parser.add_argument(
        "--report",
        action="store_true",
        help="print the docs/benchmarks.md table and redraw the plot from the results file",
    )
    args = parser.parse_args()
    if args.report:
        name = results_name(args.train_rows)
        rows = json.loads((RESULTS / f"{name}.json").read_text())["rows"]
        print(report(rows))
        plot(rows, RESULTS / f"{name}.png")
        return

    if not args.skip_distill:
        rows = distillation(args.distill_dataset, args.distill_train_rows)
        print(
            table(
                rows,
                [
                    ("model", "model"),
                    ("test_accuracy", "test accuracy"),
                    ("accuracy_vs_teacher", "vs teacher"),
                    ("onnx_ms_batch32", "ONNX ms/batch 32"),
                    ("speedup_vs_teacher", "speed-up"),
                    ("onnx_mb", "MB"),
                    ("train_s", "train s"),
                ],
            )
        )
    if not args.skip_ablation:
        rows = ablation(args.datasets, args.techniques, args.seeds, args.train_rows)
        print(
            table(
                rows,
                [
                    ("dataset", "dataset"),
                    ("technique", "technique"),
                    ("macro_f1_mean", "macro-F1 mean"),
                    ("macro_f1_std", "std"),
                    ("accuracy_mean", "accuracy"),
                    ("pgd_accuracy_mean", "acc. under PGD"),
                    ("typo_accuracy_mean", "acc. with typos"),
                    ("train_s_mean", "train s"),
                ],
            )
        )
        name = results_name(args.train_rows)
        plot(json.loads((RESULTS / f"{name}.json").read_text())["rows"], RESULTS / f"{name}.png")
        print(f"\nwrote {RESULTS / name}.json and {RESULTS / name}.png")


if __name__ == "__main__":
    main()
