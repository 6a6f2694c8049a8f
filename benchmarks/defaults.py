"""Do the defaults work on data nobody tuned them for? The minimal recipe against a tuned one.

For every labelled set in ../shared/data, English and Chinese, the minimal recipe (a name
and the data, nothing else: the model too is settled from the texts) is trained as a new
user would train it,
and beside it a tuned reference: `fulcrum tune --auto` on the same recipe with a budget of
--tune-factor times the minimal recipe's own wall time (its first trial is the defaults, the
rest search the learning rate, the epochs, LoRA's rank and targets). One table: dataset,
default metric, tuned metric, gap in points, wall time of each.

Beside it, a plain PyTorch loop against `fulcrum train` with identical settings and seeds
(LoRA r 16 on query/value, lr 1e-3, 2 epochs, max_length 64, 32 rows a step, unweighted
cross-entropy), on two datasets and several seeds: once with every setting matched (no
warm-up, no clipping, weight decay 0.01, as a hand-written AdamW loop has), once with
Fulcrum's own warm-up, clipping and weight decay. Either the two match within seed noise,
or the table shows which setting costs.

Splits: FPB seeded (the recipe's seed) 80/10/10 stratified; Banking77 its own test file,
15% of train carved for validation; SST-2 train / dev / test; CLINC150 its in-scope
train / val / test; CoNLL-2003 and WNUT-17 their own three files; ChnSentiCorp train / dev /
test with the training reviews that are also in dev or test left out; DataCLUE CIC train /
dev / test_public, labels by name (`label_des`); Resume NER train / dev / test (BMES). Every run's result is kept in
benchmarks/results/defaults.json as it finishes, so an interrupted benchmark resumes.

    python benchmarks/defaults.py [--datasets fpb_allagree ...] [--parts default tuned loop]
        [--tune-factor 3] [--seeds 3] [--report]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from pathlib import Path
from typing import Any

from common import (
    REPOSITORY,
    RESULTS,
    data_file,
    phrasebank_data,
    settled_values,
    splice_block,
    table,
    write_labelled_jsonl,
    write_results,
)

OUTPUT = REPOSITORY / "artifacts" / "benchmarks" / "defaults"
RESULTS_NAME = "defaults"
DOCS = REPOSITORY / "docs" / "defaults.md"
COMMAND = "python benchmarks/defaults.py"
TARGET_GAP_POINTS = 2.0
LOOP_DATASETS = ("fpb_50agree", "banking77")
# What the plain loop and `fulcrum train` share (the settings of the hand-written loop that
# beat `fulcrum train` on a held-out set of market posts).
LOOP_SETTINGS = {
    "model": {"base": "builtin:minilm", "max_length": 64},
    "peft": {
        "method": "lora",
        "r": 16,
        "alpha": 32,
        "dropout": 0.05,
        "target_modules": ["query", "value"],
    },
    "train": {
        "epochs": 2,
        "lr": 1e-3,
        "batch_size": 16,
        "workers": 2,
        "scheduler": "linear",
        "class_weights": "none",  # the plain loop's unweighted cross-entropy
    },
}
# How a hand-written AdamW loop differs from Fulcrum's defaults.
PLAIN_LOOP_HABITS = {"warmup_ratio": 0.0, "grad_clip": 0.0, "weight_decay": 0.01}


# --------------------------------------------------------------------------- data


def _sst2() -> dict[str, str]:
    """train.tsv names its text column `sentence`, dev and test `content`: one JSONL each."""
    section = {}
    for split, name in (("train", "train.tsv"), ("validation", "dev.tsv"), ("test", "test.tsv")):
        with open(data_file("sst2", name), newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle, delimiter="\t"))[1:]
        section[split] = write_labelled_jsonl(
            OUTPUT / "data" / "sst2" / f"{split}.jsonl", [(row[1], row[0].strip()) for row in rows]
        )
    return section


def _clinc150() -> dict[str, str]:
    """The in-scope intents (150, no `oos`): out-of-scope detection is another benchmark."""
    full = json.loads(Path(data_file("clinc150", "data_full.json")).read_text())
    return {
        split: write_labelled_jsonl(
            OUTPUT / "data" / "clinc150" / f"{split}.jsonl", [tuple(row) for row in full[key]]
        )
        for split, key in (("train", "train"), ("validation", "val"), ("test", "test"))
    }


def chnsenticorp_data() -> dict[str, Any]:
    """ChnSentiCorp's three files, with every training review that is also in dev or test
    left out (the copy in ../shared/data has many), so the test figure is of unseen text."""
    splits = {}
    for split, name in (("train", "train.tsv"), ("validation", "dev.tsv"), ("test", "test.tsv")):
        with open(data_file("chnsenticorp", name), newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
        splits[split] = [(row[1].strip(), row[0].strip()) for row in rows]
    held_out = {text for split in ("validation", "test") for text, _ in splits[split]}
    splits["train"] = [(text, label) for text, label in splits["train"] if text not in held_out]
    folder = OUTPUT / "data" / "chnsenticorp"
    return {
        split: write_labelled_jsonl(folder / f"{split}.jsonl", rows)
        for split, rows in splits.items()
    }


def _conll(folder: str, train: str, validation: str, test: str, scheme: str) -> dict[str, Any]:
    return {
        "train": data_file(folder, train),
        "validation": data_file(folder, validation),
        "test": data_file(folder, test),
        "format": "conll",
        "tag_scheme": scheme,
    }


DATASETS = {
    "fpb_allagree": lambda: phrasebank_data("AllAgree"),
    "fpb_50agree": lambda: phrasebank_data("50Agree"),
    "wnut17": lambda: _conll(
        "wnut17", "wnut17train.conll", "emerging.dev.conll", "emerging.test.annotated", "bio"
    ),
    "banking77": lambda: {
        "train": data_file("banking77", "train.csv"),
        "test": data_file("banking77", "test.csv"),
        "label_column": "category",
    },
    "clinc150": _clinc150,
    "conll2003": lambda: _conll("conll2003", "eng.train", "eng.testa", "eng.testb", "iob1"),
    "sst2": _sst2,
    # Chinese: the minimal recipe names no model; the multilingual one is settled from the text.
    "chnsenticorp": chnsenticorp_data,
    "dataclue_cic": lambda: {
        "train": data_file("dataclue_cic", "train.json"),
        "validation": data_file("dataclue_cic", "dev.json"),
        "test": data_file("dataclue_cic", "test_public.json"),
        "format": "jsonl",
        "text_column": "sentence",
        "label_column": "label_des",
    },
    "resume_ner": lambda: {
        "train": data_file("resume_ner", "train.char.bmes"),
        "validation": data_file("resume_ner", "dev.char.bmes"),
        "test": data_file("resume_ner", "test.char.bmes"),
    },
}


def minimal_recipe(dataset: str, seed: int | None = None) -> dict[str, Any]:
    """What a new user writes: a name and the data (and where artifacts go)."""
    raw = {"name": f"defaults-{dataset.replace('_', '-')}", "output_dir": str(OUTPUT / "runs")}
    if seed is not None:
        raw["seed"] = seed
    return raw | {"data": DATASETS[dataset]()}


# --------------------------------------------------------------------------- results


def load_results() -> dict[str, Any]:
    path = RESULTS / f"{RESULTS_NAME}.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def record(key: str, value: dict[str, Any]) -> None:
    results = load_results()
    runs = results.get("runs", {})
    runs[key] = value
    write_results(RESULTS_NAME, {"command": COMMAND, "runs": runs})
    print(f"[benchmark] {key}: {json.dumps(value)[:300]}", flush=True)


def scores(test: dict[str, Any]) -> dict[str, float]:
    """The headline test metrics of an artifact, in points."""
    keys = ("f1",) if "f1" in test else ("accuracy", "macro_f1")
    return {key: round(100 * test[key], 2) for key in keys}


# --------------------------------------------------------------------------- default and tuned


def trained(raw: dict[str, Any]):
    """The training artifact of a recipe: read back when one trained from the same recipe,
    settled the same way, is there, else trained (an interrupted run resumes from its
    checkpoints). The minimal recipe's hash does not change when the defaults do, so an
    artifact from earlier rules is retrained, not reported as theirs."""
    from fulcrum.artifacts import artifact_dir, open_artifact
    from fulcrum.recipe import validate_recipe
    from fulcrum.train.settle import settle_from_files
    from fulcrum.train.stage import train

    recipe = validate_recipe(raw)
    target = artifact_dir(recipe, "train")
    if (target / "manifest.json").is_file():
        artifact = open_artifact(target, kind="train")
        settled = settle_from_files(recipe).recipe.to_dict()
        if artifact.manifest.recipe_hash == recipe.hash and (
            artifact.manifest.settled_recipe == settled
        ):
            return artifact
    train(recipe)
    return open_artifact(target, kind="train")


def artifact_summary(artifact, started: float) -> dict[str, Any]:
    """What a benchmark records of a training artifact: its splits, test and validation
    scores, what it settled and warned, and what it cost."""
    metrics = artifact.metrics
    return {
        "rows": artifact.manifest.split_sizes,
        "test": scores(metrics["test"]),
        "validation": scores(metrics["validation"]),
        "best_epoch": metrics["best_epoch"],
        "settled": settled_values(artifact),
        "warnings": [item["text"] for item in artifact.manifest.warnings],
        "wall_s": metrics["train_seconds"],
        "measured_s": round(time.time() - started, 1),
    }


def run_default(dataset: str) -> dict[str, Any]:
    started = time.time()
    artifact = trained(minimal_recipe(dataset))
    return {
        "dataset": dataset,
        "task": artifact.manifest.task,
        "labels": len(artifact.labels),
        **artifact_summary(artifact, started),
    }


def run_tuned(dataset: str, budget_s: float) -> dict[str, Any]:
    from fulcrum.artifacts import open_artifact
    from fulcrum.recipe import validate_recipe
    from fulcrum.tune.campaign import tune

    raw = minimal_recipe(dataset)
    raw["tune"] = {"auto": True, "time_budget_s": round(budget_s)}
    campaign = open_artifact(tune(validate_recipe(raw)), kind="tune")
    summary = campaign.metrics
    best = summary["best"]
    trial = open_artifact(campaign.path / best["artifact"], kind="train")
    with open(campaign.path / "results.csv", newline="") as handle:
        trials = list(csv.DictReader(handle))
    return {
        "dataset": dataset,
        "test": scores(trial.metrics["test"]),
        "validation": scores(trial.metrics["validation"]),
        "best": {
            key.removeprefix("config/"): best[key] for key in best if key.startswith("config/")
        },
        "trials": summary["trials"],
        "finished": summary["finished"],
        "stopped": summary["stopped"],
        "budget_s": round(budget_s),
        "wall_s": summary["wall_s"],
        "first_trial": {
            "config": {
                k.removeprefix("config/"): v
                for k, v in trials[0].items()
                if k.startswith("config/")
            },
            "status": trials[0]["status"],
        }
        if trials
        else None,
    }


# --------------------------------------------------------------------------- plain loop


def loop_recipe(dataset: str, seed: int, variant: str) -> dict[str, Any]:
    raw = minimal_recipe(dataset, seed)
    raw["name"] = f"loop-{dataset.replace('_', '-')}-{variant}-s{seed}"
    for section, values in LOOP_SETTINGS.items():
        raw[section] = dict(values)
    if variant == "fulcrum-matched":
        raw["train"] |= PLAIN_LOOP_HABITS
    return raw


def run_fulcrum_loop(dataset: str, seed: int, variant: str) -> dict[str, Any]:
    started = time.time()
    artifact = trained(loop_recipe(dataset, seed, variant))
    history = artifact.metrics["history"]
    return {
        "test": scores(artifact.metrics["test"]),
        "best_epoch": artifact.metrics["best_epoch"],
        "val_macro_f1_by_epoch": [round(100 * item["val_macro_f1"], 2) for item in history],
        "train_loss_by_epoch": [round(item["train_loss"], 4) for item in history],
        "wall_s": round(time.time() - started, 1),
    }


def run_plain_loop(dataset: str, seed: int) -> dict[str, Any]:
    """A hand-written PyTorch + PEFT loop on the same split, model, initialisation and
    settings: AdamW (torch's default weight decay), linear decay with no warm-up, no
    clipping, a shuffled order per epoch, the best epoch by validation macro-F1."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from fulcrum.data import load_splits
    from fulcrum.models.classifier import load_tokenizer
    from fulcrum.models.registry import resolve_model_dir
    from fulcrum.recipe import validate_recipe

    recipe = validate_recipe(loop_recipe(dataset, seed, "plain"))
    splits = load_splits(recipe.data, recipe.seed)
    model_dir = resolve_model_dir(recipe.model.base)
    tokenizer = load_tokenizer(model_dir)
    torch.set_num_threads(2)
    model = _plain_lora_model(model_dir, recipe, splits.label_names, seed)
    batch = recipe.train.batch_size * recipe.train.workers
    texts = splits.train.column("text").to_pylist()
    labels = torch.tensor(splits.train.column("label").to_numpy())
    steps_per_epoch = len(texts) // batch
    total = steps_per_epoch * recipe.train.epochs
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=recipe.train.lr
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / total)

    def encode(batch_texts):
        return tokenizer(
            batch_texts,
            padding=True,
            truncation=True,
            max_length=recipe.model.max_length,
            return_tensors="pt",
        )

    started = time.time()
    model.train()
    epochs = []
    for epoch in range(recipe.train.epochs):
        order = torch.randperm(
            len(texts), generator=torch.Generator().manual_seed(seed * 1000 + epoch)
        )
        losses = []
        for step in range(steps_per_epoch):
            rows = order[step * batch : (step + 1) * batch]
            logits = model(**encode([texts[i] for i in rows])).logits
            loss = F.cross_entropy(logits, labels[rows])
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            losses.append(loss.item())
        epochs.append(
            {
                "validation": _plain_evaluate(model, encode, splits.validation, splits.label_names),
                "test": _plain_evaluate(model, encode, splits.test, splits.label_names),
                "loss": float(np.mean(losses)),
            }
        )
    best = max(
        range(len(epochs)), key=lambda index: (epochs[index]["validation"]["macro_f1"], index)
    )
    return {
        "test": scores(epochs[best]["test"]),
        "best_epoch": best + 1,
        "val_macro_f1_by_epoch": [
            round(100 * item["validation"]["macro_f1"], 2) for item in epochs
        ],
        "train_loss_by_epoch": [round(item["loss"], 4) for item in epochs],
        "wall_s": round(time.time() - started, 1),
    }


def _plain_lora_model(model_dir, recipe, names: list[str], seed: int):
    """The model and LoRA adapter Fulcrum builds for the same recipe, built by hand."""
    import peft
    import torch
    from transformers import AutoModelForSequenceClassification

    from fulcrum.models.classifier import label_maps, quiet_transformers

    quiet_transformers()
    torch.manual_seed(seed)  # as Fulcrum seeds before building: the same head and adapter
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, use_kernels=False, **label_maps(names)
    )
    lora = recipe.peft
    return peft.get_peft_model(
        model,
        peft.LoraConfig(
            task_type="SEQ_CLS",
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora.target_modules,
        ),
    )


def _plain_evaluate(model, encode, table, names: list[str]) -> dict[str, float]:
    import numpy as np
    import torch

    from fulcrum.metrics import classification_metrics, confusion_matrix

    model.eval()
    rows = table.column("text").to_pylist()
    predicted = []
    with torch.no_grad():
        for start in range(0, len(rows), 64):
            predicted.append(model(**encode(rows[start : start + 64])).logits.argmax(-1).numpy())
    model.train()
    gold = table.column("label").to_numpy()
    return classification_metrics(confusion_matrix(gold, np.concatenate(predicted), len(names)))


# --------------------------------------------------------------------------- report


def report(results: dict[str, Any]) -> str:
    runs = results.get("runs", {})
    rows = []
    for dataset in DATASETS:
        default, tuned = runs.get(f"default/{dataset}"), runs.get(f"tuned/{dataset}")
        if not default:
            continue
        row = {
            "dataset": dataset,
            "rows": f"{default['rows']['train']:,}",
            "labels": default["labels"],
            "settled": _settled(default["settled"]),
            "default_s": default["wall_s"],
        }
        for key, value in default["test"].items():
            row[f"default_{key}"] = value
            if tuned:
                row[f"tuned_{key}"] = tuned["test"][key]
                row[f"gap_{key}"] = round(tuned["test"][key] - value, 2)
        if tuned:
            row["tuned_s"] = tuned["wall_s"]
            row["trials"] = f"{tuned['finished']}/{tuned['trials']}"
        row["metric"] = " / ".join(default["test"])
        row["default"] = " / ".join(f"{v:.1f}" for v in default["test"].values())
        row["tuned"] = (
            " / ".join(f"{tuned['test'][k]:.1f}" for k in default["test"]) if tuned else "-"
        )
        row["gap"] = (
            " / ".join(f"{tuned['test'][k] - v:+.1f}" for k, v in default["test"].items())
            if tuned
            else "-"
        )
        row["within"] = (
            (
                "yes"
                if all(
                    tuned["test"][k] - v <= TARGET_GAP_POINTS for k, v in default["test"].items()
                )
                else "no"
            )
            if tuned
            else "-"
        )
        row["warnings"] = len(default["warnings"])
        rows.append(row)
    text = [
        f"Test metrics in points (sequences: accuracy / macro-F1; NER: entity F1). Command: `{COMMAND}`.",
        "",
        table(
            rows,
            [
                ("dataset", "dataset"),
                ("rows", "train rows"),
                ("labels", "labels"),
                ("metric", "metric"),
                ("default", "minimal recipe"),
                ("tuned", "tuned (--auto)"),
                ("gap", "gap (points)"),
                ("within", f"within {TARGET_GAP_POINTS:g}"),
                ("default_s", "minimal s"),
                ("tuned_s", "tuned s"),
                ("trials", "trials finished/run"),
                ("settled", "settled"),
            ],
        ),
    ]
    loop = loop_table(runs)
    if loop:
        text += ["", loop]
    return "\n".join(text)


def loop_table(runs: dict[str, Any]) -> str:
    rows = []
    for dataset in LOOP_DATASETS:
        for variant in ("plain", "fulcrum-matched", "fulcrum"):
            found = [runs[key] for key in runs if key.startswith(f"loop/{dataset}/{variant}/")]
            if not found:
                continue
            accuracy = [item["test"]["accuracy"] for item in found]
            macro = [item["test"]["macro_f1"] for item in found]
            rows.append(
                {
                    "dataset": dataset,
                    "variant": variant,
                    "seeds": len(found),
                    "accuracy": _mean_std(accuracy),
                    "macro_f1": _mean_std(macro),
                    "wall_s": round(statistics.mean(item["wall_s"] for item in found)),
                }
            )
    if not rows:
        return ""
    return table(
        rows,
        [
            ("dataset", "dataset"),
            ("variant", "loop"),
            ("seeds", "seeds"),
            ("accuracy", "test accuracy"),
            ("macro_f1", "test macro-F1"),
            ("wall_s", "wall s"),
        ],
    )


def plot(results: dict[str, Any], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results.get("runs", {})
    names = [d for d in DATASETS if f"default/{d}" in runs]
    if not names:
        return
    headline = {
        d: next(reversed(list(runs[f"default/{d}"]["test"]))) for d in names
    }  # macro_f1 or f1
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    positions = range(len(names))
    left.bar(
        [p - 0.2 for p in positions],
        [runs[f"default/{d}"]["test"][headline[d]] for d in names],
        0.4,
        label="minimal recipe",
    )
    left.bar(
        [p + 0.2 for p in positions],
        [runs.get(f"tuned/{d}", {}).get("test", {}).get(headline[d], 0) for d in names],
        0.4,
        label="tuned (--auto)",
    )
    left.set_xticks(list(positions), [f"{d}\n({headline[d]})" for d in names], fontsize=8)
    left.set(ylabel="test metric (points)", title="minimal recipe against a tuned reference")
    left.legend(loc="lower right")
    left.grid(axis="y", alpha=0.3)
    right.bar(
        list(positions), [runs[f"default/{d}"]["wall_s"] / 60 for d in names], 0.4, label="minimal"
    )
    right.bar(
        [p + 0.4 for p in positions],
        [runs.get(f"tuned/{d}", {}).get("wall_s", 0) / 60 for d in names],
        0.4,
        label="tuned",
    )
    right.set_xticks([p + 0.2 for p in positions], names, fontsize=8)
    right.set(ylabel="wall minutes (2 CPU cores)", title="what each cost")
    right.legend()
    right.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(target, dpi=110)
    plt.close(figure)


def _settled(values: dict[str, Any]) -> str:
    short = {"train.lr": "lr", "train.epochs": "epochs", "model.max_length": "max_length"}
    shown = [str(values["model.base"]).removeprefix("builtin:")] if "model.base" in values else []
    shown += [f"{short[key]} {value:g}" for key, value in values.items() if key in short]
    return ", ".join(shown)


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def write_report() -> None:
    results = load_results()
    text = report(results)
    print(text)
    plot(results, RESULTS / "defaults.png")
    DOCS.write_text(splice_block(DOCS.read_text(), "defaults table", text, where=DOCS))
    print(f"[benchmark] wrote {DOCS.relative_to(REPOSITORY)} and benchmarks/results/defaults.png")


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["default", "tuned", "loop"],
        choices=["default", "tuned", "loop"],
    )
    parser.add_argument(
        "--tune-factor", type=float, default=3.0, help="tuned budget / minimal recipe's wall time"
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the plain-loop comparison")
    parser.add_argument("--report", action="store_true", help="only write the table, JSON and PNG")
    args = parser.parse_args()
    if args.report:
        write_report()
        return
    runs = load_results().get("runs", {})
    for dataset in args.datasets:
        if "default" in args.parts and f"default/{dataset}" not in runs:
            record(f"default/{dataset}", run_default(dataset))
            runs = load_results()["runs"]
        if (
            "tuned" in args.parts
            and f"tuned/{dataset}" not in runs
            and f"default/{dataset}" in runs
        ):
            budget = max(300.0, args.tune_factor * runs[f"default/{dataset}"]["wall_s"])
            record(f"tuned/{dataset}", run_tuned(dataset, budget))
            runs = load_results()["runs"]
    if "loop" in args.parts:
        for seed in range(args.seeds):
            for dataset in [d for d in LOOP_DATASETS if d in args.datasets]:
                for variant in ("plain", "fulcrum-matched", "fulcrum"):
                    key = f"loop/{dataset}/{variant}/{seed}"
                    if key in runs:
                        continue
                    outcome = (
                        run_plain_loop(dataset, seed)
                        if variant == "plain"
                        else run_fulcrum_loop(dataset, seed, variant)
                    )
                    record(key, {"dataset": dataset, "variant": variant, "seed": seed, **outcome})
                    runs = load_results()["runs"]
    write_report()


if __name__ == "__main__":
    main()
