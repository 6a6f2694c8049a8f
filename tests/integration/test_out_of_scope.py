"""Out-of-scope detection through the real stages: trained with an `oos` class, calibrated
on validation (where a label training never saw also counts as out of scope), kept in the
training and export manifests, recalibrated for the INT8 variant, answered by the model."""

import random

import numpy as np
import pytest

from fulcrum.artifacts import open_artifact
from fulcrum.compress.export import export
from fulcrum.compress.stage import compress, variant_dir
from fulcrum.inference import OnnxClassifier
from fulcrum.recipe import validate_recipe

pytestmark = pytest.mark.integration

WORDS = {
    "apple": ["apple", "pear", "fruit"],
    "car": ["car", "wheel", "engine"],
    "tax": ["tax", "invoice", "bill"],
    "oos": ["weather", "music", "song"],
    "boat": ["boat", "sail", "river"],  # in validation and test only: never trained
}
FILLER = ["the", "a", "my", "is", "was", "today", "please", "very", "new", "old"]


def _rows(rng: random.Random, labels: list[str], per_label: int) -> list[str]:
    lines = []
    for label in labels:
        for _ in range(per_label):
            tokens = rng.sample(FILLER, 3) + [rng.choice(WORDS[label]), rng.choice(WORDS[label])]
            rng.shuffle(tokens)
            lines.append(f"{' '.join(tokens)},{label}")
    return lines


def write_support_data(folder) -> dict[str, str]:
    rng = random.Random(7)
    files = {}
    for split, labels, per_label in (
        ("train", ["apple", "car", "tax", "oos"], 40),
        ("validation", ["apple", "car", "tax", "oos", "boat"], 8),
        ("test", ["apple", "car", "tax", "oos", "boat"], 8),
    ):
        path = folder / f"{split}.csv"
        path.write_text("\n".join(["text,label", *_rows(rng, labels, per_label)]) + "\n")
        files[split] = str(path)
    return files


@pytest.fixture(scope="module")
def detected(ray_cluster, tiny_recipe_factory, tmp_path_factory):
    from fulcrum.train.stage import train

    folder = tmp_path_factory.mktemp("support")
    base = tiny_recipe_factory(folder / "artifacts", name="support")
    recipe = validate_recipe(
        {
            **base.to_dict(),
            "data": write_support_data(folder),
            "train": {**base.to_dict()["train"], "epochs": 6},
            "out_of_scope": {"target_precision": 0.8},
            "compress": {"variants": ["dynamic_int8"], "latency_texts": 8},
        }
    )
    train_dir = train(recipe)
    return recipe, train_dir, export(recipe, train_dir), compress(recipe, train_dir)


def test_the_detector_is_calibrated_in_training_and_measured_on_both_splits(detected):
    _, train_dir, _, _ = detected
    artifact = open_artifact(train_dir, kind="train")
    assert artifact.labels == ["apple", "car", "oos", "tax"]  # oos trained as a class
    assert artifact.manifest.split_sizes == {"train": 160, "validation": 32, "test": 32}
    detector = artifact.manifest.out_of_scope
    assert detector["label"] == "oos" and detector["score"] in ("max_probability", "energy")
    report = artifact.metrics["out_of_scope"]
    assert report["detector"] == detector
    for split in ("validation", "test"):
        measured = report[split]
        # 8 `oos` rows and 8 `boat` rows (a label training never saw) per split.
        assert measured["out_of_scope_examples"] == 16 and measured["in_scope_examples"] == 24
        assert 0.0 <= measured["auroc"] <= 1.0
        # The argmax alone flags through the trained class only, so the floor adds to it.
        alone = report["without_detection"][split]["out_of_scope_recall"]
        assert alone <= measured["out_of_scope_recall"]
    # Calibrated on validation for precision 0.8: a floor is set only where it keeps that
    # precision; otherwise the class decides alone, exactly as the argmax does.
    validation, alone = report["validation"], report["without_detection"]["validation"]
    if detector["threshold"] is not None:
        assert validation["out_of_scope_precision"] >= 0.8
    else:
        assert validation == alone and "alone" in detector["chosen_by"]
    assert validation["out_of_scope_recall"] >= 0.5


def test_export_and_int8_each_carry_a_detector_calibrated_on_their_own_scores(detected):
    _, train_dir, export_dir, compress_dir = detected
    trained = open_artifact(train_dir, kind="train").manifest.out_of_scope
    fp32 = open_artifact(export_dir, kind="export")
    int8 = open_artifact(variant_dir(compress_dir, "dynamic-int8"), kind="export")
    for artifact in (fp32, int8):
        detector = artifact.manifest.out_of_scope
        assert detector["label"] == "oos"
        assert artifact.metrics["out_of_scope"]["detector"] == detector
        measured = artifact.metrics["out_of_scope"]
        if detector["threshold"] is not None:
            assert measured["validation"]["out_of_scope_precision"] >= 0.8
        assert measured["validation"]["out_of_scope_recall"] >= 0.5
    # fp32 ONNX matches PyTorch closely, so it lands on (nearly) the training threshold.
    if trained["threshold"] is not None and trained["score"] == fp32.manifest.out_of_scope["score"]:
        assert fp32.manifest.out_of_scope["threshold"] == pytest.approx(
            trained["threshold"], rel=0.05, abs=1e-3
        )


def test_answers_say_out_of_scope_with_the_score_that_decided(detected):
    _, _, export_dir, compress_dir = detected
    texts = ["the music and the weather", "the pear and the apple", "a very old invoice tax"]
    for folder in (export_dir, variant_dir(compress_dir, "dynamic-int8")):
        model = OnnxClassifier(folder)
        answers = model.predict(texts)
        assert [answer["out_of_scope"] for answer in answers] == [True, False, False]
        assert [answer["label"] for answer in answers[1:]] == ["apple", "tax"]
        flagged, scores = model.out_of_scope.decide(model.logits(texts), model.labels)
        assert np.allclose([a["in_scope_score"] for a in answers], scores)
        assert flagged.tolist() == [True, False, False]
