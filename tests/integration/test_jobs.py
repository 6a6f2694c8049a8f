"""`ray job submit --working-dir . -- python jobs/finetune.py RECIPE` against a local head."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fulcrum.artifacts import open_artifact

from ..conftest import REPOSITORY

pytestmark = pytest.mark.integration


def test_ray_job_submit_runs_finetune(ray_cluster, tiny_recipe_factory, tmp_path):
    recipe = tiny_recipe_factory(tmp_path / "unused", train={"epochs": 1})
    recipe_file = tmp_path / "tiny.yaml"
    recipe_file.write_text(yaml.safe_dump(recipe.to_dict()))
    output_dir = tmp_path / "job-artifacts"
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent))
    # The Jobs API of a token-authenticated cluster takes the token only when asked to.
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    result = subprocess.run(
        [
            ray_cli,
            "job",
            "submit",
            "--address",
            ray_cluster["dashboard"],
            "--working-dir",
            ".",
            "--",
            "python",
            "jobs/finetune.py",
            str(recipe_file),
            "--output-dir",
            str(output_dir),
            "--export",
        ],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "succeeded" in output
    train_artifact = open_artifact(output_dir / "tiny" / "train", kind="train")
    assert [entry["epoch"] for entry in train_artifact.metrics["history"]] == [1]
    export_artifact = open_artifact(output_dir / "tiny" / "export", kind="export")
    assert export_artifact.manifest["parent"]["path"] == str(
        (output_dir / "tiny" / "train").resolve()
    )
