import numpy as np
import pytest

from fulcrum.metrics import classification_metrics, confusion_matrix, metrics_from_predictions


def test_confusion_matrix_rows_are_truth():
    matrix = confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 1]), 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]


def test_accuracy_and_macro_f1_match_hand_computation():
    metrics = metrics_from_predictions([0, 0, 1, 2], [0, 1, 1, 1], 3)
    # F1: class0 = 2*1/(1+2) = 0.667, class1 = 2*1/(3+1) = 0.5, class2 = 0
    assert metrics["accuracy"] == pytest.approx(0.5)
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 0.5 + 0.0) / 3)
    assert metrics["examples"] == 4


def test_summed_shard_matrices_equal_global_metrics():
    rng = np.random.default_rng(0)
    labels, predictions = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    shards = [confusion_matrix(labels[i::3], predictions[i::3], 4) for i in range(3)]
    assert classification_metrics(sum(shards)) == metrics_from_predictions(labels, predictions, 4)


def test_labels_absent_from_data_and_predictions_do_not_dilute_macro_f1():
    assert metrics_from_predictions([0, 1], [0, 1], 5)["macro_f1"] == pytest.approx(1.0)


def test_empty_confusion_matrix():
    assert classification_metrics(np.zeros((3, 3))) == {
        "accuracy": 0.0,
        "macro_f1": 0.0,
        "examples": 0,
    }


from fulcrum.metrics import bio_spans, entity_counts, entity_metrics, entity_types  # noqa: E402


def test_bio_spans_follow_conlleval():
    tags = ["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC", "B-PER", "I-ORG"]
    assert bio_spans(tags) == [
        ("PER", 0, 2),
        ("LOC", 3, 5),
        ("LOC", 5, 6),
        ("PER", 6, 7),
        ("ORG", 7, 8),
    ]
    assert bio_spans(["O", "O"]) == []


def test_entity_metrics_need_exact_type_and_boundaries():
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    predicted = [["B-PER", "O", "O", "B-LOC"]]  # PER boundary wrong, LOC right
    types = entity_types(["O", "B-LOC", "B-PER", "I-PER"])
    metrics = entity_metrics(entity_counts(gold, predicted, types), types)
    assert (metrics["precision"], metrics["recall"], metrics["f1"]) == (0.5, 0.5, 0.5)
    assert metrics["per_type"]["LOC"]["f1"] == 1.0 and metrics["per_type"]["PER"]["f1"] == 0.0
    assert metrics["token_accuracy"] == 0.75 and metrics["entities"] == 2
