"""Out-of-scope detection: saying "none of these" instead of the least wrong intent.

A classifier's softmax always sums to one over the labels it knows, so a question no intent
covers still gets one, often confidently. Two signals are combined, both read from the
logits the model already computes, so detection costs nothing at serving time and survives
ONNX export and INT8 unchanged in form:

- a trained class: when the data has rows labelled as out of scope (`out_of_scope.label`),
  the model learns them as one more label, and predicting it means out of scope;
- a confidence floor: below a threshold on an in-scope confidence score (the largest in-scope
  probability, or the energy score: the logsumexp of the in-scope logits), the text is out
  of scope. The threshold is chosen on validation, separately for each exported model (an
  INT8 model's scores are its own), and stored in its manifest.

The threshold keeps `in_scope_recall` of the in-scope validation texts above it: a share of
in-scope customers sent to the fallback, which means the same on any traffic. Out-of-scope
examples in validation (the trained label, or labels training never saw) choose the score
for `score: auto` (the higher AUROC) and are measured, but do not set the threshold unless
`target_precision` asks: precision depends on how common out-of-scope texts are, and a
validation split rarely has them as often as the traffic does (CLINC150's has 3%, its test
18%; a threshold for 90% precision on the first caught 2% on the second).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

SCORES = ("max_probability", "energy")


@dataclass(frozen=True)
class Detector:
    """What decides "out of scope" for one model; stored in its manifest as `out_of_scope`."""

    score: str  # one of SCORES: higher means more in scope
    threshold: float  # a score below it is out of scope (-inf: the trained class alone)
    label: str | None  # the trained out-of-scope class, if the model has one
    chosen_by: str  # how the threshold was set, in words

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["threshold"] = None if np.isneginf(self.threshold) else float(self.threshold)
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Detector:
        threshold = record.get("threshold")
        return cls(
            score=record["score"],
            threshold=-np.inf if threshold is None else float(threshold),
            label=record.get("label"),
            chosen_by=record.get("chosen_by", ""),
        )

    def decide(self, logits: np.ndarray, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(out of scope, in-scope score) per row of [rows, labels] logits."""
        scores = in_scope_score(logits, self.score, _index(labels, self.label))
        flagged = scores < self.threshold
        if self.label is not None:
            flagged |= logits.argmax(-1) == labels.index(self.label)
        return flagged, scores


def in_scope_score(logits: np.ndarray, score: str, oos_index: int | None) -> np.ndarray:
    """Higher means more confidently one of the in-scope labels. The trained out-of-scope
    class's own logit is left out of both scores: its mass is evidence against every intent."""
    logits = np.asarray(logits, dtype=np.float64)
    keep = np.ones(logits.shape[-1], dtype=bool)
    if oos_index is not None:
        keep[oos_index] = False
    if score == "max_probability":
        shifted = logits - logits.max(-1, keepdims=True)
        probabilities = np.exp(shifted) / np.exp(shifted).sum(-1, keepdims=True)
        return probabilities[:, keep].max(-1)
    if score == "energy":
        inside = logits[:, keep]
        top = inside.max(-1, keepdims=True)
        return (top + np.log(np.exp(inside - top).sum(-1, keepdims=True)))[:, 0]
    raise ValueError(f"unknown out-of-scope score {score!r} (one of {', '.join(SCORES)})")


@dataclass(frozen=True)
class Evidence:
    """One split's logits with the truth: `gold` is the label id (-1 for a text whose label
    the model does not have), `outside` marks the out-of-scope rows."""

    logits: np.ndarray
    gold: np.ndarray
    outside: np.ndarray

    @classmethod
    def of(
        cls,
        logits: np.ndarray,
        gold: np.ndarray,
        unseen_logits: np.ndarray | None,
        oos_index: int | None,
    ) -> Evidence:
        """The split's own rows (the trained out-of-scope class among them, if any) and the
        rows whose labels training never saw, which are out of scope by definition."""
        gold = np.asarray(gold, dtype=np.int64)
        outside = gold == oos_index if oos_index is not None else np.zeros(len(gold), bool)
        if unseen_logits is not None and len(unseen_logits):
            logits = np.concatenate([logits, unseen_logits])
            gold = np.concatenate([gold, np.full(len(unseen_logits), -1)])
            outside = np.concatenate([outside, np.ones(len(unseen_logits), bool)])
        return cls(np.asarray(logits), gold, outside)


def calibrate(
    evidence: Evidence,
    labels: list[str],
    label: str | None,
    score: str = "auto",
    in_scope_recall: float = 0.95,
    target_precision: float | None = None,
) -> Detector:
    """The detector for one model, from its validation evidence."""
    oos_index = _index(labels, label)
    label = label if oos_index is not None else None  # a class the model does not have
    inside = ~evidence.outside
    if not inside.any():
        raise ValueError("no in-scope rows to calibrate the out-of-scope threshold on")
    examples = bool(evidence.outside.any())
    candidates = SCORES if score == "auto" and examples else (_plain(score),)
    by_score = {name: in_scope_score(evidence.logits, name, oos_index) for name in candidates}
    chosen = max(candidates, key=lambda name: auroc(-by_score[name], evidence.outside))
    scores = by_score[chosen]
    if target_precision is not None and examples:
        return _for_precision(evidence, scores, chosen, label, oos_index, target_precision)
    threshold = float(np.quantile(scores[inside], 1.0 - in_scope_recall))
    words = f"keeps {in_scope_recall:.0%} of in-scope validation texts above it"
    if examples:
        found = metrics(evidence, Detector(chosen, threshold, label, ""), labels)
        words += (
            f"; validation out-of-scope recall {found['out_of_scope_recall']:.1%}, precision "
            f"{found['out_of_scope_precision']:.1%}, AUROC {found['auroc']:.3f}"
        )
    else:
        words += " (validation has no out-of-scope examples)"
    return Detector(chosen, threshold, label, words)


def _plain(score: str) -> str:
    return "max_probability" if score == "auto" else score


def _for_precision(
    evidence: Evidence,
    scores: np.ndarray,
    chosen: str,
    label: str | None,
    oos_index: int | None,
    target_precision: float,
) -> Detector:
    """The threshold with the highest validation out-of-scope recall at the precision."""
    by_class = (
        evidence.logits.argmax(-1) == oos_index
        if oos_index is not None
        else np.zeros(len(scores), bool)
    )
    threshold, precision, recall = _best_threshold(
        scores, evidence.outside, by_class, target_precision
    )
    if np.isneginf(threshold) and label:
        words = (
            f"the trained class {label!r} alone: no floor adds validation recall at "
            f"out-of-scope precision >= {target_precision:.0%}"
        )
    elif np.isneginf(threshold):
        words = (
            f"no floor reaches validation out-of-scope precision {target_precision:.0%}, so "
            "nothing is flagged: lower out_of_scope.target_precision, or leave it unset"
        )
    else:
        words = (
            f"highest validation out-of-scope recall ({recall:.1%}) at precision >= "
            f"{target_precision:.0%} ({precision:.1%})"
        )
    return Detector(chosen, threshold, label, words)


def _best_threshold(
    scores: np.ndarray, outside: np.ndarray, by_class: np.ndarray, target_precision: float
) -> tuple[float, float, float]:
    """(threshold, precision, recall): the threshold flagging the most out-of-scope rows while
    precision stays at or above the target; -inf when only the trained class can."""
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    # Flagging every row with a score below sorted_scores[k] (strictly) plus the class's.
    flagged_outside = np.cumsum(outside[order] & ~by_class[order])
    flagged_inside = np.cumsum(~outside[order] & ~by_class[order])
    base_outside = int((outside & by_class).sum())
    base_inside = int((~outside & by_class).sum())
    total_outside = int(outside.sum())
    best = (-np.inf, _ratio(base_outside, base_outside + base_inside), base_outside)
    for k in range(len(scores)):
        if k + 1 < len(scores) and sorted_scores[k + 1] == sorted_scores[k]:
            continue  # a threshold cannot split tied scores
        true_positive = base_outside + int(flagged_outside[k])
        positives = true_positive + base_inside + int(flagged_inside[k])
        if _ratio(true_positive, positives) >= target_precision and true_positive > best[2]:
            # Halfway to the next score, so the rows flagged here stay flagged.
            above = sorted_scores[k + 1] if k + 1 < len(scores) else sorted_scores[k] + 1.0
            best = ((sorted_scores[k] + above) / 2, _ratio(true_positive, positives), true_positive)
    threshold, precision, true_positive = best
    return float(threshold), float(precision), _ratio(true_positive, total_outside)


def metrics(evidence: Evidence, detector: Detector, labels: list[str]) -> dict[str, Any]:
    """In-scope accuracy (a flagged in-scope text counts as wrong, as in Larson et al. 2019),
    out-of-scope precision, recall and F1 (out of scope is the positive class), AUROC of
    the score, and what share of in-scope texts were flagged."""
    flagged, scores = detector.decide(evidence.logits, labels)
    inside = ~evidence.outside
    predicted = evidence.logits.argmax(-1)
    correct = inside & ~flagged & (predicted == evidence.gold)
    true_positive = int((flagged & evidence.outside).sum())
    precision = _ratio(true_positive, int(flagged.sum()))
    recall = _ratio(true_positive, int(evidence.outside.sum()))
    return {
        "in_scope_accuracy": _ratio(int(correct.sum()), int(inside.sum())),
        "in_scope_flagged": _ratio(int((flagged & inside).sum()), int(inside.sum())),
        "out_of_scope_precision": precision,
        "out_of_scope_recall": recall,
        "out_of_scope_f1": 2 * precision * recall / (precision + recall)
        if precision + recall
        else 0.0,
        "auroc": auroc(-scores, evidence.outside) if evidence.outside.any() else None,
        "in_scope_examples": int(inside.sum()),
        "out_of_scope_examples": int(evidence.outside.sum()),
    }


def auroc(scores: np.ndarray, positives: np.ndarray) -> float:
    """Area under the ROC curve of `scores` ranking `positives` first (ties count half):
    the Mann-Whitney statistic from average ranks."""
    scores = np.asarray(scores, dtype=np.float64)
    positives = np.asarray(positives, dtype=bool)
    count_pos, count_neg = int(positives.sum()), int((~positives).sum())
    if count_pos == 0 or count_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    start = 0
    for end in range(1, len(scores) + 1):
        if end == len(scores) or sorted_scores[end] != sorted_scores[start]:
            ranks[order[start:end]] = (start + end + 1) / 2  # 1-based average rank
            start = end
    rank_sum = ranks[positives].sum()
    return float((rank_sum - count_pos * (count_pos + 1) / 2) / (count_pos * count_neg))


def _index(labels: list[str], label: str | None) -> int | None:
    return labels.index(label) if label is not None and label in labels else None


def _ratio(numerator: int, denominator: int) -> float:
    return float(numerator / denominator) if denominator else 0.0


def measure(
    settings,
    labels: list[str],
    logits: dict[str, np.ndarray],
    gold: dict[str, np.ndarray],
    unseen: dict[str, np.ndarray],
) -> dict[str, Any]:
    """Calibrate on validation, measure every split: what an artifact records as
    `out_of_scope`. `settings` is the recipe's out_of_scope section; per split, `logits`
    and `gold` are the labelled rows', `unseen` the logits of texts with labels training
    never saw. `without_detection` is the same model answering its argmax alone (which
    flags only through a trained out-of-scope class), for comparison."""
    oos_index = _index(labels, settings.label)
    evidence = {
        split: Evidence.of(logits[split], gold[split], unseen.get(split), oos_index)
        for split in logits
    }
    detector = calibrate(
        evidence["validation"],
        labels,
        settings.label,
        settings.score,
        settings.in_scope_recall,
        settings.target_precision,
    )
    plain = Detector(detector.score, -np.inf, detector.label, "argmax only")
    return {
        "detector": detector.to_dict(),
        **{split: metrics(item, detector, labels) for split, item in evidence.items()},
        "without_detection": {
            split: metrics(item, plain, labels) for split, item in evidence.items()
        },
    }


def describe(report: dict[str, Any], split: str = "test") -> str:
    """One line for a person: how the detector was set and what it measured."""
    detector, measured = report["detector"], report.get(split) or {}
    threshold = detector["threshold"]
    floor = f"{detector['score']} < {threshold:.4g}" if threshold is not None else "no floor"
    label = f", class {detector['label']!r}" if detector.get("label") else ""
    figures = (
        f"{split}: in-scope accuracy {measured['in_scope_accuracy']:.4f}, out-of-scope "
        f"precision {measured['out_of_scope_precision']:.4f} recall "
        f"{measured['out_of_scope_recall']:.4f}"
        + (f", AUROC {measured['auroc']:.4f}" if measured.get("auroc") is not None else "")
        if measured
        else f"no {split} split"
    )
    return f"out of scope when {floor}{label} ({detector['chosen_by']}); {figures}"
