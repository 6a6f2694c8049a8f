"""The DeepSpeed config: generated from the recipe's train section, then overridden key by
key by the user's own DeepSpeed JSON (train.deepspeed_config) where one is given."""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path
from typing import Any

from fulcrum.errors import RecipeError
from fulcrum.recipe import TrainSection


def generated_config(train: TrainSection) -> dict[str, Any]:
    precision = train.resolved_precision
    zero: dict[str, Any] = {"stage": train.zero_stage}
    if train.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": train.use_gpu}
    if train.offload_params:
        zero["offload_param"] = {"device": "cpu", "pin_memory": train.use_gpu}
    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": train.batch_size,
        "gradient_accumulation_steps": train.gradient_accumulation_steps,
        "zero_optimization": zero,
        # The optimizer is torch's AdamW, passed in by the loop: DeepSpeed's fused/CPU Adam
        # ops need a compiler toolchain (CUDA, or a JIT build) on every worker. ZeRO shards
        # any torch optimizer's state correctly; it only refuses, or warns, unless told so.
        "zero_allow_untested_optimizer": True,
        "zero_force_ds_cpu_optimizer": False,
        "bf16": {"enabled": precision == "bf16"},
        "fp16": {"enabled": precision == "fp16", "loss_scale": 0, "initial_scale_power": 16},
        "steps_per_print": 1 << 30,
        "wall_clock_breakdown": False,
    }
    if train.grad_clip > 0:
        config["gradient_clipping"] = train.grad_clip
    return config


def deepspeed_config(train: TrainSection) -> dict[str, Any]:
    config = generated_config(train)
    if train.deepspeed_config:
        config = deep_merge(config, read_user_config(train.deepspeed_config))
    return config


def read_user_config(path: str) -> dict[str, Any]:
    location = f"train.deepspeed_config: {path}"
    try:
        content = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RecipeError(f"{location}: file not found") from None
    except json.JSONDecodeError as error:
        raise RecipeError(
            f"{location}: line {error.lineno}: not valid JSON ({error.msg})"
        ) from None
    if not isinstance(content, dict):
        raise RecipeError(f"{location}: expected a JSON object of DeepSpeed settings")
    return content


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` wins key by key; nested objects merge rather than replace."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def skip_inference_comm_op() -> None:
    """DeepSpeed's CPU backend JIT-compiles a shared-memory all-reduce when its process group
    starts: about a minute on two cores on a machine's first run, and again whenever another
    interpreter or compiler flag builds it over, yet only tensor-parallel inference calls it
    (`inference_all_reduce`); training reduces through torch.distributed. DeepSpeed keeps its
    op probe in one module-level dict so that edits like this one hold."""
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


def clear_stale_build_locks(max_age_s: float = 900.0, idle_age_s: float = 60.0) -> list[Path]:
    """DeepSpeed JIT-builds an op on its first use on a machine (its CPU optimizers, when a
    DeepSpeed JSON asks for one), under a lock file in torch's extensions folder. A build
    killed midway (a cancelled job, a preempted node, a trial stopped by Tune) leaves the
    lock behind, and every later DeepSpeed start on that machine then waits on it forever,
    silently. A lock is stale when nothing on this node is building in its folder (no
    process runs there or names it) and it is older than the moment between taking a lock
    and starting the compiler; or when it is older than any build takes. Returns the locks
    removed."""
    from torch.utils.cpp_extension import get_default_build_root

    # torch builds in $TORCH_EXTENSIONS_DIR/<op>, else in <cache>/<python+device>/<op>.
    custom = os.environ.get("TORCH_EXTENSIONS_DIR")
    locks = (
        Path(custom).glob("*/lock") if custom else Path(get_default_build_root()).glob("*/*/lock")
    )
    removed = []
    now = time.time()
    for lock in locks:
        try:
            age = now - lock.stat().st_mtime
            if age > max_age_s or (age > idle_age_s and not _building_in(lock.parent)):
                lock.unlink()
                removed.append(lock)
        except FileNotFoundError:  # another rank removed it first
            continue
    return removed


def _building_in(folder: Path) -> bool:
    """Whether a process on this node works in `folder` (ninja runs there; the compiler's
    command line names it)."""
    import psutil

    target = str(folder.resolve())
    for process in psutil.process_iter(["cwd", "cmdline"]):
        info = process.info
        if info.get("cwd") == target or target in " ".join(info.get("cmdline") or ()):
            return True
    return False
