"""Continual learning's logic: the label order, replay drawn per label, the grown head, and
the promotion gate's verdicts."""

import pyarrow as pa
import pytest
import torch

from fulcrum.continual import NEW_ROW_NOISE, ParentOnNewLabels, gate, grow, refusal
from fulcrum.data.continued import extended_labels, replayed_rows
from fulcrum.diagnosis import blocking


def test_the_parents_labels_keep_their_ids_and_new_ones_follow_in_data_order():
    assert extended_labels(["car", "apple", "tax"], ["apple", "sport", "tax", "art"]) == [
        "car", "apple", "tax", "sport", "art",
    ]  # fmt: skip
    assert extended_labels(["a", "b"], ["b"]) == ["a", "b"]


def test_replay_draws_its_share_of_every_label_seeded():
    table = pa.table({"text": [f"t{i}" for i in range(100)], "label": [0] * 90 + [1] * 10})
    replayed = replayed_rows(table, 0.2, seed=1)
    labels = replayed.column("label").to_pylist()
    assert (labels.count(0), labels.count(1)) == (18, 2)  # the rare label keeps its share
    assert replayed.equals(replayed_rows(table, 0.2, seed=1))
    assert replayed_rows(table, 0.0, seed=1).num_rows == 0
    tiny = pa.table({"text": ["x", "y"], "label": [0, 1]})
    assert replayed_rows(tiny, 0.1, seed=0).num_rows == 2  # one of each at least


def test_replay_of_tagged_sentences_draws_by_their_tags():
    table = pa.table({"tokens": [["a"]] * 10, "label": [[0, 1]] * 5 + [[0, 0]] * 5})
    assert replayed_rows(table, 0.4, seed=0).num_rows == 4


def test_a_grown_head_keeps_the_old_rows_and_starts_new_ones_near_their_mean():
    torch.manual_seed(0)
    weight, bias, hidden = torch.randn(3, 8), torch.randn(3), torch.randn(8, 8)
    grown = grow(weight, 3, 5, seed=0)
    assert grown.shape == (5, 8) and torch.equal(grown[:3], weight)
    spread = weight.std(dim=0)
    assert torch.all((grown[3:] - weight.mean(dim=0)).abs() <= 5 * NEW_ROW_NOISE * spread)
    assert not torch.equal(grown[3], grown[4]), "two new labels must be able to part"
    assert torch.equal(grow(bias, 3, 5, seed=1)[:3], bias)
    assert grow(hidden, 3, 5, seed=2) is hidden  # no label axis: a hidden layer
    assert grow(weight, 3, 3, seed=0) is weight


def test_the_parent_never_predicts_a_label_it_did_not_know():
    class Model:
        def __call__(self, **inputs):
            from types import SimpleNamespace

            return SimpleNamespace(logits=torch.tensor([[1.0, 2.0], [-50.0, -60.0]]))

    logits = ParentOnNewLabels(Model(), 2)().logits
    assert logits.shape == (2, 4)
    assert logits.argmax(dim=-1).tolist() == [1, 0]


OLD = {"parent": {"macro_f1": 0.90}, "continued": {"macro_f1": 0.89}}
NEW = {"parent": {"macro_f1": 0.40}, "continued": {"macro_f1": 0.85}}


def test_the_gate_passes_a_model_that_gained_and_kept_what_it_knew():
    verdict = gate("macro_f1", OLD, NEW, max_old_drop=2.0)
    assert verdict["passed"] and verdict["reasons"] == []
    assert verdict["old_drop_points"] == pytest.approx(1.0)
    assert verdict["new_gain_points"] == pytest.approx(45.0)


def test_the_gate_refuses_forgetting_and_no_gain_with_both_reasons():
    forgot = {"parent": {"macro_f1": 0.90}, "continued": {"macro_f1": 0.80}}
    flat = {"parent": {"macro_f1": 0.85}, "continued": {"macro_f1": 0.85}}
    verdict = gate("macro_f1", forgot, flat, max_old_drop=2.0)
    assert not verdict["passed"]
    assert "fell 10.0 points" in verdict["reasons"][0]
    assert "gained nothing" in verdict["reasons"][1]
    finding = refusal(verdict)
    assert blocking([finding]) == [finding] and finding["text"].startswith("promotion gate: ")


def test_the_gate_averages_macro_f1_over_the_labels_a_split_holds():
    from fulcrum.continual import over_split_labels

    metrics = {"accuracy": 0.9, "macro_f1": 0.45}  # two old labels and two new, at F1 0
    per_label = [
        {"label": "old1", "f1": 0.9, "support": 10},
        {"label": "old2", "f1": 0.8, "support": 10},
        {"label": "new1", "f1": 0.0, "support": 0},
        {"label": "new2", "f1": 0.1, "support": 0},
    ]
    assert over_split_labels(metrics, per_label, "macro_f1") == {
        "accuracy": 0.9,
        "macro_f1": pytest.approx(0.85),
    }
    assert over_split_labels(metrics, per_label, "accuracy") is metrics
