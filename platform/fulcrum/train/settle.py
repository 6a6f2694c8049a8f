"""Settle what a recipe left to the method and the data, before any worker starts.

`model.base` comes from the training texts' language, `train.lr` from the method,
`train.epochs` and `train.warmup_ratio` from the number of training rows, `model.max_length`
from the training texts' token lengths (fulcrum/defaults.py holds the rules). The settled
recipe is what the workers, the artifact's own evaluation and every later stage use; the
recipe as written keeps naming the run, so the same recipe on the same data finds its run and
its artifact again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from fulcrum.defaults import (
    BASE_SAMPLE_ROWS,
    LENGTH_PERCENTILE,
    METHOD_TARGETS,
    TASK_CLASS_WEIGHTS,
    Choice,
    default_base,
    default_epochs,
    default_lr,
    default_max_length,
    default_warmup_ratio,
    examples_target,
    steps_per_epoch,
    token_lengths,
)
from fulcrum.errors import RecipeError
from fulcrum.recipe import OutOfScopeSection, Recipe, set_key_path
from fulcrum.recipe.sections import RANKING_METRICS
from fulcrum.train.deepspeed_config import deepspeed_config
from fulcrum.words import WordEncoder, join_words


@dataclass(frozen=True)
class Settled:
    recipe: Recipe  # every value concrete
    choices: tuple[Choice, ...]  # what was settled here, and why

    def describe(self) -> str:
        return "; ".join(choice.describe() for choice in self.choices)

    def record(self) -> list[dict[str, Any]]:
        return [
            {"key": choice.key, "value": choice.value, "reason": choice.reason}
            for choice in self.choices
        ]


def settle(
    recipe: Recipe,
    train_table: pa.Table,
    labels: int,
    tokenizer,
    model_limit: int,
    base: Choice | None = None,
    scope: Choice | None = None,
) -> Settled:
    """`train_table`: the training split before augmentation (augmented copies are counted
    as rows, not read: they have the originals' lengths); `labels`: how many the task has
    (tags, for token classification); `tokenizer` and `model_limit` are the model's, and
    `base` how it was chosen when the recipe left it to the data (choose_base), `scope`
    whether out-of-scope detection was turned on by the data (choose_out_of_scope)."""
    choices: list[Choice] = [base] if base is not None else []
    choices += [scope] if scope is not None else []
    choices += _method_choices(recipe)
    choices += _metric_choices(recipe, labels)
    choices += _budget_choices(recipe, train_table.num_rows, labels)
    if recipe.model.max_length is None:
        choices.append(_length_choice(recipe, train_table, tokenizer, model_limit))
    raw = recipe.to_dict()
    for choice in choices:
        set_key_path(raw, choice.key, choice.value)
    return Settled(Recipe.model_validate(raw), tuple(choices))


def _method_choices(recipe: Recipe) -> list[Choice]:
    """What follows from the method and the task alone: the rate, the targets, the weights."""
    choices = []
    method = recipe.peft.method
    if recipe.train.lr is None:
        choices.append(Choice("train.lr", default_lr(method), f"{method}'s default"))
    if recipe.train.class_weights is None:
        weights = TASK_CLASS_WEIGHTS[recipe.task.type]
        choices.append(
            Choice(
                "train.class_weights",
                weights,
                "rare labels count as much as common ones"
                if weights == "balanced"
                else "tags are not weighted: most words are O by nature",
            )
        )
    if recipe.peft.target_modules is None and method in METHOD_TARGETS:
        choices.append(Choice("peft.target_modules", METHOD_TARGETS[method], f"{method}'s default"))
    return choices


def _metric_choices(recipe: Recipe, labels: int) -> list[Choice]:
    """Rankings score the second of two labels: with more, a grouped pair recipe's checkpoint
    metric falls back to macro-F1, and a ranking metric the recipe names is an error."""
    if recipe.metric not in RANKING_METRICS or labels == 2:
        return []
    if recipe.train.metric == "auto":
        return [Choice("train.metric", "macro_f1", f"{labels} labels: a ranking needs two")]
    raise RecipeError(
        f"train.metric: {recipe.metric} ranks by the second of two labels; the data has "
        f"{labels} (use macro_f1 or accuracy)"
    )


def _budget_choices(recipe: Recipe, table_rows: int, labels: int) -> list[Choice]:
    """Epochs and warm-up from the rows trained on (augmented copies count as rows)."""
    choices = []
    train = recipe.train
    multiplier = recipe.augment.multiplier if recipe.augment_operations else 1
    rows = table_rows * multiplier
    epochs = train.epochs
    if epochs is None:
        epochs = default_epochs(rows, labels)
        target = examples_target(labels)
        seen = (
            f"about {target:,} examples seen"
            if rows * epochs >= target
            else f"{rows * epochs:,} examples seen, short of the {target:,} aimed at: "
            f"{epochs} is the most"
        )
        choices.append(
            Choice("train.epochs", epochs, f"{rows:,} training rows, {labels} labels; {seen}")
        )
    if train.warmup_ratio is None:
        ds_config = deepspeed_config(train)
        total = epochs * steps_per_epoch(
            rows,
            train.workers,
            ds_config["train_micro_batch_size_per_gpu"],
            ds_config["gradient_accumulation_steps"],
        )
        ratio = default_warmup_ratio(total)
        choices.append(
            Choice(
                "train.warmup_ratio",
                round(ratio, 4),
                f"{int(ratio * total)} of {total} optimizer steps",
            )
        )
    return choices


def _length_choice(recipe: Recipe, train_table: pa.Table, tokenizer, model_limit: int) -> Choice:
    task = recipe.task.type
    lengths = token_lengths(
        _inputs(train_table, task), _tokenize_function(tokenizer, task), recipe.seed
    )
    return Choice(
        "model.max_length",
        default_max_length(lengths, model_limit, task),
        f"{LENGTH_PERCENTILE[task]:g}th percentile of {len(lengths):,} training texts' "
        f"token lengths; the longest has {max(lengths, default=0)}, the model takes "
        f"{model_limit}",
    )


def choose_base(recipe: Recipe, train_table: pa.Table) -> Choice | None:
    """model.base from the training texts, when the recipe leaves it null."""
    if recipe.model.base is not None:
        return None
    column = train_table.column("tokens" if "tokens" in train_table.column_names else "text")
    texts = column.slice(0, BASE_SAMPLE_ROWS).to_pylist()
    if texts and isinstance(texts[0], list):
        texts = [join_words(words) for words in texts]
    return Choice("model.base", *default_base(texts))


def choose_out_of_scope(recipe: Recipe, splits) -> Choice | None:
    """Out-of-scope detection, on when the data says some texts are none of the intents: a
    training label named as out_of_scope's default (`oos`), or validation or test rows whose
    labels training never saw. Either way the model would otherwise give such texts an
    intent."""
    if recipe.out_of_scope is not None or recipe.task.type != "sequence_classification":
        return None
    label = OutOfScopeSection().label
    reasons = []
    if label in splits.label_names:
        reasons.append(f"the training data has an {label!r} label")
    reasons += [
        f"{table.num_rows:,} {split} rows have labels training never saw"
        for split, table in splits.unseen.items()
    ]
    return Choice("out_of_scope", {}, "; ".join(reasons)) if reasons else None


def settle_with_model(recipe: Recipe, splits) -> tuple[Settled, Path]:
    """(the settled recipe, its model's directory) for the loaded splits: the model first,
    since the lengths are counted in its tokens."""
    from fulcrum.models.classifier import load_tokenizer, model_limit
    from fulcrum.models.registry import resolve_model_dir

    base = (
        _continued_base(recipe, splits) if recipe.continual else choose_base(recipe, splits.train)
    )
    model_dir: Path = resolve_model_dir(base.value if base else recipe.model.base)
    tokenizer = load_tokenizer(model_dir)
    settled = settle(
        recipe,
        splits.train,
        len(splits.label_names),
        tokenizer,
        model_limit(model_dir, tokenizer),
        base,
        choose_out_of_scope(recipe, splits),
    )
    return settled, model_dir


def _continued_base(recipe: Recipe, splits) -> Choice:
    """A continued model's base: its parent's weights, the head grown to the labels."""
    from fulcrum.continual import continued_base
    from fulcrum.data.continued import open_parent

    if recipe.model.base is not None:
        raise RecipeError(
            "model.base: a continued model starts from continual.parent's weights; "
            "leave model.base out"
        )
    parent = open_parent(recipe)
    new = len(splits.label_names) - len(parent.labels)
    return Choice(
        "model.base",
        str(continued_base(parent, splits.label_names)),
        f"continual.parent's weights ({parent.manifest.base_model}, {parent.manifest.method})"
        + (f", the head grown by {new} new label(s)" if new else ""),
    )


def settle_from_files(recipe: Recipe) -> Settled:
    """The settled recipe, read from the recipe's own data and model (what a campaign needs
    before its trials run: the epochs its scheduler counts to)."""
    from fulcrum.data import recipe_splits

    return settle_with_model(recipe, recipe_splits(recipe))[0]


def _inputs(table: pa.Table, task: str) -> list[Any]:
    if task == "text_pair_classification":
        return list(zip(table.column("text").to_pylist(), table.column("text_pair").to_pylist()))
    column = "tokens" if task == "token_classification" else "text"
    return table.column(column).to_pylist()


def _tokenize_function(tokenizer, task: str):
    if task == "token_classification":
        encoder = WordEncoder(tokenizer)
        return lambda sentences: [
            units.ids
            for units in encoder.encode([[str(w) for w in words] for words in sentences], 1 << 30)
        ]
    if task == "text_pair_classification":
        return lambda pairs: tokenizer(
            [str(a) for a, _ in pairs], [str(b) for _, b in pairs], truncation=False
        )["input_ids"]
    return lambda texts: tokenizer([str(text) for text in texts], truncation=False)["input_ids"]
