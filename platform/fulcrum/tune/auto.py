"""`fulcrum tune RECIPE --auto --budget 30m`: a campaign the user does not have to design.

The space is built in, per method: the learning rate around the method's default, the
epochs around the settled ones, and what shapes the method (LoRA's rank and targets, the
number of prefix tokens, weight decay for full fine-tuning). The settled defaults are the
first trial, so the campaign never ends worse than the minimal recipe. ASHA stops trials
that trail at the same epoch. How many trials fit is estimated from a probe: a few
optimizer steps of the real model on real rows, timed on this machine, times the steps a
trial takes, plus what starting a Train run costs; Tune's time budget is the hard stop.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from fulcrum.defaults import steps_per_epoch
from fulcrum.errors import RecipeError
from fulcrum.recipe import Recipe, validate_recipe

# What starting a trial costs besides its steps: Ray Train's worker group, DeepSpeed's
# engines, merging and evaluating the artifact (measured here: 20-40 s for MiniLM).
TRIAL_OVERHEAD_S = 30.0
# Each epoch ends in an evaluation and a checkpoint: a validation row costs about a third of
# a training row, and saving and reporting the checkpoint a few seconds.
EVALUATION_SHARE = 1 / 3
CHECKPOINT_S = 5.0
PROBE_STEPS = 3
# Reserved at the end of the budget for the campaign's report and kept artifacts.
REPORT_RESERVE_S = 15.0
MAX_TRIALS = 200
QUEUE_FACTOR = 2
LR_SPREAD = 4.0  # the learning rate is searched in [default / 4, default x 4]

# Per method: extra dimensions beyond the learning rate and the epochs.
METHOD_SPACES: dict[str, dict[str, dict[str, Any]]] = {
    "lora": {
        "peft.r": {"choice": [8, 16, 32]},
        "peft.target_modules": {"choice": ["all-linear", "peft-default"]},
    },
    "adalora": {"peft.r": {"choice": [4, 8, 16]}},
    "ia3": {},
    "prefix": {"peft.num_virtual_tokens": {"choice": [8, 16, 32]}},
    "head_only": {},
    "full": {"train.weight_decay": {"choice": [0.0, 0.01]}},
}


@dataclass(frozen=True)
class AutoPlan:
    recipe: Recipe  # the campaign as it runs: space, trial count and budget filled in
    first_trial: dict[str, Any]  # the settled defaults, in Tune's flat keys
    trial_s: float  # estimated seconds of one trial that runs all its epochs
    description: str


def plan_auto(recipe: Recipe, concurrency: int) -> AutoPlan:
    from fulcrum.train.settle import settle_from_files

    settled = settle_from_files(recipe).recipe
    budget = float(recipe.tune.time_budget_s)
    space = auto_space(recipe, settled) | {
        key: dimension.model_dump(exclude_none=True) for key, dimension in recipe.tune.space.items()
    }
    first = {key: _current(settled, key) for key in space}
    for key, value in first.items():
        dimension = space[key]
        if "choice" in dimension and value not in dimension["choice"]:
            dimension["choice"] = [value, *dimension["choice"]]
    max_t = max(int(max(space["train.epochs"]["choice"])), 1)
    grace = max(1, max_t // 4)
    step_s, how = probe_step_seconds(settled)
    epoch_s = _epoch_seconds(settled, step_s)
    full_trial_s = TRIAL_OVERHEAD_S + max_t * epoch_s
    mean_trial_s = TRIAL_OVERHEAD_S + expected_epochs(grace, max_t, 2.0) * epoch_s
    usable = budget - REPORT_RESERVE_S
    first_s = TRIAL_OVERHEAD_S + settled.train.epochs * epoch_s
    if usable < first_s:
        # The first trial (the settled defaults) must finish, or the campaign ends with
        # nothing to deploy.
        raise RecipeError(
            f"tune.time_budget_s: {_duration(budget)} does not fit one trial of the settled "
            f"recipe ({settled.train.epochs} epochs: about {_duration(first_s)} here, {how}); "
            f"give at least {_duration(first_s + REPORT_RESERVE_S)}"
        )
    trials = max(concurrency, math.floor(usable * concurrency / mean_trial_s))
    # More are queued than the estimate says fit: when ASHA stops trials sooner than the
    # estimate assumes, the budget still goes to search; the time budget stops the rest.
    queued = min(MAX_TRIALS, max(concurrency + 1, QUEUE_FACTOR * trials))
    raw = recipe.to_dict()
    raw["tune"] |= {
        "space": space,
        "num_samples": queued,
        "time_budget_s": usable,
        "grace_period": grace,
        "reduction_factor": 2.0,
        "max_concurrent_trials": concurrency,
    }
    planned = validate_recipe(raw, source="tune --auto")
    description = (
        f"auto: {_duration(budget)} budget; {how}; a trial of {max_t} epochs takes about "
        f"{_duration(full_trial_s)}, an average one (ASHA stops most early) "
        f"{_duration(mean_trial_s)}: about {trials} trial(s) fit, {concurrency} at a time "
        f"({queued} queued; the budget stops the campaign); space "
        + ", ".join(f"{key} {_dimension(value)}" for key, value in space.items())
    )
    return AutoPlan(planned, first, full_trial_s, description)


def auto_space(recipe: Recipe, settled: Recipe) -> dict[str, dict[str, Any]]:
    """The built-in dimensions for the recipe's method, centred on its settled values."""
    lr = settled.train.lr
    epochs = settled.train.epochs
    space: dict[str, dict[str, Any]] = {
        "train.lr": {"loguniform": [lr / LR_SPREAD, lr * LR_SPREAD]},
        "train.epochs": {"choice": sorted({max(1, round(epochs / 2)), epochs, 2 * epochs})},
    }
    return space | {key: dict(value) for key, value in METHOD_SPACES[recipe.peft.method].items()}


def expected_epochs(grace: int, max_t: int, eta: float) -> float:
    """Epochs a trial runs on average under successive halving: all reach the first rung,
    1/eta of them the next, and so on up to max_t."""
    rungs = []
    rung = grace
    while rung < max_t:
        rungs.append(rung)
        rung = int(math.ceil(rung * eta))
    rungs.append(max_t)
    total, previous = 0.0, 0
    for index, rung in enumerate(rungs):
        total += (rung - previous) / eta**index
        previous = rung
    return total


def probe_step_seconds(settled: Recipe) -> tuple[float, str]:
    """Seconds per optimizer step of one worker: a few real steps of the real model on real
    rows, on this machine's CPU, with the threads a worker gets. (seconds, how measured)"""
    import torch

    from fulcrum.data import recipe_splits
    from fulcrum.models.classifier import load_tokenizer
    from fulcrum.models.methods import build_trainable_model, trainable_parameters
    from fulcrum.models.registry import resolve_model_dir
    from fulcrum.tasks import TASKS, model_inputs
    from fulcrum.train.merge import table_batches
    from fulcrum.train.objective import Objective

    train = settled.train
    if train.use_gpu:
        return 0.1, "GPU steps not probed on the driver (0.1 s assumed)"
    task = TASKS[settled.task.type]
    splits = recipe_splits(settled)
    model_dir = resolve_model_dir(settled.model.base)
    model = build_trainable_model(model_dir, splits.label_names, settled.peft, task, 100)
    collate = task.make_collate(load_tokenizer(model_dir), settled.model.max_length)
    rows = splits.train.take(list(range(min(splits.train.num_rows, train.batch_size))))
    batch = model_inputs(collate(next(table_batches(rows, train.batch_size))))
    labels = batch.pop("labels")
    optimizer = torch.optim.AdamW(trainable_parameters(model), lr=train.lr)
    objective = Objective()
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(train.cpus_per_worker)))
    model.train()
    try:
        times = []
        for _ in range(PROBE_STEPS + 1):
            started = time.perf_counter()
            loss = objective.task_loss(model(**batch).logits, labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            times.append(time.perf_counter() - started)
    finally:
        torch.set_num_threads(threads)
    step_s = sorted(times[1:])[len(times[1:]) // 2] * train.gradient_accumulation_steps
    return step_s, f"probe: {step_s:.2f} s per step of {train.batch_size} rows"


def _epoch_seconds(settled: Recipe, step_s: float) -> float:
    from fulcrum.data import recipe_splits

    train = settled.train
    splits = recipe_splits(settled)
    rows = splits.train.num_rows * (settled.augment.multiplier if settled.augment_operations else 1)
    steps = steps_per_epoch(
        rows, train.workers, train.batch_size, train.gradient_accumulation_steps
    )
    validation_steps = splits.validation.num_rows / (train.workers * train.batch_size)
    return (steps + EVALUATION_SHARE * validation_steps) * step_s + CHECKPOINT_S


def _current(settled: Recipe, key: str) -> Any:
    section, _, field = key.partition(".")
    node: Any = getattr(settled, section)
    for part in field.split("."):
        node = getattr(node, part)
    return node


def _dimension(dimension: dict[str, Any]) -> str:
    kind, values = next(iter(dimension.items()))
    if kind == "loguniform":
        return f"{values[0]:.2g}..{values[1]:.2g} (log)"
    return "{" + ", ".join(str(value) for value in values) + "}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def parse_budget(text: str) -> float:
    """`30m`, `2h`, `1h30m`, `90s` or plain seconds, as seconds."""
    import re

    cleaned = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", cleaned):
        return float(cleaned)
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", cleaned)
    if not cleaned or parts is None or not any(parts.groups()):
        raise RecipeError(f"--budget {text!r}: give a duration such as 30m, 2h, 1h30m or 90s")
    hours, minutes, seconds = (int(group or 0) for group in parts.groups())
    return float(hours * 3600 + minutes * 60 + seconds)
