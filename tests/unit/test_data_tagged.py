"""Token classification readers: CoNLL and JSONL, IOB1 to BIO, errors with line or row."""

import json

import pytest

from fulcrum.data import load_splits
from fulcrum.data.tagged import iob1_to_bio, read_tagged_file, tag_order
from fulcrum.errors import DataError
from fulcrum.recipe import DataSection

CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP I-ORG
rejects VBZ B-VP O
German JJ B-NP I-MISC
call NN I-NP O

Peter NNP B-NP I-PER
Blackburn NNP I-NP I-PER

"""


def test_conll_reader_skips_document_markers_and_splits_sentences(tmp_path):
    path = tmp_path / "eng.train"
    path.write_text(CONLL)
    table = read_tagged_file(path, file_format="conll", scheme="iob1")
    assert table.column("tokens").to_pylist() == [
        ["EU", "rejects", "German", "call"],
        ["Peter", "Blackburn"],
    ]
    assert table.column("tags").to_pylist() == [["B-ORG", "O", "B-MISC", "O"], ["B-PER", "I-PER"]]


def test_iob1_to_bio_starts_entities_and_keeps_adjacent_boundaries():
    assert iob1_to_bio(["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG"]) == [
        "B-PER",
        "I-PER",
        "B-PER",
        "O",
        "B-LOC",
        "B-ORG",
    ]


def test_tag_order_puts_o_first_and_b_before_i():
    assert tag_order({"I-PER", "O", "B-LOC", "B-PER", "I-LOC"}) == [
        "O",
        "B-LOC",
        "I-LOC",
        "B-PER",
        "I-PER",
    ]


def test_jsonl_reader_and_length_mismatch(tmp_path):
    path = tmp_path / "ner.jsonl"
    rows = [
        {"tokens": ["Ada", "wrote"], "tags": ["B-PER", "O"]},
        {"tokens": ["x", "y"], "tags": ["O"]},
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(
        DataError, match=r"ner.jsonl: 1 unusable sentence\(s\)\n  row 2: 2 tokens but 1 tags"
    ):
        read_tagged_file(path, file_format="jsonl")


def test_malformed_tag_names_its_sentence(tmp_path):
    path = tmp_path / "d.conll"
    path.write_text("Ada PERSON\nwrote O\n\nfine O\n")
    with pytest.raises(DataError, match=r"line 1: tag 'PERSON' is not O, B-TYPE or I-TYPE"):
        read_tagged_file(path, file_format="conll")


def test_short_line_names_line_and_fields(tmp_path):
    path = tmp_path / "d.conll"
    path.write_text("Ada NNP B-PER\nwrote\n")
    with pytest.raises(
        DataError, match=r"d.conll, line 2: 1 field\(s\), but the token and tag are fields 0 and 1"
    ):
        read_tagged_file(path, file_format="conll", tag_field=1)


def test_undecodable_conll_line(tmp_path):
    path = tmp_path / "d.conll"
    path.write_bytes(b"Ada B-PER\nM\xfcnchen B-LOC\n")
    with pytest.raises(DataError, match=r"d.conll, line 2: bytes that are not valid utf-8 \(0xfc"):
        read_tagged_file(path, file_format="conll")
    assert (
        read_tagged_file(path, file_format="conll", encoding="latin-1")
        .column("tokens")[0]
        .as_py()[1]
        == "München"
    )


def test_declared_tags_are_checked_after_conversion(tmp_path):
    path = tmp_path / "eng.train"
    path.write_text(CONLL)
    declared = ["O", "B-ORG", "I-ORG", "B-MISC", "I-MISC", "B-PER", "I-PER"]
    assert (
        read_tagged_file(path, file_format="conll", scheme="iob1", declared_tags=declared).num_rows
        == 2
    )
    with pytest.raises(DataError, match=r"tag 'B-PER' is not in data.labels"):
        read_tagged_file(path, file_format="conll", scheme="iob1", declared_tags=declared[:5])


def test_token_splits_encode_tags_and_refuse_unseen_ones(tmp_path):
    train = tmp_path / "train.conll"
    train.write_text("".join(f"w{i} B-PER\nx O\n\n" for i in range(20)))
    test = tmp_path / "test.conll"
    test.write_text("a B-PER\n\nb B-LOC\n")
    data = DataSection(train=str(train), format="conll", test_fraction=0.0, validation_fraction=0.2)
    splits = load_splits(data, 0, "token_classification")
    assert splits.label_names == ["O", "B-PER"]
    assert splits.sizes() == {"train": 16, "validation": 4, "test": 0}
    assert splits.train.column("label")[0].as_py() == [1, 0]
    with pytest.raises(
        DataError, match=r"test.conll, sentence 2: tag 'B-LOC' never appears in the training data"
    ):
        load_splits(
            DataSection(train=str(train), test=str(test), format="conll"), 0, "token_classification"
        )
