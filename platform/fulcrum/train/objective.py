"""The training loss, assembled from the recipe: cross-entropy (label-smoothed, each label
weighted as train.class_weights says), the teacher's soft targets when distilling, an L1
penalty on what trains, and AdaLoRA's orthogonality penalty.

Fulcrum computes the loss from the logits rather than letting the model do it, so every
term works the same with every method and task. The one term a model used to add on its
own (PEFT's AdaLoRA adds its orthogonality penalty inside forward, only when given labels)
is computed here instead, with PEFT's formula.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fulcrum.errors import RecipeError
from fulcrum.recipe import Recipe
from fulcrum.tasks import IGNORE_INDEX

CONTINUAL_TEMPERATURE = 2.0  # continual.distill's, as distill.temperature's default


@dataclass(frozen=True)
class Objective:
    label_smoothing: float = 0.0
    l1: float = 0.0
    distill_alpha: float | None = None  # None: no teacher
    temperature: float = 1.0
    adalora_weight: float = 0.0
    class_weights: tuple[float, ...] | None = None  # one per label, in label order

    @classmethod
    def from_recipe(
        cls,
        recipe: Recipe,
        adalora_weight: float = 0.0,
        class_weights: list[float] | None = None,
    ) -> Objective:
        distill = recipe.distill
        alpha, temperature = (distill.alpha, distill.temperature) if distill else (None, 1.0)
        if recipe.continual is not None and recipe.continual.distill:
            alpha, temperature = 1 - recipe.continual.distill, CONTINUAL_TEMPERATURE
        return cls(
            label_smoothing=recipe.train.label_smoothing,
            l1=recipe.train.l1,
            distill_alpha=alpha,
            temperature=temperature,
            adalora_weight=adalora_weight,
            class_weights=tuple(class_weights) if class_weights else None,
        )

    def task_loss(
        self, logits: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Per-position losses averaged over labelled positions; works for (batch, labels)
        and (batch, sequence, labels) logits alike."""
        classes = logits.shape[-1]
        flat_logits = logits.reshape(-1, classes).float()
        flat_labels = labels.reshape(-1)
        weight = (
            torch.tensor(self.class_weights, dtype=flat_logits.dtype, device=flat_logits.device)
            if self.class_weights
            else None
        )
        # With weights, the mean is over the weights of the targets (PyTorch's definition),
        # so the loss keeps its scale whatever the weights' own scale.
        hard = F.cross_entropy(
            flat_logits,
            flat_labels,
            weight=weight,
            ignore_index=IGNORE_INDEX,
            label_smoothing=self.label_smoothing,
        )
        if self.distill_alpha is None or teacher is None:
            return hard
        # A continued model's parent knows its first labels only: the soft term is over
        # those (learning without forgetting), the new labels left to the hard one.
        known = teacher.shape[-1]
        flat_teacher = teacher.reshape(-1, known).float()
        # Positions without a label, or that the teacher never saw (NaN), get no soft target.
        kept = (flat_labels != IGNORE_INDEX) & ~flat_teacher[:, 0].isnan()
        soft = distillation_kl(flat_logits[kept][:, :known], flat_teacher[kept], self.temperature)
        return self.distill_alpha * hard + (1 - self.distill_alpha) * soft

    def penalties(self, model: torch.nn.Module) -> torch.Tensor | float:
        total: torch.Tensor | float = 0.0
        if self.l1:
            total = total + self.l1 * sum(
                parameter.abs().sum() for parameter in model.parameters() if parameter.requires_grad
            )
        if self.adalora_weight:
            total = total + self.adalora_weight * adalora_orthogonality(model)
        return total


def distillation_kl(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """T² · KL(teacher/T ‖ student/T), averaged over rows (Hinton et al.): the T² keeps the
    soft term's gradients on the scale of the hard one as T changes."""
    if student_logits.numel() == 0:
        return student_logits.sum()
    student = F.log_softmax(student_logits / temperature, dim=-1)
    target = F.log_softmax(teacher_logits / temperature, dim=-1)
    return F.kl_div(student, target, log_target=True, reduction="batchmean") * temperature**2


def adalora_orthogonality(model: torch.nn.Module) -> torch.Tensor | float:
    """Mean Frobenius distance of AdaLoRA's P·Pᵀ and Qᵀ·Q from identity (PEFT's formula,
    which its forward only applies when the model computes the loss itself)."""
    total: torch.Tensor | float = 0.0
    count = 0
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad or not ("lora_A" in name or "lora_B" in name):
            continue
        covariance = parameter @ parameter.T if "lora_A" in name else parameter.T @ parameter
        identity = torch.eye(*covariance.shape, dtype=covariance.dtype, device=covariance.device)
        total = total + torch.norm(covariance - identity, p="fro")
        count += 1
    return total / count if count else 0.0


def class_weight_vector(
    setting: str | dict[str, float] | None, label_ids: Any, label_names: list[str]
) -> list[float] | None:
    """train.class_weights as one weight per label (None: unweighted). `balanced`: rows /
    (labels x rows of the label), counted over the training labels (every word's tag for
    token tasks); a label the training split never holds weighs 1. A mapping names labels;
    the rest weigh 1."""
    if setting is None or setting == "none":
        return None
    if isinstance(setting, dict):
        unknown = sorted(set(setting) - set(label_names))
        if unknown:
            raise RecipeError(
                f"train.class_weights.{unknown[0]}: no such label (labels: "
                f"{', '.join(label_names)})"
            )
        return [float(setting.get(name, 1.0)) for name in label_names]
    counts = np.bincount(np.asarray(label_ids, dtype=np.int64), minlength=len(label_names))
    present = counts > 0
    weights = np.ones(len(label_names))
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return [round(float(weight), 6) for weight in weights]
