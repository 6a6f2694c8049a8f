"""Checkpoint seals: each rank's files are checked before a run resumes, and the newest
whole checkpoint is the one used."""

import contextlib
import json

from fulcrum.train.integrity import damage, newest_whole, seal


def write_checkpoint(folder, ranks=2):
    folder.mkdir(parents=True)
    for rank in range(ranks):
        part = folder.parent / f".{folder.name}-rank{rank}"
        (part / "deepspeed").mkdir(parents=True)
        (part / "deepspeed" / f"rank{rank}_states.pt").write_bytes(bytes([rank]) * 1000)
        if rank == 0:
            (part / "trainer_state.json").write_text(json.dumps({"global_step": 4}))
        seal(part, rank)
        for path in part.rglob("*"):  # what Ray Train does: merge the ranks' parts
            if path.is_file():
                target = folder / path.relative_to(part)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(path.read_bytes())
    return folder


def test_a_merged_checkpoint_is_whole_and_each_kind_of_damage_is_named(tmp_path):
    checkpoint = write_checkpoint(tmp_path / "checkpoint_1")
    assert damage(checkpoint) is None
    states = checkpoint / "deepspeed" / "rank1_states.pt"
    states.write_bytes(states.read_bytes()[:500])
    assert damage(checkpoint) == (
        "deepspeed/rank1_states.pt does not match its sha256 (truncated or altered)"
    )
    states.unlink()
    assert damage(checkpoint) == "deepspeed/rank1_states.pt is missing"
    (checkpoint / "seals" / "rank0.json").write_text("{not json")
    assert damage(checkpoint) == "seals/rank0.json is unreadable"


def test_an_unsealed_checkpoint_from_before_seals_is_trusted(tmp_path):
    old = tmp_path / "checkpoint_0"
    old.mkdir()
    (old / "trainer_state.json").write_text("{}")
    assert damage(old) is None


def test_the_newest_whole_checkpoint_is_chosen_and_each_skipped_one_is_said(tmp_path):
    newest = write_checkpoint(tmp_path / "checkpoint_3")
    middle = write_checkpoint(tmp_path / "checkpoint_2")
    oldest = write_checkpoint(tmp_path / "checkpoint_1")
    (newest / "trainer_state.json").write_text("{}")
    (middle / "deepspeed" / "rank0_states.pt").unlink()
    said = []
    chosen, skipped = newest_whole([newest, middle, oldest], contextlib.nullcontext, said.append)
    assert chosen == oldest and skipped == 2
    assert said == [
        "checkpoint checkpoint_3 is damaged (trainer_state.json does not match its sha256 "
        "(truncated or altered)); trying an earlier one",
        "checkpoint checkpoint_2 is damaged (deepspeed/rank0_states.pt is missing); trying an "
        "earlier one",
    ]
    assert newest_whole([newest], contextlib.nullcontext, said.append) == (None, 1)
