"""Training with its ranks on different nodes of a simulated cluster, checkpoints on
storage every node shares (here a local path; on a real cluster NFS or s3://)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fulcrum.artifacts import open_artifact

pytestmark = pytest.mark.integration


def test_ranks_on_two_worker_nodes_with_shared_checkpoints(tiny_recipe_factory, tmp_path):
    shared = tmp_path / "shared-storage"
    recipe = tiny_recipe_factory(
        tmp_path / "artifacts",
        train={"epochs": 2, "storage_path": str(shared), "checkpoint_every_steps": 3},
    )
    env = {
        key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"
    }  # its own cluster
    script = Path(__file__).with_name("multinode_train.py")
    result = subprocess.run(
        [sys.executable, str(script), json.dumps(recipe.to_dict()), str(tmp_path / "report.json")],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    report = json.loads((tmp_path / "report.json").read_text())
    artifact = open_artifact(report["artifact"], kind="train")
    workers = artifact.metrics["workers"]
    nodes = {worker["node_id"] for worker in workers}
    assert len(workers) == 2 and len(nodes) == 2, workers
    assert report["head"] not in nodes  # the head has no CPUs: both ranks on worker nodes
    assert artifact.metrics["validation"] == artifact.metrics["training_validation"]
    # Checkpoints went to the shared path (and were cleaned up there after the artifact).
    assert shared.is_dir() and not any(shared.iterdir())
