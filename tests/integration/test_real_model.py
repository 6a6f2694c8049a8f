"""The real pretrained all-MiniLM-L6-v2 trained as the demo trains it, then export and
INT8, each checked against the PyTorch model on real sentences it was not trained on."""

import numpy as np
import pytest
import torch

from fulcrum.artifacts import open_artifact
from fulcrum.compress.export import export
from fulcrum.compress.stage import compress, variant_dir
from fulcrum.inference import OnnxClassifier
from fulcrum.recipe import load_recipe
from fulcrum.train.merge import TOKENIZER_DIR, load_merged
from fulcrum.train.stage import train

from ..conftest import REPOSITORY, SHARED_DATA

pytestmark = [pytest.mark.integration, pytest.mark.real_model]

# The least an INT8 model may agree with its parent on text of another domain.
MIN_AGREEMENT = 0.95


def test_minilm_learns_the_demo_intents_and_int8_keeps_its_answers(ray_cluster, tmp_path):
    # The demo's own training (6 epochs): one epoch leaves logits so close that INT8's
    # rounding flips some of the 48 validation answers, 2 points each.
    recipe = load_recipe(
        REPOSITORY / "examples" / "demo.yaml",
        [
            f"output_dir={tmp_path}",
            "compress.variants=[{kind: dynamic_int8, per_channel: true}]",
            "compress.latency_texts=8",
        ],
    )
    train_dir = train(recipe)
    metrics = open_artifact(train_dir, kind="train").metrics
    # Six balanced intents: chance is 0.17; the demo reaches about 0.9.
    assert metrics["validation"]["accuracy"] >= 0.8, metrics
    assert metrics["test"]["accuracy"] >= 0.8, metrics
    assert metrics["validation"] == pytest.approx(metrics["training_validation"])

    exported = open_artifact(export(recipe), kind="export")
    for parity in exported.metrics["gate"].values():
        assert parity["max_abs_logit_diff"] < 1e-4
        assert parity["metric_drop_points"] == 0.0

    int8 = open_artifact(variant_dir(compress(recipe), "dynamic-int8"), kind="export")
    assert int8.manifest.deployable is True, int8.manifest.not_deployable_because
    # Beyond the gate's own splits: real financial news the intents model never saw.
    texts = _phrasebank(200)
    parent = _pytorch_predictions(train_dir, texts, recipe.model.max_length)
    for artifact in (exported, int8):
        served = np.array([p["label"] for p in OnnxClassifier(artifact.path).predict(texts)])
        agreement = float((served == parent).mean())
        floor = 0.99 if artifact is exported else MIN_AGREEMENT  # fp32: ties may flip
        assert agreement >= floor, f"{artifact.path}: agrees with PyTorch on {agreement:.1%}"


def _phrasebank(count: int) -> list[str]:
    lines = (SHARED_DATA / "financial_phrasebank" / "Sentences_AllAgree.txt").read_text()
    return [line.rpartition("@")[0] for line in lines.splitlines()[:count]]


def _pytorch_predictions(train_dir, texts: list[str], max_length: int) -> np.ndarray:
    from transformers import AutoTokenizer

    model = load_merged(train_dir, "sequence_classification").eval()
    tokenizer = AutoTokenizer.from_pretrained(train_dir / TOKENIZER_DIR)
    labels = open_artifact(train_dir, kind="train").labels
    predicted = []
    with torch.no_grad():
        for start in range(0, len(texts), 32):
            encoded = tokenizer(
                texts[start : start + 32],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            predicted += model(**encoded).logits.argmax(-1).tolist()
    return np.array([labels[index] for index in predicted])
