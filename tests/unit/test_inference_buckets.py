import random

from fulcrum.inference.buckets import MAX_GROUP_ROWS, length_groups


def work(lengths, groups, call_cost):
    return sum(call_cost + len(group) * max(lengths[i] for i in group) for group in groups)


def test_every_index_once_and_each_group_a_run_of_similar_lengths():
    lengths = [40, 8, 9, 64, 10, 41, 8, 63]
    groups = length_groups(lengths, call_cost=16)
    assert sorted(i for group in groups for i in group) == list(range(len(lengths)))
    assert [sorted(lengths[i] for i in group) for group in groups] == [
        [8, 8, 9, 10],
        [40, 41],
        [63, 64],
    ]


def test_call_cost_trades_padding_against_calls():
    lengths = [10, 20, 30, 40]
    assert length_groups(lengths, call_cost=0) == [[0], [1], [2], [3]]
    assert length_groups(lengths, call_cost=1000) == [[0, 1, 2, 3]]


def test_cut_is_the_cheapest_of_every_contiguous_cut():
    rng = random.Random(0)
    for _ in range(50):
        lengths = [rng.randrange(1, 65) for _ in range(rng.randrange(1, 9))]
        order = sorted(range(len(lengths)), key=lengths.__getitem__)
        best = min(
            work(lengths, [order[a:b] for a, b in zip((0, *cuts), (*cuts, len(order)))], 16)
            for mask in range(2 ** (len(order) - 1))
            for cuts in [tuple(i + 1 for i in range(len(order) - 1) if mask >> i & 1)]
        )
        assert work(lengths, length_groups(lengths, call_cost=16), 16) == best


def test_many_texts_are_cut_into_calls_of_bounded_size():
    lengths = [20] * 1000 + [21] * 30
    groups = length_groups(lengths, call_cost=16)
    assert max(len(group) for group in groups) == MAX_GROUP_ROWS
    assert sorted(i for group in groups for i in group) == list(range(len(lengths)))
    assert len(groups) == -(-len(lengths) // MAX_GROUP_ROWS)  # no call more than needed


def test_nothing_in_nothing_out():
    assert length_groups([]) == []
