"""Kill a training worker mid-epoch: the run resumes from its last checkpoint at the exact
step and ends where an uninterrupted run with the same seed ends. Run again after a failed
run, the same recipe resumes too, rather than starting at step 0."""

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from fulcrum.artifacts import open_artifact
from fulcrum.errors import TrainingError
from fulcrum.train.stage import run_name, train

pytestmark = pytest.mark.integration

SECTIONS = {"train": {"epochs": 4, "checkpoint_every_steps": 4, "keep_checkpoints": 20}}


def kill_a_worker_after_checkpoints(storage: Path, count: int, killed: list[int]) -> None:
    """Wait until `count` checkpoints exist, then SIGKILL one Ray Train worker process."""
    from ray.util.state import list_actors

    deadline = time.time() + 300
    while time.time() < deadline and len(list(storage.glob("checkpoint_*"))) < count:
        time.sleep(0.2)
    time.sleep(1.0)  # into the next steps, mid-epoch
    workers = list_actors(filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")])
    if workers:
        os.kill(workers[-1]["pid"], signal.SIGKILL)
        killed.append(workers[-1]["pid"])


def train_while_killing(recipe, storage: Path, after_checkpoints: int):
    killed: list[int] = []
    killer = threading.Thread(
        target=kill_a_worker_after_checkpoints, args=(storage, after_checkpoints, killed)
    )
    killer.start()
    try:
        return train(recipe)
    finally:
        killer.join()
        assert killed, "no worker was killed"


@pytest.fixture(scope="module")
def reference(ray_cluster, tiny_recipe_factory, tmp_path_factory):
    recipe = tiny_recipe_factory(tmp_path_factory.mktemp("reference"), **SECTIONS)
    return open_artifact(train(recipe), kind="train")


def assert_same_run(artifact, reference) -> None:
    history, expected = artifact.metrics["history"], reference.metrics["history"]
    steps = [entry["step"] for entry in history]
    # Checkpoints every 4 steps and at each epoch end (6 steps per epoch): a restart that
    # went back to step 0 would repeat steps; one that lost its place would skip some.
    assert steps == [entry["step"] for entry in expected]
    assert steps == sorted(set(steps)) and steps[-1] == 24
    # Same seed, data order, RNG, optimizer and scheduler state: the same numbers. Float
    # arithmetic on the CPU in the same order is deterministic; rel=1e-5 only absorbs a
    # reduction that summed in another order after the restart.
    for entry, expected_entry in zip(history, expected, strict=True):
        assert entry["train_loss"] == pytest.approx(expected_entry["train_loss"], rel=1e-5)
        assert entry["val_accuracy"] == pytest.approx(expected_entry["val_accuracy"], abs=1e-9)
    assert artifact.metrics["validation"] == reference.metrics["validation"]


def test_killed_worker_is_restarted_from_the_last_checkpoint(
    tiny_recipe_factory, tmp_path, reference
):
    recipe = tiny_recipe_factory(tmp_path, train={**SECTIONS["train"], "max_failures": 1})
    storage = tmp_path / "tiny" / "_ray" / run_name(recipe)
    resumed = open_artifact(train_while_killing(recipe, storage, after_checkpoints=2), kind="train")
    assert_same_run(resumed, reference)


def test_failed_run_resumes_when_the_recipe_runs_again(tiny_recipe_factory, tmp_path, reference):
    recipe = tiny_recipe_factory(tmp_path, **SECTIONS)  # max_failures 0: the kill ends the run
    storage = tmp_path / "tiny" / "_ray" / run_name(recipe)
    with pytest.raises(TrainingError, match="training failed"):
        train_while_killing(recipe, storage, after_checkpoints=3)
    assert not (tmp_path / "tiny" / "train").exists()  # no half-written artifact
    resumed = open_artifact(train(recipe), kind="train")
    assert_same_run(resumed, reference)
