"""Words in any script: spans, joining, subword encoding as in training and serving."""

import numpy as np
import pytest
from tokenizers import Tokenizer

from fulcrum.explain.words import word_scores
from fulcrum.models.registry import resolve_model_dir
from fulcrum.words import (
    WordEncoder,
    display_width,
    join_words,
    padded,
    token_units,
    word_spans,
)


@pytest.fixture(scope="module")
def tokenizers():
    return {
        name: Tokenizer.from_file(str(resolve_model_dir(f"builtin:{name}") / "tokenizer.json"))
        for name in ("minilm", "multilingual")
    }


def test_word_spans_split_chinese_characters_and_punctuation():
    text = "高勇，男 Peter's 1966年"
    assert [text[a:b] for a, b in word_spans(text)] == [
        "高", "勇", "，", "男", "Peter", "'", "s", "1966", "年",
    ]  # fmt: skip


def test_join_words_puts_spaces_only_between_spaced_words():
    assert join_words(["高", "勇", "：", "Peter", "Blackburn", "1966", "年"]) == (
        "高勇：Peter Blackburn 1966年"
    )


def test_sentencepiece_characters_lose_the_bare_word_start(tokenizers):
    tokenizer = tokenizers["multilingual"]
    (units,) = WordEncoder(tokenizer).encode([list("高勇：男，中国")], 64)
    tokens = [tokenizer.id_to_token(i) for i in units.ids]
    # one token per character, each as the tokenizer reads it inside 高勇：男 (no ▁ but the first)
    assert tokens == ["<s>", "▁", "高", "勇", ":", "男", ",", "中", "国", "</s>"]
    # the first word's bare ▁ is no word's: 高 itself takes the first tag
    assert units.word_ids == [None, None, 0, 1, 2, 3, 4, 5, 6, None]
    # spaced words keep theirs
    (english,) = WordEncoder(tokenizer).encode([["Peter", "Blackburn"]], 64)
    assert [tokenizer.id_to_token(i) for i in english.ids][1:3] == ["▁Peter", "▁Black"]


def test_word_encoder_matches_the_tokenizer_on_spaced_words(tokenizers):
    from transformers import AutoTokenizer

    words = [["EU", "rejects", "German", "call", "to", "boycott", "lamb", "."], ["Peter"] * 40]
    fast = AutoTokenizer.from_pretrained(resolve_model_dir("builtin:minilm"))
    expected = fast(words, is_split_into_words=True, truncation=True, max_length=16)
    for row, units in enumerate(WordEncoder(fast).encode(words, 16)):
        assert units.ids == expected["input_ids"][row]
        assert units.word_ids == expected.word_ids(row)


def test_served_text_offsets_are_absolute(tokenizers):
    text = "张三在 中国银行 工作"
    (units,) = WordEncoder(tokenizers["multilingual"]).encode_texts([text], 64)
    starts = {}
    for word, (start, end) in zip(units.word_ids, units.offsets, strict=True):
        if word is not None:
            starts.setdefault(word, text[start:end])
    assert list(starts.values()) == list("张三在中国银行工作")


def test_truncation_keeps_the_special_tokens(tokenizers):
    (units,) = WordEncoder(tokenizers["multilingual"]).encode([list("中国银行股份有限公司")], 6)
    assert len(units.ids) == 6 and units.word_ids[0] is None and units.word_ids[-1] is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("multilingual", ["我的", "银行", "卡", "被", "偷", "了", "，", "Blackburn's", "card"]),
        ("minilm", list("我的银行卡被偷了，") + ["Blackburn", "'", "s", "card"]),
    ],
)
def test_explanation_units_of_a_classifier(tokenizers, name, expected):
    text = "我的银行卡 被偷了，Blackburn's card"
    units = token_units(text, tokenizers[name].encode(text))
    assert [w.word for w in word_scores(text, units, np.zeros(len(units.ids)))] == expected


@pytest.mark.parametrize("name", ["multilingual", "minilm"])
def test_a_pairs_units_are_numbered_across_both_sides_with_offsets_into_each(tokenizers, name):
    pair = ("card stolen", "卡 被偷了 card")
    units = token_units(pair, tokenizers[name].encode(*pair))
    words = word_scores(pair, units, np.ones(len(units.ids)))
    expected = [(0, "card"), (0, "stolen"), (1, "卡"), (1, "被"), (1, "偷"), (1, "了"), (1, "card")]
    assert [(w.side, w.word) for w in words] == expected
    assert all(pair[w.side][w.start : w.end] == w.word for w in words)
    # Both sides start with their word 0: one unit each, so no word sums the other's pieces.
    assert len({w for w in units.word_ids if w is not None}) == len(expected)


def test_chinese_labels_pad_to_terminal_columns():
    assert display_width("查询余额") == 8 and display_width("refund") == 6
    assert [
        len(padded(label, 10)) + display_width(label) - len(label)
        for label in ("挂失", "card_lost")
    ] == [10, 10]
