"""Continual learning on Banking77: new intents learned from a parent model, against
retraining from scratch on everything.

Banking77's 77 intents are split (seeded) into an old set of 60 and a new set of 17, with
`--per-intent` training rows of each (drawn seeded from the official training file) and the
official test rows of each. Four models, all builtin:minilm with LoRA and `--epochs` epochs:

- `parent`: trained on the old intents; measured on the old test rows and (by the continued
  models' reports, the new labels scored below every other) on the new ones;
- `continued`: continual.parent the parent, trained on the new intents' rows only (the
  hardest case for forgetting), with no replay, with a quarter of the parent's rows
  replayed, and with that and the distillation term (continual.distill 0.5); measured on
  both test sets by the run itself;
- `scratch`: all 77 intents from builtin:minilm; measured on both test sets afterwards.

Compute is the rows each run trained on times its epochs (the same model, so the same cost
per row). Then drift: the parent, exported, against traffic of its own intents (the old
test rows) and traffic where the new intents have arrived (the old test rows mixed with the
new ones), as `fulcrum drift` reads a corpus. Results go to
benchmarks/results/continual.json; the tables into docs/continual.md.

    python benchmarks/continual.py [--per-intent 40] [--epochs 4] [--report]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from common import (
    REPOSITORY,
    RESULTS,
    data_file,
    splice_block,
    table,
    train_or_reuse,
    write_labelled_jsonl,
    write_results,
)

OUTPUT = REPOSITORY / "artifacts" / "benchmarks" / "continual"
RESULTS_NAME = "continual"
DOCS = REPOSITORY / "docs" / "continual.md"
COMMAND = "python benchmarks/continual.py"
NEW_INTENTS, SEED = 17, 0
# (continual.replay, continual.distill) of each continued run
CONTINUED = ((0.0, 0.0), (0.25, 0.0), (0.25, 0.5))


def read(split: str) -> list[tuple[str, str]]:
    with open(data_file("banking77", f"{split}.csv"), newline="", encoding="utf-8") as handle:
        return [(row["text"], row["category"]) for row in csv.DictReader(handle)]


def write_sets(per_intent: int) -> dict[str, str]:
    """The old and new intents' training and test files (and both together)."""
    train, test = read("train"), read("test")
    intents = sorted({label for _, label in train})
    rng = random.Random(SEED)
    new = set(rng.sample(intents, NEW_INTENTS))
    by_intent = defaultdict(list)
    for row in train:
        by_intent[row[1]].append(row)
    drawn = []
    for intent in intents:
        rows = by_intent[intent]
        drawn += rng.sample(rows, min(per_intent, len(rows)))
    folder = OUTPUT / "data" / f"{per_intent}-per-intent"
    parts = {
        "old_train": [row for row in drawn if row[1] not in new],
        "new_train": [row for row in drawn if row[1] in new],
        "old_test": [row for row in test if row[1] not in new],
        "new_test": [row for row in test if row[1] in new],
    }
    parts["all_train"] = parts["old_train"] + parts["new_train"]
    parts["all_test"] = parts["old_test"] + parts["new_test"]
    return {
        name: write_labelled_jsonl(folder / f"{name}.jsonl", rows) for name, rows in parts.items()
    }


def recipe(name: str, train: str, test: str, epochs: int, **sections) -> dict[str, Any]:
    return {
        "name": name,
        "output_dir": str(OUTPUT / "runs"),
        "data": {"train": train, "test": test},
        "train": {"epochs": epochs},
        **sections,
    }


def compute(artifact) -> dict[str, Any]:
    epochs = artifact.manifest.settled_recipe["train"]["epochs"]
    rows = artifact.metrics["training_rows"]
    return {
        "training_rows": rows,
        "rows_x_epochs": rows * epochs,
        "train_s": artifact.metrics["train_seconds"],
    }


def scratch_on_each(artifact, files: dict[str, str]) -> dict[str, dict[str, float]]:
    """The scratch model's metrics on the old and the new test rows, apart, macro-F1 over
    the labels each holds (as the promotion gate reads the continued models')."""
    from fulcrum.continual import over_split_labels
    from fulcrum.data import load_splits
    from fulcrum.recipe import DataSection, validate_recipe
    from fulcrum.tasks import TASKS
    from fulcrum.train.merge import evaluate_merged

    settled = validate_recipe(artifact.manifest.settled_recipe)
    section = DataSection(
        train=files["all_train"], validation=files["old_test"], test=files["new_test"]
    )
    splits = load_splits(section, settled.seed, known_labels=artifact.labels)
    evaluations, _ = evaluate_merged(
        artifact.path,
        {"old": splits.validation, "new": splits.test},
        artifact.labels,
        settled,
    )
    task = TASKS[settled.task.type]
    return {
        split: over_split_labels(
            item.metrics, task.report(item.counts, artifact.labels), "macro_f1"
        )
        for split, item in evaluations.items()
    }


def figures(old: dict[str, float], new: dict[str, float], rows: dict[str, int]) -> dict[str, float]:
    """Accuracy on the old intents' test rows, the new ones' and all of them together, and
    macro-F1 on the old. (Macro-F1 on the new rows alone would count every old label a
    model answers there as a label with F1 0, so accuracy is what compares there.)"""
    together = old["accuracy"] * rows["old"] + new["accuracy"] * rows["new"]
    return {
        "old_accuracy": old["accuracy"],
        "new_accuracy": new["accuracy"],
        "all_accuracy": together / (rows["old"] + rows["new"]),
        "old_macro_f1": old["macro_f1"],
    }


def drift_of(parent, files: dict[str, str]) -> list[dict[str, Any]]:
    """`fulcrum drift`'s verdicts for the exported parent on two corpora, 1,000 texts a
    window: the old intents' test rows, and the same with the new intents' rows mixed in."""
    from fulcrum import drift
    from fulcrum.artifacts import artifact_dir
    from fulcrum.compress.export import export
    from fulcrum.recipe import validate_recipe

    written = validate_recipe(parent.manifest.recipe)
    exported = artifact_dir(written, "export")
    if not (exported / "manifest.json").is_file():
        exported = export(written, parent.path)
    reference = drift.reference_window(exported)
    old = [json.loads(line) for line in Path(files["old_test"]).read_text().splitlines()]
    new = [json.loads(line) for line in Path(files["new_test"]).read_text().splitlines()]
    # Traffic comes mixed, not in the test file's order (grouped by intent).
    rng = random.Random(SEED)
    old = rng.sample(old, len(old))
    mixed = old[: len(old) // 2] + new
    rng.shuffle(mixed)
    rows = []
    for name, records in (("old intents only", old), ("new intents arrived", mixed)):
        corpus = OUTPUT / "data" / f"traffic-{name.split()[0]}.jsonl"
        write_labelled_jsonl(corpus, [(r["text"], r["label"]) for r in records])
        for index, window in enumerate(
            drift.corpus_windows(str(corpus), exported, "text", 1000), start=1
        ):
            found = drift.compare(reference, window)
            rows.append(
                {
                    "traffic": name,
                    "window": index,
                    "texts": found["texts"],
                    "psi": found["psi"],
                    "unsure": found["low_confidence_share"],
                    "verdict": "retrain due" if found["retrain_due"] else "ok",
                    "reasons": "; ".join(found["reasons"]),
                }
            )
    return rows


def run(per_intent: int, epochs: int) -> dict[str, Any]:
    files = write_sets(per_intent)
    _, parent = train_or_reuse(
        recipe(f"banking-old-{per_intent}", files["old_train"], files["old_test"], epochs)
    )
    rows, parent_on, rows_of = [], {}, {}
    for replay, distill in CONTINUED:
        name = f"banking-new-{per_intent}-replay{round(100 * replay)}"
        continual = {"parent": str(parent.path), "replay": replay}
        if distill:
            name += f"-distill{round(100 * distill)}"
            continual["distill"] = distill
        _, child = train_or_reuse(
            recipe(name, files["new_train"], files["new_test"], epochs, continual=continual)
        )
        report = child.metrics["continual"]
        rows_of = {"old": report["old_test"]["rows"], "new": report["new_test"]["rows"]}
        # The parent as the gate measured it (the same labels and lengths as its children)
        parent_on = {"old": report["old_test"]["parent"], "new": report["new_test"]["parent"]}
        rows.append(
            {
                "model": f"continued, replay {replay:g}"
                + (f", distill {distill:g}" if distill else ""),
                **figures(report["old_test"]["continued"], child.metrics["test"], rows_of),
                "gate": "passed" if report["gate"]["passed"] else "refused",
                "replayed_rows": report["replayed_rows"],
                **compute(child),
            }
        )
    _, scratch = train_or_reuse(
        recipe(f"banking-all-{per_intent}", files["all_train"], files["all_test"], epochs)
    )
    each = scratch_on_each(scratch, files)
    parent_row = {
        "model": "parent (old intents only)",
        **figures(parent_on["old"], parent_on["new"], rows_of),
        **compute(parent),
    }
    scratch_row = {
        "model": "scratch (old and new intents)",
        **figures(each["old"], each["new"], rows_of),
        **compute(scratch),
    }
    return {
        "drift": drift_of(parent, files),
        "per_intent": per_intent,
        "epochs": epochs,
        "old_intents": len(parent.labels),
        "new_intents": NEW_INTENTS,
        "rows": [parent_row, *rows, scratch_row],
    }


def report(results: dict[str, Any]) -> str:
    if "rows" not in results:
        return "Not measured yet."
    drifted = ""
    if results.get("drift"):
        drifted = (
            "\n\n`fulcrum drift` on the parent (exported), 1,000 texts a window, against its "
            "own test split:\n\n"
            + table(
                results["drift"],
                [
                    ("traffic", "traffic"),
                    ("window", "window"),
                    ("texts", "texts"),
                    ("psi", "PSI"),
                    ("unsure", "unsure share"),
                    ("verdict", "verdict"),
                ],
            )
        )
    return (
        f"Command: `{results['command']}`. Banking77, {results['old_intents']} old and "
        f"{results['new_intents']} new intents, {results['per_intent']} training rows per "
        f"intent, builtin:minilm with LoRA, {results['epochs']} epochs each; accuracy on the "
        "official test rows of the old intents, of the new ones and of all 77 together, and "
        "macro-F1 on the old (what the promotion gate reads). Compute: rows trained x "
        "epochs (the runs' wall times are in the JSON: some ran beside the test suite).\n\n"
        + table(
            results["rows"],
            [
                ("model", "model"),
                ("old_accuracy", "old intents"),
                ("new_accuracy", "new intents"),
                ("all_accuracy", "all 77"),
                ("old_macro_f1", "old macro-F1"),
                ("gate", "promotion gate"),
                ("training_rows", "rows trained"),
                ("rows_x_epochs", "compute (rows x epochs)"),
            ],
        )
        + drifted
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-intent", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--report", action="store_true", help="only rewrite the docs table")
    args = parser.parse_args()
    path = RESULTS / f"{RESULTS_NAME}.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    if not args.report:
        started = time.time()
        results = {
            **run(args.per_intent, args.epochs),
            "command": " ".join([COMMAND, *sys.argv[1:]]),
            "wall_s": round(time.time() - started, 1),
        }
        write_results(RESULTS_NAME, results)
        print(report(results), flush=True)
    body = DOCS.read_text()
    DOCS.write_text(splice_block(body, "continual table", report(results), DOCS))
    print(f"[benchmark] wrote the table into {DOCS}")


if __name__ == "__main__":
    main()
