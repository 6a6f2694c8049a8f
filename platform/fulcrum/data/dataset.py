"""The recipe's data section turned into label-encoded train/validation/test tables."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fulcrum.artifacts import sha256_file
from fulcrum.data.readers import LABEL, read_labelled_file
from fulcrum.data.splits import stratified_split
from fulcrum.errors import DataError
from fulcrum.recipe import DataSection

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class LabelledSplits:
    """Tables with columns `text` (string) and `label` (int64 id into label_names)."""

    train: pa.Table
    validation: pa.Table
    test: pa.Table
    label_names: list[str]
    fingerprint: str

    def sizes(self) -> dict[str, int]:
        return {name: getattr(self, name).num_rows for name in SPLITS}


def load_splits(data: DataSection, seed: int) -> LabelledSplits:
    read = _reader(data)
    if data.path is not None:
        table = read(data.path)
        names = data.labels or sorted(set(table.column(LABEL).to_pylist()))
        ids = _encode(table, names, data.path)
        train_rows, validation_rows, test_rows = stratified_split(
            ids, data.validation_fraction, data.test_fraction, seed
        )
        encoded = table.set_column(1, LABEL, pa.array(ids))
        parts = [encoded.take(rows) for rows in (train_rows, validation_rows, test_rows)]
        sources = [data.path]
    else:
        train = read(data.train)
        names = data.labels or sorted(set(train.column(LABEL).to_pylist()))
        train_ids = _encode(train, names, data.train)
        carve_validation = data.validation is None
        carve_test = data.test is None
        train_rows, validation_rows, test_rows = stratified_split(
            train_ids,
            data.validation_fraction if carve_validation else 0.0,
            data.test_fraction if carve_test else 0.0,
            seed,
        )
        encoded = train.set_column(1, LABEL, pa.array(train_ids))
        parts = [encoded.take(train_rows)]
        sources = [data.train]
        for path, carved_rows in ((data.validation, validation_rows), (data.test, test_rows)):
            if path is None:
                parts.append(encoded.take(carved_rows))
            else:
                table = read(path)
                parts.append(table.set_column(1, LABEL, pa.array(_encode(table, names, path))))
                sources.append(path)
    train_part, validation_part, test_part = parts
    if validation_part.num_rows == 0:
        raise DataError(
            f"{sources[0]}: the validation split is empty; "
            "add rows or raise data.validation_fraction"
        )
    return LabelledSplits(
        train=train_part,
        validation=validation_part,
        test=test_part,
        label_names=list(names),
        fingerprint=fingerprint(data, seed, sources),
    )


def fingerprint(data: DataSection, seed: int, sources: list[str]) -> str:
    """Changes when the bytes of any source file, the column mapping or the split change."""
    content = {
        "files": [[Path(source).name, sha256_file(Path(source))] for source in sources],
        "data": data.model_dump(mode="json", exclude={"path", "train", "validation", "test"}),
        "seed": seed,
    }
    canonical = json.dumps(content, sort_keys=True).encode()
    return hashlib.sha256(canonical).hexdigest()


def _reader(data: DataSection):
    def read(path: str) -> pa.Table:
        return read_labelled_file(
            path,
            text_column=data.text_column,
            label_column=data.label_column,
            file_format=data.format,
            encoding=data.encoding,
            declared_labels=data.labels,
        )

    return read


def _encode(table: pa.Table, names: list[str], path: str) -> np.ndarray:
    labels = table.column(LABEL)
    ids = pc.index_in(labels, value_set=pa.array(names))
    unknown = pc.indices_nonzero(pc.is_null(ids).combine_chunks()).to_pylist()
    if unknown:
        row = unknown[0]
        raise DataError(
            f"{path}, row {row + 1}: label {labels[row].as_py()!r} never appears in the "
            f"training data (labels: {', '.join(names)}); declare data.labels to fix the set"
        )
    return ids.to_numpy().astype(np.int64)
