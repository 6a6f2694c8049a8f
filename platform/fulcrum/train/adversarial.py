"""Adversarial training and attack on the embedding output (FGM, PGD).

The perturbation is added to the output of the input-embedding module through a forward
hook, so it needs no gradient on the embedding weights: it works when PEFT froze them.
The gradient that steers it is taken with `torch.autograd.grad` with respect to the
perturbation only, through the bare module rather than the DeepSpeed engine, so no
parameter gradient is computed or reduced until the one real backward of the combined
(clean + adversarial) loss through the engine.

FGM (Miyato et al.) is one step of length epsilon along the normalised gradient; PGD
(Madry et al.) takes `steps` steps of `step_size` and projects back onto the epsilon ball.
Norms are L2 per example, over all of its positions and hidden units.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

Loss = Callable[[Any], torch.Tensor]  # model outputs -> scalar loss


@dataclass(frozen=True)
class Attack:
    method: str  # fgm | pgd
    epsilon: float
    steps: int = 1
    step_size: float = 1.0
    weight: float = 1.0  # of the adversarial loss, in training

    @classmethod
    def from_recipe(cls, section) -> Attack | None:
        if section.method == "none":
            return None
        return cls(
            section.method, section.epsilon, section.steps, section.step_size, section.weight
        )

    @property
    def schedule(self) -> tuple[int, float]:
        """(steps, step length): FGM is one step of length epsilon."""
        return (1, self.epsilon) if self.method == "fgm" else (self.steps, self.step_size)


class EmbeddingPerturbation:
    """Adds `delta` to the input-embedding output while `delta` is set. A delta of None
    on the first forward is created as zeros that require grad, so the clean forward
    also yields the gradient the first attack step needs."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.delta: torch.Tensor | None = None
        self._create = False
        self._handle = model.get_input_embeddings().register_forward_hook(self._hook)

    def _hook(self, module, inputs, output: torch.Tensor) -> torch.Tensor:
        if self._create:
            self.delta = torch.zeros_like(output, requires_grad=True)
            self._create = False
        return output if self.delta is None else output + self.delta

    @contextmanager
    def tracking(self) -> Iterator[None]:
        """The next forward starts from a zero perturbation that records its gradient."""
        self._create = True
        try:
            yield
        finally:
            self._create = False

    @contextmanager
    def perturbed(self, delta: torch.Tensor) -> Iterator[None]:
        self.delta = delta
        try:
            yield
        finally:
            self.delta = None

    def remove(self) -> None:
        self._handle.remove()


def ascend(delta: torch.Tensor, gradient: torch.Tensor, length: float, epsilon: float):
    """One normalised gradient-ascent step, projected onto the per-example epsilon ball."""
    dims = tuple(range(1, gradient.dim()))
    norm = gradient.norm(dim=dims, keepdim=True).clamp_min(1e-12)
    moved = delta.detach() + length * gradient / norm
    moved_norm = moved.norm(dim=dims, keepdim=True).clamp_min(1e-12)
    return moved * torch.clamp(epsilon / moved_norm, max=1.0)


def find_perturbation(
    forward: Callable[[], Any],
    loss_of: Loss,
    attack: Attack,
    perturbation: EmbeddingPerturbation,
) -> torch.Tensor:
    """The perturbation that raises the loss (detached). `forward` must not be a
    DeepSpeed engine's: the engine hooks its outputs so that any backward through them
    runs its gradient reduction, and this search computes no parameter gradients."""
    with perturbation.tracking():
        loss = loss_of(forward())
    start = perturbation.delta
    perturbation.delta = None
    steps, length = attack.schedule
    (gradient,) = torch.autograd.grad(loss, start)
    delta = ascend(torch.zeros_like(start), gradient, length, attack.epsilon)
    for _ in range(steps - 1):
        with perturbation.perturbed(delta.requires_grad_(True)):
            (gradient,) = torch.autograd.grad(loss_of(forward()), delta)
        delta = ascend(delta, gradient, length, attack.epsilon)
    return delta.detach()


def adversarial_training_loss(
    forward: Callable[[], Any],
    search_forward: Callable[[], Any],
    loss_of: Loss,
    attack: Attack,
    perturbation: EmbeddingPerturbation,
) -> torch.Tensor:
    """Clean loss + weight x loss under the perturbation found for this batch. The search
    runs through the bare module (`search_forward`); the two losses that train run
    through the engine (`forward`), so its one backward reduces their gradients."""
    delta = find_perturbation(search_forward, loss_of, attack, perturbation)
    clean = loss_of(forward())
    with perturbation.perturbed(delta):
        return clean + attack.weight * loss_of(forward())


def attacked_counts(
    model: torch.nn.Module,
    batches: Iterable[dict[str, Any]],
    task,
    label_names: list[str],
    attack: Attack,
    loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> np.ndarray:
    """A task's prediction counts with every batch under its own worst-case perturbation
    (the attack raises the loss on the gold labels): robustness in embedding space."""
    from fulcrum.tasks import model_inputs

    model.eval()
    perturbation = EmbeddingPerturbation(model)
    total = task.empty_counts(label_names)
    try:
        for batch in batches:
            inputs = {k: v for k, v in model_inputs(batch).items() if k != "labels"}
            with torch.enable_grad():
                delta = find_perturbation(
                    lambda inputs=inputs: model(**inputs),
                    lambda outputs, labels=batch["labels"]: loss_of(outputs.logits, labels),
                    attack,
                    perturbation,
                )
            with torch.no_grad(), perturbation.perturbed(delta):
                logits = model(**inputs).logits.float().numpy()
            total += task.count(logits, batch, label_names)
    finally:
        perturbation.remove()
    return total
