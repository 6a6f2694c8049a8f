"""Whether a model has learned, read from the counts a task evaluates into.

A classifier that answers one label for everything, or whose macro-F1 is barely above what
trivial answers score, has not learned, however long it trained: a learning rate too high
for the data (the weights collapse onto the majority label within an epoch) or too low, or
labels in the wrong column. Training says so at every evaluation and at the end, with what
to try; the artifact records it, and `fulcrum run` does not serve such a model unless forced.

Skill is the metric's share of the way from trivial to perfect: (score - trivial) /
(1 - trivial). For labels, trivial is the better of always answering the most common label
and guessing by the labels' shares (macro-F1 1/K); for entities it is 0 (tagging every word O).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from fulcrum.metrics import classification_metrics, entity_metrics

if TYPE_CHECKING:
    from fulcrum.recipe import Recipe

MIN_SKILL = 0.15  # below: "has not learned" (blocks serving)
WEAK_SKILL = 0.35  # below: "has barely learned" (said, recorded, not blocking)
COLLAPSE_SHARE = 0.8  # one label taking this share of the predictions is named as the cause
MAX_NAMED = 5


@dataclass(frozen=True)
class Finding:
    kind: str  # "not_learned" | "weak" | "unpredicted"
    blocking: bool  # not served without --force
    text: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sequence_findings(confusion: np.ndarray, names: list[str]) -> list[Finding]:
    confusion = np.asarray(confusion, dtype=np.float64)
    total = confusion.sum()
    actual, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    present = int((actual > 0).sum())
    if total == 0 or present < 2:
        return []
    findings = []
    macro_f1 = classification_metrics(confusion)["macro_f1"]
    majority = int(actual.argmax())
    share = actual[majority] / total
    majority_f1 = 2 * share / (1 + share) / present  # F1 of that label, 0 for the others
    trivial = max(majority_f1, 1 / present)
    learned = skill(macro_f1, trivial)
    if MIN_SKILL <= learned < WEAK_SKILL:
        findings.append(_weak(f"macro-F1 {macro_f1:.3f}", learned, f"{trivial:.3f}"))
    if learned < MIN_SKILL:
        top = int(predicted.argmax())
        top_share = predicted[top] / total
        if top_share >= COLLAPSE_SHARE:
            cause = (
                f"predictions collapsed onto {names[top]!r} ({top_share:.0%} of {int(total):,} "
                f"validation predictions; it is {actual[top] / total:.0%} of the labels)"
            )
        else:
            cause = "predictions are " + (
                "no better than trivial answers"
                if macro_f1 <= trivial
                else "barely better than trivial answers"
            )
        how = (
            f"always answering {names[majority]!r}"
            if majority_f1 >= 1 / present
            else "guessing by the labels' shares"
        )
        findings.append(
            Finding(
                "not_learned",
                True,
                f"the model has not learned: {cause}; macro-F1 {macro_f1:.3f} against "
                f"{trivial:.3f} for {how}",
            )
        )
    never = [names[i] for i in range(len(names)) if actual[i] > 0 and predicted[i] == 0]
    if never:
        findings.append(
            Finding(
                "unpredicted",
                False,
                f"{len(never)} of {present} labels are never predicted on validation: "
                + _listed(never),
            )
        )
    return findings


def entity_findings(counts: np.ndarray, types: list[str]) -> list[Finding]:
    """`counts`: per entity type [true positives, predicted, gold], then the token row."""
    rows = np.asarray(counts)[:-1]
    _, predicted, gold = rows.sum(axis=0)
    if gold == 0:
        return []
    f1 = entity_metrics(np.asarray(counts), types)["f1"]
    findings = []
    if predicted == 0:
        findings.append(
            Finding(
                "not_learned",
                True,
                f"the model has not learned: it finds no entities (every word tagged O) among "
                f"{int(gold):,} in validation",
            )
        )
    elif skill(f1, 0.0) < MIN_SKILL:
        findings.append(
            Finding(
                "not_learned",
                True,
                f"the model has not learned: entity F1 {f1:.3f} on {int(gold):,} validation "
                "entities",
            )
        )
    elif skill(f1, 0.0) < WEAK_SKILL:
        findings.append(_weak(f"entity F1 {f1:.3f}", f1, "0 (every word O)"))
    never = [types[i] for i in range(len(types)) if rows[i, 2] > 0 and rows[i, 1] == 0]
    if never and predicted:
        findings.append(
            Finding(
                "unpredicted",
                False,
                f"{len(never)} of {int((rows[:, 2] > 0).sum())} entity types are never "
                "predicted on validation: " + _listed(never),
            )
        )
    return findings


def _weak(score: str, learned: float, trivial: str) -> Finding:
    return Finding(
        "weak",
        False,
        f"the model has barely learned: {score} is {learned:.0%} of the way from what trivial "
        f"answers score ({trivial}) to perfect",
    )


def skill(score: float, trivial: float) -> float:
    return (score - trivial) / (1 - trivial) if trivial < 1 else 0.0


def advice(recipe: Recipe, history: list[dict[str, Any]], metric: str) -> list[str]:
    """What to try when a model has not learned, from the settings it trained with and its
    validation history (`val_<metric>` per evaluation)."""
    from fulcrum.defaults import default_lr

    tips = []
    train = recipe.train
    default = default_lr(recipe.peft.method)
    if train.lr is not None and train.lr > default * 1.5:
        tips.append(
            f"lower train.lr (now {train.lr:g}; {recipe.peft.method}'s default is {default:g})"
        )
    elif train.lr is not None and train.lr < default / 3:
        tips.append(
            f"raise train.lr (now {train.lr:g}; {recipe.peft.method}'s default is {default:g})"
        )
    elif train.lr is not None:
        tips.append(f"train.lr {train.lr / 3:.2g} (now {train.lr:g})")
    if train.class_weights in (None, "none") and recipe.task.type != "token_classification":
        tips.append("set train.class_weights: balanced")
    scores = [record.get(f"val_{metric}") for record in history]
    scores = [score for score in scores if isinstance(score, int | float)]
    if len(scores) >= 2 and scores[-1] > max(scores[:-1]):
        tips.append(f"train longer (train.epochs, now {train.epochs}): it was still improving")
    if recipe.task.type != "token_classification":
        tips.append(f"check that data.label_column ({recipe.data.label_column}) holds the labels")
    else:
        tips.append("check the tags: data.tag_scheme, and which field holds them")
    return tips


def blocking(warnings: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The recorded findings (a manifest's `warnings`) that keep a model from being served."""
    return [item for item in warnings or [] if item.get("blocking")]


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_NAMED])
    return shown + (f" (and {len(names) - MAX_NAMED} more)" if len(names) > MAX_NAMED else "")
