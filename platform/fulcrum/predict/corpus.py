"""What a corpus file's rows become: Arrow blocks in file order, the text as bytes, every
row numbered and the unreadable ones marked with why.

Nothing in a corpus may stop the run but a corpus that cannot be read at all: a line of bad
JSON, a CSV row with the wrong number of fields, bytes that are not UTF-8 become rows
marked with the reason (REJECT), which the scorer passes on to the rejects file. The text
column is read as bytes for that reason, and the scorer decodes each text itself. Every block also carries the file it
came from (SOURCE), each row's number in it (ROW: data records from 1, the header excluded)
and how far into the file the block ends (PROGRESS, a fraction), for the driver's ETA.
Blocks are cut to the scorer's batch size here, so that Ray Data never has to merge two
files' blocks (with different columns) into one batch.

CSV and TSV columns other than the text are carried as text, as written: a type guessed
block by block could differ between two blocks of one file.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq

from fulcrum.errors import DataError

TEXT = "__fulcrum_text"
SOURCE = "__fulcrum_source"
ROW = "__fulcrum_row"
REJECT = "__fulcrum_reject"
PROGRESS = "__fulcrum_progress"
INTERNAL = (TEXT, SOURCE, ROW, REJECT, PROGRESS)

JSON_CHUNK_BYTES = 4 << 20
PARQUET_BATCH_ROWS = 8192
CSV_BLOCK_ROWS = 8192


def read_blocks(
    f,
    path: str,
    kind: str,
    size: int,
    text_column: str,
    block_rows: int,
    reserved: tuple[str, ...] = (),
    text_pair_column: str | None = None,
) -> Iterator[pa.Table]:
    """The rows of one file (`f`: a seekable pyarrow file of `kind` csv, tsv, jsonl or
    parquet, `size` bytes), `block_rows` at most per block. `reserved`: the columns the
    answers are written to, which the file must not have. `text_pair_column`: a text-pair
    model's second text, which the file must have (a row without it is the scorer's reject)."""
    reader = {"csv": _csv(","), "tsv": _csv("\t"), "jsonl": _jsonl, "parquet": _parquet}
    row = 0
    before = 0  # where the previous chunk ended, in bytes
    for table, position in reader[kind](f, path, text_column):
        table = _with_text(table, path, text_column)
        if text_pair_column is not None and text_pair_column not in table.column_names:
            if not _all_rejected(table):
                found = ", ".join(name for name in table.column_names if name not in INTERNAL)
                raise DataError(
                    f"{path}: no column {text_pair_column!r} for the text-pair model's second "
                    f"text (found: {found}); name it with --text-pair-column"
                )
            table = table.append_column(text_pair_column, pa.nulls(table.num_rows, pa.string()))
        clash = [name for name in reserved if name in table.column_names]
        if clash:
            raise DataError(
                f"{path}: has a column {clash[0]!r}, which `fulcrum predict` writes its "
                "answer to; rename it in the input"
            )
        rows = table.num_rows
        numbers = pa.array(range(row + 1, row + rows + 1), pa.int64())
        row += rows
        if REJECT not in table.column_names:
            table = table.append_column(REJECT, pa.nulls(rows, pa.string()))
        # How far into the file each row is, spread over the chunk the reader took (4 MB of
        # JSON is most of a small file): the ETA moves with the rows, not in jumps.
        spread = [before + (position - before) * (index + 1) / rows for index in range(rows)]
        before = position
        table = (
            table.append_column(SOURCE, pa.array([path] * rows, pa.string()))
            .append_column(ROW, numbers)
            .append_column(PROGRESS, pa.array([min(1.0, at / max(1, size)) for at in spread]))
        )
        for start in range(0, rows, block_rows):
            yield table.slice(start, block_rows)


def _with_text(table: pa.Table, path: str, text_column: str) -> pa.Table:
    """The text column moved to TEXT, as bytes; every other column carried as it was read."""
    if text_column not in table.column_names:
        if not _all_rejected(table):  # a file without the column, not a few bad lines
            raise _missing(path, text_column, table.column_names)
        return table.append_column(TEXT, pa.nulls(table.num_rows, pa.binary()))
    index = table.column_names.index(text_column)
    column = table.column(index)
    if not (pa.types.is_binary(column.type) or pa.types.is_null(column.type)):
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            column = column.cast(pa.string())
        column = column.cast(pa.binary())
    return table.remove_column(index).append_column(TEXT, column.cast(pa.binary()))


def _all_rejected(table: pa.Table) -> bool:
    """Whether every row of the chunk is a bad line, which has no columns to look for."""
    return REJECT in table.column_names and table.column(REJECT).null_count == 0


def _missing(path: str, text_column: str, names: list[str]) -> DataError:
    found = ", ".join(name for name in names if name not in INTERNAL)
    return DataError(
        f"{path}: column {text_column!r} not found (columns: {found or 'none'}); "
        "name the text column with --text-column"
    )


# --------------------------------------------------------------------------- formats


def _csv(delimiter: str):
    """Python's csv module, not pyarrow's reader: pyarrow skips a row with the wrong number
    of fields without saying where it was, and refuses a whole block over one byte that is
    not UTF-8. Parsing costs microseconds a row, against milliseconds to score it."""

    def read(f, path: str, text_column: str) -> Iterator[tuple[pa.Table, int]]:
        csv.field_size_limit(1 << 30)  # a long document is one field; the default is 128 KB
        stream = io.TextIOWrapper(
            _Unclosed(f), encoding="utf-8-sig", errors="surrogateescape", newline=""
        )
        quoting = {} if delimiter == "," else {"quoting": csv.QUOTE_NONE}
        rows = csv.reader(stream, delimiter=delimiter, strict=False, **quoting)
        try:
            names = _header(next(rows, None), path)
        except csv.Error as error:
            raise DataError(f"{path}: not readable as CSV ({error})") from None
        if names is None:
            return
        if text_column not in names:
            raise _missing(path, text_column, names)
        width = len(names)
        pending: list[list[str] | None] = []
        reasons: list[str | None] = []
        raw: list[str] = []
        while True:
            try:
                fields = next(rows, None)
            except csv.Error as error:  # a NUL byte, an unterminated quote at the end
                fields, reason = [], f"not readable as CSV ({error})"
            else:
                reason = None
            if fields is None:
                break
            if not fields and reason is None:
                continue  # a blank line, as pyarrow and pandas skip them
            if reason is None and len(fields) != width:
                reason = f"{len(fields)} field(s) where the header has {width}"
            pending.append(fields if reason is None else None)
            reasons.append(reason)
            raw.append(delimiter.join(fields))
            if len(pending) >= CSV_BLOCK_ROWS:
                yield _csv_table(names, text_column, pending, reasons, raw), f.tell()
                pending, reasons, raw = [], [], []
        if pending:
            yield _csv_table(names, text_column, pending, reasons, raw), f.tell()
        stream.detach()

    return read


class _Unclosed(io.RawIOBase):
    """A pyarrow file as a Python raw stream, for io.TextIOWrapper (Ray Data closes it)."""

    def __init__(self, f) -> None:
        self.f = f

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.f.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _header(fields: list[str] | None, path: str) -> list[str] | None:
    if fields is None:
        return None  # an empty file
    names = [_readable_text(name).strip() for name in fields]
    if len(set(names)) != len(names) or "" in names:
        raise DataError(f"{path}: the header has empty or repeated column names: {names}")
    return names


def _csv_table(names, text_column, rows, reasons, raw) -> pa.Table:
    """A block of CSV rows: the text as bytes (the scorer says which are not UTF-8), every
    other field as text; a rejected row keeps the row as written in place of its text."""
    columns = {}
    for index, name in enumerate(names):
        values = [None if row is None else row[index] for row in rows]
        if name == text_column:
            texts = [
                line if value is None else value for value, line in zip(values, raw, strict=True)
            ]
            columns[name] = pa.array(
                [text.encode("utf-8", "surrogateescape") for text in texts], pa.binary()
            )
        else:
            columns[name] = _strings(values)
    columns[REJECT] = pa.array(reasons, pa.string())
    return pa.table(columns)


def _strings(values: list[str | None]) -> pa.Array:
    try:
        return pa.array(values, pa.string())
    except (UnicodeEncodeError, pa.ArrowInvalid):  # bytes kept apart by surrogateescape
        return pa.array([None if v is None else _readable_text(v) for v in values], pa.string())


def _readable_text(value: str) -> str:
    """Bytes that are not UTF-8 (kept apart by surrogateescape) replaced with U+FFFD."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _jsonl(f, path: str, text_column: str) -> Iterator[tuple[pa.Table, int]]:
    rest = b""
    while True:
        chunk = f.read(JSON_CHUNK_BYTES)
        data = rest + chunk
        if not chunk:
            rest = b""
        else:
            cut = data.rfind(b"\n") + 1
            data, rest = data[:cut], data[cut:]
        if data.strip():
            yield _json_table(data, path, text_column), f.tell()
        if not chunk:
            return


def _json_table(data: bytes, path: str, text_column: str) -> pa.Table:
    """pyarrow's JSON reader at its speed; a chunk it refuses is parsed line by line, so
    that only the bad lines become rejects."""
    try:
        return pajson.read_json(io.BytesIO(data))
    except pa.ArrowInvalid:
        pass
    records: list[dict] = []
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        # Bytes that are not UTF-8 are kept apart (surrogateescape), so that the scorer
        # can name the bad byte in the text, and the rest of the row is still read.
        decoded = line.decode("utf-8", errors="surrogateescape")
        as_written = line.decode("utf-8", errors="replace")
        try:
            record = json.loads(decoded)
        except json.JSONDecodeError as error:
            records.append({REJECT: f"not valid JSON ({error.msg})", text_column: as_written})
            continue
        if not isinstance(record, dict):
            records.append({REJECT: "not a JSON object", text_column: as_written})
            continue
        records.append(_readable(record, text_column))
    # Every row with every key: from_pylist takes its columns from the first row only.
    names = list(dict.fromkeys(name for record in records for name in record))
    columns = {name: [record.get(name) for record in records] for name in names}
    if text_column in columns:
        columns[text_column] = [_as_bytes(value) for value in columns[text_column]]
    try:
        return pa.table(columns)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise DataError(f"{path}: its JSON lines do not fit one table ({error})") from None


def _readable(record: dict, text_column: str) -> dict:
    """Strings other than the text with their undecodable bytes replaced (U+FFFD)."""
    return {
        name: _readable_text(value) if isinstance(value, str) and name != text_column else value
        for name, value in record.items()
    }


def _as_bytes(value) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    return json.dumps(value, ensure_ascii=False).encode()


def _parquet(f, path: str, text_column: str) -> Iterator[tuple[pa.Table, int]]:
    try:
        file = pq.ParquetFile(f)
    except (pa.ArrowInvalid, OSError) as error:
        raise DataError(f"{path}: not a readable Parquet file ({error})") from None
    total = max(1, file.metadata.num_rows)
    size = f.size()
    done = 0
    for batch in file.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        done += batch.num_rows
        yield pa.Table.from_batches([batch]), int(size * done / total)
