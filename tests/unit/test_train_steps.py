"""The Ray-free pieces of the training loop."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from fulcrum.recipe import TrainSection
from fulcrum.train.deepspeed_config import deepspeed_config
from fulcrum.train.steps import (
    evaluate_confusion,
    make_collate,
    steps_per_epoch,
    warmup_linear_decay,
)


def test_collate_pads_to_longest_not_max_length(tiny_bert_dir):
    from transformers import AutoTokenizer

    collate = make_collate(AutoTokenizer.from_pretrained(tiny_bert_dir), max_length=64)
    batch = collate(
        {
            "text": np.array(["hi", "a much longer text here"], dtype=object),
            "label": np.array([1, 0]),
        }
    )
    assert batch["input_ids"].shape == (2, 7)  # [CLS] a much longer text here [SEP]
    assert batch["labels"].tolist() == [1, 0]
    assert batch["attention_mask"][0].tolist() == [1, 1, 1, 0, 0, 0, 0]


def test_collate_truncates_to_max_length(tiny_bert_dir):
    from transformers import AutoTokenizer

    collate = make_collate(AutoTokenizer.from_pretrained(tiny_bert_dir), max_length=8)
    batch = collate({"text": np.array(["word " * 50], dtype=object), "label": np.array([0])})
    assert batch["input_ids"].shape == (1, 8)


def test_schedule_warms_up_then_decays_to_zero():
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    scheduler = warmup_linear_decay(optimizer, warmup_steps=2, total_steps=6)
    rates = []
    for _ in range(6):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx([0.5, 1.0, 1.0, 0.75, 0.5, 0.25])


@pytest.mark.parametrize(
    ("rows", "workers", "batch", "expected"), [(204, 2, 16, 7), (100, 1, 10, 10), (5, 2, 16, 1)]
)
def test_steps_per_epoch_follows_equal_shards(rows, workers, batch, expected):
    assert steps_per_epoch(rows, workers, batch) == expected


def test_evaluate_confusion_counts_argmax_per_label():
    def forward(**inputs):
        return SimpleNamespace(logits=inputs["input_ids"].float())

    batches = [
        {"input_ids": torch.tensor([[5.0, 0.0], [0.0, 5.0]]), "labels": torch.tensor([0, 0])},
        {"input_ids": torch.tensor([[0.0, 5.0]]), "labels": torch.tensor([1])},
    ]
    assert evaluate_confusion(forward, batches, 2).tolist() == [[1, 1], [0, 1]]


def test_deepspeed_config_from_recipe():
    config = deepspeed_config(TrainSection(batch_size=8, zero_stage=3, grad_clip=0.5))
    assert config["train_micro_batch_size_per_gpu"] == 8
    assert config["zero_optimization"] == {"stage": 3}
    assert config["gradient_clipping"] == 0.5
    assert config["bf16"] == {"enabled": False}
    assert "gradient_clipping" not in deepspeed_config(TrainSection(grad_clip=0))
    assert deepspeed_config(TrainSection(use_gpu=True))["bf16"] == {"enabled": True}
