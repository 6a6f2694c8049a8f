import numpy as np
import pytest

from fulcrum.data.splits import stratified_split


def test_split_is_stratified_disjoint_and_complete():
    labels = np.repeat([0, 1, 2], [100, 40, 20])
    train, validation, test = stratified_split(labels, 0.2, 0.1, seed=1)
    assert sorted(np.concatenate([train, validation, test]).tolist()) == list(range(160))
    assert np.bincount(labels[validation]).tolist() == [20, 8, 4]
    assert np.bincount(labels[test]).tolist() == [10, 4, 2]


def test_same_seed_same_split_other_seed_other_split():
    labels = np.repeat([0, 1], 50)
    first = stratified_split(labels, 0.2, 0.2, seed=3)
    again = stratified_split(labels, 0.2, 0.2, seed=3)
    other = stratified_split(labels, 0.2, 0.2, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[1], other[1])


@pytest.mark.parametrize("count", [1, 2, 3])
def test_rare_class_keeps_a_training_row(count):
    labels = np.array([0] * 50 + [1] * count)
    train, validation, test = stratified_split(labels, 0.45, 0.45, seed=0)
    assert (labels[train] == 1).sum() >= 1


def test_zero_test_fraction_gives_empty_test():
    train, validation, test = stratified_split(np.repeat([0, 1], 10), 0.2, 0.0, seed=0)
    assert len(test) == 0 and len(validation) == 4 and len(train) == 16
