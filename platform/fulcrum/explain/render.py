"""Explanations for people: coloured words in a terminal, and a self-contained HTML page
(inline styles only, every text escaped) to open in a browser or attach to a ticket."""

from __future__ import annotations

import html
from collections.abc import Iterable

from fulcrum.explain.words import Explanation, WordScore

# 256-colour backgrounds, weak to strong: against the target (blue), for it (red)
_AGAINST = (17, 18, 19, 20, 27)
_FOR = (52, 88, 124, 160, 196)


def terminal(explanation: Explanation, colour: bool = True) -> str:
    scale = _scale(explanation)
    parts = []
    for index, word in enumerate(explanation.words):
        if index and word.side != explanation.words[index - 1].side:
            parts.append("||")
        label = f"{word.word}({word.score:+.2f})"
        if colour and word.score:
            shades = _FOR if word.score > 0 else _AGAINST
            level = min(len(shades) - 1, int(abs(word.score) / scale * len(shades)))
            label = f"\x1b[48;5;{shades[level]}m\x1b[97m{label}\x1b[0m"
        parts.append(label)
    return " ".join(parts)


def headline(explanation: Explanation) -> str:
    delta = "" if explanation.delta is None else f", convergence delta {explanation.delta:+.3f}"
    pair = "" if explanation.text_pair is None else f" || {explanation.text_pair!r}"
    return (
        f"{explanation.target} (p={explanation.probability:.3f}) by {explanation.method}"
        f"{delta}: {explanation.text!r}{pair}"
    )


def html_page(explanations: Iterable[Explanation], title: str) -> str:
    blocks = []
    for explanation in explanations:
        sides = [explanation.text]
        if explanation.text_pair is not None:
            sides.append(explanation.text_pair)
        lines = [
            _marked(text, [word for word in explanation.words if word.side == side], explanation)
            for side, text in enumerate(sides)
        ]
        blocks.append(
            f"<div style='margin:1em 0'><div style='color:#555;font-size:90%'>"
            f"{html.escape(headline(explanation))}</div>"
            + "".join(f"<div style='font-size:120%;line-height:1.8'>{line}</div>" for line in lines)
            + "</div>"
        )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head>"
        "<body style='font-family:sans-serif;max-width:60em;margin:2em auto'>"
        f"<h2>{html.escape(title)}</h2><p style='color:#555'>Red: evidence for the target; "
        "blue: against. Hover a word for its score.</p>" + "".join(blocks) + "</body></html>\n"
    )


def _marked(text: str, words: list[WordScore], explanation: Explanation) -> str:
    """`text` as HTML with each scored word shaded by its score."""
    scale = _scale(explanation)
    pieces, cursor = [], 0
    for word in words:
        pieces.append(html.escape(text[cursor : word.start]))
        alpha = min(1.0, abs(word.score) / scale)
        rgb = "220,50,47" if word.score > 0 else "38,139,210"
        pieces.append(
            f'<span title="{word.score:+.4f}" style="background:rgba({rgb},{alpha:.2f});'
            f'padding:1px 2px;border-radius:3px">{html.escape(word.word)}</span>'
        )
        cursor = word.end
    pieces.append(html.escape(text[cursor:]))
    return "".join(pieces)


def _scale(explanation: Explanation) -> float:
    return max((abs(word.score) for word in explanation.words), default=0.0) or 1.0
