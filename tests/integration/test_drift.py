"""`fulcrum drift` on a corpus: traffic like the test split is no drift, traffic of one
label is, and the exit status says so."""

import pytest

from ..conftest import write_keyword_csv

pytestmark = pytest.mark.integration


def test_a_corpus_that_turns_to_one_label_is_drift_and_says_which(pipeline, tmp_path, capsys):
    from fulcrum.cli import RETRAIN_DUE, main

    _, _, export_dir = pipeline
    like = write_keyword_csv(tmp_path / "like.csv", rows_per_label=100).read_text().splitlines()
    cars = [line for line in like[1:] if line.endswith(",car")]
    corpus = tmp_path / "traffic.csv"
    corpus.write_text("\n".join([like[0], *like[1:], *(cars * 3)]) + "\n")

    code = main(["drift", str(export_dir), "--traffic", str(corpus), "--window-texts", "300"])
    lines = capsys.readouterr().out.splitlines()
    assert code == RETRAIN_DUE, lines
    assert lines[0].startswith("reference: the model on its test split, 18 texts")
    assert lines[1].startswith("window 1      300 texts") and lines[1].endswith("ok")
    assert "retrain due: the label mix moved" in lines[2] and "car +" in lines[2]
    assert lines[-1] == "retrain due: drift in 1 of 2 windows"
