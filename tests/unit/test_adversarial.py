"""FGM/PGD on the embedding output of a tiny BERT whose embeddings PEFT froze."""

import pytest
import torch
import torch.nn.functional as F

from fulcrum.tasks import SEQUENCE_CLASSIFICATION, evaluate_counts
from fulcrum.train.adversarial import (
    Attack,
    EmbeddingPerturbation,
    ascend,
    attacked_counts,
    find_perturbation,
)


@pytest.fixture
def lora_model(tiny_bert_dir):
    from fulcrum.models.methods import build_trainable_model
    from fulcrum.recipe import PeftSection

    torch.manual_seed(0)
    model = build_trainable_model(
        tiny_bert_dir, ["a", "b", "c"], PeftSection(r=2), SEQUENCE_CLASSIFICATION, 10
    )
    assert not model.get_input_embeddings().weight.requires_grad  # frozen by PEFT
    return model.eval()


@pytest.fixture
def batch():
    torch.manual_seed(1)
    input_ids = torch.randint(1000, 5000, (4, 7))
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}, torch.tensor(
        [0, 1, 2, 1]
    )


def test_ascend_stays_inside_the_epsilon_ball_per_example():
    torch.manual_seed(0)
    delta = torch.zeros(3, 5, 4)
    for _ in range(5):
        delta = ascend(delta, torch.randn(3, 5, 4), length=0.7, epsilon=1.0)
    norms = delta.flatten(1).norm(dim=1)
    assert torch.all(norms <= 1.0 + 1e-5) and torch.all(norms > 0.9)


@pytest.mark.parametrize("attack", [Attack("fgm", 0.5), Attack("pgd", 0.5, steps=3, step_size=0.2)])
def test_perturbation_raises_the_loss_without_touching_parameter_gradients(
    lora_model, batch, attack
):
    inputs, labels = batch
    perturbation = EmbeddingPerturbation(lora_model)

    def loss_of(outputs):
        return F.cross_entropy(outputs.logits, labels)

    clean = loss_of(lora_model(**inputs)).item()
    delta = find_perturbation(lambda: lora_model(**inputs), loss_of, attack, perturbation)
    assert delta.shape == (4, 7, 32) and not delta.requires_grad
    norms = delta.flatten(1).norm(dim=1)
    assert (
        torch.allclose(norms, torch.full((4,), 0.5), atol=1e-4)
        if attack.method == "fgm"
        else (torch.all(norms <= 0.5 + 1e-5))
    )
    with perturbation.perturbed(delta), torch.no_grad():
        attacked = loss_of(lora_model(**inputs)).item()
    assert attacked > clean + 1e-4
    assert all(p.grad is None for p in lora_model.parameters())
    with torch.no_grad():  # the hook adds nothing once the perturbation is cleared
        assert loss_of(lora_model(**inputs)).item() == pytest.approx(clean)
    perturbation.remove()


def test_attacked_counts_can_only_lose_accuracy(lora_model, batch):
    inputs, labels = batch
    rows = [{**inputs, "labels": labels}]
    loss = lambda logits, gold: F.cross_entropy(logits, gold)  # noqa: E731
    names = ["a", "b", "c"]
    clean = evaluate_counts(lora_model, rows, SEQUENCE_CLASSIFICATION, names)
    tiny = attacked_counts(
        lora_model, rows, SEQUENCE_CLASSIFICATION, names, Attack("fgm", 1e-7), loss
    )
    assert (tiny == clean).all()
    strong = attacked_counts(
        lora_model, rows, SEQUENCE_CLASSIFICATION, names, Attack("pgd", 5.0, 5, 2.0), loss
    )
    assert strong.trace() <= clean.trace() and strong.sum() == clean.sum() == 4
