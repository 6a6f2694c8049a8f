"""Attributions: subword-to-word sums, occlusion on a scoring rule whose answer is known,
Integrated Gradients' completeness on a small random BERT, and the HTML view."""

import numpy as np
import pytest
from tokenizers import Tokenizer

from fulcrum.explain.occlusion import occlusion_scores
from fulcrum.explain.render import html_page, terminal
from fulcrum.explain.words import Explanation, WordScore, word_scores


@pytest.fixture(scope="module")
def tokenizer(minilm_dir):
    tokenizer = Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    tokenizer.no_padding()
    return tokenizer


def test_subword_scores_sum_into_words_with_offsets(tokenizer):
    text = "Tiruchirappalli rose"
    encoding = tokenizer.encode(text)
    scores = np.arange(len(encoding.ids), dtype=float)  # position i scores i
    words = word_scores(text, encoding, scores)
    pieces = [i for i, word in enumerate(encoding.word_ids) if word == 0]
    assert len(pieces) > 1
    assert words[0] == WordScore("Tiruchirappalli", 0, 15, float(sum(pieces)))
    assert words[1].word == "rose" and words[1].start == 16
    assert len(words) == 2, "[CLS] and [SEP] belong to no word"


def test_occlusion_finds_the_one_word_the_rule_reads(tokenizer):
    text = "the results were good this year"
    encoding = tokenizer.encode(text)
    good = tokenizer.token_to_id("good")
    mask = tokenizer.token_to_id("[MASK]")
    calls = []

    def probability(ids: np.ndarray) -> np.ndarray:
        calls.append(len(ids))
        return np.where((ids == good).any(axis=1), 0.9, 0.2)

    full, words = occlusion_scores(text, encoding, probability, mask, batch_size=4)
    assert full == pytest.approx(0.9)
    assert {w.word: round(w.score, 6) for w in words} == {
        "the": 0.0,
        "results": 0.0,
        "were": 0.0,
        "good": 0.7,
        "this": 0.0,
        "year": 0.0,
    }
    assert calls == [4, 3], "the text and its 6 occluded copies, in batches of 4"


def test_integrated_gradients_attributions_add_up_to_the_change_in_probability(tokenizer):
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from fulcrum.explain.integrated import integrated_gradients

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
    )
    model = BertForSequenceClassification(config).eval()
    encoding = tokenizer.encode("profits fell sharply")
    ids = np.asarray(encoding.ids)
    special = np.asarray(encoding.special_tokens_mask, dtype=bool)

    def target(logits):
        return torch.softmax(logits, dim=-1)[:, 1]

    attributions, delta, probability = integrated_gradients(
        model, ids, np.asarray(encoding.attention_mask), special, 0, target, steps=200
    )
    baseline = torch.as_tensor(np.where(special, ids, 0))[None, :]
    with torch.no_grad():
        start = float(target(model(input_ids=baseline).logits)[0])
        end = float(target(model(input_ids=torch.as_tensor(ids)[None, :]).logits)[0])
    assert probability == pytest.approx(end, abs=1e-6)
    assert attributions.sum() == pytest.approx(end - start, abs=5e-3)
    assert abs(delta) < 5e-3
    assert attributions.shape == (len(ids),)


def test_views_escape_the_text_and_mark_every_word():
    text = "<script>alert(1)</script> fell"
    explanation = Explanation(
        text,
        "negative",
        0.9,
        "occlusion",
        [WordScore("<script>alert(1)</script>", 0, 25, -0.2), WordScore("fell", 26, 30, 0.7)],
    )
    page = html_page([explanation], "t")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.count("<span title=") == 2 and 'title="+0.7000"' in page
    assert terminal(explanation, colour=False) == "<script>alert(1)</script>(-0.20) fell(+0.70)"
    assert "\x1b[48;5;196m" in terminal(explanation), "the strongest word gets the strongest red"
