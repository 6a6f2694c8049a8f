"""Readers: one labelled file in, an Arrow table of strings out: text, label, and text_pair
for pairs.

pyarrow does the reading; its errors name neither the file nor the line, so each reader
catches them and finds the offending line itself before raising a DataError. Rows are then
checked column by column (vectorised) and every problem is reported with its row number:
rows count data records from 1, the header excluded; lines are physical lines of the file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from fulcrum.errors import DataError

TEXT, TEXT_PAIR, LABEL, GROUP = "text", "text_pair", "label", "group"
MAX_LISTED_PROBLEMS = 5


@dataclass(frozen=True)
class ReadOptions:
    encoding: str = "utf-8"
    separator: str = "@"  # `lines` format: text<separator>label, split on the last one


Reader = Callable[[Path, list[str], ReadOptions], pa.Table]


def read_labelled_file(
    path: str | Path,
    *,
    text_column: str,
    label_column: str,
    file_format: str = "auto",
    encoding: str = "utf-8",
    separator: str = "@",
    declared_labels: list[str] | None = None,
    text_pair_column: str | None = None,
    group_column: str | None = None,
) -> pa.Table:
    """Read a file into a table with columns `text`, `label` and, given their columns,
    `text_pair` and `group` (all strings), or raise a DataError naming the file and the rows
    that are unusable."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    file_format = detect_format(path, file_format)
    if text_pair_column is not None and file_format == "lines":
        raise DataError(f"{path}: the lines format holds one text per line, not a pair")
    # (our name, the file's column, what a blank value is); our name `x` is data.x_column.
    wanted = [(TEXT, text_column, "empty text"), (LABEL, label_column, "missing label")]
    if text_pair_column is not None:
        wanted.insert(1, (TEXT_PAIR, text_pair_column, "empty text"))
    if group_column is not None:
        wanted.append((GROUP, group_column, "missing group"))
    options = ReadOptions(encoding=encoding, separator=separator)
    table = READERS[file_format](path, [column for _, column, _ in wanted], options)
    _require_columns(path, table, {column: f"data.{name}_column" for name, column, _ in wanted})
    columns = {name: _as_strings(path, table.column(column), column) for name, column, _ in wanted}
    # Labels are names: `"    0"` (one of ChnSentiCorp's test rows) is label 0.
    columns[LABEL] = pc.utf8_trim_whitespace(columns[LABEL])
    table = pa.table(columns)
    blank = {name: f"{problem} in column {column!r}" for name, column, problem in wanted}
    _check_rows(path, table, blank, declared_labels)
    return table


def detect_format(path: Path, file_format: str) -> str:
    if file_format != "auto":
        return file_format
    suffix = path.suffix.lower()
    if suffix not in EXTENSIONS:
        known = ", ".join(sorted(EXTENSIONS))
        raise DataError(
            f"{path}: cannot tell the format from the extension {suffix or '(none)'!r}; "
            f"use one of {known} or set data.format"
        )
    return EXTENSIONS[suffix]


# --------------------------------------------------------------------------- formats


def _read_delimited(delimiter: str, quoted: bool) -> Reader:
    def read(path: Path, columns: list[str], options: ReadOptions) -> pa.Table:
        encoding = options.encoding
        ragged: list[pacsv.InvalidRow] = []

        def on_invalid_row(row: pacsv.InvalidRow) -> str:
            ragged.append(row)
            return "skip"

        try:
            table = pacsv.read_csv(
                path,
                read_options=pacsv.ReadOptions(encoding=encoding, use_threads=False),
                parse_options=pacsv.ParseOptions(
                    delimiter=delimiter,
                    quote_char='"' if quoted else False,
                    newlines_in_values=quoted,
                    invalid_row_handler=on_invalid_row,
                ),
                # Read the mapped columns as text whatever they look like ("0"/"1" labels).
                convert_options=pacsv.ConvertOptions(
                    column_types={name: pa.string() for name in columns},
                    strings_can_be_null=False,
                ),
            )
        except LookupError:
            raise DataError(f"{path}: unknown encoding {encoding!r} (data.encoding)") from None
        except (pa.ArrowInvalid, UnicodeDecodeError) as error:
            raise locate_read_error(path, encoding, error) from None
        if ragged:
            first = ragged[0]
            raise DataError(
                f"{path}, line {first.number}: expected {first.expected_columns} fields, "
                f"found {first.actual_columns} ({len(ragged)} such line(s))"
            )
        return table

    return read


def _read_jsonl(path: Path, columns: list[str], options: ReadOptions) -> pa.Table:
    try:
        table = pajson.read_json(path)
        # The JSON reader does not check that strings are valid UTF-8; a full validation does.
        table.validate(full=True)
        return table
    except pa.ArrowInvalid as error:
        raise locate_read_error(path, "utf-8", error) from None


def _read_lines(path: Path, columns: list[str], options: ReadOptions) -> pa.Table:
    """One example per line, `text<separator>label`, split on the LAST separator so the
    text may contain it (Financial PhraseBank's `sentence@label`). Blank lines are skipped."""
    texts, labels = [], []
    try:
        content = path.read_bytes().decode(options.encoding)
    except UnicodeDecodeError as error:
        raise locate_read_error(path, options.encoding, error) from None
    except LookupError:
        raise DataError(f"{path}: unknown encoding {options.encoding!r} (data.encoding)") from None
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        text, found, label = line.rpartition(options.separator)
        if not found:
            raise DataError(
                f"{path}, line {number}: no {options.separator!r} between text and label "
                "(data.separator)"
            )
        texts.append(text.strip())
        labels.append(label.strip())
    return pa.table({columns[0]: texts, columns[1]: labels})


def _read_parquet(path: Path, columns: list[str], options: ReadOptions) -> pa.Table:
    try:
        return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise DataError(f"{path}: not a readable Parquet file ({error})") from None


READERS: dict[str, Reader] = {
    "csv": _read_delimited(",", quoted=True),
    "tsv": _read_delimited("\t", quoted=False),
    "jsonl": _read_jsonl,
    "parquet": _read_parquet,
    "lines": _read_lines,
}
EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


# --------------------------------------------------------------------------- checks


def _require_columns(path: Path, table: pa.Table, keys: dict[str, str]) -> None:
    """`keys`: each column wanted, and the recipe key that names it."""
    found = table.column_names
    for name, key in keys.items():
        if name not in found:
            raise DataError(
                f"{path}: column {name!r} not found (columns: {', '.join(found) or 'none'}); "
                f"set {key}"
            )


def _as_strings(path: Path, column: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column.cast(pa.string())
    if (
        pa.types.is_integer(column.type)
        or pa.types.is_boolean(column.type)
        or pa.types.is_null(column.type)
    ):
        return column.cast(pa.string())
    raise DataError(f"{path}: column {name!r} holds {column.type}, expected text")


def _check_rows(
    path: Path,
    table: pa.Table,
    required: dict[str, str],
    declared_labels: list[str] | None,
) -> None:
    """`required`: the columns of `table` no row may leave blank, and what a blank one is."""
    if table.num_rows == 0:
        raise DataError(f"{path}: no data rows")
    label = table.column(LABEL)
    checks = [
        (_blank(table.column(name)), lambda value, problem=problem: problem)
        for name, problem in required.items()
    ]
    if declared_labels is not None:
        outside = pc.invert(pc.is_in(label, value_set=pa.array(declared_labels)))
        outside = pc.and_(outside, pc.invert(_blank(label)))
        checks.append((outside, lambda value: f"label {value!r} is not in data.labels"))
    problems: list[tuple[int, str]] = []
    for mask, describe in checks:
        for row in pc.indices_nonzero(pc.fill_null(mask, True).combine_chunks()).to_pylist():
            problems.append((row + 1, describe(label[row].as_py())))
    if problems:
        problems.sort()
        shown = "\n".join(f"  row {row}: {what}" for row, what in problems[:MAX_LISTED_PROBLEMS])
        more = len(problems) - MAX_LISTED_PROBLEMS
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise DataError(f"{path}: {len(problems)} unusable row(s)\n{shown}{tail}")


def _blank(column: pa.ChunkedArray) -> pa.ChunkedArray:
    trimmed = pc.utf8_trim_whitespace(column)
    return pc.or_kleene(pc.is_null(column), pc.equal(trimmed, ""))


def locate_read_error(path: Path, encoding: str, error: Exception) -> DataError:
    """Find the line pyarrow choked on: bytes that do not decode, or a JSON line that does
    not parse. Only runs on failure, so the happy path reads at pyarrow speed."""
    with open(path, "rb") as handle:
        for number, raw_line in enumerate(handle, start=1):
            try:
                line = raw_line.decode(encoding)
            except UnicodeDecodeError as decode_error:
                bad_byte = raw_line[decode_error.start : decode_error.start + 1].hex()
                return DataError(
                    f"{path}, line {number}: bytes that are not valid {encoding} "
                    f"(0x{bad_byte} at byte {decode_error.start + 1}); "
                    "re-encode the file or set data.encoding (e.g. latin-1)"
                )
            if path.suffix.lower() in (".jsonl", ".ndjson") and line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as json_error:
                    return DataError(f"{path}, line {number}: not valid JSON ({json_error.msg})")
                if not isinstance(record, dict):
                    return DataError(f"{path}, line {number}: expected a JSON object per line")
    return DataError(f"{path}: cannot be read ({error})")
