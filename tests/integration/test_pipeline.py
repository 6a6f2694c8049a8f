"""recipe -> Ray Train (2 workers, DeepSpeed ZeRO-2, LoRA) -> ONNX -> Ray Serve -> HTTP,
on a tiny random BERT, with the real components throughout."""

import json

import numpy as np
import pytest

from fulcrum.artifacts import open_artifact
from fulcrum.compress.export import export
from fulcrum.errors import ParityError
from fulcrum.inference import OnnxClassifier

pytestmark = pytest.mark.integration


def test_training_artifact_is_complete_and_consistent(pipeline):
    recipe, train_dir, _ = pipeline
    artifact = open_artifact(train_dir, kind="train")  # verifies every sha256
    manifest = artifact.manifest
    assert artifact.labels == ["apple", "car", "tax"]
    assert json.loads((train_dir / "labels.json").read_text())["labels"] == artifact.labels
    for name in (
        "adapter/adapter_model.safetensors",
        "adapter/adapter_config.json",
        "merged/model.safetensors",
        "learning_curve.png",
        "merged/config.json",
        "tokenizer/tokenizer.json",
        "metrics.json",
    ):
        assert name in manifest.files, name
    assert manifest.recipe_hash == recipe.hash and manifest.name == "tiny"
    assert len(manifest.data_fingerprint) == 64
    assert {"torch", "ray", "deepspeed", "peft", "transformers"} <= set(manifest.packages)
    assert manifest.split_sizes == {"train": 84, "validation": 18, "test": 18}

    metrics = artifact.metrics
    history = metrics["history"]
    # Steps: 84 rows over 2 equal shards of 42, batches of 8 -> 6 steps per epoch, with an
    # evaluation every 2 steps (train.checkpoint_every_steps).
    assert [entry["epoch"] for entry in history] == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert [entry["step"] for entry in history] == list(range(2, 19, 2))
    by_epoch = [[e["train_loss"] for e in history if e["epoch"] == n] for n in (1, 3)]
    assert sum(by_epoch[1]) < sum(by_epoch[0]), "the loss falls from the first epoch to the last"
    # The merged weights as saved reproduce what the workers measured during training.
    assert metrics["validation"]["accuracy"] == pytest.approx(
        metrics["training_validation"]["accuracy"]
    )
    assert metrics["validation"]["macro_f1"] == pytest.approx(
        metrics["training_validation"]["macro_f1"]
    )
    assert metrics["validation"]["examples"] == 18 and metrics["test"]["examples"] == 18


def test_merged_config_carries_the_label_names(pipeline):
    _, train_dir, _ = pipeline
    config = json.loads((train_dir / "merged" / "config.json").read_text())
    assert config["id2label"] == {"0": "apple", "1": "car", "2": "tax"}


def test_export_matches_pytorch_within_tolerance(pipeline):
    recipe, train_dir, export_dir = pipeline
    artifact = open_artifact(export_dir, kind="export")
    gate = artifact.metrics["gate"]
    assert set(gate) == {"validation", "test"}  # the compress stage's gate, on both splits
    for parity in gate.values():
        assert parity["examples"] == 18
        assert 0 <= parity["max_abs_logit_diff"] <= recipe.export.max_abs_logit_diff
        assert parity["prediction_agreement"] == 1.0
        assert parity["metrics"] == parity["parent_metrics"]
    assert artifact.manifest.deployable is True and artifact.manifest.variant is None
    assert artifact.manifest.parent.path == str(train_dir.resolve())
    assert artifact.manifest.onnx["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]


def test_onnx_graph_has_dynamic_batch_and_sequence(pipeline):
    _, _, export_dir = pipeline
    classifier = OnnxClassifier(export_dir)
    for texts in (["one"], ["two texts", "of different lengths, the second one longer"] * 5):
        logits = classifier.logits(texts)
        assert logits.shape == (len(texts), 3)
        assert np.isfinite(logits).all()


def test_length_grouped_batches_answer_as_each_text_alone(pipeline):
    """Texts are run in groups of similar length, each padded to its own longest: the rows
    must come back in the texts' order, and padding must not change them."""
    _, _, export_dir = pipeline
    classifier = OnnxClassifier(export_dir)
    texts = ["short", "a much longer text " * 6, "mid length text here", "x", "y " * 30]
    alone = np.concatenate([classifier.logits([text]) for text in texts])
    together = classifier.logits(texts)
    assert np.abs(together - alone).max() < 1e-6
    # The tiny model's rows differ by ~1e-4: far more than padding changes, so a row out of
    # order would fail the check above.
    gaps = [np.abs(alone[i] - alone[j]).max() for i in range(5) for j in range(i)]
    assert min(gaps) > 1e-5
    assert [p["label"] for p in classifier.predict(texts)] == [
        classifier.labels[int(row.argmax())] for row in alone
    ]


def test_export_out_of_tolerance_fails_loudly_and_keeps_the_good_artifact(
    pipeline, tiny_recipe_factory
):
    recipe, train_dir, export_dir = pipeline
    strict = tiny_recipe_factory(recipe.output_dir, export={"max_abs_logit_diff": 1e-15})
    before = (export_dir / "manifest.json").read_text()
    with pytest.raises(
        ParityError,
        match=r"ONNX export rejected: validation max \|logit difference\| .* > "
        r"export.max_abs_logit_diff 1e-15",
    ):
        export(strict, train_dir)
    assert (export_dir / "manifest.json").read_text() == before
    assert sorted(p.name for p in export_dir.parent.iterdir()) == ["export", "train"]


# --------------------------------------------------------------------------- compression


def test_every_variant_is_an_export_artifact_gated_against_its_parent(pipeline, compressed):
    _, train_dir, _ = pipeline
    recipe, compress_dir = compressed
    parent = open_artifact(train_dir, kind="train").metrics
    sizes = {}
    for name in ("fp32", "dynamic-int8", "static-int8", "fp16"):
        artifact = open_artifact(compress_dir / "variants" / name, kind="export")
        gate = artifact.metrics["gate"]
        assert set(gate) == {"validation", "test"}
        for split in ("validation", "test"):
            assert gate[split]["examples"] == 18
            assert gate[split]["parent_metrics"]["macro_f1"] == pytest.approx(
                parent[split]["macro_f1"]
            ), "the gate's parent is the training artifact as measured at training"
            drop = 100 * (
                gate[split]["parent_metrics"]["macro_f1"] - gate[split]["metrics"]["macro_f1"]
            )
            assert gate[split]["metric_drop_points"] == pytest.approx(drop)
        limit = recipe.compress.max_metric_drop
        passes = all(gate[split]["metric_drop_points"] <= limit for split in gate)
        if name == "fp32":
            assert all(gate[split]["max_abs_logit_diff"] < 1e-4 for split in gate)
            assert gate["test"]["metrics"] == gate["test"]["parent_metrics"]
        assert artifact.manifest.deployable is passes
        assert bool(artifact.manifest.not_deployable_because) is not passes
        assert artifact.manifest.variant["kind"] == name.replace("-", "_")
        sizes[name] = artifact.file("model.onnx").stat().st_size
    assert sizes["dynamic-int8"] < 0.5 * sizes["fp32"]
    assert sizes["fp16"] < 0.6 * sizes["fp32"]
    steps = open_artifact(compress_dir / "variants" / "dynamic-int8").manifest.variant["steps"]
    assert {"Attention", "EmbedLayerNormalization"} <= set(steps["fusions"]), steps["fusions"]
    assert "SkipLayerNormalization" not in steps["fusions"], "slower on CPU: left unfused"


def test_report_compares_every_variant_with_pytorch(compressed):
    _, compress_dir = compressed
    artifact = open_artifact(compress_dir, kind="compress")
    rows = artifact.metrics["variants"]
    assert [row["variant"] for row in rows] == [
        "pytorch-fp32",
        "fp32",
        "dynamic-int8",
        "static-int8",
        "fp16",
    ]
    for row in rows:
        assert 0 < row["batch1_p50_ms"] <= row["batch1_p95_ms"]
        assert 0 < row["batch32_p50_ms"] <= row["batch32_p95_ms"]
        assert row["throughput_per_s"] > 0 and row["size_mb"] > 0
    deployable = [row for row in rows if row["deployable"]]
    best = max(deployable, key=lambda row: row["throughput_per_s"])
    assert artifact.metrics["recommended"] == best["variant"]
    report = artifact.file("report.md").read_text()
    assert report.count("\n| ") == len(rows) + 1  # header and one line per model
    assert f"Recommended: **{best['variant']}**" in report
    assert artifact.file("report.png").stat().st_size > 10_000


def test_a_variant_serves_the_parents_predictions_and_a_refused_one_does_not_start(
    pipeline, compressed, tmp_path
):
    import shutil

    from fulcrum.artifacts import write_manifest
    from fulcrum.errors import ArtifactError

    recipe, _, export_dir = pipeline
    _, compress_dir = compressed
    texts = ["my apple and pear", "the car engine", "tax invoice please"]
    fp32 = compress_dir / "variants" / "fp32"
    assert [p["label"] for p in OnnxClassifier(fp32).predict(texts)] == [
        p["label"] for p in OnnxClassifier(export_dir).predict(texts)
    ]
    # The same files, marked as a variant that failed its gate.
    refused = tmp_path / "refused"
    shutil.copytree(fp32, refused)
    manifest = open_artifact(refused).manifest
    extra = manifest.model_dump(include={"task", "max_length", "onnx", "variant", "vocab_size"}) | {
        "deployable": False,
        "not_deployable_because": ["test macro_f1 drops 5.00 points > 1"],
    }
    (refused / "manifest.json").unlink()
    write_manifest(
        refused,
        kind="export",
        recipe=manifest.recipe,
        recipe_hash=manifest.recipe_hash,
        labels=manifest.labels,
        metrics=manifest.metrics,
        extra=extra,
    )
    from fulcrum.serve import launch

    with pytest.raises(
        ArtifactError, match=r"not deployable: test macro_f1 drops 5.00 points.*--force"
    ):
        launch.start(refused, recipe.serve)

    truncated = tmp_path / "truncated"
    shutil.copytree(fp32, truncated)
    model = truncated / "model.onnx"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    with pytest.raises(ArtifactError, match=r"model.onnx: sha256 does not match the manifest"):
        OnnxClassifier(truncated)


def test_fulcrum_explain_attributes_the_prediction_to_words(pipeline, tmp_path, capsys):
    from fulcrum.cli import main

    _, train_dir, export_dir = pipeline
    page = tmp_path / "why.html"
    text = "my apple and pear"
    assert main(["explain", str(train_dir), text, "--steps", "64", "--html", str(page)]) == 0
    printed = capsys.readouterr().out
    label = OnnxClassifier(export_dir).predict([text])[0]["label"]
    assert printed.startswith(f"{label} (p=") and "by integrated_gradients" in printed
    assert "convergence delta" in printed
    assert [word.split("(")[0] for word in printed.splitlines()[1].split()] == text.split()
    assert page.read_text().count("<span title=") == 4

    # The export artifact has no gradients: occlusion, or a clear refusal.
    assert main(["explain", str(export_dir), text]) == 0
    assert "by occlusion" in capsys.readouterr().out
    assert main(["explain", str(export_dir), text, "--method", "integrated_gradients"]) == 2
    assert "an ONNX model has no gradients" in capsys.readouterr().err


def test_fulcrum_runs_and_show_list_the_pipeline_with_lineage(pipeline, capsys):
    from fulcrum.cli import main

    recipe, train_dir, export_dir = pipeline
    assert main(["runs", recipe.output_dir]) == 0
    listed = capsys.readouterr().out
    assert str(train_dir) in listed and str(export_dir) in listed
    test_f1 = open_artifact(train_dir).metrics["test"]["macro_f1"]
    assert f"test macro_f1 {test_f1:.4f}" in listed
    assert main(["show", "tiny/export", "--output-dir", recipe.output_dir]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[0] == f"export artifact {export_dir}"
    assert shown[2].strip().startswith(f"<- train    {train_dir}")
    assert main(["show", "nothing/here", "--output-dir", recipe.output_dir]) == 2
    assert "no artifact under" in capsys.readouterr().err
