"""One short epoch of the real pretrained all-MiniLM-L6-v2 on the demo data, then export."""

import pytest

from fulcrum.artifacts import open_artifact
from fulcrum.compress.export import export
from fulcrum.recipe import load_recipe
from fulcrum.train.stage import train

from ..conftest import REPOSITORY

pytestmark = [pytest.mark.integration, pytest.mark.real_model]


def test_one_epoch_of_minilm_learns_the_demo_intents(ray_cluster, tmp_path):
    recipe = load_recipe(
        REPOSITORY / "examples" / "demo.yaml",
        ["train.epochs=1", f"output_dir={tmp_path}"],
    )
    metrics = open_artifact(train(recipe), kind="train").metrics
    # Six balanced intents: chance is 0.17. Pretrained features plus 7 LoRA steps get far past it.
    assert metrics["validation"]["accuracy"] >= 0.5, metrics
    assert metrics["test"]["accuracy"] >= 0.5, metrics
    assert metrics["validation"] == pytest.approx(metrics["training_validation"])

    gate = open_artifact(export(recipe), kind="export").metrics["gate"]
    for parity in gate.values():
        assert parity["max_abs_logit_diff"] < 1e-4
        assert parity["metric_drop_points"] == 0.0
