"""Augmentation operations: seeded, label-preserving, and the Ray Data UDF without Ray."""

from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from fulcrum.data.augment import (
    COPY,
    ROW,
    Augmenter,
    EmbeddingSynonyms,
    augment_tagged,
    augment_text,
    copy_rng,
    delete,
    mention_pool,
    mention_spans,
    replace_mentions,
    swap,
    typo,
    typo_word,
)

TEXT = "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period"


def toy_synonyms(word):
    return {"profit": ["earnings"], "rose": ["climbed", "jumped"], "period": ["quarter"]}.get(
        word.lower(), []
    )


@pytest.mark.parametrize("operation", ["synonym", "insert", "swap", "delete", "typo"])
def test_each_operation_is_deterministic_per_seed_and_changes_the_text(operation):
    first = augment_text(TEXT, operation, copy_rng(7, 3, 1), 0.2, toy_synonyms)
    again = augment_text(TEXT, operation, copy_rng(7, 3, 1), 0.2, toy_synonyms)
    assert first == again
    assert first != TEXT


def test_swap_keeps_the_words_and_delete_keeps_at_least_one():
    words = TEXT.split()
    assert Counter(swap(words, copy_rng(0, 0, 1), 0.3)) == Counter(words)
    assert len(delete(["only"], copy_rng(0, 0, 1), 0.5)) == 1
    many = delete(words, copy_rng(0, 1, 1), 0.5)
    assert 0 < len(many) < len(words) and all(word in words for word in many)


def test_synonym_keeps_case_and_punctuation():
    out = augment_text("Profit, rose.", "synonym", copy_rng(1, 1, 1), 0.5, toy_synonyms)
    assert out in {
        "Earnings, rose.",
        "Profit, climbed.",
        "Profit, jumped.",
        "Earnings, climbed.",
        "Earnings, jumped.",
    }


def test_typo_edits_one_character_per_chosen_word():
    word = typo_word("corresponding", copy_rng(0, 0, 0))
    assert word != "corresponding" and abs(len(word) - len("corresponding")) <= 1
    words = typo(["a", "to", "profit"], copy_rng(0, 0, 0), 0.1)
    assert words[:2] == ["a", "to"]  # too short to misspell


def test_embedding_synonyms_are_nearest_whole_words_above_the_threshold():
    vocabulary = ["[PAD]", "profit", "profits", "earnings", "the", "##s", "banana"]
    vectors = np.array(
        [[0, 0], [1, 0], [0.99, 0.1], [0.9, 0.3], [1, 0.01], [1, 0], [0, 1]], dtype=np.float32
    )
    synonyms = EmbeddingSynonyms(vocabulary, vectors, k=3, min_sim=0.5)
    assert synonyms("Profit") == ["profits", "earnings"]  # no stopword, subword or banana
    assert synonyms("the") == [] and synonyms("unknown") == []


def test_mention_replacement_keeps_valid_bio_tags():
    words = ["Alice", "Smith", "met", "Bob", "in", "Oslo"]
    tags = ["B-PER", "I-PER", "O", "B-PER", "O", "B-LOC"]
    assert mention_spans(tags) == [(0, 2, "PER"), (3, 4, "PER"), (5, 6, "LOC")]
    pool = {"PER": [("Alice", "Smith"), ("Bob",), ("Carol", "Ann", "Lee")], "LOC": [("Oslo",)]}
    for seed in range(20):
        new_words, new_tags = replace_mentions(words, tags, copy_rng(seed, 0, 1), 1.0, pool)
        assert len(new_words) == len(new_tags)
        assert new_tags.count("O") == 2 and new_words[-1] == "Oslo"  # LOC pool has one mention
        spans = mention_spans(new_tags)
        assert [kind for _, _, kind in spans] == ["PER", "PER", "LOC"]
        assert all(tuple(new_words[s:e]) in pool[k] for s, e, k in spans)


def test_tagged_synonym_only_touches_words_tagged_o():
    words, tags = ["Profit", "rose"], ["B-ORG", "O"]
    new_words, new_tags = augment_tagged(
        words, tags, "synonym", copy_rng(0, 0, 1), 1.0, toy_synonyms, {}
    )
    assert new_words[0] == "Profit" and new_words[1] in {"climbed", "jumped"} and new_tags == tags


def test_augmenter_keeps_originals_and_adds_seeded_copies():
    table = pa.table({"text": [TEXT, "the period rose"], "label": [0, 1], ROW: [0, 1]})
    augmenter = Augmenter(
        "sequence_classification", ["swap", "typo"], 3, 0.2, 5, ["a", "b"], "", 4, 0.5
    )
    out = augmenter(table)
    assert out.num_rows == 6
    assert out.column(COPY).to_pylist() == [0, 1, 2, 0, 1, 2]
    assert out.column("label").to_pylist() == [0, 0, 0, 1, 1, 1]
    texts = out.column("text").to_pylist()
    assert texts[0] == TEXT and texts[3] == "the period rose"
    assert texts[1] != TEXT and texts[2] != TEXT
    assert augmenter(table).equals(out)  # same seed, same copies


def test_mention_pool_collects_mentions_by_type():
    table = pa.table({"tokens": [["Alice", "Smith", "in", "Oslo"]], "label": [[1, 2, 0, 3]]})
    names = ["O", "B-PER", "I-PER", "B-LOC"]
    assert mention_pool(table, names) == {"PER": [("Alice", "Smith")], "LOC": [("Oslo",)]}
