"""Ranking metrics for two-label pair tasks, counted so that they add up like a confusion
matrix: a rank or a batch counts its rows into a fixed-size array, the arrays are summed, and
the metrics are read off the sum.

A candidate's score is the probability of the positive label, the second of the two labels
(data.labels order, else sorted: 0/1, no/yes, dislike/like). Overall AUC comes from two
histograms of that score (gold negatives, gold positives) over SCORE_BINS bins, ties within
a bin counting half: exact unless a positive and a negative share a bin, off by half the
share of such pairs when they do (within 0.001 on random scores). Per-group metrics (group AUC,
MRR, nDCG@5 and @10) need a group's rows together, so evaluation batches hold whole groups
(fulcrum.train.merge.table_batches) and each batch adds each group's value to a sum.
Groups without a positive are left out of MRR and nDCG, groups without both labels out of
group AUC, as is usual (there is nothing to rank them by).
"""

from __future__ import annotations

import numpy as np

SCORE_BINS = 1000
NDCG_CUTOFFS = (5, 10)
# After the two histograms: sums of group AUC, reciprocal rank, nDCG@5, nDCG@10, then the
# number of groups with both labels, with a positive, and in all.
_SUMS = ("group_auc", "mrr", *(f"ndcg_{k}" for k in NDCG_CUTOFFS))
STATS = 2 * SCORE_BINS + len(_SUMS) + 3


def empty_ranking_counts() -> np.ndarray:
    return np.zeros(STATS, dtype=np.float64)


def ranking_counts(
    scores: np.ndarray, positive: np.ndarray, groups: list | None = None
) -> np.ndarray:
    """The additive ranking counts of one batch: `scores` in [0, 1], `positive` the gold
    answers (bool), `groups` each row's group (every row of a group in this batch)."""
    scores, positive = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    counts = empty_ranking_counts()
    bins = np.clip((scores * SCORE_BINS).astype(np.int64), 0, SCORE_BINS - 1)
    counts[:SCORE_BINS] = np.bincount(bins[~positive], minlength=SCORE_BINS)
    counts[SCORE_BINS : 2 * SCORE_BINS] = np.bincount(bins[positive], minlength=SCORE_BINS)
    if groups is None:
        return counts
    sums = np.zeros(len(_SUMS))
    both = with_positive = 0
    keys = np.asarray([str(group) for group in groups])
    for key in np.unique(keys):
        members = keys == key
        group_scores, group_positive = scores[members], positive[members]
        if group_positive.any() and not group_positive.all():
            sums[0] += exact_auc(group_scores, group_positive)
            both += 1
        if group_positive.any():
            order = np.argsort(-group_scores, kind="stable")
            ranked = group_positive[order]
            sums[1] += 1.0 / (1 + int(np.argmax(ranked)))
            sums[2:] += [ndcg(ranked, k) for k in NDCG_CUTOFFS]
            with_positive += 1
    counts[2 * SCORE_BINS :] = [*sums, both, with_positive, len(np.unique(keys))]
    return counts


def ranking_metrics(counts: np.ndarray) -> dict[str, float]:
    """AUC from the histograms; the per-group means where groups were counted."""
    negatives = counts[:SCORE_BINS]
    positives = counts[SCORE_BINS : 2 * SCORE_BINS]
    metrics: dict[str, float] = {}
    if negatives.sum() and positives.sum():
        # Each positive beats the negatives in lower bins and ties those in its own.
        below = np.concatenate([[0.0], np.cumsum(negatives)[:-1]])
        wins = (positives * (below + 0.5 * negatives)).sum()
        metrics["auc"] = float(wins / (positives.sum() * negatives.sum()))
    sums = counts[2 * SCORE_BINS : 2 * SCORE_BINS + len(_SUMS)]
    both, with_positive, groups = counts[2 * SCORE_BINS + len(_SUMS) :]
    if both:
        metrics["group_auc"] = float(sums[0] / both)
    if with_positive:
        for name, total in zip(_SUMS[1:], sums[1:]):
            metrics[name] = float(total / with_positive)
    if groups:
        metrics["groups"] = int(groups)
    return metrics


def exact_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """The share of (positive, negative) pairs the scores order rightly, ties counting half."""
    _, inverse, sizes = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(sizes)
    ranks = ((ends - sizes + 1 + ends) / 2)[inverse]  # 1-based, tied scores share the mean
    count_positive = int(positive.sum())
    count_negative = len(scores) - count_positive
    wins = ranks[positive].sum() - count_positive * (count_positive + 1) / 2
    return float(wins / (count_positive * count_negative))


def ndcg(ranked_positive: np.ndarray, k: int) -> float:
    """Binary-relevance nDCG@k of a ranking (gold answers in ranked order)."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    top = ranked_positive[:k].astype(np.float64)
    ideal = np.sort(ranked_positive.astype(np.float64))[::-1][:k]
    return float((top * discounts[: len(top)]).sum() / (ideal * discounts[: len(ideal)]).sum())
