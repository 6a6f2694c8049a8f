"""The pieces of `fulcrum tune --auto` that need no Ray: the budget, the built-in space and
the arithmetic that sizes the campaign."""

import pytest

from fulcrum.errors import RecipeError
from fulcrum.recipe import validate_recipe
from fulcrum.tune.auto import METHOD_SPACES, auto_space, expected_epochs, parse_budget

BASE = {"name": "a", "data": {"path": "x.csv"}}


@pytest.mark.parametrize(
    "text, seconds",
    [("30m", 1800), ("2h", 7200), ("1h30m", 5400), ("90s", 90), ("45", 45), (" 2M ", 120)],
)
def test_budgets_read_as_seconds(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "30 minutes", "m", "1d"])
def test_unreadable_budgets_say_how_to_write_one(text):
    with pytest.raises(RecipeError, match="give a duration such as 30m, 2h, 1h30m or 90s"):
        parse_budget(text)


def test_successive_halving_runs_all_trials_to_the_first_rung_and_fewer_beyond():
    assert expected_epochs(1, 1, 2.0) == 1
    assert expected_epochs(1, 4, 2.0) == pytest.approx(1 + 1 / 2 + 2 / 4)  # rungs 1, 2, 4
    assert expected_epochs(2, 8, 2.0) == pytest.approx(2 + 2 / 2 + 4 / 4)  # rungs 2, 4, 8
    assert expected_epochs(1, 8, 2.0) < 8


@pytest.mark.parametrize("method", sorted(METHOD_SPACES))
def test_the_built_in_space_is_valid_for_every_method_and_centred_on_the_settled_values(method):
    recipe = validate_recipe({**BASE, "peft": {"method": method}})
    settled = validate_recipe(
        {**BASE, "peft": {"method": method}, "train": {"lr": 1e-3, "epochs": 4}}
    )
    space = auto_space(recipe, settled)
    assert space["train.lr"] == {"loguniform": [pytest.approx(2.5e-4), pytest.approx(4e-3)]}
    assert space["train.epochs"] == {"choice": [2, 4, 8]}
    # Every value of every dimension is a recipe Fulcrum accepts.
    auto = validate_recipe(
        {**BASE, "peft": {"method": method}, "tune": {"space": space, "time_budget_s": 60}}
    )
    assert set(auto.tune.space) == set(space)


def test_auto_needs_a_budget_and_asha_and_a_plain_campaign_needs_a_space():
    with pytest.raises(RecipeError, match="auto needs time_budget_s"):
        validate_recipe({**BASE, "tune": {"auto": True}})
    with pytest.raises(RecipeError, match="auto runs ASHA"):
        validate_recipe({**BASE, "tune": {"auto": True, "time_budget_s": 60, "scheduler": "pbt"}})
    with pytest.raises(RecipeError, match="space: give the keys to search, or auto: true"):
        validate_recipe({**BASE, "tune": {}})
    assert validate_recipe({**BASE, "tune": {"auto": True, "time_budget_s": 60}}).tune.auto
