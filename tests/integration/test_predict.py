"""`fulcrum predict` on the tiny pipeline's export artifact: a folder of every format with
bad rows in it, a glob, an S3 bucket, and a second run that goes on where the first stopped."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fulcrum.cli import main

TEXTS = [
    "the apple and pear were fresh today",
    "my car needs a new wheel",
    "please pay the tax invoice",
    "an old engine was very loud",
    "fruit is good",
    "the bill for my tax",
]


def _corpus(folder: Path) -> dict[str, int]:
    """One file of each format under `folder` (one in a subfolder), with bad rows; returns
    how many rows of each should be scored."""
    folder.mkdir(parents=True)
    (folder / "nested").mkdir()
    csv_rows = ["id,text,channel"]
    csv_rows += [f"{index},{text},mail" for index, text in enumerate(TEXTS)]
    csv_rows += ["90,,mail", '91,"   ",mail', "92,too,many,fields"]
    (folder / "tickets.csv").write_bytes(("\n".join(csv_rows) + "\n").encode())
    tsv = "id\ttext\n" + "".join(f"{index}\t{text}\n" for index, text in enumerate(TEXTS[:3]))
    (folder / "nested" / "more.tsv").write_text(tsv)
    lines = [json.dumps({"id": index, "text": text}).encode() for index, text in enumerate(TEXTS)]
    lines.insert(2, b'{"id": 80, "text": "broken')
    lines.insert(4, b'{"id": 81, "text": "caf\xe9 bill"}')  # Latin-1, not UTF-8
    (folder / "posts.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    pq.write_table(pa.table({"id": [1, 2], "text": TEXTS[:2]}), folder / "archive.parquet")
    (folder / "_SUCCESS").write_text("")
    (folder / "notes.txt").write_text("not data")
    return {"tickets.csv": 6, "more.tsv": 3, "posts.jsonl": 6, "archive.parquet": 2}


def _manifest(output: Path) -> dict:
    return json.loads((output / "manifest.json").read_text())


def _parts(output: Path) -> dict[str, pa.Table]:
    manifest = _manifest(output)
    return {
        Path(name).name: pq.read_table(output / entry["part"])
        for name, entry in manifest["files"].items()
    }


def test_a_folder_of_every_format_is_scored_as_in_process_with_bad_rows_kept(
    pipeline, tmp_path, capsys
):
    from fulcrum.inference.predictor import OnnxClassifier

    _, _, export_dir = pipeline
    expected = _corpus(tmp_path / "corpus")
    output = tmp_path / "scored"
    assert (
        main(["predict", str(export_dir), str(tmp_path / "corpus"), "--output", str(output)]) == 0
    )

    manifest = _manifest(output)
    assert manifest["complete"] is True
    assert (
        manifest["model"]["sha256"]
        == json.loads((Path(export_dir) / "manifest.json").read_text())["files"]["model.onnx"]
    )
    parts = _parts(output)
    assert {name: table.num_rows for name, table in parts.items()} == expected
    assert manifest["rows"] == sum(expected.values()) and manifest["rejects"] == 5

    model = OnnxClassifier(export_dir)
    for name, table in parts.items():
        texts = table.column("text").to_pylist()
        reference = model.predict(texts)
        assert table.column("predicted_label").to_pylist() == [r["label"] for r in reference]
        scores = np.array(table.column("predicted_score").to_pylist())
        assert np.allclose(scores, [r["score"] for r in reference], atol=1e-5), name
        probabilities = table.column("probabilities").to_pylist()
        assert set(probabilities[0]) == set(model.labels)
        assert np.allclose([sum(row.values()) for row in probabilities], 1.0, atol=1e-5)
        # Carried through: as written in CSV and TSV (text: no type guessed per block), as
        # typed in JSON and Parquet.
        ids = [str(value) for value in table.column("id").to_pylist()]
        assert ids == [str(index + (name == "archive.parquet")) for index in range(len(texts))]
    assert parts["tickets.csv"].column("channel").to_pylist() == ["mail"] * 6

    rejects = [json.loads(line) for line in (output / "rejects.jsonl").read_text().splitlines()]
    found = {(Path(r["file"]).name, r["row"]): r["reason"] for r in rejects}
    assert found[("tickets.csv", 7)] == "empty text"
    assert found[("tickets.csv", 8)] == "empty text"
    assert found[("tickets.csv", 9)] == "4 field(s) where the header has 3"
    assert found[("posts.jsonl", 3)].startswith("not valid JSON")
    assert found[("posts.jsonl", 5)] == "bytes that are not valid UTF-8 (0xe9 at byte 3)"
    assert len(found) == 5
    said = capsys.readouterr().out
    assert "scored 17 rows from 4 file(s)" in said and "5 row(s) not scored" in said


def test_a_second_run_scores_only_what_the_first_did_not_finish(pipeline, tmp_path, capsys):
    _, _, export_dir = pipeline
    corpus = tmp_path / "corpus"
    _corpus(corpus)
    output = tmp_path / "scored"
    first = ["predict", str(export_dir), str(corpus / "*.csv"), "--output", str(output)]
    assert main(first) == 0
    part = output / _manifest(output)["files"][str(corpus / "tickets.csv")]["part"]
    written = part.stat().st_mtime_ns
    capsys.readouterr()

    everything = ["predict", str(export_dir), str(corpus / "**" / "*"), "--output", str(output)]
    assert main(everything) == 0
    assert part.stat().st_mtime_ns == written  # not scored again
    said = capsys.readouterr().out
    assert "scored 11 rows from 3 file(s)" in said and "skipped 1 file(s)" in said
    assert len(_manifest(output)["files"]) == 4

    with open(corpus / "posts.jsonl", "a") as grown:  # a file that changed is scored again
        grown.write(json.dumps({"id": 9, "text": "a new car"}) + "\n")
    assert main(everything) == 0
    assert "scored 7 rows from 1 file(s)" in capsys.readouterr().out
    assert _parts(output)["posts.jsonl"].num_rows == 7


def test_an_s3_corpus_is_scored_into_s3_by_a_model_on_s3(pipeline, s3_bucket, capsys):
    import pyarrow.fs

    from fulcrum.storage import join, publish

    _, _, export_dir = pipeline
    model_uri = join(s3_bucket, "models/tiny")  # each actor's node fetches it from there
    publish(Path(export_dir), model_uri)
    filesystem, _ = pyarrow.fs.FileSystem.from_uri(s3_bucket)
    for day in ("01", "02"):
        with filesystem.open_output_stream(f"fulcrum/corpus/day-{day}/posts.csv") as sink:
            sink.write(("text\n" + "\n".join(TEXTS) + "\n").encode())
    inputs = join(s3_bucket, "corpus/day-*/*.csv")
    output = join(s3_bucket, "scored")
    assert main(["predict", model_uri, inputs, "--output", output]) == 0
    assert f"wrote {output}" in capsys.readouterr().out

    with filesystem.open_input_stream("fulcrum/scored/manifest.json") as stream:
        manifest = json.loads(stream.read())
    assert manifest["complete"] and manifest["rows"] == 2 * len(TEXTS)
    assert manifest["model"]["path"] == model_uri
    assert sorted(manifest["files"]) == [
        "s3://fulcrum/corpus/day-01/posts.csv",
        "s3://fulcrum/corpus/day-02/posts.csv",
    ]
    for entry in manifest["files"].values():
        with filesystem.open_input_file(f"fulcrum/scored/{entry['part']}") as handle:
            assert pq.read_table(handle).column("text").to_pylist() == TEXTS


def test_a_missing_text_column_is_named_with_the_columns_found(pipeline, tmp_path, capsys):
    _, _, export_dir = pipeline
    _corpus(tmp_path / "corpus")
    command = ["predict", str(export_dir), str(tmp_path / "corpus" / "tickets.csv")]
    assert main([*command, "--text-column", "body", "--output", str(tmp_path / "out")]) == 2
    said = capsys.readouterr().err
    assert "tickets.csv: column 'body' not found (columns: id, text, channel)" in said
    assert "Traceback" not in said
    assert [line.split(" ")[0] for line in said.strip().splitlines()] == ["[predict]", "error:"]
    assert not (tmp_path / "out" / "rejects.jsonl").exists()


def test_an_input_column_named_like_an_answer_is_refused(pipeline, tmp_path, capsys):
    _, _, export_dir = pipeline
    (tmp_path / "old.csv").write_text("text,predicted_label\nmy car,car\n")
    command = ["predict", str(export_dir), str(tmp_path / "old.csv")]
    assert main([*command, "--output", str(tmp_path / "out")]) == 2
    said = capsys.readouterr().err
    assert "old.csv: has a column 'predicted_label', which `fulcrum predict` writes" in said


def test_a_training_artifact_is_refused_with_what_to_run(pipeline, tmp_path, capsys):
    _, train_dir, _ = pipeline
    _corpus(tmp_path / "corpus")
    command = ["predict", str(train_dir), str(tmp_path / "corpus"), "--output", str(tmp_path)]
    assert main(command) == 2
    assert "a train artifact; score with an export artifact" in capsys.readouterr().err


def test_a_tagger_writes_entity_spans_as_in_process(ner_trained, tmp_path, capsys):
    from fulcrum.compress.export import export
    from fulcrum.inference.predictor import OnnxClassifier

    recipe, trained = ner_trained
    export_dir = export(recipe, trained.path, tmp_path / "artifacts")
    sentences = ["Alice3 met Bob7 in Oslo", "nobody here", "Carol1 lives in Oslo"]
    pq.write_table(pa.table({"sentence": sentences}), tmp_path / "sentences.parquet")
    output = tmp_path / "scored"
    command = ["predict", str(export_dir), str(tmp_path / "sentences.parquet")]
    assert main([*command, "--text-column", "sentence", "--output", str(output)]) == 0
    capsys.readouterr()

    (table,) = _parts(output).values()
    assert table.column_names == ["sentence", "entities"]
    expected = OnnxClassifier(export_dir).tag(sentences)
    for found, reference in zip(table.column("entities").to_pylist(), expected, strict=True):
        assert [(e["entity"], e["start"], e["end"], e["text"]) for e in found] == [
            (e["entity"], e["start"], e["end"], e["text"]) for e in reference["entities"]
        ]
        assert np.allclose([e["score"] for e in found], [e["score"] for e in reference["entities"]])
    assert any(table.column("entities").to_pylist())  # the tiny tagger finds some
