"""Out-of-scope detection on CLINC150 (Larson et al., EMNLP 2019): what each way of saying
"none of these" costs in in-scope accuracy and buys in out-of-scope recall.

Two models per method, each the minimal recipe (detection settles on by itself: the data
has out-of-scope rows):
- `threshold`: trained on the 150 in-scope intents only; validation and test carry the
  out-of-scope rows as a label training never saw (the paper's oos-threshold setting);
- `trained class`: the 100 out-of-scope training rows trained as a 151st label, `oos` (the
  paper's oos-train setting), with the confidence floor on top.

Rows of the table, all on the same test logits of each model's exported ONNX model and of
its dynamic-INT8 variant: (a) no out-of-scope handling (the argmax), (b) the floor on the
largest probability, (b') on the energy score, each keeping 95% of in-scope validation texts
(the default), (b'') the paper's rule (the floor with the best validation accuracy over all
classes), (b''') the energy floor for 90% validation precision (--target-precision), (c) the
trained class alone, (d) the class with each floor, and the detector the model ships
(`score: auto`). Every threshold is chosen on validation, never on test.
Test: 4,500 in-scope and 1,000 out-of-scope texts. Results go to
benchmarks/results/out_of_scope.json as each model finishes, so a rerun resumes.

    python benchmarks/out_of_scope.py [--methods lora full] [--target-precision 0.9] [--report]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from common import (
    REPOSITORY,
    RESULTS,
    data_file,
    settled_values,
    splice_block,
    table,
    train_or_reuse,
    write_labelled_jsonl,
    write_results,
)

OUTPUT = REPOSITORY / "artifacts" / "benchmarks" / "out_of_scope"
RESULTS_NAME = "out_of_scope"
DOCS = REPOSITORY / "docs" / "assistant.md"
COMMAND = "python benchmarks/out_of_scope.py"
SETTINGS = ("threshold", "trained class")


def clinc_data(with_oos_training: bool) -> dict[str, str]:
    full = json.loads(Path(data_file("clinc150", "data_full.json")).read_text())
    folder = OUTPUT / "data" / ("oos-train" if with_oos_training else "in-scope-train")
    train = full["train"] + (full["oos_train"] if with_oos_training else [])
    return {
        "train": write_labelled_jsonl(folder / "train.jsonl", train),
        "validation": write_labelled_jsonl(
            folder / "validation.jsonl", full["val"] + full["oos_val"]
        ),
        "test": write_labelled_jsonl(folder / "test.jsonl", full["test"] + full["oos_test"]),
    }


def recipe(method: str, setting: str) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": f"oos-{method}-{setting.replace(' ', '-')}",
        "output_dir": str(OUTPUT / "runs"),
        "data": clinc_data(setting == "trained class"),
        "compress": {"variants": ["dynamic_int8"]},
    }
    if method != "lora":
        raw["peft"] = {"method": method}
    return raw


def run_model(method: str, setting: str, target_precision: float) -> dict[str, Any]:
    from fulcrum.artifacts import open_artifact
    from fulcrum.compress.export import export
    from fulcrum.compress.stage import compress, variant_dir
    from fulcrum.recipe import validate_recipe

    started = time.time()
    written, trained = train_or_reuse(recipe(method, setting))
    train_dir = trained.path
    settled = validate_recipe(trained.manifest.settled_recipe)
    models = {
        "fp32": export(written, train_dir),
        "int8": variant_dir(compress(written, train_dir), "dynamic-int8"),
    }
    rows = {name: detection_rows(path, settled, target_precision) for name, path in models.items()}
    return {
        "method": method,
        "setting": setting,
        "shipped": {
            name: open_artifact(path, kind="export").manifest.out_of_scope
            for name, path in models.items()
        },
        "rows": rows,
        "settled": settled_values(trained),
        "train_s": trained.metrics["train_seconds"],
        "wall_s": round(time.time() - started, 1),
    }


def _named(score: str) -> str:
    return score.replace("_", "-")


def detection_rows(
    export_dir: Path, settled, target_precision: float = 0.9
) -> list[dict[str, Any]]:
    """Every way of deciding, measured on one model's own validation and test logits."""
    import numpy as np

    from fulcrum.data import recipe_splits
    from fulcrum.inference import OnnxClassifier
    from fulcrum.out_of_scope import Detector, Evidence, calibrate, metrics

    model = OnnxClassifier(export_dir)
    splits = recipe_splits(settled)
    labels, section = model.labels, settled.out_of_scope
    keep = section.in_scope_recall
    oos = labels.index(section.label) if section.label in labels else None
    evidence = {}
    for split in ("validation", "test"):
        table = getattr(splits, split)
        unseen = splits.unseen.get(split)
        evidence[split] = Evidence.of(
            model.logits(table.column("text").to_pylist()),
            table.column("label").to_numpy(),
            model.logits(unseen.column("text").to_pylist()) if unseen is not None else None,
            oos,
        )
    precision = target_precision
    ways: list[tuple[str, Detector]] = []
    if oos is None:  # trained on in-scope intents only: the argmax, or a floor
        ways.append(("(a) argmax, no handling", Detector("max_probability", -np.inf, None, "")))
        for score, name in (("max_probability", "(b)"), ("energy", "(b')")):
            floor = calibrate(evidence["validation"], labels, None, score, keep)
            ways.append((f"{name} {_named(score)} floor, {keep:.0%} in-scope kept", floor))
        ways.append(("(b'') max-probability, the paper's rule", paper_rule(evidence, labels)))
        floor = calibrate(evidence["validation"], labels, None, "energy", keep, precision)
        ways.append((f"(b''') energy floor at {precision:.0%} validation precision", floor))
    else:  # an `oos` class: alone, or with a floor on the in-scope labels' scores
        ways.append(("(c) trained class alone", Detector("max_probability", -np.inf, "oos", "")))
        for score, name in (("max_probability", "(d)"), ("energy", "(d')")):
            both = calibrate(evidence["validation"], labels, "oos", score, keep)
            ways.append((f"{name} class + {_named(score)} floor, {keep:.0%} kept", both))
        both = calibrate(evidence["validation"], labels, "oos", "energy", keep, precision)
        ways.append((f"(d'') class + energy floor at {precision:.0%} validation precision", both))
    shipped = Detector.from_dict(model.artifact.manifest.out_of_scope)
    ways.append((f"shipped ({shipped.score})", shipped))
    return [
        {
            "way": name,
            "threshold": None if np.isneginf(detector.threshold) else float(detector.threshold),
            **{
                f"{split}_{key}": value
                for split in ("validation", "test")
                for key, value in metrics(evidence[split], detector, labels).items()
                if key
                in ("in_scope_accuracy", "out_of_scope_precision", "out_of_scope_recall", "auroc")
            },
        }
        for name, detector in ways
    ]


def paper_rule(evidence, labels):
    """Larson et al.'s threshold: the one with the highest validation accuracy over every
    class, out of scope counted as one (their repository's issue #1), rather than one set
    for a precision: the paper's oos-threshold figures come from this rule."""
    import numpy as np

    from fulcrum.out_of_scope import Detector, in_scope_score

    validation = evidence["validation"]
    scores = in_scope_score(validation.logits, "max_probability", None)
    right_inside = ~validation.outside & (validation.logits.argmax(-1) == validation.gold)
    best, best_correct = 0.0, -1
    for threshold in np.unique(np.concatenate([[0.0], scores, [1.01]])):
        flagged = scores < threshold
        correct = int((right_inside & ~flagged).sum() + (validation.outside & flagged).sum())
        if correct > best_correct:
            best, best_correct = float(threshold), correct
    return Detector("max_probability", best, None, "highest validation accuracy, oos as a class")


# --------------------------------------------------------------------------- results


def load_results() -> dict[str, Any]:
    path = RESULTS / f"{RESULTS_NAME}.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def report(results: dict[str, Any]) -> str:
    rows = []
    runs = results.get("runs", {})
    for key in sorted(runs):
        run = runs[key]
        for model, ways in run["rows"].items():
            for way in ways:
                rows.append(
                    {
                        "model": f"{run['method']}, {run['setting']}, {model}",
                        "way": way["way"],
                        **{
                            name: _points(way.get(f"test_{name}"))
                            for name in (
                                "in_scope_accuracy",
                                "out_of_scope_precision",
                                "out_of_scope_recall",
                                "auroc",
                            )
                        },
                    }
                )
    header = (
        f"CLINC150 test (4,500 in-scope, 1,000 out-of-scope texts), in points; thresholds chosen "
        f"on validation. Command: `{COMMAND}`.\n\n"
    )
    return header + table(
        rows,
        [
            ("model", "model"),
            ("way", "out-of-scope decision"),
            ("in_scope_accuracy", "in-scope accuracy"),
            ("out_of_scope_precision", "oos precision"),
            ("out_of_scope_recall", "oos recall"),
            ("auroc", "AUROC"),
        ],
    )


def _points(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=["lora"])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    parser.add_argument("--target-precision", type=float, default=0.9)
    parser.add_argument("--report", action="store_true", help="only rewrite the docs table")
    parser.add_argument(
        "--remeasure", action="store_true", help="measure finished runs' models again"
    )
    args = parser.parse_args()
    results = load_results()
    if not args.report:
        runs = results.get("runs", {})
        for method in args.methods:
            for setting in args.settings:
                key = f"{method}/{setting}"
                if key in runs and not args.remeasure:
                    print(f"[benchmark] {key}: in {RESULTS_NAME}.json already", flush=True)
                    continue
                runs[key] = run_model(method, setting, args.target_precision)
                results = {"command": COMMAND, "runs": runs}
                write_results(RESULTS_NAME, results)
                print(
                    f"[benchmark] {key}: {json.dumps(runs[key]['rows']['fp32'])[:400]}", flush=True
                )
    text = report(results)
    print(text)
    if DOCS.is_file():
        DOCS.write_text(splice_block(DOCS.read_text(), "out-of-scope table", text, DOCS))


if __name__ == "__main__":
    main()
