"""How a trained model holds up: its metrics under an embedding-space PGD attack and on
text with typos, beside its clean metrics. Used to judge adversarial training and
augmentation by what they are for, not only by clean accuracy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from fulcrum.data.augment import copy_rng, typo
from fulcrum.models.classifier import load_tokenizer
from fulcrum.tasks import TASKS, evaluate_counts
from fulcrum.train.adversarial import Attack, attacked_counts
from fulcrum.train.merge import TOKENIZER_DIR, load_merged, table_batches
from fulcrum.train.objective import Objective

ROBUSTNESS_ATTACK = Attack("pgd", epsilon=0.25, steps=3, step_size=0.1)


def with_typos(table: pa.Table, rate: float, seed: int, task: str) -> pa.Table:
    """The same rows with typos in a `rate` share of each text's words (seeded per row)."""
    column = "tokens" if task == "token_classification" else "text"
    values = table.column(column).to_pylist()
    noisy = [
        typo(value, copy_rng(seed, row, 1), rate)
        if task == "token_classification"
        else " ".join(typo(value.split(), copy_rng(seed, row, 1), rate))
        for row, value in enumerate(values)
    ]
    index = table.column_names.index(column)
    return table.set_column(index, column, pa.array(noisy, type=table.schema.field(column).type))


def robustness(
    artifact_dir: Path,
    table: pa.Table,
    label_names: list[str],
    task_name: str,
    max_length: int,
    attack: Attack = ROBUSTNESS_ATTACK,
    typo_rate: float = 0.15,
    seed: int = 0,
    batch_size: int = 64,
) -> dict[str, Any]:
    """{"clean", "pgd", "typos"}: the task's metrics on `table` three ways."""
    task = TASKS[task_name]
    model = load_merged(artifact_dir, task_name)
    collate = task.make_collate(load_tokenizer(artifact_dir / TOKENIZER_DIR), max_length)

    def batches(rows: pa.Table):
        return (collate(batch) for batch in table_batches(rows, batch_size))

    loss = Objective().task_loss
    return {
        "clean": task.metrics(
            evaluate_counts(model, batches(table), task, label_names), label_names
        ),
        "pgd": task.metrics(
            attacked_counts(model, batches(table), task, label_names, attack, loss), label_names
        ),
        "typos": task.metrics(
            evaluate_counts(
                model, batches(with_typos(table, typo_rate, seed, task_name)), task, label_names
            ),
            label_names,
        ),
    }
