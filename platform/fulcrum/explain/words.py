"""From subword scores to word scores, and the result every method returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class WordScore:
    word: str
    start: int  # character offsets into the explained text (into text_pair when side is 1)
    end: int
    score: float
    side: int = 0  # a text pair's side: 0 the text, 1 the text_pair


@dataclass
class Explanation:
    """Why the model gave `target` (a label, or an entity span for token models) for `text`:
    each word's contribution, positive for evidence for the target. `delta` is Integrated
    Gradients' convergence error (attributions sum minus the change in the target's
    logit); None for occlusion. A text-pair model's explanation scores the words of both
    `text` and `text_pair`, each word naming its side."""

    text: str
    target: str
    probability: float
    method: str
    words: list[WordScore]
    delta: float | None = None
    span: tuple[int, int] | None = None  # the entity explained, for token models
    text_pair: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def top(self, k: int) -> list[WordScore]:
        return sorted(self.words, key=lambda word: word.score, reverse=True)[:k]


def word_scores(text: str | tuple[str, str], encoding, token_scores: np.ndarray) -> list[WordScore]:
    """Sum each word's subword scores (a word is as responsible as all its pieces);
    special tokens and padding, which belong to no word, are dropped. `encoding` is a
    `tokenizers.Encoding` or `fulcrum.words.Units` (anything with `word_ids`, `offsets`
    and `sequence_ids`); a pair's words must be numbered across both sides, as `Units` are."""
    sides = (text,) if isinstance(text, str) else tuple(text)
    spans: dict[int, list[int]] = {}
    totals: dict[int, float] = {}
    for position, word in enumerate(encoding.word_ids):
        if word is None:
            continue
        start, end = encoding.offsets[position]
        if word not in spans:
            spans[word] = [start, end, encoding.sequence_ids[position] or 0]
            totals[word] = 0.0
        spans[word][1] = end
        totals[word] += float(token_scores[position])
    return [
        WordScore(sides[side][start:end], start, end, totals[word], side)
        for word, (start, end, side) in spans.items()
    ]


def word_positions(encoding) -> list[list[int]]:
    """Token positions of each word, in text order."""
    positions: dict[int, list[int]] = {}
    for position, word in enumerate(encoding.word_ids):
        if word is not None:
            positions.setdefault(word, []).append(position)
    return list(positions.values())
