"""Occlusion: hide one word at a time and measure how much the target's probability falls.

Needs only forward passes, so it explains the ONNX model Serve runs, exactly as served.
A word is hidden by replacing each of its subwords with the mask token (positions and
length stay as they were, so the rest of the text reads the same); all the occluded copies
of a text go through the model in batches.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fulcrum.explain.words import WordScore, word_positions

# (input ids of shape [n, length]) -> the target's probability for each row
TargetProbability = Callable[[np.ndarray], np.ndarray]


def occlusion_scores(
    text: str | tuple[str, str],
    encoding,
    target_probability: TargetProbability,
    mask_id: int,
    batch_size: int = 32,
) -> tuple[float, list[WordScore]]:
    """(the target's probability on the whole text, each word's score): the fall in that
    probability when the word is hidden. Costs one forward pass per word, batched. A
    text pair's `encoding` numbers its words across both sides (`fulcrum.words.Units`)."""
    sides = (text,) if isinstance(text, str) else tuple(text)
    ids = np.asarray(encoding.ids, dtype=np.int64)
    words = word_positions(encoding)
    copies = np.repeat(ids[None, :], len(words) + 1, axis=0)
    for row, positions in enumerate(words, start=1):
        copies[row, positions] = mask_id
    probabilities = np.concatenate(
        [
            target_probability(copies[start : start + batch_size])
            for start in range(0, len(copies), batch_size)
        ]
    )
    full = float(probabilities[0])
    scores = []
    for positions, hidden in zip(words, probabilities[1:], strict=True):
        start = encoding.offsets[positions[0]][0]
        end = encoding.offsets[positions[-1]][1]
        side = encoding.sequence_ids[positions[0]] or 0
        scores.append(WordScore(sides[side][start:end], start, end, full - float(hidden), side))
    return full, scores
