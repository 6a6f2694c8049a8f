"""Seeded, stratified train/validation/test splits."""

from __future__ import annotations

import numpy as np


def stratified_split(
    label_ids: np.ndarray, validation_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices of (train, validation, test), each class split in the same proportions.

    Every class keeps at least one training row, so a rare class is never absent from
    training while present in evaluation. Indices come back sorted: the split depends only
    on the labels and the seed, not on the order rows are visited.
    """
    rng = np.random.default_rng(seed)
    train, validation, test = [], [], []
    for class_id in np.unique(label_ids):
        rows = np.flatnonzero(label_ids == class_id)
        rng.shuffle(rows)
        n_test = int(round(len(rows) * test_fraction))
        n_validation = int(round(len(rows) * validation_fraction))
        while n_test + n_validation >= len(rows) and n_test + n_validation > 0:
            if n_test >= n_validation and n_test > 0:
                n_test -= 1
            else:
                n_validation -= 1
        test.append(rows[:n_test])
        validation.append(rows[n_test : n_test + n_validation])
        train.append(rows[n_test + n_validation :])
    return tuple(
        np.sort(np.concatenate(part)).astype(np.int64) for part in (train, validation, test)
    )


def group_split(
    groups: np.ndarray, validation_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices of (train, validation, test) with every group's rows in one split: a
    ranking is measured on groups (users, queries) training never saw a row of. Groups are
    shuffled with the seed and dealt to test, then validation, until each holds its share
    of the rows (at least one group each), the rest to training."""
    keys, inverse = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    order = iter(np.random.default_rng(seed).permutation(len(keys)))
    rows_of = np.bincount(inverse, minlength=len(keys))
    part_of = np.zeros(len(keys), dtype=np.int64)  # 0 train, 1 validation, 2 test
    left = len(keys)
    for part, fraction in ((2, test_fraction), (1, validation_fraction)):
        taken = 0
        while fraction and left > 1 and (taken == 0 or taken < fraction * len(inverse)):
            group = next(order)
            part_of[group], taken, left = part, taken + rows_of[group], left - 1
    rows = part_of[inverse]
    return tuple(np.flatnonzero(rows == part).astype(np.int64) for part in (0, 1, 2))
