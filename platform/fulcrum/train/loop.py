"""The parts of a rank's training loop that need neither Ray nor DeepSpeed: what the driver
hands every rank, the state a checkpoint carries, one batch's loss, and what an evaluation
decides (a not-learned warning, early stopping). worker.py runs them on Ray Train; unit
tests call them on a plain torch model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from fulcrum.diagnosis import advice
from fulcrum.recipe import Recipe
from fulcrum.train.adversarial import adversarial_training_loss
from fulcrum.train.steps import evaluations_without_improvement


@dataclass(frozen=True)
class WorkerConfig:
    """What the driver hands every rank. Ray Train takes a dict (`as_dict`) and gives each
    rank its copy; the rank rebuilds this from it."""

    recipe: dict[str, Any]  # the settled recipe
    label_names: list[str]
    model_dir: str
    deepspeed: dict[str, Any]
    eval_batch_size: int
    model_overrides: dict[str, Any] | None = None
    progress_queue: Any = None  # a ray.util.queue.Queue read by the driver; rank 0 writes
    initial_checkpoint: str | None = None  # start from these weights (a PBT clone)
    class_weights: list[float] | None = None
    teacher_labels: int | None = None  # the teacher's label count, where it has logits

    def as_dict(self) -> dict[str, Any]:
        """Shallow, so the queue's actor handle travels as itself."""
        return {item.name: getattr(self, item.name) for item in fields(self)}


@dataclass
class TrainState:
    """What a checkpoint carries besides the weights, so a resumed run continues the same
    history from the same step."""

    global_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    workers: list[dict[str, Any]] = field(default_factory=list)  # where each rank ran
    stopped_early: dict[str, int] | None = None

    def to_json(self) -> str:
        content = {"global_step": self.global_step, "history": self.history}
        content["workers"] = self.workers
        if self.stopped_early:
            content["stopped_early"] = self.stopped_early
        return json.dumps(content, indent=2)

    @classmethod
    def from_json(cls, text: str, workers: list[dict[str, Any]]) -> TrainState:
        """`workers`: where the ranks run now (a resumed run may run elsewhere)."""
        content = json.loads(text)
        return cls(
            global_step=int(content["global_step"]),
            history=list(content["history"]),
            workers=workers,
            stopped_early=content.get("stopped_early"),
        )


def batch_loss(
    model,
    module,
    inputs: dict[str, torch.Tensor],
    labels: torch.Tensor,
    objective,
    attack=None,
    perturbation=None,
    teacher: torch.Tensor | None = None,
) -> torch.Tensor:
    """The training loss of one micro-batch: the task loss from the logits (the model is
    not given the labels), with an adversarial term when `attack` is set, plus the
    objective's penalties. `model` runs the forward pass (a DeepSpeed engine), `module` is
    the model it wraps (the penalties and the perturbed pass read it)."""

    def forward():
        return model(**inputs)

    def loss_of(outputs) -> torch.Tensor:
        return objective.task_loss(outputs.logits, labels, teacher)

    if attack is None:
        loss = loss_of(forward())
    else:
        loss = adversarial_training_loss(
            forward, lambda: module(**inputs), loss_of, attack, perturbation
        )
    return loss + objective.penalties(module)


@dataclass(frozen=True)
class Judgement:
    warnings: list[str]  # what the progress channel says, one line each
    stop: bool  # early stopping says so
    stale: int  # evaluations in a row without improvement


def judge(state: TrainState, record: dict[str, Any], findings, recipe: Recipe) -> Judgement:
    """Add an evaluation's record to the history and decide what follows from it: a
    warning for each blocking finding (with what to try the first time; later ones say it
    is still so) and whether patience has run out."""
    state.history.append(record)
    warnings = []
    for finding in findings:
        if not finding.blocking:
            continue
        said = any(earlier.get("not_learned") for earlier in state.history)
        record["not_learned"] = True
        tips = "" if said else "; try: " + "; ".join(advice(recipe, state.history, recipe.metric))
        warnings.append(f"epoch {record['epoch']} step {record['step']}: {finding.text}{tips}")
    state.global_step = int(record["step"])
    train = recipe.train
    stale = evaluations_without_improvement(
        state.history, f"val_{recipe.metric}", train.early_stopping_min_delta
    )
    stop = bool(train.early_stopping_patience and stale >= train.early_stopping_patience)
    if stop:
        state.stopped_early = {"step": int(record["step"]), "epoch": int(record["epoch"])}
    return Judgement(warnings, stop, stale)
