"""Training under faults. The same recipe and seed give the same numbers twice. A worker
killed mid-epoch is restarted from the last checkpoint at the exact step, and the run ends
where an uninterrupted one ends. A run that failed resumes when its recipe runs again, and
when its newest checkpoint was damaged meanwhile, it says so and resumes from the one
before, redoing the steps since: never a step lost or counted twice."""

import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest

from fulcrum.artifacts import open_artifact
from fulcrum.errors import TrainingError
from fulcrum.train.stage import run_name, train

from ..conftest import PIPELINE_SECTIONS
from .registered import latest, registered

pytestmark = pytest.mark.integration

# The pipeline fixture's recipe (3 epochs of 6 steps, a checkpoint every 2); a fault test
# adds only what changes no number: failures survived, checkpoints kept.
SECTIONS = PIPELINE_SECTIONS
KEEP_ALL = {"checkpoint_every_steps": 2, "keep_checkpoints": 20}


def kill_a_worker_after_checkpoints(storage: Path, count: int, killed: list[int]) -> None:
    """Wait until Ray has registered `count` checkpoints, then SIGKILL one Ray Train
    worker process (mid-epoch: checkpoints come every 4 steps of 6-step epochs)."""
    from ray.util.state import list_actors

    deadline = time.time() + 300
    while time.time() < deadline and len(registered(storage)) < count:
        time.sleep(0.05)
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
def reference(pipeline):
    """The uninterrupted run every fault test must end like: the pipeline's own."""
    _, train_dir, _ = pipeline
    return open_artifact(train_dir, kind="train")


def assert_same_run(artifact, reference) -> None:
    history, expected = artifact.metrics["history"], reference.metrics["history"]
    steps = [entry["step"] for entry in history]
    # An evaluation at every checkpoint (each 2 steps): a restart that went back to step 0
    # would repeat steps; one that lost its place would skip some.
    assert steps == [entry["step"] for entry in expected]
    assert steps == list(range(2, 19, 2))
    # Same seed, data order, RNG, optimizer and scheduler state: the same numbers. Float
    # arithmetic on the CPU in the same order is deterministic; rel=1e-5 only absorbs a
    # reduction that summed in another order after the restart.
    for entry, expected_entry in zip(history, expected, strict=True):
        assert entry["train_loss"] == pytest.approx(expected_entry["train_loss"], rel=1e-5)
        assert entry["val_accuracy"] == pytest.approx(expected_entry["val_accuracy"], abs=1e-9)
    assert artifact.metrics["validation"] == reference.metrics["validation"]
    assert artifact.metrics["test"] == reference.metrics["test"]
    # And the model itself: the merged weights the artifact ships, tensor by tensor.
    assert_same_weights(artifact, reference)


def assert_same_weights(artifact, reference, atol: float = 1e-5) -> None:
    from safetensors.torch import load_file

    weights = load_file(artifact.file("merged/model.safetensors"))
    expected = load_file(reference.file("merged/model.safetensors"))
    assert weights.keys() == expected.keys()
    differences = {name: (weights[name] - expected[name]).abs().max().item() for name in weights}
    worst = max(differences, key=differences.get)
    assert differences[worst] <= atol, f"{worst} differs by {differences[worst]:.3g}"


def test_killed_worker_is_restarted_from_the_last_checkpoint(
    tiny_recipe_factory, tmp_path, reference, capfd
):
    recipe = tiny_recipe_factory(tmp_path, train={**KEEP_ALL, "max_failures": 1})
    storage = tmp_path / "tiny" / "_ray" / run_name(recipe)
    resumed = open_artifact(train_while_killing(recipe, storage, after_checkpoints=2), kind="train")
    restarts = re.findall(r"; resumed at step (\d+)", _said(capfd))
    assert restarts and int(restarts[-1]) > 0, "restarted from step 0, not from a checkpoint"
    print(f"\n[resilience] worker killed: resumed at step {restarts[-1]} of 18")
    assert_same_run(resumed, reference)


def test_the_same_recipe_and_seed_give_the_same_metrics(tiny_recipe_factory, tmp_path, reference):
    again = open_artifact(train(tiny_recipe_factory(tmp_path, **SECTIONS)), kind="train")
    assert _numbers(again.metrics["history"]) == _numbers(reference.metrics["history"])
    for split in ("validation", "test"):
        assert again.metrics[split] == reference.metrics[split], split
    assert (
        again.manifest.files["merged/model.safetensors"]
        == (reference.manifest.files["merged/model.safetensors"])
    ), "bit-identical merged weights"


def test_failed_run_resumes_from_its_newest_whole_checkpoint(
    tiny_recipe_factory, tmp_path, reference, capfd
):
    recipe = tiny_recipe_factory(tmp_path, train=KEEP_ALL)  # max_failures 0: a kill ends the run
    storage = tmp_path / "tiny" / "_ray" / run_name(recipe)
    with pytest.raises(TrainingError, match="training failed"):
        train_while_killing(recipe, storage, after_checkpoints=3)
    assert not (tmp_path / "tiny" / "train").exists()  # no half-written artifact
    # The checkpoint the run would resume from, and the one before it.
    names = registered(storage)
    newest = storage / latest(storage)
    previous = storage / names[names.index(newest.name) - 1]
    damaged = max((newest / "deepspeed" / "state").glob("*.pt"), key=_size)  # optimizer state
    damaged.write_bytes(damaged.read_bytes()[: _size(damaged) // 2])  # as a full disk leaves it
    capfd.readouterr()
    resumed = open_artifact(train(recipe), kind="train")
    output = _said(capfd)
    relative = damaged.relative_to(newest)
    assert f"checkpoint {newest.name} is damaged ({relative} does not match its sha256" in output
    assert f"resuming from {previous.name}" in output
    restarts = re.findall(r"; resumed at step (\d+)", output)
    assert restarts and int(restarts[-1]) > 0
    assert_same_run(resumed, reference)
    print(
        f"\n[resilience] newest checkpoint damaged ({relative}): resumed from {previous.name} "
        f"at step {restarts[-1]} of 18"
    )


def _said(capfd) -> str:
    """What the run printed: results on stdout, progress lines on stderr."""
    captured = capfd.readouterr()
    return captured.out + captured.err


def _numbers(history: list[dict]) -> list[dict]:
    """A history without its memory peaks, which depend on the machine's state."""
    return [{k: v for k, v in entry.items() if not k.startswith("peak_")} for entry in history]


def _size(path: Path) -> int:
    return path.stat().st_size
