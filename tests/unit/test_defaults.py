"""The rules that settle what a recipe leaves unset, and settling a recipe with them."""

from typing import get_args

import pyarrow as pa
import pytest

from fulcrum.defaults import (
    EXAMPLES_PER_LABEL,
    EXAMPLES_TARGET,
    MAX_EPOCHS,
    METHOD_LR,
    default_base,
    default_epochs,
    default_max_length,
    default_warmup_ratio,
    examples_target,
    steps_per_epoch,
    token_lengths,
)
from fulcrum.errors import RecipeError
from fulcrum.recipe import PeftSection, validate_recipe
from fulcrum.train.settle import settle
from fulcrum.train.steps import EpochPlan


def test_few_rows_get_more_passes_than_many_and_passes_stay_bounded():
    assert default_epochs(100) == MAX_EPOCHS
    assert default_epochs(EXAMPLES_TARGET // 4) == 4
    assert default_epochs(50_000) == 1
    assert default_epochs(10_000_000) == 1
    counts = [default_epochs(rows) for rows in (200, 2_000, 5_000, 20_000, 60_000)]
    assert counts == sorted(counts, reverse=True)
    # Between the bounds, the examples seen are at least the target and less than one more pass.
    for rows in (5_100, 9_000, 13_333):
        epochs = default_epochs(rows)
        assert rows * epochs >= EXAMPLES_TARGET > rows * (epochs - 1)


def test_many_labels_get_enough_examples_of_each():
    assert default_epochs(15_000, labels=3) == 3
    assert default_epochs(15_000, labels=150) == 4  # 400 of each of 150 intents
    assert examples_target(150) == 150 * EXAMPLES_PER_LABEL > examples_target(3) == EXAMPLES_TARGET


def test_warmup_is_a_tenth_of_the_steps_but_at_least_a_few():
    assert round(default_warmup_ratio(1_000) * 1_000) == 100
    assert round(default_warmup_ratio(40) * 40) == 10  # 4 would be too abrupt
    assert round(default_warmup_ratio(6) * 6) == 3  # a run shorter than that: half of it
    assert default_warmup_ratio(0) == pytest.approx(0.1)
    assert all(0 <= default_warmup_ratio(steps) <= 0.5 for steps in range(1, 300))


def test_max_length_is_a_high_percentile_rounded_up_to_eight_within_the_model():
    lengths = [10] * 985 + [30] * 10 + [300] * 5  # 0.5% outliers
    assert default_max_length(lengths, 512, "sequence_classification") == 32
    # Token classification keeps more: a truncated word counts as a missed entity.
    assert default_max_length(lengths, 512, "token_classification") == 304  # 300 rounded up
    assert default_max_length(lengths, 128, "token_classification") == 128
    assert default_max_length([3, 4, 5], 512, "sequence_classification") == 16
    assert default_max_length([], 256, "sequence_classification") == 256


def test_lengths_of_many_texts_come_from_a_seeded_sample():
    texts = [f"text {index}" for index in range(30_000)]
    seen = []

    def tokenize(batch):
        seen.append(len(batch))
        return [[0] * 3 for _ in batch]

    assert token_lengths(texts, tokenize, seed=0) == [3] * 20_000
    assert seen == [20_000]


def test_steps_per_epoch_counts_as_the_epoch_plan_does():
    for rows, workers, batch, accumulation in [(100, 2, 16, 1), (1_001, 3, 8, 2), (7, 1, 4, 1)]:
        plan = EpochPlan(rows, workers, batch, accumulation, seed=0)
        assert steps_per_epoch(rows, workers, batch, accumulation) == plan.steps_per_epoch


def test_every_method_has_a_learning_rate_and_full_fine_tuning_takes_the_smallest():
    assert set(METHOD_LR) == set(get_args(PeftSection.model_fields["method"].annotation))
    assert METHOD_LR["full"] == min(METHOD_LR.values())
    assert METHOD_LR["lora"] < METHOD_LR["head_only"]


class WordTokenizer:
    """Tokens: [CLS], one per word, [SEP]."""

    def __call__(self, inputs, truncation=False):
        return {"input_ids": [[0] * (len(text.split()) + 2) for text in inputs]}


def word_level_tokenizer():
    """A real `tokenizers` model with one token per word, framed by [CLS] and [SEP]."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0, "[CLS]": 1, "[SEP]": 2}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)]
    )
    return tokenizer


def test_a_minimal_recipe_settles_every_unset_value_and_says_why():
    recipe = validate_recipe({"name": "m", "data": {"path": "x.csv"}})
    table = pa.table({"text": ["one two three"] * 90 + ["a " * 40] * 10, "label": [0] * 100})
    settled = settle(recipe, table, 3, WordTokenizer(), model_limit=512)
    chosen = {choice.key: choice for choice in settled.choices}
    assert set(chosen) == {
        "train.lr",
        "train.epochs",
        "train.warmup_ratio",
        "train.class_weights",
        "model.max_length",
        "peft.target_modules",
    }
    assert settled.recipe.train.class_weights == "balanced"
    assert settled.recipe.train.lr == METHOD_LR["lora"]
    assert settled.recipe.train.epochs == MAX_EPOCHS
    assert settled.recipe.model.max_length == 48  # 42 tokens at the 99th percentile
    # 100 rows over 2 workers x 16 = 4 steps an epoch, 32 in all: warm-up of 10.
    assert round(settled.recipe.train.warmup_ratio * 32) == 10
    assert "100 training rows, 3 labels" in chosen["train.epochs"].reason
    assert "of 32 optimizer steps" in chosen["train.warmup_ratio"].reason
    assert settled.recipe.peft.target_modules == "all-linear"
    assert "the longest has 42" in chosen["model.max_length"].reason


def test_values_the_recipe_gives_are_kept_and_augmented_rows_count():
    recipe = validate_recipe(
        {
            "name": "m",
            "data": {"path": "x.csv"},
            "peft": {"method": "full"},
            "model": {"max_length": 64},
            "train": {"warmup_ratio": 0.0, "class_weights": "none"},
            "augment": {"multiplier": 4},
        }
    )
    table = pa.table({"text": ["a b"] * 5_000, "label": [0] * 5_000})
    settled = settle(recipe, table, 3, WordTokenizer(), model_limit=512)
    assert [choice.key for choice in settled.choices] == ["train.lr", "train.epochs"]
    assert settled.recipe.train.lr == METHOD_LR["full"]
    assert settled.recipe.train.epochs == default_epochs(20_000)  # 5,000 rows x 4
    assert settled.recipe.model.max_length == 64 and settled.recipe.train.warmup_ratio == 0.0
    # The recipe as written keeps its own hash: the run is named by it.
    assert recipe.train.epochs is None and settled.recipe.hash != recipe.hash


def test_token_tasks_measure_words_and_conll_data_means_token_classification():
    recipe = validate_recipe({"name": "m", "data": {"train": "eng.conll"}})
    assert recipe.task.type == "token_classification"
    table = pa.table({"tokens": [["a", "b", "c"]] * 20, "label": [[0, 0, 0]] * 20})
    settled = settle(recipe, table, 3, word_level_tokenizer(), model_limit=512)
    assert settled.recipe.model.max_length == 16
    assert settled.recipe.train.class_weights == "none"  # most words are O: tags unweighted
    explicit = validate_recipe({"name": "m", "data": {"train": "eng.conll"}, "task": {}})
    assert explicit.task.type == "token_classification"
    assert validate_recipe({"name": "m", "data": {"path": "x.csv"}}).task.type == (
        "sequence_classification"
    )


@pytest.mark.parametrize(
    ("texts", "base"),
    [
        (["my card was stolen, what do I do?", "How can I top up my account"], "builtin:minilm"),
        (["Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the period"], "builtin:minilm"),
        (["我的银行卡被偷了", "怎么挂失"], "builtin:multilingual"),
        (["Wo ist mein Paket? Ich warte seit Tagen darauf"], "builtin:multilingual"),
        (["Saya ingin membatalkan pesanan saya hari ini"], "builtin:multilingual"),
        (["Где моя посылка"], "builtin:multilingual"),
    ],
)
def test_the_model_follows_the_language_of_the_training_texts(texts, base):
    chosen, why = default_base(texts)
    assert chosen == base, why
    assert "of the training texts' letters are ASCII" in why


def test_choose_base_reads_tagged_words_and_respects_the_recipe():
    from fulcrum.train.settle import choose_base

    table = pa.table({"tokens": [list("张三在北京工作")] * 3, "label": [[0] * 7] * 3})
    recipe = validate_recipe({"name": "m", "data": {"train": "resume.bmes"}})
    assert choose_base(recipe, table).value == "builtin:multilingual"
    written = validate_recipe(
        {"name": "m", "data": {"train": "resume.bmes"}, "model": {"base": "builtin:minilm"}}
    )
    assert choose_base(written, table) is None


def test_pair_tasks_measure_both_texts_together_and_refuse_augmentation():
    pair = {"name": "m", "data": {"path": "x.jsonl"}, "task": {"type": "text_pair_classification"}}
    recipe = validate_recipe(pair)

    class PairTokenizer(WordTokenizer):
        def __call__(self, inputs, pairs=None, truncation=False):
            return {
                "input_ids": [
                    [0] * (len(a.split()) + len(b.split()) + 3) for a, b in zip(inputs, pairs)
                ]
            }

    table = pa.table({"text": ["a b c"] * 30, "text_pair": ["d " * 20] * 30, "label": [0, 1] * 15})
    settled = settle(recipe, table, 2, PairTokenizer(), model_limit=512)
    assert settled.recipe.model.max_length == 32  # 3 + 20 words + [CLS] [SEP] [SEP] = 26
    assert settled.recipe.train.class_weights == "balanced"
    with pytest.raises(RecipeError, match="augment: not available for text_pair_classification"):
        validate_recipe({**pair, "augment": {"multiplier": 2}})


def test_a_grouped_pair_recipe_with_more_than_two_labels_falls_back_to_macro_f1():
    raw = {
        "name": "m",
        "data": {"path": "x.jsonl", "group_column": "user"},
        "task": {"type": "text_pair_classification"},
    }
    recipe = validate_recipe(raw)
    assert recipe.metric == "ndcg_10"
    table = pa.table({"text": ["a"] * 30, "text_pair": ["b"] * 30, "label": [0, 1, 2] * 10})

    class PairTokenizer(WordTokenizer):
        def __call__(self, inputs, pairs=None, truncation=False):
            return {"input_ids": [[0] * 5 for _ in inputs]}

    settled = settle(recipe, table, 3, PairTokenizer(), model_limit=512)
    assert settled.recipe.metric == "macro_f1"
    assert settle(recipe, table, 2, PairTokenizer(), model_limit=512).recipe.metric == "ndcg_10"
    named = validate_recipe({**raw, "train": {"metric": "mrr"}})
    with pytest.raises(RecipeError, match="train.metric: mrr ranks by the second of two labels"):
        settle(named, table, 3, PairTokenizer(), model_limit=512)
    with pytest.raises(RecipeError, match="train.metric: ndcg_5 ranks each group's candidates"):
        validate_recipe({**raw, "data": {"path": "x.jsonl"}, "train": {"metric": "ndcg_5"}})
