"""The train stage across DeepSpeed ZeRO stages, PEFT methods and tasks, on a tiny BERT."""

import csv

import pytest

from fulcrum.artifacts import open_artifact
from fulcrum.train.stage import train

from ..conftest import write_keyword_csv

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("stage", [0, 2, 3])
def test_saved_artifact_reproduces_in_memory_metrics_under_every_zero_stage(
    ray_cluster, tiny_recipe_factory, tmp_path, stage
):
    """ZeRO-3 partitions parameters: tools that save without gathering them write empty
    adapters. The artifact's merged weights must score exactly what the workers measured."""
    recipe = tiny_recipe_factory(
        tmp_path, train={"zero_stage": stage, "epochs": 2}, peft={"method": "lora"}
    )
    metrics = open_artifact(train(recipe), kind="train").metrics
    assert metrics["validation"] == metrics["training_validation"]
    assert metrics["validation"]["examples"] == 18


def test_step_logs_tensorboard_and_plot_are_in_the_artifact(
    ray_cluster, tiny_recipe_factory, tmp_path
):
    recipe = tiny_recipe_factory(
        tmp_path,
        train={
            "epochs": 2,
            "log_every_steps": 2,
            "gradient_accumulation_steps": 2,
            "batch_size": 4,
            "scheduler": "cosine",
        },
        peft={"method": "head_only"},
    )
    artifact = open_artifact(train(recipe), kind="train")
    with open(artifact.file("logs/steps.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    # 42 rows per rank, micro-batches of 4 -> 11, two per step -> 5 steps per epoch.
    assert [int(row["step"]) for row in rows] == [2, 4, 5, 6, 8, 10]
    for row in rows:
        assert float(row["samples_per_s"]) > 0 and float(row["tokens_per_s"]) > float(
            row["samples_per_s"]
        )
        assert float(row["peak_rss_mb_rank0"]) > 100 and float(row["peak_rss_mb_rank1"]) > 100
    assert float(rows[-1]["lr"]) < float(rows[1]["lr"])  # decayed
    events = [
        name
        for name in artifact.manifest["files"]
        if name.startswith("logs/tensorboard/events.out.tfevents")
    ]
    assert events, artifact.manifest["files"]
    assert artifact.file("learning_curve.png").stat().st_size > 10_000
    assert artifact.manifest["deepspeed"]["gradient_accumulation_steps"] == 2
    assert artifact.metrics["parameters"]["trainable"] == 32 * 3 + 3


def test_token_classification_trains_and_scores_entities(
    ray_cluster, tiny_recipe_factory, tmp_path
):
    lines = []
    for index in range(60):
        lines += [
            f"Alice{index % 7} B-PER",
            "met O",
            f"Bob{index % 5} B-PER",
            "in O",
            "Oslo B-LOC",
            "",
        ]
    data = tmp_path / "ner.conll"
    data.write_text("\n".join(lines) + "\n")
    recipe = tiny_recipe_factory(
        tmp_path,
        task={"type": "token_classification"},
        data={"path": str(data), "format": "conll"},
        train={"epochs": 2},
        peft={"method": "lora"},
    )
    artifact = open_artifact(train(recipe), kind="train")
    assert artifact.labels == ["O", "B-LOC", "B-PER"]
    metrics = artifact.metrics
    assert metrics["metric"] == "f1"
    assert set(metrics["validation"]["per_type"]) == {"LOC", "PER"}
    assert metrics["validation"]["entities"] == 9 * 3
    assert metrics["validation"]["f1"] == metrics["training_validation"]["f1"]
    assert artifact.manifest["task"] == "token_classification"


@pytest.mark.parametrize("method", ["adalora", "ia3", "prefix", "full"])
def test_every_method_trains_end_to_end(ray_cluster, tiny_recipe_factory, tmp_path, method):
    recipe = tiny_recipe_factory(
        tmp_path, peft={"method": method, "r": 2}, train={"epochs": 2, "zero_stage": 2}
    )
    artifact = open_artifact(train(recipe), kind="train")
    assert artifact.manifest["method"] == method
    assert artifact.metrics["validation"] == artifact.metrics["training_validation"]
    history = artifact.metrics["history"]
    assert len(history) == 2 and all(
        entry["train_loss"] == entry["train_loss"] for entry in history
    )  # no NaN


def test_bad_method_for_model_fails_before_workers_start(
    ray_cluster, tiny_recipe_factory, tmp_path
):
    from fulcrum.errors import ModelError

    recipe = tiny_recipe_factory(tmp_path, peft={"target_modules": ["q_proj"]})
    with pytest.raises(
        ModelError, match="peft.method lora cannot wrap BertForSequenceClassification"
    ):
        train(recipe)
    assert not (tmp_path / "tiny").exists()


def test_keyword_csv_fixture_is_deterministic(tmp_path):
    first = write_keyword_csv(tmp_path / "a.csv").read_text()
    assert first == write_keyword_csv(tmp_path / "b.csv").read_text()
