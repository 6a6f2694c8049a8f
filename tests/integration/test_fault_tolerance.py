"""Kill a training worker mid-epoch: the run resumes from its last checkpoint at the exact
step and ends where an uninterrupted run with the same seed ends."""

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from fulcrum.artifacts import open_artifact
from fulcrum.train.stage import run_name, train

pytestmark = pytest.mark.integration


def kill_a_worker_after_checkpoints(storage: Path, count: int, killed: list[int]) -> None:
    """Wait until `count` checkpoints exist, then SIGKILL one Ray Train worker process."""
    from ray.util.state import list_actors

    deadline = time.time() + 300
    while time.time() < deadline:
        if len(list(storage.glob("checkpoint_*"))) >= count:
            break
        time.sleep(0.2)
    time.sleep(1.0)  # into the next steps, mid-epoch
    workers = list_actors(filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")])
    pid = workers[-1]["pid"]
    os.kill(pid, signal.SIGKILL)
    killed.append(pid)


def test_killed_worker_resumes_at_the_exact_step(ray_cluster, tiny_recipe_factory, tmp_path):
    sections = {
        "train": {
            "epochs": 4,
            "checkpoint_every_steps": 4,
            "max_failures": 1,
            "keep_checkpoints": 20,
        }
    }
    reference = open_artifact(
        train(tiny_recipe_factory(tmp_path / "reference", **sections)), kind="train"
    )

    recipe = tiny_recipe_factory(tmp_path / "interrupted", **sections)
    storage = tmp_path / "interrupted" / "tiny" / "_ray" / run_name(recipe)
    killed: list[int] = []
    killer = threading.Thread(target=kill_a_worker_after_checkpoints, args=(storage, 2, killed))
    killer.start()
    resumed = open_artifact(train(recipe), kind="train")
    killer.join()
    assert killed, "no worker was killed"

    history = resumed.metrics["history"]
    steps = [entry["step"] for entry in history]
    # Checkpoints every 4 steps and at each epoch end (6 steps per epoch): a restart that
    # went back to step 0 would repeat steps; one that lost its place would skip some.
    assert steps == [entry["step"] for entry in reference.metrics["history"]]
    assert steps == sorted(set(steps)) and steps[-1] == 24
    # Same seed, same data order, same RNG and optimizer state: the same numbers. CPU
    # float arithmetic in the same order is deterministic, so the tolerance only absorbs
    # the last bits of a reordered reduction.
    for resumed_entry, reference_entry in zip(history, reference.metrics["history"], strict=True):
        assert resumed_entry["train_loss"] == pytest.approx(reference_entry["train_loss"], rel=1e-5)
        assert resumed_entry["val_accuracy"] == pytest.approx(
            reference_entry["val_accuracy"], abs=1e-9
        )
    assert resumed.metrics["validation"] == reference.metrics["validation"]
