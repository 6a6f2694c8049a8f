"""A whole worker node lost mid-run: training ranks on two nodes of a simulated cluster,
checkpoints on storage every node shares (here a local path; on a real cluster NFS or
s3://). A node running a rank dies without warning after two checkpoints; the run restarts
its ranks from the last checkpoint on the nodes it has left (a spare stands by, as an
autoscaler would add one) and finishes, with every step done exactly once."""

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fulcrum.artifacts import open_artifact

from ..conftest import PIPELINE_SECTIONS
from .test_training_faults import assert_same_weights

pytestmark = pytest.mark.integration

EPOCHS, STEPS_PER_EPOCH = 3, 6  # the pipeline's recipe: 84 rows, 2 ranks x batch 8


def test_losing_a_worker_node_resumes_on_the_nodes_left_without_losing_a_step(
    pipeline, tiny_recipe_factory, tmp_path
):
    # The pipeline's recipe, so its run (one node, no fault) is the one to end like; the
    # faulted run adds only what changes no number: a line every step, where checkpoints go,
    # how many failures it survives.
    shared = tmp_path / "shared-storage"
    recipe = tiny_recipe_factory(
        tmp_path / "artifacts",
        train={
            **PIPELINE_SECTIONS["train"],
            "log_every_steps": 1,
            "storage_path": str(shared),
            "keep_checkpoints": 20,
            "max_failures": 2,
        },
    )
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    script = Path(__file__).with_name("multinode_train.py")
    report_file = tmp_path / "report.json"
    log = tmp_path / "cluster.log"
    with log.open("w") as output:
        returncode = subprocess.run(
            [sys.executable, str(script), json.dumps(recipe.to_dict()), str(report_file), "2"],
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=420,
            env=env,
        ).returncode
    assert returncode == 0, log.read_text()[-4000:]
    report = json.loads(report_file.read_text())
    assert report.get("lost"), "no node was lost while the run trained"
    artifact = open_artifact(report["artifact"], kind="train")

    workers = artifact.metrics["workers"]
    nodes = {worker["node_id"] for worker in workers}
    assert len(workers) == 2 and len(nodes) == 2, workers
    assert report["head"] not in nodes  # the head has no CPUs: both ranks on worker nodes
    assert report["lost"] not in nodes

    resumed = re.findall(r"engine\(s\) ready .*; resumed at step (\d+)", log.read_text())
    assert resumed and int(resumed[-1]) > 0, "the ranks restarted from step 0, not a checkpoint"
    history = artifact.metrics["history"]
    # An evaluation at every checkpoint (each 2 steps), each once.
    assert [entry["step"] for entry in history] == list(range(2, EPOCHS * STEPS_PER_EPOCH + 1, 2))
    losses = _losses(artifact)
    assert list(losses) == list(range(1, EPOCHS * STEPS_PER_EPOCH + 1)), "a step lost or repeated"
    assert artifact.metrics["validation"] == artifact.metrics["training_validation"]
    # The same numbers as the pipeline's run without a fault, on one node: its loss lines
    # (each the mean since its previous line: every 5th step and every checkpoint), from
    # this run's loss at every step; the metrics; the weights.
    uninterrupted = open_artifact(pipeline[1], kind="train")
    expected = _losses(uninterrupted)
    assert len(expected) >= 10 and expected.keys() < losses.keys()
    windows = zip([0, *expected], expected, strict=False)
    means = [sum(losses[s] for s in range(a + 1, b + 1)) / (b - a) for a, b in windows]
    assert means == pytest.approx(list(expected.values()), rel=1e-5)
    assert artifact.metrics["test"] == uninterrupted.metrics["test"]
    assert_same_weights(artifact, uninterrupted)
    # Checkpoints went to the shared path (and were cleaned up there after the artifact).
    assert shared.is_dir() and not any(shared.iterdir())
    print(
        f"\n[resilience] node lost after {report['checkpoints_at_loss']} checkpoints, resumed at "
        f"step {resumed[-1]}: "
        f"finished in {report['train_s']}s on nodes {sorted(nodes)}"
    )


def _losses(artifact) -> dict[int, float]:
    with artifact.file("logs/steps.csv").open() as handle:
        return {int(row["step"]): float(row["loss"]) for row in csv.DictReader(handle)}
