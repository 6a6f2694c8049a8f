"""Tokenising batches and counting predictions, per task."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from fulcrum.tasks import (
    IGNORE_INDEX,
    SEQUENCE_CLASSIFICATION,
    TEXT_PAIR_CLASSIFICATION,
    TOKEN_CLASSIFICATION,
    evaluate_counts,
)


@pytest.fixture(scope="module")
def tokenizer(tiny_bert_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_bert_dir)


def test_sequence_collate_pads_to_longest_not_max_length(tokenizer):
    collate = SEQUENCE_CLASSIFICATION.make_collate(tokenizer, 64)
    batch = collate({"text": ["hi", "a much longer text here"], "label": [1, 0]})
    assert batch["input_ids"].shape == (2, 7)  # [CLS] a much longer text here [SEP]
    assert batch["labels"].tolist() == [1, 0]
    assert batch["attention_mask"][0].tolist() == [1, 1, 1, 0, 0, 0, 0]


def test_sequence_collate_truncates(tokenizer):
    batch = SEQUENCE_CLASSIFICATION.make_collate(tokenizer, 8)(
        {"text": ["word " * 50], "label": [0]}
    )
    assert batch["input_ids"].shape == (1, 8)


def test_token_collate_labels_first_subword_only(tokenizer):
    collate = TOKEN_CLASSIFICATION.make_collate(tokenizer, 32)
    batch = collate({"tokens": [["Johanson", "visited", "Oslo"]], "label": [[1, 0, 3]]})
    word_ids = tokenizer(["Johanson", "visited", "Oslo"], is_split_into_words=True).word_ids()
    expected = []
    previous = None
    for word in word_ids:
        expected.append(IGNORE_INDEX if word is None or word == previous else [1, 0, 3][word])
        previous = word
    assert batch["labels"][0].tolist() == expected
    assert sum(label != IGNORE_INDEX for label in expected) == 3
    assert batch["_gold"] == [[1, 0, 3]]


def forward_returning(logits):
    def forward(**inputs):
        return SimpleNamespace(logits=torch.tensor(logits, dtype=torch.float32))

    return forward


def test_sequence_counts_are_a_confusion_matrix():
    batch = {"input_ids": torch.zeros(3, 2, dtype=torch.long), "labels": torch.tensor([0, 1, 1])}
    counts = evaluate_counts(
        forward_returning([[2, 0], [2, 0], [0, 2]]), [batch], SEQUENCE_CLASSIFICATION, ["a", "b"]
    )
    assert counts.tolist() == [[1, 0], [1, 1]]


def test_token_counts_score_entities_and_treat_truncated_words_as_missed():
    names = ["O", "B-PER", "I-PER", "B-LOC"]
    # One sentence of 4 words, only the first 3 survived truncation (positions 1..3).
    labels = torch.tensor([[IGNORE_INDEX, 1, 2, 0, IGNORE_INDEX]])
    logits = np.full((1, 5, 4), -5.0)
    for position, tag in enumerate([0, 1, 2, 0, 0]):
        logits[0, position, tag] = 5.0
    batch = {
        "input_ids": torch.zeros(1, 5, dtype=torch.long),
        "labels": labels,
        "_gold": [[1, 2, 0, 3]],
    }
    counts = evaluate_counts(
        forward_returning(logits.tolist()), [batch], TOKEN_CLASSIFICATION, names
    )
    metrics = TOKEN_CLASSIFICATION.metrics(counts, names)
    assert metrics["per_type"]["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert metrics["per_type"]["LOC"]["recall"] == 0.0  # the cut-off word's entity was missed
    assert metrics["precision"] == 1.0 and metrics["recall"] == 0.5
    assert metrics["token_accuracy"] == 0.75


def test_pair_collate_uses_the_tokenizers_pair_format_and_keeps_both_sides(tokenizer):
    collate = TEXT_PAIR_CLASSIFICATION.make_collate(tokenizer, 12)
    batch = collate({"text": ["first words here"], "text_pair": ["second " * 30], "label": [1]})
    tokens = tokenizer.convert_ids_to_tokens(batch["input_ids"][0])
    assert batch["input_ids"].shape == (1, 12)
    assert tokens[:5] == ["[CLS]", "first", "words", "here", "[SEP]"]  # the short side whole
    assert tokens[-1] == "[SEP]" and tokens[5:-1] == ["second"] * 6  # the long side cut
    assert batch["token_type_ids"][0].tolist() == [0] * 5 + [1] * 7
    assert batch["labels"].tolist() == [1]


def test_pair_task_counts_like_a_sequence_task():
    logits = np.array([[2.0, 0.0], [0.0, 1.0]])
    batch = {"labels": torch.tensor([0, 0])}
    counts = TEXT_PAIR_CLASSIFICATION.count(logits, batch, ["a", "b"])
    assert TEXT_PAIR_CLASSIFICATION.report(counts, ["a", "b"])[0]["support"] == 2
    metrics = TEXT_PAIR_CLASSIFICATION.metrics(counts, ["a", "b"])
    assert metrics["accuracy"] == 0.5 and "auc" not in metrics  # no gold positive: no AUC


def test_two_label_pairs_are_also_scored_as_rankings_per_group():
    logits = np.array([[0.0, 2.0], [0.0, 1.0], [0.0, -1.0], [0.0, 3.0], [0.0, 0.0]])
    batch = {"labels": torch.tensor([1, 0, 0, 0, 1]), "_group": ["u1", "u1", "u1", "u2", "u2"]}
    metrics = TEXT_PAIR_CLASSIFICATION.metrics(
        TEXT_PAIR_CLASSIFICATION.count(logits, batch, ["no", "yes"]), ["no", "yes"]
    )
    # u1 ranks its positive first; u2 ranks it second.
    assert metrics["mrr"] == pytest.approx((1 + 1 / 2) / 2)
    assert metrics["group_auc"] == pytest.approx(0.5) and metrics["groups"] == 2
    assert metrics["auc"] == pytest.approx(3 / 6)  # 0.88 beats 0.73 and 0.27; 0.5 beats 0.27
