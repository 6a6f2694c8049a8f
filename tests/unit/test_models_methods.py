"""Fine-tuning methods: what trains, what is saved, and what comes back."""

import pytest
import torch

from fulcrum.errors import ModelError
from fulcrum.models.methods import METHODS, build_trainable_model, preflight, restore_model
from fulcrum.models.prefix import add_prefix
from fulcrum.recipe import PeftSection
from fulcrum.tasks import SEQUENCE_CLASSIFICATION, TOKEN_CLASSIFICATION

LABELS = ["a", "b", "c"]


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize(
    "task", [SEQUENCE_CLASSIFICATION, TOKEN_CLASSIFICATION], ids=lambda t: t.name
)
def test_preflight_accepts_every_method_on_bert(tiny_bert_dir, method, task):
    counts = preflight(tiny_bert_dir, ["O", "B-X", "I-X"], PeftSection(method=method, r=2), task)
    assert 0 < counts["trainable"] <= counts["total"]
    if method == "full":
        assert counts["trainable"] == counts["total"]


def test_preflight_names_method_and_model_when_targets_are_missing(tiny_bert_dir):
    with pytest.raises(
        ModelError, match=r"peft.method lora cannot wrap BertForSequenceClassification"
    ):
        preflight(
            tiny_bert_dir, LABELS, PeftSection(target_modules=["q_proj"]), SEQUENCE_CLASSIFICATION
        )


def test_prefix_refuses_models_without_bert_style_attention():
    with pytest.raises(
        ModelError, match="peft.method prefix: Linear has no BERT-style self-attention"
    ):
        add_prefix(torch.nn.Linear(2, 2), 4)


def test_head_only_trains_exactly_the_new_head(tiny_bert_dir):
    model = build_trainable_model(
        tiny_bert_dir, LABELS, PeftSection(method="head_only"), SEQUENCE_CLASSIFICATION, 10
    )
    trainable = sorted(name for name, p in model.named_parameters() if p.requires_grad)
    assert trainable == ["classifier.bias", "classifier.weight"]


@pytest.mark.parametrize("method", ["lora", "ia3", "adalora", "prefix", "head_only", "full"])
def test_saved_adapter_restores_the_same_predictions(tiny_bert_dir, tmp_path, method):
    torch.manual_seed(0)
    section = PeftSection(method=method, r=2, num_virtual_tokens=3)
    model = build_trainable_model(tiny_bert_dir, LABELS, section, SEQUENCE_CLASSIFICATION, 10)
    with torch.no_grad():  # move every trainable weight away from its initial value
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter) * 0.1)
    model.eval()
    METHODS[method].save(model, tmp_path / "adapter")
    restored = restore_model(
        tiny_bert_dir, tmp_path / "adapter", LABELS, section, SEQUENCE_CLASSIFICATION
    )
    inputs = {
        "input_ids": torch.tensor([[101, 2000, 2001, 102]]),
        "attention_mask": torch.ones(1, 4, dtype=torch.long),
    }
    with torch.no_grad():
        expected, got = model(**inputs).logits, restored(**inputs).logits
    assert torch.allclose(expected, got, atol=1e-5), (expected, got)


@pytest.mark.parametrize(
    "task", [SEQUENCE_CLASSIFICATION, TOKEN_CLASSIFICATION], ids=lambda t: t.name
)
def test_lora_by_default_adapts_every_linear_layer_but_the_head(tiny_bert_dir, task):
    model = build_trainable_model(tiny_bert_dir, LABELS, PeftSection(r=2), task, 10)
    adapted = {name.split(".lora_A")[0] for name, _ in model.named_parameters() if "lora_A" in name}
    kinds = {name.rsplit(".", 1)[-1] for name in adapted}
    assert kinds == {"query", "key", "value", "dense"}
    # 2 layers x (query, key, value, attention output, intermediate, output), plus the pooler
    # where the model has one.
    assert len(adapted) == 2 * 6 + (task is SEQUENCE_CLASSIFICATION)
    assert not any("classifier" in name for name in adapted)
    trained_head = [n for n, p in model.named_parameters() if "classifier" in n and p.requires_grad]
    assert trained_head, "the head trains whole"
    attention_only = build_trainable_model(
        tiny_bert_dir, LABELS, PeftSection(r=2, target_modules="peft-default"), task, 10
    )
    names = {
        n.split(".lora_A")[0].rsplit(".", 1)[-1]
        for n, _ in attention_only.named_parameters()
        if "lora_A" in n
    }
    assert names == {"query", "value"}


def test_the_new_head_is_missing_parameters_not_buffers():
    from transformers import BertConfig, BertForSequenceClassification

    from fulcrum.models.classifier import new_head

    model = BertForSequenceClassification(
        BertConfig(
            vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=16,
        )
    )  # fmt: skip
    assert "bert.embeddings.position_ids" in dict(model.named_buffers())
    missing = ["bert.embeddings.position_ids", "classifier.bias", "classifier.weight"]
    assert new_head(model, missing) == ["classifier.bias", "classifier.weight"]
