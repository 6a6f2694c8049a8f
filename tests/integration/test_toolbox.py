"""The resource-efficiency toolbox through the real train stage on a tiny BERT:
regularisation, adversarial training, augmentation (a Ray Data stage), early stopping and
distillation (teacher logits by Ray Data batch inference, stored as Parquet)."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from fulcrum.artifacts import open_artifact
from fulcrum.train.stage import train

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def regularised_teacher(ray_cluster, tiny_recipe_factory, tmp_path_factory):
    """One run with everything on: prefix tuning (frozen embeddings) under PGD, label
    smoothing, L1, dropout overrides, augmentation x2, and early stopping that cannot be
    satisfied (min_delta 1.0) so it must stop after patience + 1 evaluations."""
    output = tmp_path_factory.mktemp("toolbox")
    recipe = tiny_recipe_factory(
        output,
        name="teacher",
        model={"hidden_dropout": 0.2, "attention_dropout": 0.15, "classifier_dropout": 0.3},
        peft={"method": "prefix", "num_virtual_tokens": 4},
        train={
            "epochs": 5,
            "zero_stage": 2,
            "label_smoothing": 0.1,
            "l1": 1e-6,
            "early_stopping_patience": 1,
            "early_stopping_min_delta": 1.0,
            "adversarial": {"method": "pgd", "epsilon": 0.5, "steps": 2, "step_size": 0.3},
        },
        augment={"multiplier": 2, "operations": ["swap", "delete", "typo", "synonym"]},
    )
    return recipe, open_artifact(train(recipe), kind="train")


def test_everything_on_trains_stops_early_and_saves_what_it_measured(regularised_teacher):
    recipe, artifact = regularised_teacher
    metrics = artifact.metrics
    # 120 rows, 15% validation, 15% test -> 84 training rows, doubled by augmentation.
    assert metrics["training_rows"] == 2 * 84
    history = metrics["history"]
    assert len(history) == 2, "patience 1 with an unreachable min_delta stops at evaluation 2"
    assert metrics["stopped_early"] == {"step": history[-1]["step"], "epoch": 2}
    best = max(history, key=lambda record: (record["val_macro_f1"], record["step"]))
    assert metrics["best_step"] == best["step"]
    assert metrics["validation"] == metrics["training_validation"]
    config = json.loads(artifact.file("merged/config.json").read_text())
    assert config["hidden_dropout_prob"] == 0.2
    assert config["attention_probs_dropout_prob"] == 0.15
    assert config["classifier_dropout"] == 0.3
    assert all(np.isfinite(record["train_loss"]) for record in history)


def test_distilled_student_has_its_teacher_logits_and_lineage(
    regularised_teacher, tiny_recipe_factory
):
    teacher_recipe, teacher = regularised_teacher
    output = teacher.path.parent.parent
    recipe = tiny_recipe_factory(
        output,
        name="student",
        model={"num_layers": 1},
        peft={"method": "full"},
        train={"epochs": 2, "zero_stage": 0, "workers": 1},  # distillation is per rank
        distill={"teacher": str(teacher.path), "alpha": 0.3, "temperature": 2.0},
    )
    student = open_artifact(train(recipe), kind="train")
    assert student.manifest.parent.path == str(teacher.path)
    assert json.loads(student.file("merged/config.json").read_text())["num_hidden_layers"] == 1
    assert student.manifest.model_overrides == {"num_hidden_layers": 1}
    assert student.metrics["validation"] == student.metrics["training_validation"]

    # The cached logits are the teacher's own, row for row.
    (cached,) = (output / "student" / "data").glob("teacher-logits-*.parquet")
    table = pq.read_table(cached)
    assert table.num_rows == 84
    from fulcrum.models.classifier import load_tokenizer
    from fulcrum.tasks import SEQUENCE_CLASSIFICATION
    from fulcrum.train.merge import load_merged

    model = load_merged(teacher.path, "sequence_classification")
    collate = SEQUENCE_CLASSIFICATION.make_collate(
        load_tokenizer(teacher.path / "tokenizer"), teacher_recipe.model.max_length
    )
    rows = table.slice(0, 5).to_pydict()
    inputs = collate({"text": rows["text"]})
    with torch.no_grad():
        expected = model(**inputs).logits.numpy()
    np.testing.assert_allclose(np.array(rows["teacher_logits"]), expected, atol=1e-5)


def test_ner_student_distils_token_logits_with_mention_augmentation(
    ner_trained, tiny_recipe_factory, tmp_path
):
    teacher_recipe, teacher = ner_trained
    common = {"task": teacher_recipe.task.model_dump(), "data": teacher_recipe.data.model_dump()}
    student = open_artifact(
        train(
            tiny_recipe_factory(
                tmp_path,
                name="ner-student",
                model={"num_layers": 1},
                peft={"method": "lora"},
                train={
                    "epochs": 1,
                    "workers": 1,
                    "adversarial": {"method": "fgm", "epsilon": 0.5},
                },
                augment={"multiplier": 3, "operations": ["mention", "typo"]},
                distill={"teacher": str(teacher.path)},
                **common,
            )
        ),
        kind="train",
    )
    assert student.metrics["training_rows"] == 3 * 42
    assert student.metrics["validation"]["f1"] == student.metrics["training_validation"]["f1"]
    (cached,) = (tmp_path / "ner-student" / "data").glob("teacher-logits-*.parquet")
    table = pq.read_table(cached)
    # One row of logits per word, over the 4 tags, for every (augmented) sentence.
    for words, logits in zip(
        table.column("tokens").to_pylist(), table.column("teacher_logits").to_pylist(), strict=True
    ):
        assert len(logits) == len(words) and {len(row) for row in logits} == {4}
    # Mention replacement kept every tag sequence valid BIO over the same tag set.
    labels = table.column("label").to_pylist()
    assert {tag for row in labels for tag in row} <= set(range(4))
