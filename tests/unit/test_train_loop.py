"""A rank's training loop without Ray or DeepSpeed: the loss of a batch, what an evaluation
decides, and the state a checkpoint carries."""

from types import SimpleNamespace

import pytest
import torch

from fulcrum.diagnosis import Finding
from fulcrum.recipe import validate_recipe
from fulcrum.train.adversarial import Attack, EmbeddingPerturbation
from fulcrum.train.loop import TrainState, WorkerConfig, batch_loss, judge
from fulcrum.train.objective import Objective


def _recipe(**train):
    return validate_recipe(
        {
            "name": "loop",
            "data": {"path": "unused.csv"},
            "train": {"lr": 1e-3, "epochs": 4, "warmup_ratio": 0.1, **train},
        }
    )


class Tagger(torch.nn.Module):
    """Embeddings and a linear head: enough for the objective and an adversarial pass."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embeddings = torch.nn.Embedding(10, 4)
        self.head = torch.nn.Linear(4, 3)

    def get_input_embeddings(self):
        return self.embeddings

    def forward(self, input_ids, attention_mask=None):
        return SimpleNamespace(logits=self.head(self.embeddings(input_ids).mean(1)))


def _batch():
    return {"input_ids": torch.tensor([[1, 2, 3], [4, 5, 6]])}, torch.tensor([0, 2])


def test_batch_loss_is_the_objectives_loss_of_the_models_logits():
    model = Tagger()
    inputs, labels = _batch()
    expected = torch.nn.functional.cross_entropy(model(**inputs).logits, labels)
    loss = batch_loss(model, model, inputs, labels, Objective())
    assert loss.item() == pytest.approx(expected.item())
    weighted = batch_loss(model, model, inputs, labels, Objective(class_weights=(1.0, 1.0, 5.0)))
    assert weighted.item() != pytest.approx(loss.item())
    with_l1 = batch_loss(model, model, inputs, labels, Objective(l1=0.1))
    l1 = sum(p.abs().sum() for p in model.parameters()).item()
    assert with_l1.item() == pytest.approx(loss.item() + 0.1 * l1, rel=1e-5)


def test_an_adversarial_batch_loss_adds_the_perturbed_passs_loss():
    model = Tagger()
    inputs, labels = _batch()
    clean = batch_loss(model, model, inputs, labels, Objective())
    attack = Attack.from_recipe(_recipe(adversarial={"method": "fgm"}).train.adversarial)
    attacked = batch_loss(
        model, model, inputs, labels, Objective(), attack, EmbeddingPerturbation(model)
    )
    assert attacked.item() > clean.item()  # the attacked pass's loss is added to it


def _record(epoch, macro_f1):
    return {"epoch": epoch, "step": 10 * epoch, "train_loss": 1.0, "val_macro_f1": macro_f1}


NOT_LEARNED = Finding("not_learned", True, "the model has not learned")


def test_judge_warns_with_tips_once_then_says_it_is_still_so():
    recipe, state = _recipe(), TrainState()
    first = judge(state, _record(1, 0.2), [NOT_LEARNED], recipe)
    assert first.warnings[0].startswith("epoch 1 step 10: the model has not learned; try: ")
    second = judge(state, _record(2, 0.2), [NOT_LEARNED, Finding("weak", False, "weak")], recipe)
    assert second.warnings == ["epoch 2 step 20: the model has not learned"]
    assert state.global_step == 20 and len(state.history) == 2
    assert all(record["not_learned"] for record in state.history)
    assert judge(state, _record(3, 0.9), [], recipe).warnings == []


def test_judge_stops_when_patience_runs_out_and_the_state_says_where():
    recipe, state = _recipe(early_stopping_patience=2), TrainState()
    decisions = [
        judge(state, _record(e, f1), [], recipe) for e, f1 in enumerate([0.5, 0.6, 0.6, 0.55], 1)
    ]
    assert [d.stop for d in decisions] == [False, False, False, True]
    assert decisions[-1].stale == 2
    assert state.stopped_early == {"step": 40, "epoch": 4}
    assert not TrainState().stopped_early


def test_state_survives_a_checkpoint_and_takes_the_ranks_where_they_run_now():
    state = TrainState(global_step=7, history=[_record(1, 0.5)], workers=[{"rank": 0}])
    state.stopped_early = {"step": 7, "epoch": 1}
    restored = TrainState.from_json(state.to_json(), workers=[{"rank": 0, "host": "b"}])
    assert (restored.global_step, restored.history, restored.stopped_early) == (
        7,
        state.history,
        {"step": 7, "epoch": 1},
    )
    assert restored.workers == [{"rank": 0, "host": "b"}]
    assert "stopped_early" not in TrainState(global_step=1).to_json()


def test_worker_config_travels_as_a_dict_with_the_queue_itself():
    queue = object()  # an actor handle: must not be copied
    config = WorkerConfig(
        recipe={},
        label_names=["a"],
        model_dir="/m",
        deepspeed={},
        eval_batch_size=32,
        progress_queue=queue,
    )
    raw = config.as_dict()
    assert raw["progress_queue"] is queue
    assert WorkerConfig(**raw) == config
