"""From the recipe's data section to label-encoded splits with a fingerprint."""

from pathlib import Path

import pytest

from fulcrum.data import load_splits, texts_of
from fulcrum.data.dataset import SPLITS
from fulcrum.errors import DataError
from fulcrum.recipe import DataSection

from ..conftest import write_keyword_csv, write_pair_jsonl


def test_single_file_is_split_and_labels_sorted(tmp_path):
    path = write_keyword_csv(tmp_path / "d.csv", rows_per_label=20)
    splits = load_splits(DataSection(path=str(path)), seed=0)
    assert splits.label_names == ["apple", "car", "tax"]
    assert splits.sizes() == {"train": 42, "validation": 9, "test": 9}
    assert set(splits.validation.column("label").to_pylist()) == {0, 1, 2}


def test_declared_labels_fix_the_order(tmp_path):
    path = write_keyword_csv(tmp_path / "d.csv", rows_per_label=10)
    splits = load_splits(DataSection(path=str(path), labels=["tax", "car", "apple"]), seed=0)
    assert splits.label_names == ["tax", "car", "apple"]
    tax_words = {"tax", "invoice", "bill"}
    tax_ids = {
        row["label"] for row in splits.train.to_pylist() if tax_words & set(row["text"].split())
    }
    assert tax_ids == {0}  # ids index label_names in the declared order


def test_presplit_files_and_carved_test(tmp_path):
    train = write_keyword_csv(tmp_path / "train.csv", rows_per_label=20)
    validation = write_keyword_csv(tmp_path / "valid.csv", rows_per_label=2)
    splits = load_splits(
        DataSection(train=str(train), validation=str(validation), test_fraction=0.1), seed=0
    )
    assert splits.sizes() == {"train": 54, "validation": 6, "test": 6}


def test_evaluation_label_unseen_in_training(tmp_path):
    train = write_keyword_csv(tmp_path / "train.csv", rows_per_label=5)
    test = tmp_path / "test.csv"
    test.write_text("text,label\nsomething,apple\nnew thing,boat\n")
    with pytest.raises(
        DataError, match=r"test.csv, row 2: label 'boat' never appears in the training data"
    ):
        load_splits(DataSection(train=str(train), test=str(test)), seed=0)


def test_with_out_of_scope_detection_unseen_labels_are_kept_apart_as_texts(tmp_path):
    train = write_keyword_csv(tmp_path / "train.csv", rows_per_label=5)
    test = tmp_path / "test.csv"
    test.write_text("text,label\nsomething,apple\nnew thing,boat\nhello,oos\n")
    splits = load_splits(DataSection(train=str(train), test=str(test)), seed=0, unseen_allowed=True)
    assert splits.test.column("text").to_pylist() == ["something"]
    assert splits.unseen["test"].to_pylist() == [{"text": "new thing"}, {"text": "hello"}]
    assert "validation" not in splits.unseen  # carved from train: every label is known
    # Where no row is kept apart, the fingerprint is what it always was (earlier artifacts
    # stay current); where some are, it says so.
    section = DataSection(path=str(train))
    assert (
        load_splits(section, seed=0).fingerprint
        == load_splits(section, seed=0, unseen_allowed=True).fingerprint
    )
    kept = load_splits(DataSection(train=str(train), test=str(train)), seed=0, unseen_allowed=True)
    assert kept.fingerprint != splits.fingerprint


def test_fingerprint_follows_bytes_and_split_settings(tmp_path):
    path = write_keyword_csv(tmp_path / "d.csv", rows_per_label=10)
    base = load_splits(DataSection(path=str(path)), seed=0).fingerprint
    assert load_splits(DataSection(path=str(path)), seed=0).fingerprint == base
    assert load_splits(DataSection(path=str(path)), seed=1).fingerprint != base
    assert (
        load_splits(DataSection(path=str(path), validation_fraction=0.3), seed=0).fingerprint
        != base
    )
    Path(path).write_text(Path(path).read_text() + "one more apple,apple\n")
    assert load_splits(DataSection(path=str(path)), seed=0).fingerprint != base


def test_demo_dataset_is_balanced_and_clean():
    demo = Path(__file__).resolve().parents[2] / "examples" / "data" / "support_intents.csv"
    splits = load_splits(DataSection(path=str(demo), label_column="intent"), seed=13)
    assert len(splits.label_names) == 6
    assert sum(splits.sizes().values()) == 300


def test_pairs_load_with_both_texts_and_stratified_labels(tmp_path):
    path = write_pair_jsonl(tmp_path / "pairs.jsonl", rows=60)
    data = DataSection(path=str(path), text_column="question", text_pair_column="candidate")
    splits = load_splits(data, seed=0, task="text_pair_classification")
    assert splits.label_names == ["no", "yes"]
    assert splits.train.column_names == ["text", "text_pair", "label"]
    assert splits.sizes() == {"train": 44, "validation": 8, "test": 8}  # 4 of 30 per label
    row = splits.train.to_pylist()[0]
    assert row["text"].startswith("do you have ") and row["text_pair"].startswith("we sell ")
    assert texts_of(splits.validation, 2) == [
        (row["text"], row["text_pair"]) for row in splits.validation.slice(0, 2).to_pylist()
    ]


def test_a_group_column_keeps_each_group_in_one_split_and_its_rows_together(tmp_path):
    path = write_pair_jsonl(tmp_path / "pairs.jsonl", rows=120)  # 20 users of 6
    data = DataSection(
        path=str(path), text_column="question", text_pair_column="candidate", group_column="user"
    )
    splits = load_splits(data, seed=0, task="text_pair_classification")
    users = {name: getattr(splits, name).column("group").to_pylist() for name in SPLITS}
    assert {name: len(set(found)) for name, found in users.items()} == {
        "train": 14,
        "validation": 3,
        "test": 3,
    }
    assert not set(users["train"]) & (set(users["validation"]) | set(users["test"]))
    assert users["validation"] == sorted(users["validation"])  # rows of a group adjacent
    again = load_splits(data, seed=0, task="text_pair_classification")
    assert again.validation.equals(splits.validation)  # seeded
