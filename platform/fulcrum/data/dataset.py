"""The recipe's data section turned into label-encoded train/validation/test tables.

Sequence classification gives columns `text` (string) and `label` (int64 id), text-pair
classification `text`, `text_pair` and `label`; token classification gives `tokens` (list of
strings) and `label` (list of int64 tag ids). Either way `label` indexes `label_names`, which
is what every artifact records.

For a classifier read through its recipe (recipe_splits), validation and test rows whose
label training never saw are not an error: they are kept apart, text only, in `unseen`, as
the out-of-scope examples the detector is calibrated and measured on (fulcrum.out_of_scope).

A recipe continuing from a parent artifact (fulcrum.continual) reads its labels after the
parent's, replays some of the parent's training rows and keeps the parent's test split as
`old_test`, where forgetting is measured.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fulcrum.artifacts import sha256_file
from fulcrum.data.readers import GROUP, LABEL, TEXT, TEXT_PAIR, read_labelled_file
from fulcrum.data.splits import group_split, stratified_split
from fulcrum.data.tagged import TAGS, TOKENS, read_tagged_file, tag_order
from fulcrum.errors import DataError, FulcrumError, RecipeError
from fulcrum.recipe import DataSection, Recipe
from fulcrum.words import join_words

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class LabelledSplits:
    train: pa.Table
    validation: pa.Table
    test: pa.Table
    label_names: list[str]
    fingerprint: str
    # Per split, the texts whose labels training never saw (out-of-scope examples).
    unseen: dict[str, pa.Table] = field(default_factory=dict)
    # Continued from a parent: its test split (label ids are the same), and how many of
    # its training rows `train` replays (they are its last rows).
    old_test: pa.Table | None = None
    replayed: int = 0

    def sizes(self) -> dict[str, int]:
        return {name: getattr(self, name).num_rows for name in SPLITS}


@dataclass(frozen=True)
class _Source:
    """How one task reads files, names its labels, encodes them, and stratifies splits."""

    read: Callable[[DataSection, str], pa.Table]
    label_names: Callable[[DataSection, pa.Table], list[str]]
    encode: Callable[[pa.Table, list[str], str], pa.Table]
    strata: Callable[[pa.Table], np.ndarray]


def recipe_splits(recipe: Recipe) -> LabelledSplits:
    """The splits a recipe trains and is measured on. A classifier's validation and test
    rows with labels training lacks are kept apart as out-of-scope examples (training then
    settles out-of-scope detection on, fulcrum.train.settle) rather than refused."""
    if recipe.continual is not None:
        return _continued_splits(recipe)
    return load_splits(
        recipe.data,
        recipe.seed,
        recipe.task.type,
        unseen_allowed=recipe.task.type == "sequence_classification",
    )


def _continued_splits(recipe: Recipe) -> LabelledSplits:
    from fulcrum.data import continued as continual

    parent = continual.open_parent(recipe)
    splits = load_splits(
        recipe.data,
        recipe.seed,
        recipe.task.type,
        unseen_allowed=recipe.task.type == "sequence_classification",
        known_labels=parent.labels,
    )
    old = parent_splits(parent)
    replayed = continual.replayed_rows(old.train, recipe.continual.replay, recipe.seed)
    where = f"continual.parent: {recipe.continual.parent}"
    content = [splits.fingerprint, old.fingerprint, recipe.continual.replay]
    return LabelledSplits(
        train=continual.with_replay(splits.train, replayed, where),
        validation=splits.validation,
        test=splits.test,
        label_names=splits.label_names,
        fingerprint=hashlib.sha256(json.dumps(content).encode()).hexdigest(),
        unseen=splits.unseen,
        old_test=continual.conformed(old.test, splits.test, where),
        replayed=replayed.num_rows,
    )


def parent_splits(parent):
    """The parent's own splits, read again from its settled recipe: the rows it trained on
    (to replay) and its test split (to measure forgetting on)."""
    from fulcrum.recipe import validate_recipe

    where = f"continual.parent: {parent.path}"
    try:
        splits = recipe_splits(validate_recipe(parent.manifest.settled_recipe))
    except FulcrumError as error:
        raise RecipeError(f"{where}: its training data cannot be read again: {error}") from None
    if splits.fingerprint != parent.manifest.data_fingerprint:
        raise RecipeError(
            f"{where}: its training data changed since it was trained (fingerprint "
            f"{splits.fingerprint[:12]}, recorded {str(parent.manifest.data_fingerprint)[:12]}); "
            "replay and the forgetting check need the rows it learned from"
        )
    return splits


def load_splits(
    data: DataSection,
    seed: int,
    task: str = "sequence_classification",
    unseen_allowed: bool = False,
    known_labels: list[str] | None = None,
) -> LabelledSplits:
    """`known_labels`: labels that come first, in their order (a parent model's), with the
    data's other labels after them."""
    source = SOURCES[task]
    first_path = data.path or data.train
    first = source.read(data, first_path)
    names = source.label_names(data, first)
    if known_labels:
        from fulcrum.data.continued import extended_labels

        names = extended_labels(known_labels, list(names))
    encoded = source.encode(first, names, first_path)
    carve_validation = data.path is not None or data.validation is None
    carve_test = data.path is not None or data.test is None
    by_group = GROUP in encoded.column_names
    train_rows, validation_rows, test_rows = (group_split if by_group else stratified_split)(
        encoded.column(GROUP).to_numpy() if by_group else source.strata(encoded),
        data.validation_fraction if carve_validation else 0.0,
        data.test_fraction if carve_test else 0.0,
        seed,
    )
    parts = {"train": encoded.take(train_rows)}
    sources = [first_path]
    unseen = {}
    for split, carved_rows in (("validation", validation_rows), ("test", test_rows)):
        path = getattr(data, split) if data.path is None else None
        if path is None:
            parts[split] = encoded.take(carved_rows)
            continue
        table = source.read(data, path)
        if unseen_allowed:
            table, unseen[split] = _split_unseen(table, names)
        parts[split] = source.encode(table, names, path)
        sources.append(path)
    if parts["validation"].num_rows == 0:
        raise DataError(
            f"{first_path}: the validation split is empty; add rows or raise data.validation_fraction"
        )
    unseen = {split: table for split, table in unseen.items() if table.num_rows}
    if by_group:  # each group's rows together: evaluation batches hold whole groups
        parts = {name: table.sort_by(GROUP) for name, table in parts.items()}
    return LabelledSplits(
        **parts,
        label_names=list(names),
        fingerprint=fingerprint(data, seed, sources, bool(unseen)),
        unseen=unseen,
    )


def fingerprint(data: DataSection, seed: int, sources: list[str], has_unseen: bool = False) -> str:
    """Changes when the bytes of any source file, the column mapping or the split change."""
    content = {
        "files": [[Path(source).name, sha256_file(Path(source))] for source in sources],
        "data": data.model_dump(mode="json", exclude={"path", "train", "validation", "test"}),
        "seed": seed,
    }
    if has_unseen:  # only then, so every earlier fingerprint still holds
        content["unseen_kept_apart"] = True
    canonical = json.dumps(content, sort_keys=True).encode()
    return hashlib.sha256(canonical).hexdigest()


# --------------------------------------------------------------------------- sequences


def _read_texts(data: DataSection, path: str, pairs: bool = False) -> pa.Table:
    return read_labelled_file(
        path,
        text_column=data.text_column,
        label_column=data.label_column,
        file_format=data.format,
        encoding=data.encoding,
        separator=data.separator,
        declared_labels=data.labels,
        text_pair_column=data.text_pair_column if pairs else None,
        group_column=data.group_column if pairs else None,
    )


def _encode_texts(table: pa.Table, names: list[str], path: str) -> pa.Table:
    labels = table.column(LABEL)
    ids = pc.index_in(labels, value_set=pa.array(names))
    unknown = pc.indices_nonzero(pc.is_null(ids).combine_chunks()).to_pylist()
    if unknown:
        row = unknown[0]
        raise DataError(
            f"{path}, row {row + 1}: label {labels[row].as_py()!r} never appears in the "
            f"training data (labels: {', '.join(names)}); declare data.labels to fix the set"
        )
    index = table.schema.get_field_index(LABEL)
    return table.set_column(index, LABEL, pa.array(ids.to_numpy().astype(np.int64)))


def _split_unseen(table: pa.Table, names: list[str]) -> tuple[pa.Table, pa.Table]:
    """(rows with a label training has, texts of the rest)."""
    known = pc.is_in(table.column(LABEL), value_set=pa.array(names))
    return table.filter(known), table.filter(pc.invert(known)).select([TEXT])


# --------------------------------------------------------------------------- tagged tokens


def _read_tagged(data: DataSection, path: str) -> pa.Table:
    return read_tagged_file(
        path,
        file_format=data.format,
        tokens_column=data.tokens_column,
        tags_column=data.tags_column,
        token_field=data.conll_token_field,
        tag_field=data.conll_tag_field,
        encoding=data.encoding,
        scheme=data.tag_scheme,
        declared_tags=data.labels,
    )


def _tag_names(data: DataSection, table: pa.Table) -> list[str]:
    if data.labels:
        return list(data.labels)
    return tag_order(set(pc.list_flatten(table.column(TAGS)).to_pylist()))


def _encode_tags(table: pa.Table, names: list[str], path: str) -> pa.Table:
    index = {name: position for position, name in enumerate(names)}
    encoded = []
    for row, tags in enumerate(table.column(TAGS).to_pylist(), start=1):
        try:
            encoded.append([index[tag] for tag in tags])
        except KeyError as missing:
            raise DataError(
                f"{path}, sentence {row}: tag {missing.args[0]!r} never appears in the training "
                f"data (tags: {', '.join(names)}); declare data.labels to fix the set"
            ) from None
    return pa.table(
        {TOKENS: table.column(TOKENS), LABEL: pa.array(encoded, type=pa.list_(pa.int64()))}
    )


def _text_label_names(data: DataSection, table: pa.Table) -> list[str]:
    return data.labels or sorted(set(table.column(LABEL).to_pylist()))


SOURCES: dict[str, _Source] = {
    "sequence_classification": _Source(
        read=_read_texts,
        label_names=_text_label_names,
        encode=_encode_texts,
        strata=lambda table: table.column(LABEL).to_numpy(),
    ),
    "text_pair_classification": _Source(
        read=lambda data, path: _read_texts(data, path, pairs=True),
        label_names=_text_label_names,
        encode=_encode_texts,
        strata=lambda table: table.column(LABEL).to_numpy(),
    ),
    # Sentences carry many tags each, so their splits are seeded but not stratified.
    "token_classification": _Source(
        read=_read_tagged,
        label_names=_tag_names,
        encode=_encode_tags,
        strata=lambda table: np.zeros(table.num_rows, dtype=np.int64),
    ),
}


def texts_of(table: pa.Table, limit: int) -> list[str] | list[tuple[str, str]]:
    """The model inputs of a split as a tokenizer takes them, at most `limit`: plain texts
    (token lists joined as written: spaces between words, none between Chinese characters),
    or (text, text_pair) tuples for pairs. What latency is timed on, static INT8 calibrates
    on, and the served tokenizer is checked with."""
    rows = table.slice(0, limit)
    if TEXT_PAIR in rows.column_names:
        return list(zip(map(str, rows[TEXT].to_pylist()), map(str, rows[TEXT_PAIR].to_pylist())))
    if TEXT in rows.column_names:
        return [str(text) for text in rows.column(TEXT).to_pylist()]
    return [join_words(tokens) for tokens in rows.column("tokens").to_pylist()]
