"""Drift signals: the population stability index, the verdicts and their thresholds, and
windows that add up across replicas and read back from a traffic log."""

import json
import math

import pytest

from fulcrum.drift import MIN_TEXTS, PSI_DUE, Window, compare, log_windows, psi
from fulcrum.errors import DataError


def window(labels: dict[str, int], unsure: int = 0, start: float = 0.0) -> Window:
    texts = sum(labels.values())
    answers = [
        {"label": label, "score": 0.3 if index < unsure else 0.9}
        for index, label in enumerate(label for label, n in labels.items() for _ in range(n))
    ]
    found = Window(start=start)
    found.record(answers)
    assert found.texts == texts
    return found


def test_psi_is_zero_for_the_same_mix_and_matches_its_formula():
    assert psi({"a": 50, "b": 50}, {"a": 5, "b": 5}) == pytest.approx(0.0)
    p, q = (80.5 / 101, 20.5 / 101), (50.5 / 101, 50.5 / 101)
    expected = sum((x - y) * math.log(x / y) for x, y in zip(p, q))
    assert psi({"a": 50, "b": 50}, {"a": 80, "b": 20}) == pytest.approx(expected)
    assert math.isfinite(psi({"a": 10}, {"b": 10})), "a label the reference never had"


def test_a_steady_window_is_ok_and_a_moved_one_says_which_labels_moved():
    reference = window({"card": 300, "refund": 300, "loan": 400}, unsure=100)
    steady = compare(reference, window({"card": 90, "refund": 95, "loan": 115}, unsure=30))
    assert steady["judged"] and not steady["retrain_due"] and steady["psi"] < 0.01
    moved = compare(reference, window({"card": 20, "refund": 30, "new_intent": 250}))
    assert moved["psi"] > PSI_DUE and moved["retrain_due"]
    assert "new_intent +83 points" in moved["reasons"][0]


def test_unsure_answers_rising_is_a_reason_of_its_own():
    reference = window({"a": 500, "b": 500}, unsure=50)  # 5% unsure
    found = compare(reference, window({"a": 150, "b": 150}, unsure=60))  # 20%
    assert found["retrain_due"] and found["psi"] < PSI_DUE
    assert found["reasons"] == [
        "20% of answers are unsure (top probability < 0.5), against 5% on the test split"
    ]


def test_a_small_window_is_reported_but_not_judged():
    reference = window({"a": 500, "b": 500})
    found = compare(reference, window({"b": MIN_TEXTS - 1}))
    assert not found["judged"] and not found["retrain_due"] and found["psi"] > PSI_DUE


def test_the_replicas_windows_add_up_per_period_from_their_logs(tmp_path):
    first = [window({"a": 10}, start=3600.0 * 5 + 10), window({"a": 5, "b": 5}, start=3600.0 * 6)]
    second = [window({"b": 7}, unsure=7, start=3600.0 * 5 + 300)]
    for name, windows in (("r1", first), ("r2", second)):
        (tmp_path / f"m-{name}.jsonl").write_text(
            "".join(json.dumps(w.to_dict()) + "\n" for w in windows)
        )
    periods = log_windows(str(tmp_path), every=3600)
    assert [(w.texts, w.labels, w.low_confidence) for w in periods] == [
        (17, {"a": 10, "b": 7}, 7),
        (10, {"a": 5, "b": 5}, 0),
    ]
    (tmp_path / "m-r3.jsonl").write_text('{"texts": 3}\n{oops\n')
    with pytest.raises(DataError, match=r"m-r3.jsonl, line 2: not a traffic window"):
        log_windows(str(tmp_path), every=3600)
