"""Data augmentation of the training split: seeded, label-preserving, run as a Ray Data stage.

Every original row is kept and gets `multiplier - 1` augmented copies; each copy applies one
operation picked at random (as in EDA, Wei & Zou 2019):

  synonym   replace words by neighbours in the model's own input-embedding space
  insert    insert a neighbour of a random word at a random position
  swap      swap two random words
  delete    drop each word with probability `rate`
  typo      one character edit (swap, drop, repeat, keyboard neighbour) in some words
  mention   NER: replace an entity mention by another mention of the same type

For token classification only operations that keep every word's tag right are allowed
(mention, synonym on words tagged O, typo), which the recipe enforces.

Chinese and other scripts without spaces have no whitespace words: a run of them is cut into
the model tokenizer's pieces (XLM-R's `我的 银行 卡`; a BERT vocabulary gives characters), so
swap, delete and insert move segmented words, synonyms come from the same embedding space in
the same script, and a typo swaps, drops or repeats a character inside a word.

Each copy's random generator is seeded from (seed, row, copy), so the augmented split is
the same however Ray Data batches and schedules it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from fulcrum.words import METASPACE, is_unspaced, join_words, token_units

ROW = "_row"
COPY = "_copy"

# Words whose "synonyms" change meaning or grammar more than they add variety.
STOPWORDS = frozenset(
    """a an the and or but if then than of to in on at by for from with without into onto
    over under about after before between through during is are was were be been being am
    do does did have has had will would shall should can could may might must not no nor
    this that these those it its they them their there here he she his her we our you your
    i me my as so such very too also just only up down out off again more most less least
    all any each few other some own same both which who whom whose what when where why how""".split()
)

# The commonest Chinese function words of two characters or more (single characters are
# never synonym candidates): pronouns, negations, conjunctions, question words.
CHINESE_STOPWORDS = frozenset(
    """我们 你们 他们 她们 它们 咱们 自己 这个 那个 这些 那些 这里 那里 这样 那样 什么 怎么
    怎样 为什么 哪里 哪个 多少 没有 不是 不要 不会 不能 别的 因为 所以 但是 可是 而且 如果
    虽然 或者 还是 就是 已经 可以 一个 一下 一些 然后 现在 时候 还有 只是 非常""".split()
)

KEYBOARD = {
    row[i]: row[max(i - 1, 0)] + row[min(i + 1, len(row) - 1)]
    for row in ("qwertyuiop", "asdfghjkl", "zxcvbnm")
    for i in range(len(row))
}
_WORD = re.compile(r"^(\W*)(\w+)(\W*)$")


def copy_rng(seed: int, row: int, copy: int) -> random.Random:
    return random.Random(f"{seed}:{row}:{copy}")


# --------------------------------------------------------------------------- synonyms


class EmbeddingSynonyms:
    """Nearest whole-word neighbours by cosine similarity of the model's input embeddings.
    Needs no lexicon and speaks the model's vocabulary (including its domain words); its
    neighbours are distributional (`profit` -> `profits`, `revenue`), so the similarity
    threshold keeps them close."""

    def __init__(self, vocabulary: Sequence[str], vectors: np.ndarray, k: int, min_sim: float):
        self.k, self.min_sim = k, min_sim
        # SentencePiece vocabularies hold a word twice, as `▁word` (word start) and `word`.
        self.index: dict[str, int] = {}
        keep: list[int] = []
        for index, token in enumerate(vocabulary):
            word = token.removeprefix(METASPACE)
            if word not in self.index and _candidate(word):
                self.index[word] = len(keep)
                keep.append(index)
        self.words = list(self.index)
        self.unspaced = np.array([is_unspaced(word[0]) for word in self.words], dtype=bool)
        matrix = vectors[keep].astype(np.float32)
        self.unit = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        self._cache: dict[str, list[str]] = {}

    @classmethod
    def from_model(cls, model_dir: str | Path, k: int, min_sim: float) -> EmbeddingSynonyms:
        from transformers import AutoModel, AutoTokenizer

        from fulcrum.models.classifier import quiet_transformers

        quiet_transformers()
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        vectors = (
            AutoModel.from_pretrained(model_dir, use_kernels=False).get_input_embeddings().weight
        )
        vocabulary = [""] * len(tokenizer.get_vocab())
        for token, index in tokenizer.get_vocab().items():
            if index < len(vocabulary):
                vocabulary[index] = token
        return cls(vocabulary, vectors.detach().numpy()[: len(vocabulary)], k, min_sim)

    def __call__(self, word: str) -> list[str]:
        key = word.lower()
        if key not in self._cache:
            position = self.index.get(key)
            if position is None or key in STOPWORDS:
                self._cache[key] = []
            else:
                similarity = self.unit @ self.unit[position]
                similarity[position] = -1.0
                # A multilingual vocabulary's nearest neighbour of 银行 may be `bank`.
                similarity[self.unspaced != self.unspaced[position]] = -1.0
                k = min(self.k, len(self.words) - 1)
                best = np.argpartition(-similarity, k)[:k]
                best = best[np.argsort(-similarity[best])]
                self._cache[key] = [self.words[i] for i in best if similarity[i] >= self.min_sim]
        return self._cache[key]


def _candidate(word: str) -> bool:
    """A whole word worth swapping: letters only, not a function word; three letters at
    least in spaced scripts, two characters in unspaced ones (one Chinese character is too
    ambiguous a unit to swap by its embedding)."""
    if not word.isalpha():
        return False
    if all(is_unspaced(character) for character in word):
        return len(word) >= 2 and word not in CHINESE_STOPWORDS
    return len(word) >= 3 and not any(map(is_unspaced, word)) and word not in STOPWORDS


Synonyms = Callable[[str], list[str]]
Segmenter = Callable[[str], list[str]]


def text_units(text: str, segment: Segmenter | None = None) -> list[str]:
    """The words an augmentation edits: whitespace-separated, with a piece of text in an
    unspaced script cut by `segment` (default: into characters)."""
    units: list[str] = []
    for chunk in text.split():
        if any(map(is_unspaced, chunk)):
            units.extend((segment or list)(chunk))
        else:
            units.append(chunk)
    return units


class TokenizerSegments:
    """Cuts text at the model tokenizer's explanation units (fulcrum.words.token_units):
    lossless, since every cut is a unit's start. The tokenizer loads on first use, so
    English data never pays for it."""

    def __init__(self, model_dir: str | Path) -> None:
        self.model_dir = model_dir
        self._tokenizer = None

    def __call__(self, chunk: str) -> list[str]:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.model_dir).backend_tokenizer
        units = token_units(chunk, self._tokenizer.encode(chunk, add_special_tokens=False))
        starts: dict[int, int] = {}
        for word, (start, end) in zip(units.word_ids, units.offsets, strict=True):
            if word is not None and start < end:
                starts.setdefault(word, start)
        cuts = sorted({0, *starts.values()} - {len(chunk)})
        return [chunk[a:b] for a, b in zip(cuts, [*cuts[1:], len(chunk)], strict=True)]


def _match_case(template: str, word: str) -> str:
    if template.isupper() and len(template) > 1:
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def _synonym_of(word: str, synonyms: Synonyms, rng: random.Random) -> str | None:
    """A neighbour of the word's core, with its punctuation and case kept."""
    match = _WORD.match(word)
    if not match:
        return None
    lead, core, trail = match.groups()
    options = synonyms(core)
    return lead + _match_case(core, rng.choice(options)) + trail if options else None


# --------------------------------------------------------------------------- operations


def _how_many(words: Sequence[str], rate: float) -> int:
    return max(1, round(rate * len(words)))


def synonym(words, rng, rate, synonyms, allowed=None) -> list[str]:
    words = list(words)
    positions = [i for i in range(len(words)) if allowed is None or allowed[i]]
    rng.shuffle(positions)
    budget = _how_many(words, rate)
    for position in positions:
        if budget == 0:
            break
        replacement = _synonym_of(words[position], synonyms, rng)
        if replacement is not None:
            words[position] = replacement
            budget -= 1
    return words


def insert(words, rng, rate, synonyms) -> list[str]:
    words = list(words)
    for _ in range(_how_many(words, rate)):
        for _attempt in range(10):
            candidate = _synonym_of(rng.choice(words), synonyms, rng) if words else None
            if candidate is not None:
                words.insert(rng.randint(0, len(words)), candidate.strip(".,;:!?\"'()"))
                break
    return words


def swap(words, rng, rate) -> list[str]:
    words = list(words)
    if len(words) >= 2:
        for _ in range(_how_many(words, rate)):
            i, j = rng.sample(range(len(words)), 2)
            words[i], words[j] = words[j], words[i]
    return words


def delete(words, rng, rate) -> list[str]:
    if len(words) <= 1:
        return list(words)
    kept = [word for word in words if rng.random() >= rate]
    return kept or [rng.choice(words)]


def _typo_able(word: str) -> bool:
    """Long enough to misspell: three letters, or two characters of an unspaced script."""
    return sum(ch.isalpha() for ch in word) >= (2 if any(map(is_unspaced, word)) else 3)


def typo_word(word: str, rng: random.Random) -> str:
    if not _typo_able(word):
        return word
    i = rng.choice([i for i, ch in enumerate(word) if ch.isalpha()][:-1])
    unspaced = any(map(is_unspaced, word))
    kind = rng.randrange(3 if unspaced else 4)  # no keyboard neighbours for characters
    if kind == 0:  # swap with the next character
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:  # drop
        return word[:i] + word[i + 1 :]
    if kind == 2:  # repeat
        return word[:i] + word[i] + word[i:]
    near = KEYBOARD.get(word[i].lower())
    if not near:
        return word[:i] + word[i + 1 :]
    replacement = rng.choice(near)
    replacement = replacement.upper() if word[i].isupper() else replacement
    return word[:i] + replacement + word[i + 1 :]


def typo(words, rng, rate) -> list[str]:
    words = list(words)
    candidates = [i for i, word in enumerate(words) if _typo_able(word)]
    for position in rng.sample(candidates, min(len(candidates), _how_many(words, rate))):
        words[position] = typo_word(words[position], rng)
    return words


def mention_spans(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """(start, end, type) of each BIO entity mention."""
    spans, start, kind = [], None, None
    for position, tag in enumerate([*tags, "O"]):
        inside = tag.startswith("I-") and kind == tag[2:]
        if start is not None and not inside:
            spans.append((start, position, kind))
            start, kind = None, None
        if tag.startswith("B-") or (tag.startswith("I-") and start is None):
            start, kind = position, tag[2:]
    return spans


def replace_mentions(words, tags, rng, rate, pool: dict[str, list[tuple[str, ...]]]):
    """Swap some mentions for others of the same type seen in the training split."""
    spans = [span for span in mention_spans(tags) if len(pool.get(span[2], ())) > 1]
    if not spans:
        return list(words), list(tags)
    chosen = set(rng.sample(range(len(spans)), min(len(spans), _how_many(spans, rate))))
    new_words, new_tags, cursor = [], [], 0
    for index, (start, end, kind) in enumerate(spans):
        new_words += words[cursor:start]
        new_tags += tags[cursor:start]
        mention = tuple(words[start:end])
        if index in chosen:
            mention = rng.choice([m for m in pool[kind] if m != mention] or [mention])
        new_words += list(mention)
        new_tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(mention) - 1)
        cursor = end
    return new_words + list(words[cursor:]), new_tags + list(tags[cursor:])


def augment_text(
    text: str,
    operation: str,
    rng,
    rate: float,
    synonyms: Synonyms,
    segment: Segmenter | None = None,
) -> str:
    words = text_units(text, segment)
    if operation == "synonym":
        words = synonym(words, rng, rate, synonyms)
    elif operation == "insert":
        words = insert(words, rng, rate, synonyms)
    elif operation == "swap":
        words = swap(words, rng, rate)
    elif operation == "delete":
        words = delete(words, rng, rate)
    elif operation == "typo":
        words = typo(words, rng, rate)
    else:
        raise ValueError(f"{operation}: not an operation on texts")
    return join_words(words)


def augment_tagged(
    words: list[str], tags: list[str], operation: str, rng, rate: float, synonyms, pool
) -> tuple[list[str], list[str]]:
    if operation == "mention":
        return replace_mentions(words, tags, rng, rate, pool)
    if operation == "synonym":
        outside = [tag == "O" for tag in tags]
        return synonym(words, rng, rate, synonyms, allowed=outside), list(tags)
    if operation == "typo":
        return typo(words, rng, rate), list(tags)
    raise ValueError(f"{operation}: not label-preserving for tagged words")


def mention_pool(table: pa.Table, label_names: list[str]) -> dict[str, list[tuple[str, ...]]]:
    pool: dict[str, set[tuple[str, ...]]] = {}
    for words, ids in zip(
        table.column("tokens").to_pylist(), table.column("label").to_pylist(), strict=True
    ):
        tags = [label_names[i] for i in ids]
        for start, end, kind in mention_spans(tags):
            pool.setdefault(kind, set()).add(tuple(words[start:end]))
    return {kind: sorted(mentions) for kind, mentions in pool.items()}


# --------------------------------------------------------------------------- Ray Data stage


class Augmenter:
    """The Ray Data UDF: an actor, so the synonym table is built once per actor."""

    def __init__(
        self,
        task: str,
        operations: Sequence[str],
        multiplier: int,
        rate: float,
        seed: int,
        label_names: list[str],
        model_dir: str,
        neighbours: int,
        min_similarity: float,
        pool: dict[str, list[tuple[str, ...]]] | None = None,
    ) -> None:
        self.task, self.operations = task, list(operations)
        self.multiplier, self.rate, self.seed = multiplier, rate, seed
        self.label_names = label_names
        self.pool = pool or {}
        self.synonyms: Synonyms = (
            EmbeddingSynonyms.from_model(model_dir, neighbours, min_similarity)
            if {"synonym", "insert"} & set(operations)
            else (lambda word: [])
        )
        self.segment = TokenizerSegments(model_dir)

    def __call__(self, batch: pa.Table) -> pa.Table:
        columns: dict[str, list[Any]] = {name: [] for name in batch.column_names}
        columns[COPY] = []
        rows = batch.to_pylist()
        for row in rows:
            for copy in range(self.multiplier):
                out = dict(row)
                if copy:
                    self._augment(out, copy_rng(self.seed, row[ROW], copy))
                for name in batch.column_names:
                    columns[name].append(out[name])
                columns[COPY].append(copy)
        return pa.table(
            {
                name: pa.array(values, type=batch.schema.field(name).type)
                if name in batch.column_names
                else pa.array(values, type=pa.int32())
                for name, values in columns.items()
            }
        )

    def _augment(self, row: dict[str, Any], rng: random.Random) -> None:
        operation = rng.choice(self.operations)
        if self.task == "token_classification":
            tags = [self.label_names[i] for i in row["label"]]
            words, tags = augment_tagged(
                row["tokens"], tags, operation, rng, self.rate, self.synonyms, self.pool
            )
            row["tokens"] = words
            row["label"] = [self.label_names.index(tag) for tag in tags]
        else:
            row["text"] = augment_text(
                row["text"], operation, rng, self.rate, self.synonyms, self.segment
            )


def augment_split(table: pa.Table, recipe, label_names: list[str], model_dir: Path) -> pa.Table:
    """The training table with augmented copies, via Ray Data (an actor pool of one: the
    split is small and the synonym table is the expensive part). Rows come back in
    (row, copy) order so every rank and every rerun sees the same table."""
    import ray
    import ray.data

    cfg = recipe.augment
    task = recipe.task.type
    indexed = table.append_column(ROW, pa.array(np.arange(table.num_rows), type=pa.int64()))
    augmenter_args = {
        "task": task,
        "operations": recipe.augment_operations,
        "multiplier": cfg.multiplier,
        "rate": cfg.rate,
        "seed": recipe.seed,
        "label_names": label_names,
        "model_dir": str(model_dir),
        "neighbours": cfg.synonym_neighbours,
        "min_similarity": cfg.synonym_min_similarity,
        "pool": mention_pool(table, label_names) if task == "token_classification" else None,
    }
    dataset = ray.data.from_arrow(indexed).map_batches(
        Augmenter,
        fn_constructor_kwargs=augmenter_args,
        batch_size=256,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=1),
        num_cpus=1,
    )
    blocks = ray.get(dataset.to_arrow_refs())
    augmented = pa.concat_tables(blocks).sort_by([(ROW, "ascending"), (COPY, "ascending")])
    return augmented.drop_columns([ROW, COPY])
