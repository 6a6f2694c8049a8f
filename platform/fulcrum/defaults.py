"""Defaults that depend on the fine-tuning method or on the data, and the rules that settle
them for one run.

A recipe may leave `model.base`, `train.lr`, `train.epochs`, `train.warmup_ratio` and
`model.max_length` unset (null). The train stage then settles each from the method and the
training split, prints what it chose and why, and records the settled recipe in the training
artifact, so every later stage (export, compress, explain, serve) reads concrete values. The numbers below were chosen
from benchmarks/defaults.py, which runs the minimal recipe (name and data, nothing else) on
every labelled set in ../shared/data beside a tuned reference; docs/defaults.md has its table.

This module is a foundation (the recipe's field descriptions quote it): no Ray, no torch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# model.base when null: the English model for English text, the multilingual one for any
# other (an English vocabulary reads Chinese as [UNK]). Text is English when nearly all its
# letters are ASCII and English function words are a fair share of its words: 24-51% of the
# words of the English sets in ../shared/data, none of the German or Indonesian test
# sentences', where the same letters serve other words.
ENGLISH_MODEL, MULTILINGUAL_MODEL = "builtin:minilm", "builtin:multilingual"
MIN_ASCII_LETTER_SHARE = 0.9
MIN_ENGLISH_WORD_SHARE = 0.08
BASE_SAMPLE_ROWS = 2_000
ENGLISH_FUNCTION_WORDS = frozenset(
    """the a an of to in on at for with from by and or but not no is are was were be been
    it its this that these those i you he she we they my your our their me him her us them
    what how why when where which who do does did can could will would should have has had
    there here if so as""".split()
)
_LETTERS = re.compile(r"[^\W\d_]")

# Peak learning rate per `peft.method`. Methods that train a few parameters from scratch
# (IA3's scaling vectors, prefixes, a head alone) need rates 10-100x those that nudge
# pretrained weights (full fine-tuning); LoRA sits between.
METHOD_LR = {
    "lora": 1e-3,
    "adalora": 2e-3,
    "ia3": 2e-2,
    "prefix": 1e-2,
    "head_only": 1e-2,
    "full": 1e-4,
}

# Where PEFT adapters go when peft.target_modules is null: LoRA on every linear layer
# (attention and feed-forward) rather than PEFT's query/value for BERT; IA3 keeps PEFT's
# default (keys, values and the feed-forward output, which it must name together).
METHOD_TARGETS = {"lora": "all-linear", "adalora": "all-linear", "ia3": "peft-default"}

# Class weights per task when train.class_weights is null. Balanced weights take away the
# plateau where a classifier answers the commonest label for everything (the loss of that
# answer is no longer the lowest a constant answer gets), which LoRA otherwise sat on for
# hundreds of steps on skewed data; on balanced data they are all 1. Tags stay unweighted:
# most words are O by nature, and weighing entities up trades precision for recall.
TASK_CLASS_WEIGHTS = {
    "sequence_classification": "balanced",
    "text_pair_classification": "balanced",
    "token_classification": "none",
}

# Epochs: enough passes to see about EXAMPLES_TARGET training examples, or EXAMPLES_PER_LABEL
# of each label where there are so many labels that this is more, within [1, MAX_EPOCHS]. A
# few hundred rows need many passes, fifty thousand one; 150 intents need more than 3 moods.
EXAMPLES_TARGET = 40_000
EXAMPLES_PER_LABEL = 400
MAX_EPOCHS = 8
# Warm-up: this share of the run's optimizer steps, never fewer than MIN_WARMUP_STEPS
# (unless the run is shorter than that).
WARMUP_SHARE = 0.1
MIN_WARMUP_STEPS = 10
# max_length: a high percentile of the training texts' token lengths, rounded up to a
# multiple of 8. Token classification uses a higher one: a truncated word counts as missed.
LENGTH_PERCENTILE = {
    "sequence_classification": 99.0,
    "text_pair_classification": 99.0,  # of the pair's tokens together
    "token_classification": 99.9,
}
LENGTH_SAMPLE_ROWS = 20_000  # texts tokenised to find the percentile
MIN_MAX_LENGTH = 16
MAX_MAX_LENGTH = 512  # the recipe's own bound


@dataclass(frozen=True)
class Choice:
    """One value the run settled on by itself, and why (printed and recorded)."""

    key: str
    value: Any
    reason: str

    def describe(self) -> str:
        return f"{self.key} {_show(self.value)} ({self.reason})"


def default_base(texts: Sequence[str]) -> tuple[str, str]:
    """(model.base, why) for training texts (the first BASE_SAMPLE_ROWS are read)."""
    sample = list(texts[:BASE_SAMPLE_ROWS])
    letters = [letter for text in sample for letter in _LETTERS.findall(text)]
    words = [word.strip(".,;:!?\"'()").lower() for text in sample for word in text.split()]
    ascii_share = sum(letter.isascii() for letter in letters) / max(len(letters), 1)
    english_share = sum(word in ENGLISH_FUNCTION_WORDS for word in words) / max(len(words), 1)
    measured = (
        f"{ascii_share:.0%} of the training texts' letters are ASCII, "
        f"{english_share:.0%} of their words English function words"
    )
    if ascii_share >= MIN_ASCII_LETTER_SHARE and english_share >= MIN_ENGLISH_WORD_SHARE:
        return ENGLISH_MODEL, f"English: {measured}"
    return MULTILINGUAL_MODEL, f"not English: {measured}"


def default_lr(method: str) -> float:
    return METHOD_LR[method]


def examples_target(labels: int) -> int:
    return max(EXAMPLES_TARGET, EXAMPLES_PER_LABEL * labels)


def default_epochs(rows: int, labels: int = 2) -> int:
    """Passes over `rows` training rows that see about examples_target(labels) examples."""
    return max(1, min(MAX_EPOCHS, math.ceil(examples_target(labels) / max(rows, 1))))


def default_warmup_ratio(total_steps: int) -> float:
    """The share of `total_steps` spent warming up: WARMUP_SHARE, or MIN_WARMUP_STEPS when
    that is more (a short run still ramps over a few steps rather than one)."""
    if total_steps <= 0:
        return WARMUP_SHARE
    steps = max(round(WARMUP_SHARE * total_steps), min(MIN_WARMUP_STEPS, total_steps // 2))
    return min(steps / total_steps, 0.5)


def default_max_length(lengths: Sequence[int], model_limit: int, task: str) -> int:
    """A high percentile of the token lengths (special tokens included), rounded up to a
    multiple of 8, within [MIN_MAX_LENGTH, model_limit]."""
    limit = min(model_limit, MAX_MAX_LENGTH)
    if len(lengths) == 0:
        return limit
    high = float(np.percentile(np.asarray(lengths), LENGTH_PERCENTILE[task]))
    return int(min(limit, max(MIN_MAX_LENGTH, 8 * math.ceil(high / 8))))


def token_lengths(
    texts: Sequence[Any], tokenize: Callable[[list[Any]], list[list[int]]], seed: int
) -> list[int]:
    """Token counts of the texts (a seeded sample of LENGTH_SAMPLE_ROWS when there are more)."""
    if len(texts) > LENGTH_SAMPLE_ROWS:
        keep = np.random.default_rng(seed).choice(len(texts), LENGTH_SAMPLE_ROWS, replace=False)
        texts = [texts[index] for index in sorted(keep)]
    return [len(ids) for ids in tokenize(list(texts))]


def steps_per_epoch(rows: int, workers: int, batch_size: int, accumulation: int) -> int:
    """Optimizer steps in one epoch, as train/steps.py's EpochPlan counts them."""
    return math.ceil((rows // workers) / batch_size) // accumulation


def describe_rules() -> dict[str, str]:
    """One line per settled key, for field descriptions and docs."""
    rates = ", ".join(f"{method} {rate:g}" for method, rate in METHOD_LR.items())
    targets = ", ".join(f"{method} {where}" for method, where in METHOD_TARGETS.items())
    return {
        "model.base": (
            f"null: {ENGLISH_MODEL} when the training texts are English (at least "
            f"{MIN_ASCII_LETTER_SHARE:.0%} of their letters ASCII and "
            f"{MIN_ENGLISH_WORD_SHARE:.0%} of their words English function words), else "
            f"{MULTILINGUAL_MODEL}"
        ),
        "peft.target_modules": f"null: the method's default ({targets})",
        "train.lr": f"null: the method's default ({rates})",
        "train.epochs": (
            f"null: enough passes to see about {EXAMPLES_TARGET:,} training examples (or "
            f"{EXAMPLES_PER_LABEL} per label, where that is more), at least 1 and at most "
            f"{MAX_EPOCHS}"
        ),
        "train.class_weights": (
            "null: balanced for sequence classification, none for token classification"
        ),
        "train.warmup_ratio": (
            f"null: {WARMUP_SHARE:.0%} of the optimizer steps, at least {MIN_WARMUP_STEPS}"
        ),
        "model.max_length": (
            "null: the training texts' token lengths at the "
            f"{LENGTH_PERCENTILE['sequence_classification']:g}th percentile "
            f"({LENGTH_PERCENTILE['token_classification']:g}th for token classification), "
            "rounded up to a multiple of 8, at most the model's limit"
        ),
    }


def _show(value: Any) -> str:
    if value == {}:
        return "on"  # a section turned on with its defaults
    return f"{value:g}" if isinstance(value, float) else str(value)
