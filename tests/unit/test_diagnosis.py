"""Whether a model has learned, from its validation counts; and what to try when not."""

import numpy as np

from fulcrum.diagnosis import advice, blocking, entity_findings, sequence_findings
from fulcrum.metrics import confusion_matrix
from fulcrum.recipe import validate_recipe

NAMES = ["bearish", "bullish", "neutral"]
# A skewed validation set: 65% neutral, as in many market-opinion sets.
GOLD = np.array([2] * 65 + [1] * 25 + [0] * 10)


def findings_for(predicted):
    return sequence_findings(confusion_matrix(GOLD, np.asarray(predicted), 3), NAMES)


def test_a_model_that_answers_one_label_has_not_learned_and_the_label_is_named():
    (finding, unpredicted) = findings_for([2] * 100)
    assert finding.kind == "not_learned" and finding.blocking
    assert "collapsed onto 'neutral' (100% of 100 validation predictions; it is 65%" in finding.text
    assert "macro-F1 0.263 against 0.333" in finding.text
    assert not unpredicted.blocking and "2 of 3 labels are never predicted" in unpredicted.text


def test_a_model_that_learned_gets_no_findings():
    predicted = GOLD.copy()
    predicted[:10] = 1  # some mistakes on every label
    predicted[70:75] = 2
    predicted[95:97] = 2
    assert findings_for(predicted) == []


def test_macro_f1_near_trivial_is_not_learned_even_without_one_dominant_label():
    rng = np.random.default_rng(0)
    guesses = rng.choice(3, size=100, p=[0.1, 0.25, 0.65])  # guessing by the shares
    (finding,) = [item for item in findings_for(guesses) if item.blocking]
    assert finding.text == (
        "the model has not learned: predictions are no better than trivial answers; "
        "macro-F1 0.280 against 0.333 for guessing by the labels' shares"
    )


def test_a_weak_model_that_never_predicts_a_label_is_warned_but_not_blocked():
    predicted = GOLD.copy()
    predicted[GOLD == 0] = 2  # bearish never predicted, the rest right
    (finding,) = findings_for(predicted)
    assert not finding.blocking
    assert finding.text == "1 of 3 labels are never predicted on validation: bearish"


def test_entities_none_found_or_barely_any_is_not_learned():
    types = ["LOC", "PER"]
    none_found = np.array([[0, 0, 30], [0, 0, 20], [400, 500, 0]])
    (finding,) = entity_findings(none_found, types)
    assert finding.blocking and "finds no entities (every word tagged O) among 50" in finding.text
    poor = np.array([[2, 40, 30], [0, 10, 20], [300, 500, 0]])
    assert blocking([f.as_dict() for f in entity_findings(poor, types)])
    weak = np.array([[8, 30, 30], [5, 20, 20], [400, 500, 0]])  # entity F1 0.26
    (finding,) = entity_findings(weak, types)
    assert finding.kind == "weak" and not finding.blocking and "entity F1 0.260" in finding.text
    good = np.array([[25, 30, 30], [15, 18, 20], [480, 500, 0]])
    assert entity_findings(good, types) == []
    only_loc = np.array([[25, 30, 30], [0, 0, 20], [480, 500, 0]])
    (missing,) = entity_findings(only_loc, types)
    assert not missing.blocking and missing.text.endswith("never predicted on validation: PER")


def test_advice_follows_the_settings_and_the_history():
    hot = validate_recipe({"name": "a", "data": {"path": "x.csv"}, "train": {"lr": 2e-2}})
    history = [{"val_macro_f1": 0.2}, {"val_macro_f1": 0.3}]
    tips = advice(hot, history, "macro_f1")
    assert tips[0] == "lower train.lr (now 0.02; lora's default is 0.001)"
    assert "set train.class_weights: balanced" in tips
    assert any(tip.startswith("train longer") for tip in tips)
    cold = validate_recipe(
        {
            "name": "a",
            "data": {"path": "x.csv"},
            "train": {"lr": 1e-6, "class_weights": "balanced", "epochs": 3},
        }
    )
    tips = advice(cold, [{"val_macro_f1": 0.3}, {"val_macro_f1": 0.2}], "macro_f1")
    assert tips[0] == "raise train.lr (now 1e-06; lora's default is 0.001)"
    assert not any("class_weights" in tip or "longer" in tip for tip in tips)


def test_a_model_that_learned_little_is_told_so_without_being_blocked():
    predicted = GOLD.copy()
    predicted[65:80] = 2  # most bullish and nearly all bearish posts called neutral
    predicted[90:99] = 2
    predicted[0:10] = 1
    (finding,) = findings_for(predicted)
    assert finding.kind == "weak" and not finding.blocking
    assert finding.text == (
        "the model has barely learned: macro-F1 0.463 is 20% of the way from what trivial "
        "answers score (0.333) to perfect"
    )
