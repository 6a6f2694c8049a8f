"""A checkpoint's optimizer state carries the learning rate and weight decay it was trained
with; a run that continues it (a PBT clone) must train with its own recipe's values while
the schedule keeps its place."""

import torch

from fulcrum.train.steps import lr_factor, make_scheduler
from fulcrum.train.worker import apply_optimizer_settings


def _trained(lr: float, weight_decay: float, steps: int):
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.AdamW([weight], lr=lr, weight_decay=weight_decay)
    scheduler = make_scheduler(optimizer, warmup_steps=2, total_steps=10, shape="linear")
    for _ in range(steps):
        weight.sum().backward()
        optimizer.step()
        scheduler.step()
    return optimizer, scheduler


def test_recipe_values_replace_the_checkpoints_and_the_schedule_keeps_its_place():
    donor_optimizer, donor_scheduler = _trained(lr=1e-3, weight_decay=0.0, steps=4)
    optimizer, scheduler = _trained(lr=5e-2, weight_decay=0.3, steps=0)
    optimizer.load_state_dict(donor_optimizer.state_dict())
    scheduler.load_state_dict(donor_scheduler.state_dict())
    assert optimizer.param_groups[0]["lr"] == donor_optimizer.param_groups[0]["lr"]

    apply_optimizer_settings(optimizer, scheduler, lr=2e-3, weight_decay=0.01)
    group = optimizer.param_groups[0]
    assert group["lr"] == 2e-3 * lr_factor(4, 2, 10, "linear")
    assert group["weight_decay"] == 0.01
    assert scheduler.get_last_lr() == [group["lr"]]
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == 2e-3 * lr_factor(5, 2, 10, "linear"), (
        "the next step follows the new peak"
    )


def test_the_runs_own_values_change_nothing():
    optimizer, scheduler = _trained(lr=1e-3, weight_decay=0.1, steps=3)
    before = optimizer.param_groups[0]["lr"]
    apply_optimizer_settings(optimizer, scheduler, lr=1e-3, weight_decay=0.1)
    assert optimizer.param_groups[0]["lr"] == before
