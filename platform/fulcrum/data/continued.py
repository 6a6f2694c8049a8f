"""The data side of continual learning (fulcrum.continual): the parent artifact, the
label order, and the parent's rows replayed into a continued model's training split."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from fulcrum.errors import RecipeError


def open_parent(recipe):
    """The parent training artifact, checked against the recipe's task."""
    from fulcrum.artifacts import open_artifact
    from fulcrum.errors import FulcrumError

    where = f"continual.parent: {recipe.continual.parent}"
    try:
        parent = open_artifact(recipe.continual.parent, kind="train")
    except FulcrumError as error:
        raise RecipeError(f"{where}: {error}") from None
    if parent.manifest.task != recipe.task.type:
        raise RecipeError(
            f"{where}: the parent was trained for {parent.manifest.task}, not {recipe.task.type}"
        )
    if parent.manifest.method == "prefix":
        raise RecipeError(
            f"{where}: a prefix-tuned parent cannot be continued (its prefixes are not "
            "weights of the base architecture); continue from a model trained with another method"
        )
    return parent


def extended_labels(parent_labels: list[str], data_labels: list[str]) -> list[str]:
    """The parent's labels in its order, then the data's new ones in the data's order."""
    known = set(parent_labels)
    return list(parent_labels) + [name for name in data_labels if name not in known]


def replayed_rows(table: pa.Table, share: float, seed: int) -> pa.Table:
    """`share` of the rows of each label (at least one where the label has any), seeded."""
    if share <= 0 or table.num_rows == 0:
        return table.slice(0, 0)
    rng = np.random.default_rng(seed)
    labels = _row_labels(table)
    chosen = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        count = max(1, round(share * len(rows)))
        chosen.append(rng.choice(rows, size=min(count, len(rows)), replace=False))
    return table.take(np.sort(np.concatenate(chosen)))


def _row_labels(table: pa.Table) -> np.ndarray:
    """A label per row to draw by: the label, or a tagged sentence's first entity tag."""
    column = table.column("label").to_pylist()
    if column and isinstance(column[0], list):
        return np.asarray([max(tags, default=0) for tags in column])
    return np.asarray(column)


def with_replay(train: pa.Table, replayed: pa.Table, where: str) -> pa.Table:
    """The new training rows and the replayed ones, in the new rows' schema."""
    return pa.concat_tables([train, conformed(replayed, train, where)])


def conformed(table: pa.Table, like: pa.Table, where: str) -> pa.Table:
    """The parent's rows in this recipe's columns and types."""
    missing = [name for name in like.column_names if name not in table.column_names]
    if missing:
        raise RecipeError(
            f"{where}: the parent's rows have no {', '.join(missing)} column(s), which this "
            "recipe's data has; continuing needs the same kind of rows"
        )
    return table.select(like.column_names).cast(like.schema)
