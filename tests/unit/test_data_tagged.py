"""Token classification readers: CoNLL and JSONL, IOB1 to BIO, errors with line or row."""

import json

import pytest

from fulcrum.data import load_splits
from fulcrum.data.tagged import iob1_to_bio, read_tagged_file, spans_to_bio, tag_order
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
    with pytest.raises(
        DataError, match=r"line 1: tag .PERSON. is not O, B-TYPE, I-TYPE \(data.tag_scheme bio\)"
    ):
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


# Resume NER's own layout: one `char tag` per line, BMES, blank line between sentences.
BMES = "高 B-NAME\n勇 E-NAME\n： O\n男 O\n\n中 B-ORG\n国 M-ORG\n银 M-ORG\n行 E-ORG\n张 S-NAME\n"


def test_bmes_file_reads_as_bio_characters(tmp_path):
    path = tmp_path / "train.char.bmes"
    path.write_text(BMES, encoding="utf-8")
    table = read_tagged_file(path, file_format="conll", scheme="bmes")
    assert table.column("tokens").to_pylist() == [list("高勇：男"), list("中国银行张")]
    assert table.column("tags").to_pylist() == [
        ["B-NAME", "I-NAME", "O", "O"],
        ["B-ORG", "I-ORG", "I-ORG", "I-ORG", "B-NAME"],
    ]


def test_spans_to_bio_closes_entities_at_e_and_s():
    # E- then M- of the same type is a new entity; S- S- two; a stray M- opens one.
    assert spans_to_bio(["B-X", "E-X", "M-X", "E-X", "S-X", "S-X", "O", "M-Y", "I-Y"]) == [
        "B-X", "I-X", "B-X", "I-X", "B-X", "B-X", "O", "B-Y", "I-Y",
    ]  # fmt: skip
    assert spans_to_bio(["B-X", "I-X", "E-X", "S-Y"]) == ["B-X", "I-X", "I-X", "B-Y"]


def test_bmes_read_as_bio_names_the_scheme_that_fits(tmp_path):
    path = tmp_path / "train.conll"
    path.write_text(BMES, encoding="utf-8")
    with pytest.raises(
        DataError,
        match=r"line 1: tag 'E-NAME' is not O, B-TYPE, I-TYPE \(data.tag_scheme bio\); "
        r"the file's tags fit data.tag_scheme: bmes",
    ):
        read_tagged_file(path, file_format="conll")


def test_bmes_suffix_means_token_classification_in_bmes(tmp_path):
    from fulcrum.recipe import Recipe

    path = tmp_path / "train.char.bmes"
    path.write_text("\n".join([BMES] * 10), encoding="utf-8")
    recipe = Recipe.model_validate({"name": "resume", "data": {"train": str(path)}})
    assert (recipe.task.type, recipe.data.tag_scheme) == ("token_classification", "bmes")
    written = Recipe.model_validate(
        {"name": "resume", "data": {"train": str(path), "tag_scheme": "bio"}}
    )
    assert written.data.tag_scheme == "bio"
    splits = load_splits(recipe.data, 0, recipe.task.type)
    assert splits.label_names == ["O", "B-NAME", "I-NAME", "B-ORG", "I-ORG"]


def test_gb18030_conll_file_reads_with_its_encoding(tmp_path):
    path = tmp_path / "train.char.bmes"
    path.write_bytes(BMES.encode("gb18030"))
    with pytest.raises(DataError, match=r"line 1: bytes that are not valid utf-8"):
        read_tagged_file(path, file_format="conll", scheme="bmes")
    table = read_tagged_file(path, file_format="conll", scheme="bmes", encoding="gb18030")
    assert table.column("tokens")[1].as_py() == list("中国银行张")
