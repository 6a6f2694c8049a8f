"""Words in any script, and their subword tokens, the same way in training and in serving.

Chinese, Japanese and Thai put no spaces between words, so neither whitespace nor a
SentencePiece tokenizer's pre-tokenizer finds them: XLM-R's reads `我的银行卡被偷了` as one
word. Where a word is needed (a tag per word, a score per word, an augmentation edit) a
character of these scripts is a word of its own, which is how Chinese NER data is written
(one character per line).

SentencePiece tokenizers mark a word start with `▁`; given characters one by one they prefix
each with it (a bare `▁` token, or a word-initial `▁在` where running text has `在`), which
doubles the sequence, puts every character's tag on the same meaningless token and shows the
model tokens it never saw mid-sentence. `WordEncoder` tokenises a word attached to the one
before (an unspaced script on either side) with the word-start mark turned off, so a tagger
reads `高 勇` as the tokenizer reads `高勇`, in training and in serving alike; a bare `▁` that
stays (the first word, a word after a space) belongs to no word, so the tag goes to the
character itself.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

# Scripts written without spaces between words: CJK ideographs (with extensions and
# compatibility forms), CJK punctuation, kana, fullwidth forms, Thai, Lao, Myanmar, Khmer.
UNSPACED = re.compile(
    "[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u2e80-\u2fdf\u3000-\u30ff\u3100-\u312f"
    "\u31a0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef"
    "\U00020000-\U0003134f]"
)
METASPACE = "\u2581"


def is_unspaced(character: str) -> bool:
    return UNSPACED.match(character) is not None


def _is_punctuation(character: str) -> bool:
    """As BERT's pre-tokenizer reads it: Unicode punctuation, and ASCII symbols."""
    if unicodedata.category(character).startswith("P"):
        return True
    code = ord(character)
    return 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126


def word_spans(text: str) -> list[tuple[int, int]]:
    """[start, end) of each word: runs between whitespace, with every punctuation mark and
    every character of an unspaced script a word of its own."""
    spans: list[tuple[int, int]] = []
    start = None
    for position, character in enumerate(text):
        alone = is_unspaced(character) or _is_punctuation(character)
        if character.isspace() or alone:
            if start is not None:
                spans.append((start, position))
                start = None
            if alone:
                spans.append((position, position + 1))
        elif start is None:
            start = position
    if start is not None:
        spans.append((start, len(text)))
    return spans


def attached(previous: str, word: str) -> bool:
    """Whether `word` was written against `previous` with no space: so when either side of
    the boundary is an unspaced script. Pre-split words carry no spacing, so this is the
    rule for training data and served text alike."""
    return bool(previous) and bool(word) and (is_unspaced(previous[-1]) or is_unspaced(word[0]))


def display_width(text: str) -> int:
    """Terminal columns: a wide (CJK) character takes two, so tables of Chinese labels align."""
    return sum(2 if unicodedata.east_asian_width(character) in "WF" else 1 for character in text)


def padded(text: str, width: int) -> str:
    return text + " " * max(width - display_width(text), 0)


def join_words(words: list[str]) -> str:
    """Words back into text: a space between two words unless they are attached."""
    pieces: list[str] = []
    for index, word in enumerate(words):
        if index and not attached(words[index - 1], word):
            pieces.append(" ")
        pieces.append(word)
    return "".join(pieces)


@dataclass
class Units:
    """A tokenised text, read like a `tokenizers.Encoding` (`ids`, `type_ids`, `word_ids`,
    `offsets`, `sequence_ids`) by entity spans and explanations; offsets are characters of
    the text, or of a pair's side that `sequence_ids` names (0: text, 1: text_pair)."""

    ids: list[int]
    word_ids: list[int | None]
    offsets: list[tuple[int, int]]
    type_ids: list[int] = field(default_factory=list)
    sequence_ids: list[int | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.type_ids:
            self.type_ids = [0] * len(self.ids)
        if not self.sequence_ids:
            self.sequence_ids = [None if word is None else 0 for word in self.word_ids]

    @property
    def attention_mask(self) -> list[int]:
        return [1] * len(self.ids)

    @property
    def special_tokens_mask(self) -> list[int]:
        return [int(word is None) for word in self.word_ids]


class WordEncoder:
    """Subword tokens of pre-split words, with the model's special tokens around them and
    `max_length` in all; `tokenizer` is a `tokenizers.Tokenizer` or a transformers fast
    tokenizer (its backend is used). It keeps a copy of its own, without padding or
    truncation, so the caller's tokenizer settings are left as they are."""

    def __init__(self, tokenizer: Any) -> None:
        from tokenizers import Tokenizer

        backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
        self._tokenizer = _unbounded(Tokenizer.from_str(backend.to_str()))
        # The same tokenizer without the word-start mark, for a word written against the one
        # before: 在 after 芳 is `在`, as in `王芳在`, not the word-initial `▁在`.
        spec = json.loads(backend.to_str())
        self._metaspace = _drop_word_start(spec)
        self._attached = (
            _unbounded(Tokenizer.from_str(json.dumps(spec))) if self._metaspace else self._tokenizer
        )
        framed = self._tokenizer.encode("a")
        inner = len(self._tokenizer.encode("a", add_special_tokens=False).ids)
        content = [index for index, word in enumerate(framed.word_ids) if word is not None]
        first = content[0] if content else len(framed.ids)
        self._prefix = framed.ids[:first]
        self._suffix = framed.ids[first + inner :]

    def encode(
        self,
        sentences: list[list[str]],
        max_length: int,
        starts: list[list[int]] | None = None,
    ) -> list[Units]:
        """One Units per sentence; `starts` (each word's offset in its text) makes the
        offsets absolute, else they are offsets within each word."""
        joined = [
            [bool(index) and attached(words[index - 1], word) for index, word in enumerate(words)]
            for words in sentences
        ]
        encoded = self._encode_words(
            [word for words in sentences for word in words],
            [flag for flags in joined for flag in flags],
        )
        room = max(max_length - len(self._prefix) - len(self._suffix), 0)
        results, cursor = [], 0
        for row, words in enumerate(sentences):
            ids: list[int] = []
            word_ids: list[int | None] = []
            offsets: list[tuple[int, int]] = []
            for index in range(len(words)):
                encoding = encoded[cursor + index]
                pieces = list(zip(encoding.ids, encoding.tokens, encoding.offsets, strict=True))
                base = starts[row][index] if starts is not None else 0
                if len(pieces) > 1 and pieces[0][1] == METASPACE:
                    # A bare word start (the text's first word, a word after a space): kept,
                    # but no character's token, so the tag goes to the character itself.
                    ids.append(pieces.pop(0)[0])
                    word_ids.append(None)
                    offsets.append((base, base))
                for token_id, _, (start, end) in pieces:
                    ids.append(token_id)
                    word_ids.append(index)
                    offsets.append((base + start, base + end))
            cursor += len(words)
            ids, word_ids, offsets = ids[:room], word_ids[:room], offsets[:room]
            results.append(
                Units(
                    ids=self._prefix + ids + self._suffix,
                    word_ids=[None] * len(self._prefix) + word_ids + [None] * len(self._suffix),
                    offsets=[(0, 0)] * len(self._prefix) + offsets + [(0, 0)] * len(self._suffix),
                )
            )
        return results

    def _encode_words(self, words: list[str], joined: list[bool]) -> list[Any]:
        """Each word's encoding, in order: attached words by the tokenizer without word starts."""
        encodings: list[Any] = [None] * len(words)
        for tokenizer, flag in ((self._tokenizer, False), (self._attached, True)):
            chosen = [index for index, value in enumerate(joined) if value == flag]
            if chosen:
                batch = tokenizer.encode_batch([words[i] for i in chosen], add_special_tokens=False)
                for index, encoding in zip(chosen, batch, strict=True):
                    encodings[index] = encoding
        return encodings

    def encode_texts(self, texts: list[str], max_length: int) -> list[Units]:
        """Raw texts split by `word_spans`, offsets into each text: what a tagger is served."""
        spans = [word_spans(text) for text in texts]
        return self.encode(
            [
                [text[start:end] for start, end in row]
                for text, row in zip(texts, spans, strict=True)
            ],
            max_length,
            starts=[[start for start, _ in row] for row in spans],
        )


def _unbounded(tokenizer: Any) -> Any:
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def _drop_word_start(spec: Any) -> bool:
    """Turn off, in a tokenizer.json spec, the `▁` SentencePiece tokenizers put before a word
    (Metaspace's prepend_scheme, the older add_prefix_space, a Prepend normaliser); True when
    the tokenizer had one."""
    if isinstance(spec, list):
        return any([_drop_word_start(item) for item in spec])  # a list: visit every item
    if not isinstance(spec, dict):
        return False
    # In a whole tokenizer.json the word start lives in the normaliser, pre-tokeniser and
    # decoder, never in the vocabulary (XLM-R's 250k entries take a second to walk).
    whole = "model" in spec and "pre_tokenizer" in spec
    found = spec.get("type") == "Metaspace"
    if found:
        spec["prepend_scheme"], spec["add_prefix_space"] = "never", False
    for key, value in spec.items():
        if whole and key in ("model", "added_tokens"):
            continue
        if _is_prepend(value):
            spec[key], found = None, True
        elif isinstance(value, list) and any(map(_is_prepend, value)):
            spec[key], found = [item for item in value if not _is_prepend(item)], True
        found |= _drop_word_start(spec[key])
    return found


def _is_prepend(spec: Any) -> bool:
    return isinstance(spec, dict) and spec.get("type") == "Prepend"


def token_units(text: str | tuple[str, str], encoding: Any) -> Units:
    """An encoding of `text` (or of a (text, text_pair) pair) with its explanation units as
    words: the tokenizer's own words, except that a word holding an unspaced script (XLM-R's
    `我的银行卡`) is split into its tokens (`我的 银行 卡`), which are that tokenizer's idea of
    Chinese words. A bare `▁` joins the token after it; offsets leave out the space a `▁`
    stands for. A pair's units are numbered across both sides, so no unit spans the two."""
    sides = (text,) if isinstance(text, str) else tuple(text)
    word_ids: list[int | None] = []
    offsets: list[tuple[int, int]] = []
    sequence_ids: list[int | None] = []
    unit, previous_word, previous_unspaced, pending = -1, None, False, False
    for token, word, (start, end), sequence in zip(
        encoding.tokens, encoding.word_ids, encoding.offsets, encoding.sequence_ids, strict=True
    ):
        if word is None:
            word_ids.append(None)
            offsets.append((start, end))
            sequence_ids.append(None)
            continue
        sequence_ids.append(sequence or 0)
        side = sides[sequence or 0]
        piece = token.lstrip(METASPACE)
        unspaced = any(is_unspaced(character) for character in side[start:end])
        if (sequence, word) != previous_word or (not pending and (unspaced or previous_unspaced)):
            unit += 1
        pending, previous_word, previous_unspaced = piece == "", (sequence, word), unspaced
        while start < end and side[start].isspace():
            start += 1
        word_ids.append(unit)
        offsets.append((start, end))
    return Units(
        ids=list(encoding.ids),
        word_ids=word_ids,
        offsets=offsets,
        type_ids=list(encoding.type_ids),
        sequence_ids=sequence_ids,
    )
