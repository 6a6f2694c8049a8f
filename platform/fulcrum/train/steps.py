"""The parts of a training run that need no Ray: data order, schedules, seeding, memory.

The Ray Train worker (worker.py) glues these together; unit tests call them directly.
"""

from __future__ import annotations

import math
import random
import resource
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass(frozen=True)
class EpochPlan:
    """Which rows each rank trains on, in which order, for every epoch.

    The order is a pure function of (seed, epoch), so a resumed run replays exactly the
    batches an uninterrupted one would have seen: it recomputes the epoch's permutation
    and skips the micro-batches already done. Each epoch's permutation is cut into equal
    contiguous shards (the remainder dropped, as DistributedSampler does) so every rank
    takes the same number of steps, which DeepSpeed's collectives require. Micro-batches
    that would not fill a whole accumulation group at the end of an epoch are dropped
    too, so optimizer steps never straddle epochs and checkpoints fall on step boundaries.
    """

    rows: int
    world: int
    batch_size: int
    accumulation: int
    seed: int

    @property
    def rows_per_rank(self) -> int:
        return self.rows // self.world

    @property
    def micro_batches_per_epoch(self) -> int:
        return self.steps_per_epoch * self.accumulation

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.rows_per_rank / self.batch_size) // self.accumulation

    def batches(self, epoch: int, rank: int) -> list[np.ndarray]:
        order = np.random.default_rng([self.seed, epoch]).permutation(self.rows)
        mine = order[rank * self.rows_per_rank : (rank + 1) * self.rows_per_rank]
        batches = [
            mine[start : start + self.batch_size] for start in range(0, len(mine), self.batch_size)
        ]
        return batches[: self.micro_batches_per_epoch]

    def position(self, global_step: int) -> tuple[int, int]:
        """(1-based epoch, micro-batches already done in it) after `global_step` steps."""
        epoch, step_in_epoch = divmod(global_step, self.steps_per_epoch)
        return epoch + 1, step_in_epoch * self.accumulation


def lr_factor(step: int, warmup_steps: int, total_steps: int, shape: str) -> float:
    """Linear warmup to the peak, then linear or cosine decay to zero at total_steps."""
    if step < warmup_steps:
        return (step + 1) / max(1, warmup_steps)
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if shape == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0 - progress


def make_scheduler(optimizer, warmup_steps: int, total_steps: int, shape: str):
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup_steps, total_steps, shape)
    )


def to_device(inputs: dict[str, torch.Tensor], device) -> dict[str, torch.Tensor]:
    return {name: tensor.to(device) for name, tensor in inputs.items()}


def rng_state() -> dict:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def peak_memory_mb(device) -> tuple[float, float]:
    """(peak resident set of this process, peak accelerator memory allocated), in MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_mb = rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024  # bytes vs KiB
    gpu_mb = (
        torch.cuda.max_memory_allocated(device) / 2**20
        if torch.cuda.is_available() and str(device).startswith("cuda")
        else 0.0
    )
    return rss_mb, gpu_mb


class AdaLoraBudget:
    """AdaLoRA's rank allocation inside a DeepSpeed engine.

    PEFT's `update_and_allocate` must run every step after backward (it scores singular
    values by |weight x gradient|), and masks the pruned ones to zero after the optimizer
    step. A DeepSpeed engine does step and zero_grad in one call, and under ZeRO-1/2 keeps
    gradients in partitioned buffers (p.grad is empty) and fp32 master weights that would
    overwrite an in-place mask. So: before the step, full gradients are assembled with
    `safe_get_full_grad` for PEFT to score; after the step, the mask PEFT chose is applied
    to the model and to the master copy (`safe_set_full_fp32_param`).
    """

    def __init__(self, peft_model) -> None:
        self.peft_model = peft_model
        self.inner = peft_model.base_model.model  # rank_pattern keys are named from here
        self.config = peft_model.peft_config[peft_model.active_adapter]
        self.lora = [
            (n, p) for n, p in self.inner.named_parameters() if "lora_" in n and p.requires_grad
        ]
        self.pattern: dict[str, list[bool]] | None = None

    def before_step(self, global_step: int) -> None:
        from deepspeed.utils import safe_get_full_grad

        previous_pattern = self.config.rank_pattern
        saved = {}
        for name, parameter in self.lora:
            saved[name] = parameter.grad
            full = safe_get_full_grad(parameter)
            if full is not None:
                parameter.grad = full
        self.peft_model.base_model.update_and_allocate(global_step)
        for name, parameter in self.lora:
            parameter.grad = saved[name]
        final_phase = global_step >= self.config.total_step - self.config.tfinal
        masked_now = self.config.rank_pattern is not previous_pattern or final_phase
        self.pattern = self.config.rank_pattern if masked_now else None

    @torch.no_grad()
    def after_step(self) -> None:
        from deepspeed.utils import safe_set_full_fp32_param

        if not self.pattern:
            return
        for name, parameter in self.lora:
            if name in self.pattern:
                keep = torch.tensor(self.pattern[name], device=parameter.device).unsqueeze(-1)
                parameter.masked_fill_(~keep, 0.0)
                safe_set_full_fp32_param(parameter, parameter.detach().clone())


def evaluations_without_improvement(
    history: list[dict[str, Any]], key: str, min_delta: float
) -> int:
    """How many evaluations in a row, counting back from the last, did not beat the best
    value so far by more than min_delta (early stopping's patience counter)."""
    best, since = None, 0
    for record in history:
        value = record[key]
        if best is None or value > best + min_delta:
            best, since = value, 0
        else:
            since += 1
    return since
