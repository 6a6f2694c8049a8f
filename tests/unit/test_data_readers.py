"""Readers: every bad file gets an error naming the file and the row or line."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fulcrum.data.readers import read_labelled_file
from fulcrum.errors import DataError

ROWS = [("my card is lost", "card"), ("where is my parcel", "delivery"), ("refund me", "refund")]


def write(path: Path, rows, text_column="text", label_column="label") -> Path:
    """Write rows (None = missing value) in the format the file extension names."""
    records = [{text_column: text, label_column: label} for text, label in rows]
    if path.suffix == ".csv":
        lines = [f"{text_column},{label_column}"] + [
            ",".join("" if value is None else f'"{value}"' for value in (text, label))
            for text, label in rows
        ]
        path.write_text("\n".join(lines) + "\n")
    elif path.suffix == ".tsv":
        lines = [f"{text_column}\t{label_column}"] + [
            "\t".join("" if value is None else value for value in row) for row in rows
        ]
        path.write_text("\n".join(lines) + "\n")
    elif path.suffix == ".jsonl":
        path.write_text(
            "".join(
                json.dumps({k: v for k, v in r.items() if v is not None}) + "\n" for r in records
            )
        )
    else:
        pq.write_table(pa.Table.from_pylist(records), path)
    return path


def read(path: Path, **options) -> pa.Table:
    return read_labelled_file(path, text_column="text", label_column="label", **options)


FORMATS = [".csv", ".tsv", ".jsonl", ".parquet"]


@pytest.mark.parametrize("suffix", FORMATS)
def test_reads_every_format_into_text_and_label(tmp_path, suffix):
    table = read(write(tmp_path / f"d{suffix}", ROWS))
    assert table.column_names == ["text", "label"]
    assert table.to_pylist()[1] == {"text": "where is my parcel", "label": "delivery"}


@pytest.mark.parametrize("suffix", FORMATS)
def test_missing_column(tmp_path, suffix):
    path = write(tmp_path / f"d{suffix}", ROWS, label_column="intent")
    with pytest.raises(
        DataError, match=rf"d{suffix}: column 'label' not found \(columns: text, intent\)"
    ):
        read(path)


@pytest.mark.parametrize("suffix", FORMATS)
def test_empty_text_names_row(tmp_path, suffix):
    path = write(tmp_path / f"d{suffix}", [ROWS[0], ("   ", "card"), ROWS[2]])
    with pytest.raises(
        DataError, match=rf"d{suffix}: 1 unusable row\(s\)\n  row 2: empty text in column 'text'"
    ):
        read(path)


@pytest.mark.parametrize("suffix", FORMATS)
def test_missing_label_names_row(tmp_path, suffix):
    path = write(tmp_path / f"d{suffix}", [ROWS[0], ROWS[1], ("no label here", None)])
    with pytest.raises(DataError, match=r"row 3: missing label in column 'label'"):
        read(path)


@pytest.mark.parametrize("suffix", FORMATS)
def test_label_outside_declared_set_names_row_and_value(tmp_path, suffix):
    path = write(tmp_path / f"d{suffix}", ROWS)
    with pytest.raises(DataError, match=r"row 3: label 'refund' is not in data.labels"):
        read(path, declared_labels=["card", "delivery"])


def test_problems_are_listed_in_row_order_and_capped(tmp_path):
    rows = [("", "a")] * 7 + [("ok", "b")]
    with pytest.raises(DataError) as caught:
        read(write(tmp_path / "d.csv", rows))
    message = str(caught.value)
    assert "7 unusable row(s)" in message
    assert "row 1: empty text" in message and "row 5: empty text" in message
    assert "row 6:" not in message and "... and 2 more" in message


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_undecodable_bytes_name_line(tmp_path, suffix):
    path = write(tmp_path / f"d{suffix}", ROWS)
    content = path.read_bytes().replace(b"refund me", b"refund m\xe9")
    path.write_bytes(content)
    with pytest.raises(
        DataError, match=rf"d{suffix}, line \d: bytes that are not valid utf-8 \(0xe9"
    ):
        read(path)


def test_latin1_file_reads_with_declared_encoding(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("text,label\ncaf\xe9 au lait,drink\nthe bill,pay\n".encode("latin-1"))
    assert read(path, encoding="latin-1").column("text")[0].as_py() == "café au lait"


def test_unknown_encoding(tmp_path):
    with pytest.raises(DataError, match="unknown encoding 'klingon'"):
        read(write(tmp_path / "d.csv", ROWS), encoding="klingon")


def test_ragged_csv_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\nfine,a\ntoo,many,fields\nfine,b\n")
    with pytest.raises(DataError, match=r"d.csv, line 3: expected 2 fields, found 3"):
        read(path)


def test_malformed_jsonl_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": "b", \n')
    with pytest.raises(DataError, match=r"d.jsonl, line 2: not valid JSON"):
        read(path)


def test_jsonl_integer_labels_are_read_as_text(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "good", "label": 1}\n{"text": "bad", "label": 0}\n')
    assert read(path).column("label").to_pylist() == ["1", "0"]


def test_csv_numeric_looking_labels_stay_text(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\ngood,01\nbad,00\n")
    assert read(path).column("label").to_pylist() == ["01", "00"]


def test_corrupt_parquet(tmp_path):
    path = tmp_path / "d.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match="d.parquet: not a readable Parquet file"):
        read(path)


def test_unknown_extension_and_override(tmp_path):
    path = write(tmp_path / "d.csv", ROWS).rename(tmp_path / "d.data")
    with pytest.raises(DataError, match=r"cannot tell the format from the extension '.data'"):
        read(path)
    assert read(path, file_format="csv").num_rows == 3


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope.csv: data file not found"):
        read(tmp_path / "nope.csv")


def test_header_only_file(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\n")
    with pytest.raises(DataError, match="d.csv: no data rows"):
        read(path)


def test_crlf_and_quoted_newlines(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b'text,label\r\n"two\r\nlines",a\r\nplain,b\r\n')
    table = read(path)
    assert table.column("label").to_pylist() == ["a", "b"]
    assert table.column("text")[0].as_py().replace("\r", "") == "two\nlines"


def test_lines_format_splits_on_the_last_separator(tmp_path):
    path = tmp_path / "phrases.txt"
    path.write_text("Profit rose to EUR 5 @ 10 % .@positive\n\nSales fell .@negative\n")
    table = read(path, file_format="lines")
    assert table.to_pylist() == [
        {"text": "Profit rose to EUR 5 @ 10 % .", "label": "positive"},
        {"text": "Sales fell .", "label": "negative"},
    ]


def test_lines_format_errors(tmp_path):
    path = tmp_path / "phrases.txt"
    path.write_text("fine@positive\nno label here\n")
    with pytest.raises(DataError, match=r"phrases.txt, line 2: no '@' between text and label"):
        read(path, file_format="lines")
    path.write_bytes(b"caf\xe9@neutral\n")
    with pytest.raises(DataError, match=r"phrases.txt, line 1: bytes that are not valid utf-8"):
        read(path, file_format="lines")
    assert read(path, file_format="lines", encoding="latin-1").column("text")[0].as_py() == "café"


def test_financial_phrasebank_reads_as_is():
    from ..conftest import SHARED_DATA

    source = SHARED_DATA / "financial_phrasebank" / "Sentences_AllAgree.txt"
    # Not skipped when missing: CI has ../shared/data, and a test that passes by skipping
    # would hide a broken checkout.
    assert source.is_file(), f"{source}: the shared datasets are missing"
    table = read(source, file_format="lines")
    assert table.num_rows == 2264
    assert set(table.column("label").to_pylist()) == {"positive", "neutral", "negative"}


def test_labels_are_trimmed(tmp_path):
    # ChnSentiCorp's test set holds the label `"    0"` once.
    path = tmp_path / "d.tsv"
    path.write_text("label\ttext_a\n    0\t差\n1 \t好\n", encoding="utf-8")
    table = read_labelled_file(path, text_column="text_a", label_column="label")
    assert table.column("label").to_pylist() == ["0", "1"]


@pytest.mark.parametrize("encoding", ["gb18030", "gbk"])
def test_chinese_legacy_encodings(tmp_path, encoding):
    path = tmp_path / "d.csv"
    path.write_bytes("text,label\n我的银行卡被偷了,挂失\n怎么还款,还款\n".encode(encoding))
    with pytest.raises(DataError, match=r"line 2: bytes that are not valid utf-8"):
        read(path)
    table = read(path, encoding=encoding)
    assert table.column("text").to_pylist() == ["我的银行卡被偷了", "怎么还款"]
    assert table.column("label").to_pylist() == ["挂失", "还款"]


def test_pairs_read_both_texts_and_name_the_missing_or_empty_one(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text('q,c,label\n"is it blue","it is blue",same\n"is it red","no",other\n')
    table = read_labelled_file(path, text_column="q", label_column="label", text_pair_column="c")
    assert table.column_names == ["text", "text_pair", "label"]
    assert table.to_pylist()[0] == {
        "text": "is it blue",
        "text_pair": "it is blue",
        "label": "same",
    }
    path.write_text('q,c,label\n"is it blue","it is blue",same\n"is it red"," ",other\n')
    with pytest.raises(DataError, match=r"1 unusable row\(s\)\n  row 2: empty text in column 'c'"):
        read_labelled_file(path, text_column="q", label_column="label", text_pair_column="c")
    with pytest.raises(DataError, match="column 'answer' not found .*; set data.text_pair_column"):
        read_labelled_file(path, text_column="q", label_column="label", text_pair_column="answer")
