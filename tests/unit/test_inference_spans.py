"""Entity spans from per-token probabilities, with the real MiniLM tokenizer: character
offsets into the original text, whole words, first-subword tags."""

import numpy as np
import pytest
from tokenizers import Tokenizer

from fulcrum.inference.predictor import entity_spans

LABELS = ["O", "B-PER", "I-PER", "B-LOC"]


@pytest.fixture(scope="module")
def tokenizer(minilm_dir):
    return Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))


def probabilities_for(encoding, word_tags: dict[int, str], low: float = 0.1) -> np.ndarray:
    """Every token confident in O, except the given words' tokens (all their subwords)."""
    rows = np.full((len(encoding.ids), len(LABELS)), low / (len(LABELS) - 1))
    rows[:, 0] = 1 - low
    for position, word in enumerate(encoding.word_ids):
        if word in word_tags:
            rows[position] = low / (len(LABELS) - 1)
            rows[position, LABELS.index(word_tags[word])] = 1 - low
    return rows


def test_spans_cover_whole_words_with_character_offsets(tokenizer):
    text = "Angela Merkel visited Tiruchirappalli today."
    encoding = tokenizer.encode(text)
    words = {0: "B-PER", 1: "I-PER", 3: "B-LOC"}
    spans = entity_spans(text, encoding, probabilities_for(encoding, words), LABELS)
    assert [(s["entity"], s["start"], s["end"], s["text"]) for s in spans] == [
        ("PER", 0, 13, "Angela Merkel"),
        ("LOC", 22, 37, "Tiruchirappalli"),  # several subwords, one span
    ]
    assert spans[0]["score"] == pytest.approx(0.9)


def test_a_word_takes_its_first_subwords_tag(tokenizer):
    text = "Tiruchirappalli"
    encoding = tokenizer.encode(text)
    assert len([w for w in encoding.word_ids if w == 0]) > 1, "a multi-subword word"
    rows = probabilities_for(encoding, {})
    first = encoding.word_ids.index(0)
    rows[first + 1] = [0.0, 0.0, 0.0, 1.0]  # a later subword says LOC: ignored
    assert entity_spans(text, encoding, rows, LABELS) == []
    rows[first] = [0.0, 0.0, 0.0, 1.0]
    assert [s["text"] for s in entity_spans(text, encoding, rows, LABELS)] == [text]


def test_an_inside_tag_after_outside_starts_an_entity_and_a_type_change_splits(tokenizer):
    text = "Ada Lovelace Paris"
    encoding = tokenizer.encode(text)
    spans = entity_spans(
        text, encoding, probabilities_for(encoding, {0: "I-PER", 1: "I-PER", 2: "B-LOC"}), LABELS
    )
    assert [(s["entity"], s["text"]) for s in spans] == [("PER", "Ada Lovelace"), ("LOC", "Paris")]
