"""Jobs on the session's local head: `ray job submit --working-dir . -- python
jobs/finetune.py RECIPE`, then `fulcrum submit` of the same recipe into the same output
directory, whose pipeline job finds training and export up to date and only compresses."""

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


@pytest.fixture(scope="module")
def finetune_job(ray_cluster, tiny_recipe_factory, tmp_path_factory):
    """`ray job submit` of jobs/finetune.py --export: (recipe, output dir, its output)."""
    tmp_path = tmp_path_factory.mktemp("jobs")
    recipe = tiny_recipe_factory(tmp_path / "unused")
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
    return recipe, output_dir, result


def test_ray_job_submit_runs_finetune(finetune_job):
    _, output_dir, result = finetune_job
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "succeeded" in output
    train_artifact = open_artifact(output_dir / "tiny" / "train", kind="train")
    assert [entry["epoch"] for entry in train_artifact.metrics["history"]] == [1, 2, 3]
    export_artifact = open_artifact(output_dir / "tiny" / "export", kind="export")
    assert export_artifact.manifest.parent.path == str((output_dir / "tiny" / "train").resolve())


def test_fulcrum_submit_runs_the_pipeline_as_a_job_and_streams_its_logs(
    ray_cluster, finetune_job, tmp_path
):
    recipe, output_dir, _ = finetune_job
    recipe_file = tmp_path / "elsewhere" / "tiny.yaml"  # outside the working directory
    recipe_file.parent.mkdir()
    recipe_file.write_text(yaml.safe_dump(recipe.to_dict()))
    trained = (output_dir / "tiny" / "train" / "manifest.json").read_bytes()
    fulcrum = str(Path(sys.executable).parent / "fulcrum")
    result = subprocess.run(
        [
            fulcrum,
            "submit",
            str(recipe_file),
            "--address",
            ray_cluster["dashboard"],
            "--output-dir",
            str(output_dir),
            "--set",
            "compress.variants=[dynamic_int8]",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    job_id = result.stdout.strip().splitlines()[-1]
    assert job_id.startswith("raysubmit_")
    assert f"[submit] job {job_id}: SUCCEEDED" in output
    # The job's own lines streamed back: the same recipe, so training and export were
    # up to date in that output directory and skipped; compress (new) ran.
    assert "[run] train: up to date, skipped" in output, output[-4000:]
    assert "[run] export: up to date, skipped" in output
    assert "[run] compress: runs (no artifact yet)" in output
    assert "[train] step" not in output
    assert (output_dir / "tiny" / "train" / "manifest.json").read_bytes() == trained
    assert open_artifact(output_dir / "tiny" / "compress", kind="compress")

    unreachable = subprocess.run(
        [fulcrum, "submit", str(recipe_file), "--address", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert unreachable.returncode == 2
    assert "cannot reach the Ray job server" in unreachable.stderr


def test_a_submit_without_the_clusters_token_is_refused_in_one_line(
    ray_cluster, tiny_recipe_factory, tmp_path, monkeypatch
):
    """Token authentication is on (Ray 2.60's default): a machine with the wrong token gets
    Fulcrum's one-line error, and no job runs."""
    from ray.job_submission import JobSubmissionClient

    monkeypatch.setenv("RAY_AUTH_MODE", "token")  # this process sends the right one
    recipe_file = tmp_path / "tiny.yaml"
    recipe_file.write_text(yaml.safe_dump(tiny_recipe_factory(tmp_path).to_dict()))
    jobs_before = len(JobSubmissionClient(ray_cluster["dashboard"]).list_jobs())
    fulcrum = str(Path(sys.executable).parent / "fulcrum")
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "not-the-token"}
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    result = subprocess.run(
        [fulcrum, "submit", str(recipe_file), "--address", ray_cluster["dashboard"]],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "the job server refused this machine's token" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(JobSubmissionClient(ray_cluster["dashboard"]).list_jobs()) == jobs_before
