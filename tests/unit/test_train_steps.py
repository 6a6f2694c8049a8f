"""The Ray-free pieces of the training loop."""

import numpy as np
import pytest

from fulcrum.recipe import TrainSection
from fulcrum.train.deepspeed_config import deep_merge, deepspeed_config, generated_config
from fulcrum.train.steps import EpochPlan, lr_factor


def test_epoch_plan_gives_equal_disjoint_shards_in_a_seeded_order():
    plan = EpochPlan(rows=103, world=2, batch_size=10, accumulation=1, seed=5)
    rank0, rank1 = (np.concatenate(plan.batches(1, rank)) for rank in (0, 1))
    assert len(rank0) == len(rank1) == 51
    assert not set(rank0) & set(rank1)
    assert plan.steps_per_epoch == 6
    again = np.concatenate(EpochPlan(103, 2, 10, 1, 5).batches(1, 0))
    assert np.array_equal(rank0, again)
    assert not np.array_equal(rank0, np.concatenate(plan.batches(2, 0)))  # reshuffled each epoch


def test_epoch_plan_drops_micro_batches_that_cannot_fill_a_step():
    plan = EpochPlan(rows=100, world=1, batch_size=10, accumulation=3, seed=0)
    assert plan.steps_per_epoch == 3 and len(plan.batches(1, 0)) == 9


@pytest.mark.parametrize(
    ("step", "expected"), [(0, (1, 0)), (5, (1, 10)), (6, (2, 0)), (13, (3, 2))]
)
def test_position_after_global_steps(step, expected):
    plan = EpochPlan(rows=120, world=1, batch_size=10, accumulation=2, seed=0)
    assert plan.steps_per_epoch == 6
    assert plan.position(step) == expected


def test_linear_and_cosine_schedules():
    linear = [lr_factor(step, 2, 6, "linear") for step in range(6)]
    assert linear == pytest.approx([0.5, 1.0, 1.0, 0.75, 0.5, 0.25])
    cosine = [lr_factor(step, 2, 6, "cosine") for step in range(7)]
    assert (
        cosine[2] == pytest.approx(1.0)
        and cosine[4] == pytest.approx(0.5)
        and cosine[6] == pytest.approx(0.0)
    )
    assert cosine[3] > linear[3]  # cosine stays high longer


def test_generated_deepspeed_config_follows_the_recipe():
    config = generated_config(
        TrainSection(
            batch_size=8,
            zero_stage=3,
            grad_clip=0.5,
            gradient_accumulation_steps=4,
            offload_optimizer=True,
            offload_params=True,
        )
    )
    assert config["train_micro_batch_size_per_gpu"] == 8
    assert config["gradient_accumulation_steps"] == 4
    assert config["zero_optimization"] == {
        "stage": 3,
        "offload_optimizer": {"device": "cpu", "pin_memory": False},
        "offload_param": {"device": "cpu", "pin_memory": False},
    }
    assert config["gradient_clipping"] == 0.5
    assert config["bf16"] == {"enabled": False} and config["fp16"]["enabled"] is False
    assert "gradient_clipping" not in generated_config(TrainSection(grad_clip=0))
    assert generated_config(TrainSection(use_gpu=True))["bf16"] == {"enabled": True}
    assert generated_config(TrainSection(use_gpu=True, precision="fp16"))["fp16"]["enabled"] is True


def test_user_json_overrides_any_generated_key(tmp_path):
    user = tmp_path / "ds.json"
    user.write_text(
        '{"zero_optimization": {"reduce_bucket_size": 1000}, "gradient_clipping": 2.0, "new_key": 1}'
    )
    config = deepspeed_config(TrainSection(deepspeed_config=str(user), zero_stage=1))
    assert config["zero_optimization"] == {"stage": 1, "reduce_bucket_size": 1000}
    assert config["gradient_clipping"] == 2.0 and config["new_key"] == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "file not found"),
        ("{oops", "line 1: not valid JSON"),
        ("[1]", "expected a JSON object"),
    ],
)
def test_bad_user_json_names_the_setting_and_file(tmp_path, content, message):
    from fulcrum.errors import RecipeError

    path = tmp_path / "ds.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(RecipeError, match=f"train.deepspeed_config: {path}: {message}"):
        deepspeed_config(TrainSection(deepspeed_config=str(path)))


def test_deep_merge_does_not_touch_its_inputs():
    base = {"a": {"b": 1}}
    merged = deep_merge(base, {"a": {"c": 2}})
    assert merged == {"a": {"b": 1, "c": 2}} and base == {"a": {"b": 1}}


def test_early_stopping_counts_evaluations_since_a_real_improvement():
    from fulcrum.train.steps import evaluations_without_improvement

    def history(*values):
        return [{"val_f1": value} for value in values]

    assert evaluations_without_improvement(history(0.5), "val_f1", 0.0) == 0
    assert evaluations_without_improvement(history(0.5, 0.6, 0.6, 0.55), "val_f1", 0.0) == 2
    assert evaluations_without_improvement(history(0.5, 0.6, 0.7), "val_f1", 0.0) == 0
    # Gains below min_delta do not reset the count (nor move the bar).
    assert evaluations_without_improvement(history(0.5, 0.505, 0.509), "val_f1", 0.01) == 2
    assert evaluations_without_improvement(history(0.5, 0.505, 0.52), "val_f1", 0.01) == 0


def test_stale_deepspeed_build_locks_are_removed_and_fresh_ones_kept(tmp_path, monkeypatch):
    import os
    import time

    from fulcrum.train.deepspeed_config import clear_stale_build_locks

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    stale = tmp_path / "deepspeed_shm_comm" / "lock"
    fresh = tmp_path / "other_op" / "lock"
    for lock in (stale, fresh):
        lock.parent.mkdir(parents=True)
        lock.touch()
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))
    assert clear_stale_build_locks() == [stale]
    assert not stale.exists() and fresh.exists()


def test_a_build_lock_nobody_builds_under_is_stale_after_a_minute(tmp_path, monkeypatch):
    """A trial killed while loading the op leaves a lock minutes old, not hours: with no
    process building in that folder it goes after a minute; with one, it stays."""
    import os
    import subprocess
    import sys
    import time

    from fulcrum.train.deepspeed_config import clear_stale_build_locks

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    orphan = tmp_path / "deepspeed_shm_comm" / "lock"
    busy = tmp_path / "building_op" / "lock"
    for lock in (orphan, busy):
        lock.parent.mkdir(parents=True)
        lock.touch()
        two_minutes_ago = time.time() - 120
        os.utime(lock, (two_minutes_ago, two_minutes_ago))
    builder = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)"], cwd=busy.parent
    )
    try:
        time.sleep(0.2)
        assert clear_stale_build_locks() == [orphan]
        assert busy.exists()
    finally:
        builder.kill()
        builder.wait()
