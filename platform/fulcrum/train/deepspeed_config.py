"""The DeepSpeed config generated from the recipe's train section."""

from __future__ import annotations

from typing import Any

from fulcrum.recipe import TrainSection


def deepspeed_config(train: TrainSection) -> dict[str, Any]:
    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": train.batch_size,
        "gradient_accumulation_steps": 1,
        "zero_optimization": {"stage": train.zero_stage},
        # The optimizer is torch's AdamW, passed in by the loop: DeepSpeed's fused/CPU Adam
        # ops would need a compiler toolchain (CUDA or a JIT build) on every worker, and
        # ZeRO shards any torch optimizer's state correctly; it only warns unless told so.
        "zero_allow_untested_optimizer": True,
        "bf16": {"enabled": train.use_gpu},
        "steps_per_print": 1 << 30,
        "wall_clock_breakdown": False,
    }
    if train.grad_clip > 0:
        config["gradient_clipping"] = train.grad_clip
    return config
