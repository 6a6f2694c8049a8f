"""Named-entity recognition with the built-in model: CoNLL-2003 and WNUT-17.

All-MiniLM-L6-v2, fully fine-tuned (`peft.method: full`) on 2 Ray Train workers with
DeepSpeed ZeRO-2 on this machine's CPUs; the best checkpoint by validation entity F1 is
scored on the official test file. CoNLL-2003 is read as distributed (IOB1, converted to
BIO); entity F1 is exact-span, exact-type, micro-averaged (conlleval).

    python benchmarks/ner.py [--datasets conll2003 wnut17] [--epochs 3]

A dataset whose finished artifact was trained from the same recipe is read back rather
than trained again; an interrupted run resumes from its last checkpoint.
"""

from __future__ import annotations

import argparse

from common import data_file, table, train_or_reuse, write_results

DATASETS = {
    "conll2003": {
        "train": ("conll2003", "eng.train"),
        "validation": ("conll2003", "eng.testa"),
        "test": ("conll2003", "eng.testb"),
        "tag_scheme": "iob1",
    },
    "wnut17": {
        "train": ("wnut17", "wnut17train.conll"),
        "validation": ("wnut17", "emerging.dev.conll"),
        "test": ("wnut17", "emerging.test.annotated"),
        "tag_scheme": "bio",
    },
}


def recipe_dict(name: str, epochs: int, output_dir: str) -> dict:
    spec = DATASETS[name]
    return {
        "name": f"ner-{name}",
        "seed": 13,
        "output_dir": output_dir,
        "task": {"type": "token_classification"},
        "data": {
            **{split: data_file(*spec[split]) for split in ("train", "validation", "test")},
            "format": "conll",
            "tag_scheme": spec["tag_scheme"],
        },
        "model": {"base": "builtin:minilm", "max_length": 128},
        "peft": {"method": "full"},
        "train": {
            "workers": 2,
            "epochs": epochs,
            "batch_size": 16,
            "lr": 1e-4,
            "zero_stage": 2,
            "log_every_steps": 20,
            "warmup_ratio": 0.1,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--output-dir", default="artifacts/benchmarks")
    args = parser.parse_args()

    rows = []
    for name in args.datasets:
        _, artifact = train_or_reuse(recipe_dict(name, args.epochs, args.output_dir))
        test = artifact.metrics["test"]
        rows.append(
            {
                "dataset": name,
                "test_f1": test["f1"],
                "test_precision": test["precision"],
                "test_recall": test["recall"],
                "validation_f1": artifact.metrics["validation"]["f1"],
                "per_type": {
                    kind: round(values["f1"], 4) for kind, values in test["per_type"].items()
                },
                "best_epoch": artifact.metrics["best_epoch"],
                "train_s": artifact.metrics["train_seconds"],
            }
        )
        print(
            f"{name}: test entity F1 {test['f1']:.4f} per type {rows[-1]['per_type']}", flush=True
        )
    print(
        table(
            rows,
            [
                ("dataset", "dataset"),
                ("test_f1", "test entity F1"),
                ("test_precision", "precision"),
                ("test_recall", "recall"),
                ("validation_f1", "validation F1"),
                ("best_epoch", "best epoch"),
                ("train_s", "train s"),
            ],
        )
    )
    print(f"\nwrote {write_results('ner', {'epochs': args.epochs, 'rows': rows})}")


if __name__ == "__main__":
    main()
