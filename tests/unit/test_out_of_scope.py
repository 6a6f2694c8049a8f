"""Out-of-scope detection's arithmetic: scores, calibration, metrics, AUROC."""

from types import SimpleNamespace

import numpy as np
import pytest

from fulcrum.out_of_scope import (
    Detector,
    Evidence,
    auroc,
    calibrate,
    describe,
    in_scope_score,
    measure,
    metrics,
)

LABELS = ["balance", "card", "transfer"]


def _logits(rows: list[tuple[int, float]], labels: int = 3) -> np.ndarray:
    """One row per (predicted label, margin): that label's logit `margin` above the rest."""
    logits = np.zeros((len(rows), labels))
    for index, (label, margin) in enumerate(rows):
        logits[index, label] = margin
    return logits


def test_auroc_matches_the_pairwise_definition_with_ties_counted_half():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, size=60).astype(float)  # many ties
    positives = rng.random(60) < 0.4
    pairs = [
        1.0 if p > n else 0.5 if p == n else 0.0
        for p in scores[positives]
        for n in scores[~positives]
    ]
    assert auroc(scores, positives) == pytest.approx(np.mean(pairs))
    assert auroc(np.arange(4.0), np.array([0, 0, 1, 1], bool)) == 1.0
    assert np.isnan(auroc(np.arange(3.0), np.zeros(3, bool)))


def test_scores_leave_the_trained_out_of_scope_class_out():
    logits = np.array([[0.0, 0.0, 5.0]])  # the third label holds nearly all the mass
    with_class = in_scope_score(logits, "max_probability", oos_index=2)
    without = in_scope_score(logits, "max_probability", oos_index=None)
    assert with_class[0] < 0.01 and without[0] > 0.98
    energy = in_scope_score(np.array([[1.0, 1.0, 9.0]]), "energy", oos_index=2)
    assert energy[0] == pytest.approx(1.0 + np.log(2.0))


def test_without_out_of_scope_examples_the_floor_keeps_the_asked_share_of_in_scope():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(400, 3)) * 3
    evidence = Evidence.of(logits, logits.argmax(-1), None, None)
    detector = calibrate(evidence, LABELS, "oos", in_scope_recall=0.9)
    assert detector.score == "max_probability" and detector.label is None  # no such class
    kept = in_scope_score(logits, "max_probability", None) >= detector.threshold
    assert kept.mean() == pytest.approx(0.9, abs=0.01)
    assert "no out-of-scope examples" in detector.chosen_by


def test_with_out_of_scope_examples_the_threshold_meets_the_precision_and_maximises_recall():
    # In scope: confident; out of scope: mostly unsure, a few confident ones.
    inside = _logits([(i % 3, 4.0 + (i % 5)) for i in range(200)])
    outside = _logits([(i % 3, 0.2 * (i % 10)) for i in range(90)] + [(0, 8.0)] * 10)
    evidence = Evidence.of(inside, np.arange(200) % 3, outside, None)
    detector = calibrate(evidence, LABELS, None, "max_probability", target_precision=0.95)
    measured = metrics(evidence, detector, LABELS)
    assert measured["out_of_scope_precision"] >= 0.95
    assert measured["out_of_scope_recall"] == pytest.approx(0.9)  # the confident 10 escape
    assert measured["in_scope_accuracy"] == 1.0 and measured["in_scope_flagged"] == 0.0
    # No lower threshold flags more of them without crossing into the in-scope texts.
    assert in_scope_score(outside, "max_probability", None)[:90].max() < detector.threshold
    assert detector.threshold < in_scope_score(inside, "max_probability", None).min()


def test_by_default_examples_choose_the_score_but_the_in_scope_share_sets_the_floor():
    # A precision target would depend on how common out-of-scope texts are in validation;
    # the share of in-scope texts kept does not.
    rng = np.random.default_rng(3)
    inside = rng.normal(size=(300, 3)) * 3
    outside = rng.normal(size=(10, 3)) * 0.5
    evidence = Evidence.of(inside, inside.argmax(-1), outside, None)
    detector = calibrate(evidence, LABELS, None, in_scope_recall=0.9)
    kept = in_scope_score(inside, detector.score, None) >= detector.threshold
    assert kept.mean() == pytest.approx(0.9, abs=0.01)
    assert "validation out-of-scope recall" in detector.chosen_by


def test_auto_takes_the_score_that_separates_better():
    # Out-of-scope rows have the same top-two gap as in-scope ones but small logits overall:
    # max-probability cannot tell them apart, energy can.
    inside = np.tile([[6.0, 4.0, 0.0]], (50, 1))
    outside = np.tile([[2.0, 0.0, -4.0]], (50, 1))
    evidence = Evidence.of(inside, np.zeros(50), outside, None)
    assert calibrate(evidence, LABELS, None).score == "energy"


def test_a_trained_class_flags_by_itself_and_counts_its_rows_as_out_of_scope():
    labels = [*LABELS, "oos"]
    logits = _logits([(0, 5.0), (1, 5.0), (3, 5.0), (3, 5.0), (2, 5.0)], labels=4)
    gold = np.array([0, 1, 3, 3, 3])  # the last is out of scope but predicted in scope
    evidence = Evidence.of(logits, gold, None, oos_index=3)
    assert evidence.outside.tolist() == [False, False, True, True, True]
    detector = Detector("max_probability", -np.inf, "oos", "the trained class alone")
    measured = metrics(evidence, detector, labels)
    assert measured["out_of_scope_precision"] == 1.0
    assert measured["out_of_scope_recall"] == pytest.approx(2 / 3)
    assert measured["in_scope_accuracy"] == 1.0


def test_a_flagged_in_scope_text_counts_against_in_scope_accuracy():
    logits = _logits([(0, 6.0), (1, 0.1)])
    evidence = Evidence.of(logits, np.array([0, 1]), None, None)
    detector = Detector("max_probability", 0.5, None, "")
    measured = metrics(evidence, detector, LABELS)
    assert measured["in_scope_accuracy"] == 0.5 and measured["in_scope_flagged"] == 0.5


def test_detector_round_trips_through_its_manifest_form():
    for detector in (
        Detector("energy", 1.25, "oos", "x"),
        Detector("max_probability", -np.inf, None, "y"),
    ):
        record = detector.to_dict()
        assert Detector.from_dict(record) == detector
        assert record["threshold"] is None or isinstance(record["threshold"], float)


def test_measure_reports_every_split_and_the_model_without_detection():
    rng = np.random.default_rng(2)
    settings = SimpleNamespace(
        label="oos", score="auto", target_precision=0.8, in_scope_recall=0.95
    )
    logits = {split: _logits([(i % 3, 5.0) for i in range(30)]) for split in ("validation", "test")}
    gold = {split: np.arange(30) % 3 for split in logits}
    unseen = {split: rng.normal(size=(10, 3)) * 0.1 for split in logits}
    report = measure(settings, LABELS, logits, gold, unseen)
    assert report["test"]["out_of_scope_recall"] == 1.0
    assert report["without_detection"]["test"]["out_of_scope_recall"] == 0.0
    assert report["test"]["out_of_scope_examples"] == 10
    assert "out of scope when" in describe(report)


def test_the_data_turns_detection_on_when_it_says_some_texts_are_none_of_the_intents():
    import pyarrow as pa

    from fulcrum.recipe import validate_recipe
    from fulcrum.train.settle import choose_out_of_scope

    recipe = validate_recipe({"name": "x", "data": {"path": "d.csv"}})
    plain = SimpleNamespace(label_names=LABELS, unseen={})
    assert choose_out_of_scope(recipe, plain) is None
    trained = SimpleNamespace(label_names=[*LABELS, "oos"], unseen={})
    assert "an 'oos' label" in choose_out_of_scope(recipe, trained).reason
    unseen = SimpleNamespace(label_names=LABELS, unseen={"test": pa.table({"text": ["a", "b"]})})
    choice = choose_out_of_scope(recipe, unseen)
    assert (choice.key, choice.value) == ("out_of_scope", {})
    assert choice.describe() == "out_of_scope on (2 test rows have labels training never saw)"
    # Written in the recipe, it is the recipe's; and a tagger has no such thing.
    written = validate_recipe({"name": "x", "data": {"path": "d.csv"}, "out_of_scope": {}})
    assert choose_out_of_scope(written, unseen) is None
