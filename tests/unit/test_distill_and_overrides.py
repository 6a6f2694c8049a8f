"""Teacher logits placed where the student's labels are; the recipe's model knobs as
config overrides."""

import math

import pytest
import torch

from fulcrum.errors import ModelError
from fulcrum.models.classifier import config_overrides
from fulcrum.tasks import IGNORE_INDEX
from fulcrum.train.distill import teacher_targets

X = IGNORE_INDEX


def test_sequence_teacher_targets_are_the_rows_logits():
    targets = teacher_targets([[1.0, 2.0], [3.0, 4.0]], torch.tensor([0, 1]), 2)
    assert targets.tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_token_teacher_targets_sit_on_first_subwords_and_nan_elsewhere():
    labels = torch.tensor([[X, 0, X, 1, X], [X, 1, 1, 0, X]])
    words = [[[1.0, 0.0], [0.0, 1.0]], [[0.5, 0.5], [0.2, 0.8]]]  # 2nd row: teacher saw 2 of 3
    targets = teacher_targets(words, labels, 2)
    assert targets.shape == (2, 5, 2)
    assert targets[0, 1].tolist() == [1.0, 0.0] and targets[0, 3].tolist() == [0.0, 1.0]
    assert targets[1, 2].tolist() == pytest.approx([0.2, 0.8])
    assert math.isnan(targets[0, 0, 0]) and math.isnan(targets[1, 3, 0])


def test_config_overrides_map_recipe_knobs_to_bert_names(tiny_bert_dir):
    assert config_overrides(tiny_bert_dir, {"num_layers": None}) == {}
    assert config_overrides(
        tiny_bert_dir,
        {
            "num_layers": 1,
            "hidden_dropout": 0.3,
            "attention_dropout": 0.2,
            "classifier_dropout": 0.4,
        },
    ) == {
        "num_hidden_layers": 1,
        "hidden_dropout_prob": 0.3,
        "attention_probs_dropout_prob": 0.2,
        "classifier_dropout": 0.4,
    }


def test_more_layers_than_the_model_has_is_an_error(tiny_bert_dir):
    with pytest.raises(ModelError, match="model.num_layers: .* has 2 layers \\(asked for 5\\)"):
        config_overrides(tiny_bert_dir, {"num_layers": 5})


def test_cut_model_keeps_its_first_layers_weights(tiny_bert_dir):
    from fulcrum.models.classifier import load_base_model
    from fulcrum.tasks import SEQUENCE_CLASSIFICATION

    full, _ = load_base_model(tiny_bert_dir, ["a", "b"], SEQUENCE_CLASSIFICATION)
    cut, head = load_base_model(
        tiny_bert_dir, ["a", "b"], SEQUENCE_CLASSIFICATION, {"num_hidden_layers": 1}
    )
    assert len(cut.bert.encoder.layer) == 1
    assert all(name.startswith("classifier") for name in head)
    torch.testing.assert_close(
        cut.bert.encoder.layer[0].attention.self.query.weight,
        full.bert.encoder.layer[0].attention.self.query.weight,
    )
