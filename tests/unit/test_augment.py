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
    text_units,
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


CHINESE = "我的银行卡被偷了，怎么挂失"


def pieces(chunk):
    """A segmenter like a SentencePiece model's: known words, else characters."""
    out, rest = [], chunk
    while rest:
        word = next((w for w in ("我的", "银行", "挂失", "怎么") if rest.startswith(w)), rest[0])
        out.append(word)
        rest = rest[len(word) :]
    return out


@pytest.mark.parametrize("operation", ["swap", "delete", "insert", "synonym", "typo"])
def test_chinese_operations_edit_segmented_words_and_add_no_spaces(operation):
    synonyms = {"银行": ["银行卡"], "挂失": ["补办"], "怎么": ["如何"]}.get
    out = augment_text(
        CHINESE, operation, copy_rng(3, 0, 1), 0.3, lambda w: synonyms(w, []), pieces
    )
    assert out != CHINESE and " " not in out
    if operation == "swap":
        assert Counter(out) == Counter(CHINESE)  # the same characters, words moved
    if operation == "typo":
        assert abs(len(out) - len(CHINESE)) <= 1


def test_text_units_keep_spaced_words_and_cut_chinese():
    assert text_units("退款 refund 我的银行", pieces) == ["退", "款", "refund", "我的", "银行"]
    assert text_units("我的银行") == ["我", "的", "银", "行"]  # no segmenter: characters


def test_chinese_synonyms_stay_in_script_and_skip_single_characters():
    vocabulary = ["<pad>", "▁银行", "银行", "bank", "▁银行卡", "行", "我们", "▁储蓄"]
    vectors = np.array(
        [[0, 0], [1, 0], [1, 0], [1, 0.01], [0.95, 0.2], [1, 0.02], [0.9, 0.1], [0.8, 0.5]],
        dtype=np.float32,
    )
    synonyms = EmbeddingSynonyms(vocabulary, vectors, k=4, min_sim=0.5)
    # not `bank` (other script), not 行 (one character), not 我们 (a function word)
    assert synonyms("银行") == ["银行卡", "储蓄"]
    assert synonyms("bank") == []  # its neighbours are all Chinese


def test_tokenizer_segments_are_lossless_on_a_sentencepiece_model():
    from fulcrum.data.augment import TokenizerSegments
    from fulcrum.models.registry import resolve_model_dir

    segment = TokenizerSegments(resolve_model_dir("builtin:multilingual"))
    assert segment("我的银行卡被偷了，怎么办") == [
        "我的",
        "银行",
        "卡",
        "被",
        "偷",
        "了",
        "，",
        "怎么办",
    ]
    assert "".join(segment("Ａ股3月涨了")) == "Ａ股3月涨了"
