"""Knowledge distillation: the teacher's logits, computed once, before the student trains.

The teacher (a training artifact) runs as Ray Data batch inference in an actor pool over
the training split (after augmentation, so augmented rows get soft targets too), and its
logits are stored as Parquet beside the run's data. The student's workers read them like
any other column: the teacher is never in memory while the student trains, and a rerun
or a resumed run reuses the file.

For token classification the logits are kept per word (at each word's first subword),
which is what the student's labels are aligned to.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from fulcrum.artifacts import Artifact, open_artifact
from fulcrum.errors import FulcrumError, RecipeError
from fulcrum.tasks import IGNORE_INDEX, TASKS, model_inputs

TEACHER_COLUMN = "teacher_logits"
ROW = "_row"


def open_teacher(recipe, label_names: list[str]) -> Artifact:
    """The teacher artifact, checked against the student's task and labels."""
    where = f"distill.teacher: {recipe.distill.teacher}"
    try:
        teacher = open_artifact(recipe.distill.teacher, kind="train")
    except FulcrumError as error:
        raise RecipeError(f"{where}: {error}") from None
    task = teacher.manifest.task
    if task != recipe.task.type:
        raise RecipeError(f"{where}: the teacher was trained for {task}, not {recipe.task.type}")
    if teacher.labels != label_names:
        raise RecipeError(
            f"{where}: the teacher's labels {teacher.labels} differ from the data's {label_names}"
        )
    return teacher


class TeacherLogits:
    """Ray Data UDF: the teacher's merged model in one actor, logits per batch."""

    def __init__(self, teacher_dir: str, task: str, max_length: int, threads: int) -> None:
        from fulcrum.models.classifier import load_tokenizer
        from fulcrum.train.merge import TOKENIZER_DIR, load_merged

        torch.set_num_threads(threads)
        self.task = TASKS[task]
        self.model = load_merged(Path(teacher_dir), task)
        self.collate = self.task.make_collate(
            load_tokenizer(Path(teacher_dir) / TOKENIZER_DIR), max_length
        )

    def __call__(self, batch: pa.Table) -> pa.Table:
        inputs = self.collate({name: batch.column(name).to_pylist() for name in batch.column_names})
        with torch.no_grad():
            logits = self.model(
                **{k: v for k, v in model_inputs(inputs).items() if k != "labels"}
            ).logits.float()
        if logits.dim() == 2:
            values = pa.array(logits.numpy().tolist(), type=pa.list_(pa.float32()))
        else:
            labels = inputs["labels"]
            values = pa.array(
                [
                    logits[row][labels[row] != IGNORE_INDEX].numpy().tolist()
                    for row in range(len(labels))
                ],
                type=pa.list_(pa.list_(pa.float32())),
            )
        return batch.append_column(TEACHER_COLUMN, values)


def with_teacher_logits(table: pa.Table, recipe, teacher: Artifact, directory: Path) -> pa.Table:
    """`table` plus a teacher_logits column, from the Parquet cache when the same teacher
    already labelled the same rows."""
    cache = directory / f"teacher-logits-{_key(table, teacher)}.parquet"
    if cache.is_file():
        return pq.read_table(cache)
    import ray
    import ray.data

    from fulcrum.recipe import DistillSection

    # A continued model's parent gives its logits with distillation's own batching defaults.
    cfg = recipe.distill or DistillSection(teacher=str(teacher.path))
    teacher_recipe = teacher.manifest.settled_recipe
    indexed = table.append_column(ROW, pa.array(np.arange(table.num_rows), type=pa.int64()))
    dataset = ray.data.from_arrow(indexed).map_batches(
        TeacherLogits,
        fn_constructor_kwargs={
            "teacher_dir": str(teacher.path),
            "task": recipe.task.type,
            "max_length": teacher_recipe["model"]["max_length"] or 128,
            "threads": 1,
        },
        batch_size=cfg.batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=cfg.actors),
        num_cpus=1,
    )
    labelled = pa.concat_tables(ray.get(dataset.to_arrow_refs())).sort_by(ROW).drop_columns([ROW])
    directory.mkdir(parents=True, exist_ok=True)
    staging = cache.with_suffix(".partial")
    pq.write_table(labelled, staging)
    staging.replace(cache)
    return labelled


def teacher_targets(values: list[Any], labels: torch.Tensor, classes: int) -> torch.Tensor:
    """The batch's teacher logits shaped like the student's: (batch, labels) for texts;
    (batch, sequence, labels) for tokens, NaN where the teacher saw no word (it truncated
    earlier than the student)."""
    if labels.dim() == 1:
        return torch.tensor(np.asarray(values, dtype=np.float32))
    targets = torch.full((*labels.shape, classes), float("nan"))
    for row, words in enumerate(values):
        positions = (labels[row] != IGNORE_INDEX).nonzero().flatten()
        count = min(len(positions), len(words))
        if count:
            targets[row, positions[:count]] = torch.tensor(
                np.asarray(words[:count], dtype=np.float32)
            )
    return targets


def _key(table: pa.Table, teacher: Artifact) -> str:
    files = json.dumps(teacher.manifest.files, sort_keys=True)
    digest = hashlib.sha256(files.encode())
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    digest.update(sink.getvalue().to_pybytes())
    return digest.hexdigest()[:16]
