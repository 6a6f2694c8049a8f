"""`fulcrum predict`'s pieces without Ray: what the inputs name, what each format's rows
become (bad rows marked, never dropped), why a text is not scored, and the output folder's
resume rules."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fulcrum.errors import DataError
from fulcrum.predict.corpus import INTERNAL, PROGRESS, REJECT, ROW, TEXT, read_blocks
from fulcrum.predict.output import Output
from fulcrum.predict.scoring import decode_texts
from fulcrum.predict.sources import resolve_inputs


def _read(path, text_column="text", block_rows=1000) -> list[pa.Table]:
    (file,) = resolve_inputs([str(path)]).files
    with pa.OSFile(str(path)) as f:
        return list(read_blocks(f, file.path, file.format, file.size, text_column, block_rows))


def _rows(path, **options) -> list[dict]:
    return [row for block in _read(path, **options) for row in block.to_pylist()]


# --------------------------------------------------------------------------- inputs


def test_a_folder_yields_its_data_files_at_any_depth_sorted_and_skips_hidden_ones(tmp_path):
    for name in ["b.csv", "a/c.jsonl", "a/d.parquet", "_SUCCESS", ".e.csv.partial", "f.txt"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("text\nx\n")
    (tmp_path / "_tmp").mkdir()
    (tmp_path / "_tmp" / "g.csv").write_text("text\nx\n")
    sources = resolve_inputs([str(tmp_path)])
    assert [f.path for f in sources.files] == [
        str(tmp_path / name) for name in ["a/c.jsonl", "a/d.parquet", "b.csv"]
    ]
    assert [f.format for f in sources.files] == ["jsonl", "parquet", "csv"]
    assert sources.files[2].size == len("text\nx\n")
    assert sources.display(sources.files[2]) == str(tmp_path / "b.csv")


def test_globs_match_one_level_or_with_double_star_any_and_each_file_counts_once(tmp_path):
    for name in ["day-1/x.csv", "day-2/x.csv", "day-2/deep/y.csv", "z.csv"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("text\nx\n")
    one_level = resolve_inputs([str(tmp_path / "day-*" / "*.csv")])
    assert [f.path for f in one_level.files] == [
        str(tmp_path / "day-1/x.csv"),
        str(tmp_path / "day-2/x.csv"),
    ]
    anywhere = resolve_inputs([str(tmp_path / "z.csv"), str(tmp_path / "**" / "*.csv")])
    assert len(anywhere.files) == 4 and anywhere.files[0].path == str(tmp_path / "z.csv")


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([], "no input given"),
        (["{tmp}/missing.csv"], "missing.csv: no such file or folder"),
        (["{tmp}/*.jsonl"], "*.jsonl: matches no data file (files ending in"),
        (["{tmp}/notes.txt"], "cannot tell the format from the extension '.txt'"),
        (["{tmp}/a.csv", "s3://bucket/b.csv"], "inputs on different storage systems"),
    ],
)
def test_inputs_that_name_nothing_scorable_are_refused_by_name(tmp_path, inputs, message):
    (tmp_path / "a.csv").write_text("text\nx\n")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError) as raised:
        resolve_inputs([item.format(tmp=tmp_path) for item in inputs])
    assert message in str(raised.value)


# --------------------------------------------------------------------------- formats


def test_csv_rows_keep_their_columns_as_written_and_ragged_rows_become_rejects(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(
        '\ufeffid,text,score\n1,hello,0.5\n2,"two\nlines, quoted",7\n3,a,b,c\n4,bye,x\n'.encode()
    )
    rows = _rows(path)
    assert [(r["id"], r[TEXT], r["score"], r[ROW], r[REJECT]) for r in rows] == [
        ("1", b"hello", "0.5", 1, None),
        ("2", b"two\nlines, quoted", "7", 2, None),
        (None, b"3,a,b,c", None, 3, "4 field(s) where the header has 3"),
        ("4", b"bye", "x", 4, None),
    ]
    assert "text" not in rows[0]  # carried once, as TEXT
    assert rows[-1][PROGRESS] == 1.0


def test_csv_bytes_that_are_not_utf8_cost_only_their_row(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"text,who\ncaf\xe9,J\xe9\nfine,ok\n")
    rows = _rows(path)
    assert [r[TEXT] for r in rows] == [b"caf\xe9", b"fine"]
    assert [r["who"] for r in rows] == ["J\ufffd", "ok"]  # carried, made readable
    values, reasons = decode_texts(pa.array([r[TEXT] for r in rows], pa.binary()))
    assert values == [None, "fine"]
    assert reasons == ["bytes that are not valid UTF-8 (0xe9 at byte 3)", None]


def test_tsv_takes_quotes_literally(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text('text\tlabel\nsay "hi\tx\nplain\ty\n')
    assert [r[TEXT] for r in _rows(path)] == [b'say "hi', b"plain"]


def test_jsonl_bad_lines_become_rejects_and_every_key_is_a_column(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes(
        b'{"text": "one", "id": 1}\n'
        b'{"text": "two", "id": 2, "extra": "e"}\n'
        b'{"text": "three\n'
        b"[1, 2]\n"
        b'{"text": 5, "id": 5}\n'
    )
    rows = _rows(path)
    assert [(r[TEXT], r.get("extra"), r[REJECT]) for r in rows] == [
        (b"one", None, None),
        (b"two", "e", None),
        (b'{"text": "three', None, "not valid JSON (Unterminated string starting at)"),
        (b"[1, 2]", None, "not a JSON object"),
        (b"5", None, None),
    ]
    assert [r[ROW] for r in rows] == [1, 2, 3, 4, 5]


def test_parquet_is_read_in_batches_numbered_across_them(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"text": [f"t{i}" for i in range(10)], "n": list(range(10))}), path)
    blocks = _read(path, block_rows=4)
    assert [block.num_rows for block in blocks] == [4, 4, 2]
    assert [r[ROW] for block in blocks for r in block.to_pylist()] == list(range(1, 11))
    assert set(blocks[0].column_names) == {"n", *INTERNAL}


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("t.csv", b"id,body\n1,x\n"),
        ("t.jsonl", b'{"id": 1, "body": "x"}\n'),
    ],
)
def test_a_file_without_the_text_column_is_refused_naming_the_columns_found(
    tmp_path, name, content
):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as raised:
        _rows(path)
    assert str(raised.value) == (
        f"{path}: column 'text' not found (columns: id, body); "
        "name the text column with --text-column"
    )


def test_empty_and_missing_texts_are_named_as_such():
    values, reasons = decode_texts(pa.array([b"ok", b"  \n", None, b""], pa.binary()))
    assert values == ["ok", "  \n", None, ""]
    assert reasons == [None, "empty text", "no text", "empty text"]


# --------------------------------------------------------------------------- output


MODEL = {"path": "/a/export", "sha256": "aaa", "name": "posts"}


def _finished(output: Output, sources, file, rows: int) -> None:
    writer = output.writer(sources, file)
    writer.write(pa.table({"text": [f"t{i}" for i in range(rows)]}))
    writer.reject([{"file": sources.display(file), "row": rows + 1, "reason": "empty text"}])
    output.finish(writer)


def test_an_output_remembers_finished_files_and_rescores_a_changed_one(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.csv").write_text("text\nx\n")
    (corpus / "b.csv").write_text("text\ny\n")
    sources = resolve_inputs([str(corpus)])
    first = Output.open(str(tmp_path / "out"), MODEL, "text", [str(corpus)])
    _finished(first, sources, sources.files[0], rows=3)
    writer = first.writer(sources, sources.files[1])  # interrupted half way
    writer.write(pa.table({"text": ["z"]}))
    writer.abandon()
    assert sorted(p.name for p in (tmp_path / "out" / "parts").iterdir()) == [
        first.part_name(sources, sources.files[0]) + ".parquet"
    ]

    again = Output.open(str(tmp_path / "out"), MODEL, "text", [str(corpus)])
    assert [again.done(sources, f) for f in sources.files] == [True, False]
    _finished(again, sources, sources.files[1], rows=1)
    again.complete(sources)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["rows"] == 4 and manifest["rejects"] == 2
    rejects = (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()
    assert [json.loads(line)["file"] for line in rejects] == [
        sources.display(f) for f in sources.files
    ]

    (corpus / "a.csv").write_text("text\nx\nmore\n")
    changed = resolve_inputs([str(corpus)])
    later = Output.open(str(tmp_path / "out"), MODEL, "text", [str(corpus)])
    assert [later.done(changed, f) for f in changed.files] == [False, True]


@pytest.mark.parametrize(
    ("model", "text_column", "message"),
    [
        ({**MODEL, "sha256": "bbb"}, "text", "scored with another model (/a/export)"),
        (MODEL, "body", "scored with --text-column 'text', not 'body'"),
    ],
)
def test_an_output_of_another_model_or_column_is_not_added_to(
    tmp_path, model, text_column, message
):
    Output.open(str(tmp_path), MODEL, "text", []).write_manifest(complete=True)
    with pytest.raises(DataError) as raised:
        Output.open(str(tmp_path), model, text_column, [])
    assert message in str(raised.value)


def test_two_inputs_with_one_name_get_two_parts(tmp_path):
    for day in ("1", "2"):
        (tmp_path / day).mkdir()
        (tmp_path / day / "posts.csv").write_text("text\nx\n")
    sources = resolve_inputs([str(tmp_path)])
    output = Output.open(str(tmp_path / "out"), MODEL, "text", [])
    names = {output.part_name(sources, f) for f in sources.files}
    assert len(names) == 2 and all(name.startswith("posts-") for name in names)


def test_a_file_with_a_column_an_answer_is_written_to_is_refused(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,predicted_label\nmy car,car\n")
    with pa.OSFile(str(path)) as f, pytest.raises(DataError) as raised:
        list(read_blocks(f, str(path), "csv", 1, "text", 100, reserved=("predicted_label",)))
    assert "t.csv: has a column 'predicted_label', which `fulcrum predict` writes" in str(
        raised.value
    )


def test_a_pair_models_second_column_is_required_of_the_file_not_of_each_row(tmp_path):
    # Checked by the reader: an error raised in the scoring actors reaches the driver as
    # Ray's text, not as the DataError the user should see.
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"text": "a", "candidate": "b"}\n{"text": "c"}\n')
    with pa.OSFile(str(path)) as f:
        (block,) = read_blocks(f, str(path), "jsonl", 1, "text", 100, text_pair_column="candidate")
    assert block.column("candidate").to_pylist() == ["b", None]  # the scorer rejects row 2
    with pa.OSFile(str(path)) as f, pytest.raises(DataError) as raised:
        list(read_blocks(f, str(path), "jsonl", 1, "text", 100, text_pair_column="answer"))
    assert "pairs.jsonl: no column 'answer' for the text-pair model's second text (found: " in (
        str(raised.value)
    )
