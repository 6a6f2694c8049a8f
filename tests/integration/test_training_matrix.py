"""The train stage across DeepSpeed ZeRO stages, PEFT methods and tasks, on a tiny BERT."""

import csv
import json

import pytest

from fulcrum.artifacts import open_artifact
from fulcrum.train.stage import train

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("stage", "method"), [(0, "ia3"), (2, "adalora"), (3, "lora"), (2, "prefix"), (2, "full")]
)
def test_saved_artifact_reproduces_in_memory_metrics(
    ray_cluster, tiny_recipe_factory, tmp_path, stage, method
):
    """ZeRO-3 partitions parameters: tools that save without gathering them write empty
    adapters. Under every stage, and for every method, the artifact's weights as saved must
    score exactly what the workers measured in memory (LoRA under ZeRO-2 is covered by
    test_pipeline.py). Only ZeRO-3 splits the weights themselves across ranks, so only its
    run needs two; the others train on one, which saves a process and its start."""
    workers = 2 if stage == 3 else 1
    recipe = tiny_recipe_factory(
        tmp_path,
        train={"zero_stage": stage, "epochs": 2, "workers": workers},
        peft={"method": method, "r": 2},
    )
    artifact = open_artifact(train(recipe), kind="train")
    metrics = artifact.metrics
    assert artifact.manifest.method == method
    assert artifact.manifest.deepspeed["zero_optimization"]["stage"] == stage
    assert metrics["validation"] == metrics["training_validation"]
    assert metrics["validation"]["examples"] == 18
    losses = [entry["train_loss"] for entry in metrics["history"]]
    assert len(losses) == 2 and all(loss == loss for loss in losses)  # two epochs, no NaN


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
    # The per-label report and the confusion matrix come with every training artifact.
    test = artifact.metrics["test"]
    report = {row["label"]: row for row in artifact.metrics["per_label"]["test"]}
    assert set(report) == {"apple", "car", "tax"}
    assert sum(row["support"] for row in report.values()) == test["examples"] == 18
    confusion = json.loads(artifact.file("confusion.json").read_text())
    assert confusion["labels"] == artifact.labels
    assert sum(map(sum, confusion["test"])) == 18
    assert sum(confusion["test"][i][i] for i in range(3)) == round(test["accuracy"] * 18)
    assert artifact.file("confusion_matrix.png").stat().st_size > 5_000
    with open(artifact.file("per_label.csv"), newline="") as handle:
        assert [row["label"] for row in csv.DictReader(handle)] == ["apple", "car", "tax"]
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
        for name in artifact.manifest.files
        if name.startswith("logs/tensorboard/events.out.tfevents")
    ]
    assert events, artifact.manifest.files
    assert artifact.file("learning_curve.png").stat().st_size > 10_000
    assert artifact.manifest.deepspeed["gradient_accumulation_steps"] == 2
    assert artifact.metrics["parameters"]["trainable"] == 32 * 3 + 3


def test_token_classification_trains_scores_entities_and_compresses(ner_trained):
    recipe, artifact = ner_trained
    assert artifact.labels == ["O", "B-LOC", "B-PER", "I-PER"]
    metrics = artifact.metrics
    assert metrics["metric"] == "f1"
    assert set(metrics["validation"]["per_type"]) == {"LOC", "PER"}
    assert metrics["validation"]["entities"] == 9 * 3
    assert metrics["validation"]["f1"] == metrics["training_validation"]["f1"]
    assert artifact.manifest.task == "token_classification"

    # Compressed for token labels too: per-token logits, gated on entity F1.
    from fulcrum.compress.stage import compress
    from fulcrum.recipe import validate_recipe

    recipe = validate_recipe(
        {**recipe.to_dict(), "compress": {"variants": ["fp32", "dynamic_int8"], "latency_texts": 8}}
    )
    compressed = open_artifact(compress(recipe, artifact.path), kind="compress")
    for name in ("fp32", "dynamic-int8"):
        gate = open_artifact(compressed.path / "variants" / name, kind="export").metrics["gate"]
        assert gate["validation"]["metric"] == "f1"
        assert gate["validation"]["parent_metrics"]["f1"] == pytest.approx(
            metrics["validation"]["f1"]
        )
        assert gate["validation"]["metrics"]["entities"] == 9 * 3
    fp32 = open_artifact(compressed.path / "variants" / "fp32").metrics["gate"]["test"]
    assert fp32["max_abs_logit_diff"] < 1e-4 and fp32["metrics"] == fp32["parent_metrics"]


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


def test_a_run_that_cannot_learn_says_so_and_is_neither_exported_nor_served_unless_forced(
    ray_cluster, tiny_recipe_factory, tmp_path, capsys
):
    """Deliberately broken (lr 1e-6): the run warns at its evaluation, with what to try, the
    artifact records the warning, `fulcrum run` stops before export, and a forced export
    carries the warning to Serve, which refuses it unless forced too."""
    from fulcrum.errors import ArtifactError, TrainingError
    from fulcrum.pipeline import run_stages
    from fulcrum.serve import launch
    from fulcrum.serve.config import AppArgs

    recipe = tiny_recipe_factory(
        tmp_path, train={"lr": 1e-6, "epochs": 1, "class_weights": "balanced"}
    )
    artifact = open_artifact(train(recipe), kind="train")
    said = capsys.readouterr().err
    assert "warning: epoch 1 step 6: the model has not learned" in said  # 42 rows a rank / 8
    assert "try: raise train.lr (now 1e-06; lora's default is 0.001)" in said
    (warning,) = [item for item in artifact.manifest.warnings if item["blocking"]]
    assert warning["kind"] == "not_learned" and warning["try"][0].startswith("raise train.lr")
    assert artifact.metrics["class_weights"] == {"apple": 1.0, "car": 1.0, "tax": 1.0}

    with pytest.raises(TrainingError, match="not exported or served: the model has not learned"):
        run_stages(recipe)
    assert not (tmp_path / "tiny" / "export").exists()
    forced = run_stages(recipe, force=True)
    assert forced.actions["train"] == "skipped"  # the same recipe: trained once
    arguments = AppArgs.serving({"tiny": forced.served}, recipe.serve)
    with pytest.raises(ArtifactError, match="not served: the model has not learned"):
        launch.check_deployable(arguments)
    launch.check_deployable(AppArgs.serving({"tiny": forced.served}, recipe.serve, force=True))
