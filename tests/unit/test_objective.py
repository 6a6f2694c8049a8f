"""The training objective's terms, against their definitions."""

import math

import pytest
import torch
import torch.nn.functional as F

from fulcrum.errors import RecipeError
from fulcrum.tasks import IGNORE_INDEX
from fulcrum.train.objective import (
    Objective,
    adalora_orthogonality,
    class_weight_vector,
    distillation_kl,
)


def test_label_smoothing_is_cross_entropy_against_smoothed_targets():
    torch.manual_seed(0)
    logits, labels = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    loss = Objective(label_smoothing=0.2).task_loss(logits, labels)
    targets = torch.full((6, 4), 0.2 / 4)
    targets[torch.arange(6), labels] += 0.8
    expected = -(targets * F.log_softmax(logits, -1)).sum(-1).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_token_loss_skips_ignored_positions():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 3)
    labels = torch.tensor([[IGNORE_INDEX, 0, 1, IGNORE_INDEX, 2], [IGNORE_INDEX, 2, 2, 1, 0]])
    kept = labels != IGNORE_INDEX
    expected = F.cross_entropy(logits[kept], labels[kept])
    assert Objective().task_loss(logits, labels).item() == pytest.approx(expected.item())


def test_distillation_kl_is_zero_for_the_teacher_itself_and_scales_with_t_squared():
    torch.manual_seed(0)
    teacher = torch.randn(8, 5)
    assert distillation_kl(teacher, teacher, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    student = torch.randn(8, 5)
    at_1 = distillation_kl(student * 3, teacher * 3, 3.0)  # same soft targets as T=1 ...
    plain = F.kl_div(F.log_softmax(student, -1), F.softmax(teacher, -1), reduction="batchmean")
    assert at_1.item() == pytest.approx(9 * plain.item(), rel=1e-5)  # ... times T²


def test_distillation_mixes_hard_and_soft_losses_by_alpha():
    torch.manual_seed(1)
    student, teacher = torch.randn(4, 3), torch.randn(4, 3)
    labels = torch.tensor([0, 2, 1, 1])
    hard = F.cross_entropy(student, labels)
    soft = distillation_kl(student, teacher, 2.0)
    loss = Objective(distill_alpha=0.3, temperature=2.0).task_loss(student, labels, teacher)
    assert loss.item() == pytest.approx(0.3 * hard.item() + 0.7 * soft.item(), rel=1e-6)
    only_hard = Objective(distill_alpha=1.0).task_loss(student, labels, teacher)
    assert only_hard.item() == pytest.approx(hard.item())


def test_a_parent_that_knows_fewer_labels_distils_over_its_own_only():
    torch.manual_seed(3)
    student, parent = torch.randn(5, 4), torch.randn(5, 3)  # the 4th label is new
    labels = torch.tensor([0, 3, 1, 3, 2])
    loss = Objective(distill_alpha=0.4, temperature=2.0).task_loss(student, labels, parent)
    hard = F.cross_entropy(student, labels)
    soft = distillation_kl(student[:, :3], parent, 2.0)
    assert loss.item() == pytest.approx(0.4 * hard.item() + 0.6 * soft.item(), rel=1e-6)


def test_continual_distill_weighs_the_parents_term():
    from fulcrum.recipe import validate_recipe

    recipe = validate_recipe(
        {"name": "x", "data": {"path": "x.csv"}, "continual": {"parent": "p", "distill": 0.3}}
    )
    objective = Objective.from_recipe(recipe)
    assert objective.distill_alpha == pytest.approx(0.7) and objective.temperature == 2.0
    plain = validate_recipe({"name": "x", "data": {"path": "x.csv"}, "continual": {"parent": "p"}})
    assert Objective.from_recipe(plain).distill_alpha is None


def test_positions_the_teacher_never_saw_get_no_soft_target():
    torch.manual_seed(2)
    student = torch.randn(1, 3, 2)
    teacher = torch.randn(1, 3, 2)
    teacher[0, 2] = math.nan
    labels = torch.tensor([[0, 1, 1]])
    loss = Objective(distill_alpha=0.0).task_loss(student, labels, teacher)
    expected = distillation_kl(student[0, :2], teacher[0, :2], 1.0)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_l1_penalty_sums_absolute_trainable_weights():
    layer = torch.nn.Linear(3, 2)
    frozen = torch.nn.Linear(3, 2).requires_grad_(False)
    model = torch.nn.Sequential(layer, frozen)
    expected = 0.01 * (layer.weight.abs().sum() + layer.bias.abs().sum())
    assert Objective(l1=0.01).penalties(model).item() == pytest.approx(expected.item())
    assert Objective().penalties(model) == 0.0


def test_adalora_orthogonality_matches_what_peft_adds_to_its_own_loss(tiny_bert_dir):
    from fulcrum.models.methods import build_trainable_model
    from fulcrum.recipe import PeftSection
    from fulcrum.tasks import SEQUENCE_CLASSIFICATION

    torch.manual_seed(0)
    model = build_trainable_model(
        tiny_bert_dir,
        ["a", "b"],
        PeftSection(method="adalora", r=2, adalora_init_r=3),
        SEQUENCE_CLASSIFICATION,
        100,
    )
    with torch.no_grad():  # away from the initial orthogonality so the penalty is not ~0
        for name, parameter in model.named_parameters():
            if "lora_A" in name or "lora_B" in name:
                parameter.normal_()
    inputs = {"input_ids": torch.tensor([[101, 2000, 2001, 102]]), "labels": torch.tensor([1])}
    model.eval()
    outputs = model(**inputs)
    plain = F.cross_entropy(outputs.logits, inputs["labels"])
    weight = model.peft_config["default"].orth_reg_weight
    penalty = adalora_orthogonality(model)
    assert penalty.item() > 0.1
    assert (outputs.loss - plain).item() == pytest.approx(weight * penalty.item(), rel=1e-5)


# --------------------------------------------------------------------------- class weights


def test_class_weights_scale_each_rows_loss_and_average_over_the_weights():
    torch.manual_seed(3)
    logits, labels = torch.randn(5, 3), torch.tensor([0, 0, 0, 1, 2])
    weights = (0.5, 2.0, 4.0)
    per_row = F.cross_entropy(logits, labels, reduction="none")
    row_weights = torch.tensor(weights)[labels]
    expected = (row_weights * per_row).sum() / row_weights.sum()
    loss = Objective(class_weights=weights).task_loss(logits, labels)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_upweighting_a_label_makes_its_mistakes_cost_more():
    logits = torch.tensor([[2.0, 0.0], [2.0, 0.0]])  # both rows predict label 0
    labels = torch.tensor([0, 1])  # the second is wrong
    plain = Objective().task_loss(logits, labels)
    rare_counts = Objective(class_weights=(1.0, 5.0)).task_loss(logits, labels)
    assert rare_counts.item() > plain.item()
    # Equal weights of any scale leave the loss as it was.
    same = Objective(class_weights=(3.0, 3.0)).task_loss(logits, labels)
    assert same.item() == pytest.approx(plain.item(), rel=1e-6)


def test_token_class_weights_skip_ignored_positions():
    torch.manual_seed(4)
    logits = torch.randn(1, 4, 3)
    labels = torch.tensor([[IGNORE_INDEX, 2, 0, 2]])
    kept = labels != IGNORE_INDEX
    weights = torch.tensor([1.0, 1.0, 3.0])
    expected = F.cross_entropy(logits[kept], labels[kept], weight=weights)
    loss = Objective(class_weights=(1.0, 1.0, 3.0)).task_loss(logits, labels)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_balanced_weights_make_every_label_weigh_the_same_in_total():
    labels = [0] * 6 + [1] * 3 + [2] * 1
    weights = class_weight_vector("balanced", labels, ["a", "b", "c"])
    assert weights == pytest.approx([10 / 18, 10 / 9, 10 / 3])
    totals = [weights[label] * labels.count(label) for label in range(3)]
    assert totals == pytest.approx([totals[0]] * 3)
    # A declared label the training split never holds weighs 1.
    assert class_weight_vector("balanced", [0, 0, 1], ["a", "b", "c"])[2] == 1.0


def test_explicit_weights_name_labels_and_unnamed_ones_weigh_one():
    assert class_weight_vector({"c": 2.5}, [0, 1], ["a", "b", "c"]) == [1.0, 1.0, 2.5]
    assert class_weight_vector(None, [0, 1], ["a", "b"]) is None
    assert class_weight_vector("none", [0, 1], ["a", "b"]) is None
    with pytest.raises(RecipeError, match=r"train.class_weights.z: no such label \(labels: a, b\)"):
        class_weight_vector({"z": 2.0}, [0, 1], ["a", "b"])


def test_the_class_weights_line_stays_short_for_many_labels():
    from fulcrum.train.stage import _weights

    assert _weights(["a", "b"], [1.0, 2.0]) == "a 1, b 2"
    many = [f"intent{i}" for i in range(150)]
    assert _weights(many, [1.0] * 150) == "1 for each of the 150 labels (they are balanced)"
    line = _weights(many, [0.5 + i / 100 for i in range(150)])
    assert line.startswith("0.5 to 1.99 over 150 labels") and "intent149 1.99" in line
    assert line.count("intent") == 6
