"""The output folder of `fulcrum predict`: one Parquet part per input file, the rows that
could not be scored, and a manifest that says what was scored with which model.

    OUT/manifest.json                       model, text column, every input file: part, rows
    OUT/parts/{name}-{hash}.parquet         the input's rows and columns, with the answers
    OUT/rejects/{name}-{hash}.jsonl         that file's rows that were not scored, and why
    OUT/rejects.jsonl                       all of them, written when the run completes

A part is written beside its final name and moved there (uploaded, for a URI) only when its
input file is finished, and the manifest is rewritten after each: an interrupted run leaves
finished parts and a manifest that lists exactly those, and the next run with the same model
skips them. A file that changed size since it was scored is scored again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fulcrum.artifacts import write_text_atomic
from fulcrum.errors import DataError
from fulcrum.predict.sources import SourceFile, Sources
from fulcrum.storage import (
    MANIFEST,
    filesystem_and_path,
    is_uri,
    join,
    read_manifest_bytes,
    upload_file,
)

REJECTS = "rejects.jsonl"
KIND = "predictions"


@dataclass
class Scored:
    part: str
    rows: int = 0
    rejects: int = 0
    size: int = 0
    rejects_file: str | None = None


@dataclass
class Output:
    """OUT, local or a URI; parts are built under `staging` on this machine either way."""

    location: str
    model: dict[str, Any]
    text_column: str
    inputs: list[str]
    staging: Path
    scored: dict[str, Scored] = field(default_factory=dict)

    @classmethod
    def open(cls, location: str, model: dict[str, Any], text_column: str, inputs: list[str]):
        """OUT with what an earlier run of the same model already finished in it."""
        remote = is_uri(location)
        if not remote:
            location = os.path.abspath(location)
            try:
                Path(location, "parts").mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise DataError(f"--output {location}: cannot create ({error.strerror})") from None
            staging = Path(location) / "parts"
        else:
            staging = Path(tempfile.mkdtemp(prefix="fulcrum-predict-"))
        output = cls(location, model, text_column, inputs, staging)
        earlier = output._read_manifest()
        if earlier is not None:
            output._resume(earlier)
        return output

    # ---------------------------------------------------------------- what is done

    def done(self, sources: Sources, file: SourceFile) -> bool:
        entry = self.scored.get(sources.display(file))
        return entry is not None and entry.size == file.size

    def _resume(self, earlier: dict[str, Any]) -> None:
        where = self.where(MANIFEST)
        if earlier.get("kind") != KIND:
            raise DataError(f"{where}: not a `fulcrum predict` output; choose another --output")
        before = earlier.get("model", {}).get("sha256")
        if before != self.model["sha256"]:
            raise DataError(
                f"{where}: scored with another model ({earlier['model'].get('path')}); "
                "choose another --output, or delete this one to score again"
            )
        if earlier.get("text_column") != self.text_column:
            raise DataError(
                f"{where}: scored with --text-column {earlier.get('text_column')!r}, not "
                f"{self.text_column!r}; choose another --output"
            )
        for name, entry in earlier.get("files", {}).items():
            self.scored[name] = Scored(**entry)

    # ---------------------------------------------------------------- writing

    def part_name(self, sources: Sources, file: SourceFile) -> str:
        """Unique per input (two folders may both hold a day.csv) and stable across runs."""
        stem = PurePosixPath(file.path).stem[:80]
        digest = hashlib.sha1(sources.display(file).encode()).hexdigest()[:8]
        return f"{stem}-{digest}"

    def writer(self, sources: Sources, file: SourceFile) -> PartWriter:
        return PartWriter(self, sources.display(file), self.part_name(sources, file), file.size)

    def finish(self, writer: PartWriter) -> Scored:
        """Move a finished part (and its rejects) to their final names and record them."""
        scored = writer.close()
        self._place(writer.staged, scored.part)
        if writer.rejects_staged is not None:
            self._place(writer.rejects_staged, scored.rejects_file)
        self.scored[writer.source] = scored
        self.write_manifest(complete=False)
        return scored

    def complete(self, sources: Sources) -> None:
        """All inputs scored: every reject in one file, and the manifest marked complete."""
        staged = self.staging / f".{REJECTS}.partial"
        with open(staged, "wb") as combined:
            for file in sources.files:
                entry = self.scored.get(sources.display(file))
                if entry is not None and entry.rejects_file:
                    combined.write(self._read(entry.rejects_file))
        self._place(staged, REJECTS)
        self.write_manifest(complete=True)
        if is_uri(self.location):
            shutil.rmtree(self.staging, ignore_errors=True)

    def write_manifest(self, complete: bool) -> None:
        files = {name: vars(entry) for name, entry in self.scored.items()}
        content = {
            "kind": KIND,
            "complete": complete,
            "model": self.model,
            "text_column": self.text_column,
            "inputs": self.inputs,
            "rows": sum(entry.rows for entry in self.scored.values()),
            "rejects": sum(entry.rejects for entry in self.scored.values()),
            "files": files,
        }
        text = json.dumps(content, indent=2, ensure_ascii=False) + "\n"
        if not is_uri(self.location):
            write_text_atomic(Path(self.location) / MANIFEST, text)
            return
        filesystem, root = filesystem_and_path(self.location)
        with filesystem.open_output_stream(f"{root}/{MANIFEST}") as sink:  # one PUT: atomic
            sink.write(text.encode())

    # ---------------------------------------------------------------- storage

    def where(self, relative: str) -> str:
        """A file of OUT as the user would write it."""
        return (
            join(self.location, relative)
            if is_uri(self.location)
            else str(Path(self.location) / relative)
        )

    def _place(self, staged: Path, relative: str) -> None:
        if not is_uri(self.location):
            final = Path(self.location) / relative
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, final)
            return
        filesystem, root = filesystem_and_path(self.location)
        path = f"{root}/{relative}"
        try:
            upload_file(filesystem, staged, path)
        except OSError as error:
            raise DataError(f"{self.where(relative)}: cannot write ({error})") from None
        staged.unlink()

    def _read(self, relative: str) -> bytes:
        if not is_uri(self.location):
            return (Path(self.location) / relative).read_bytes()
        filesystem, root = filesystem_and_path(self.location)
        with filesystem.open_input_stream(f"{root}/{relative}") as stream:
            return stream.read()

    def _read_manifest(self) -> dict[str, Any] | None:
        raw = read_manifest_bytes(self.location)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise DataError(
                f"{self.where(MANIFEST)}: not readable JSON; choose another --output"
            ) from None


class PartWriter:
    """One input file's output, appended block by block as its rows come back."""

    def __init__(self, output: Output, source: str, name: str, size: int) -> None:
        self.output = output
        self.source = source
        self.size = size
        self.part = f"parts/{name}.parquet"
        self.rejects_file = f"rejects/{name}.jsonl"
        self.staged = output.staging / f".{name}.parquet.partial"
        self.rejects_staged: Path | None = None
        self._rejects_handle = None
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0
        self.rejects = 0

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.staged, table.schema, compression="zstd")
        elif table.schema != self._writer.schema:
            table = _unified(table, self._writer.schema, self.source)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def reject(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        if self._rejects_handle is None:
            self.rejects_staged = self.output.staging / f".{Path(self.rejects_file).name}.partial"
            self._rejects_handle = open(self.rejects_staged, "w", encoding="utf-8")
        for record in records:
            self._rejects_handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.rejects += len(records)

    def close(self) -> Scored:
        if self._writer is None:  # no row scored: still a part, with no rows
            pq.write_table(pa.table({}), self.staged)
        else:
            self._writer.close()
        if self._rejects_handle is not None:
            self._rejects_handle.close()
        return Scored(
            part=self.part,
            rows=self.rows,
            rejects=self.rejects,
            size=self.size,
            rejects_file=self.rejects_file if self.rejects_staged is not None else None,
        )

    def abandon(self) -> None:
        """An interrupted part: its staged files removed, nothing recorded."""
        if self._writer is not None:
            self._writer.close()
        if self._rejects_handle is not None:
            self._rejects_handle.close()
        self.staged.unlink(missing_ok=True)
        if self.rejects_staged is not None:
            self.rejects_staged.unlink(missing_ok=True)


def _unified(table: pa.Table, schema: pa.Schema, source: str) -> pa.Table:
    """A later block of the same file read with other column types (a JSON field that was
    all null so far, a number column that turned to text): cast to the first block's."""
    try:
        return table.select(schema.names).cast(schema)
    except (KeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as error:
        raise DataError(
            f"{source}: its rows do not share one set of columns and types "
            f"(first: {schema}; later: {table.schema}; {error})"
        ) from None
