"""The campaign's pure parts: the `tune:` section's checks, the recipe a trial trains, the
Pareto front, the best trial, and ASHA's set-up. No Ray cluster."""

import numpy as np
import pytest

from fulcrum.errors import RecipeError
from fulcrum.recipe import validate_recipe
from fulcrum.tune.pareto import pareto_front
from fulcrum.tune.report import best_trial
from fulcrum.tune.space import param_space, trial_recipe

BASE = {"name": "intents", "data": {"path": "/data/intents.csv"}}


def recipe_with(space, **tune):
    return validate_recipe({**BASE, "tune": {"space": space, **tune}})


def test_space_maps_each_kind_to_its_tune_domain():
    from ray.tune.search.sample import Categorical, Float, Integer

    recipe = recipe_with(
        {
            "train.lr": {"loguniform": [1e-4, 1e-2]},
            "peft.r": {"choice": [4, 8, 16]},
            "train.weight_decay": {"uniform": [0.0, 0.1]},
            "train.epochs": {"integer": [1, 3]},
            "train.label_smoothing": {"quniform": [0.0, 0.2, 0.05]},
        }
    )
    space = param_space(recipe)
    assert isinstance(space["peft.r"], Categorical) and space["peft.r"].categories == [4, 8, 16]
    assert isinstance(space["train.lr"], Float)
    rng = np.random.default_rng(0)
    epochs = {space["train.epochs"].sample(random_state=rng) for _ in range(200)}
    assert epochs == {1, 2, 3}, "integer ranges include both ends"
    smoothing = [space["train.label_smoothing"].sample() for _ in range(50)]
    assert all(abs(value / 0.05 - round(value / 0.05)) < 1e-9 for value in smoothing)
    assert isinstance(space["train.epochs"], Integer)


@pytest.mark.parametrize(
    ("space", "tune", "message"),
    [
        (
            {"train.lrr": {"uniform": [0, 1]}},
            {},
            "tune.space.train.lrr: unknown key (did you mean `lr`?)",
        ),
        (
            {"train.lr": {"uniform": [-1, 1]}},
            {},
            "tune.space.train.lr: -1.0 does not work: train.lr: must be > 0",
        ),
        ({"train.lr": {"loguniform": [0, 1]}}, {}, "loguniform: low must be > 0"),
        (
            {"peft.method": {"choice": ["lora", "loraa"]}},
            {},
            'tune.space.peft.method: "loraa" does not work',
        ),
        ({"train.lr.x": {"uniform": [0.1, 0.2]}}, {}, "train.lr is a value, not a section"),
        ({"name": {"choice": ["a", "b"]}}, {}, "tune.space.name: name cannot be searched"),
        ({"peft.r": {"grid": [4, 8]}}, {}, "grid values need search: grid or random"),
        ({"peft.r": {"choice": [4], "integer": [1, 2]}}, {}, "give exactly one of"),
        ({"peft.r": {"choice": [4]}}, {"metric": "f1"}, "tune.metric: f1 is not measured"),
    ],
)
def test_a_space_that_cannot_work_is_refused_naming_the_key(space, tune, message):
    with pytest.raises(RecipeError) as error:
        recipe_with(space, **tune)
    assert message in str(error.value)


def test_a_trial_recipe_is_the_campaign_recipe_with_its_values_and_no_tune_section():
    recipe = recipe_with({"train.lr": {"loguniform": [1e-4, 1e-2]}, "peft.r": {"choice": [4, 8]}})
    raw = trial_recipe(
        recipe.to_dict(),
        {"train.lr": np.float64(3e-3), "peft.r": np.int64(8), "train.adversarial.epsilon": 0.5},
        "intents-abc_00001",
        "/out/trials",
    )
    trial = validate_recipe(raw)
    assert trial.tune is None
    assert (trial.name, trial.output_dir) == ("intents-abc_00001", "/out/trials")
    assert trial.train.lr == 3e-3 and type(raw["peft"]["r"]) is int and trial.peft.r == 8
    assert trial.train.adversarial.epsilon == 0.5
    assert trial.data == recipe.data and trial.train.epochs == recipe.train.epochs


def test_pareto_front_keeps_exactly_the_undominated_trials():
    rows = [
        {"trial_id": "a", "m": 0.90, "c": 10.0},
        {"trial_id": "b", "m": 0.85, "c": 5.0},
        {"trial_id": "c", "m": 0.80, "c": 6.0},  # dominated by b
        {"trial_id": "d", "m": 0.90, "c": 12.0},  # dominated by a (same metric, dearer)
        {"trial_id": "e", "m": 0.70, "c": 2.0},
        {"trial_id": "f", "m": None, "c": 1.0},  # failed: takes no part
        {"trial_id": "g", "m": 0.95, "c": None},  # stopped before costing
    ]
    assert pareto_front(rows, "m", "max", "c") == ["e", "b", "a"]
    # Minimising the metric (a loss) turns the front around.
    assert pareto_front(rows, "m", "min", "c") == ["e"]


def test_best_trial_prefers_finished_trials_and_earlier_ones_on_ties():
    rows = [
        {"trial": 0, "trial_id": "a", "status": "stopped", "m": 0.99},
        {"trial": 1, "trial_id": "b", "status": "finished", "m": 0.90},
        {"trial": 2, "trial_id": "c", "status": "finished", "m": 0.90},
        {"trial": 3, "trial_id": "d", "status": "error", "m": None},
    ]
    assert best_trial(rows, "m", "max")["trial_id"] == "b"
    assert best_trial(rows[:1] + rows[3:], "m", "max")["trial_id"] == "a"
    assert best_trial(rows[3:], "m", "max") is None


def test_asha_judges_epochs_and_never_stops_a_trial_at_its_last_epoch():
    from fulcrum.tune.campaign import _scheduler
    from fulcrum.tune.plan import max_epochs

    recipe = validate_recipe(
        {
            **BASE,
            "train": {"epochs": 3},
            "tune": {"space": {"train.epochs": {"integer": [2, 6]}}, "grace_period": 9},
        }
    )
    assert max_epochs(recipe) == 6
    scheduler = _scheduler(recipe)
    assert scheduler._time_attr == "epoch" and scheduler._max_t == 6
    assert scheduler._stop_last_trials is False
    assert scheduler._brackets[0]._rungs, "grace period is clamped to max_t"
    none = validate_recipe(
        {**BASE, "tune": {"space": {"peft.r": {"choice": [4]}}, "scheduler": "none"}}
    )
    assert _scheduler(none) is None


def test_pbt_perturbs_only_what_can_change_mid_run_and_refuses_what_cannot_drive_it():
    from fulcrum.tune.population import pbt_mutations

    space = {
        "train.lr": {"loguniform": [1e-4, 1e-2]},
        "peft.r": {"choice": [4, 8]},
        "train.label_smoothing": {"choice": [0.0, 0.1, 0.2]},
    }
    recipe = recipe_with(space, scheduler="pbt")
    assert recipe.tune.searcher == "random", "auto search under pbt is random"
    assert recipe_with(space).tune.searcher == "optuna"
    assert recipe.tune.mutable_keys == ["train.lr", "train.label_smoothing"]
    mutations = pbt_mutations(recipe)
    assert set(mutations) == {"train.lr", "train.label_smoothing"}, "a rank cannot change mid-run"
    assert mutations["train.label_smoothing"] == [0.0, 0.1, 0.2]
    with pytest.raises(RecipeError, match="search: optuna cannot drive pbt"):
        recipe_with(space, scheduler="pbt", search="optuna")
    with pytest.raises(RecipeError, match="max_concurrent_trials: pbt runs the whole population"):
        recipe_with(space, scheduler="pbt", max_concurrent_trials=2)
    with pytest.raises(RecipeError, match=r"space: pbt needs a key it can change.*got peft.r"):
        recipe_with({"peft.r": {"choice": [4, 8]}}, scheduler="pbt")


def test_pbt_keeps_perturbed_values_inside_their_dimension():
    from fulcrum.tune.population import keep_in_bounds, pbt_bounds

    recipe = recipe_with(
        {
            "train.lr": {"loguniform": [1e-4, 1e-2]},
            "train.label_smoothing": {"quniform": [0.0, 0.2, 0.05]},
            "train.weight_decay": {"uniform": [0.0, 0.1]},
        },
        scheduler="pbt",
    )
    bounds = pbt_bounds(recipe)
    config = {"train.lr": 1.2e-2, "train.label_smoothing": 0.24, "train.weight_decay": 0.05 * 1.2}
    kept = keep_in_bounds(dict(config), bounds)
    assert kept["train.lr"] == 1e-2
    assert kept["train.label_smoothing"] == pytest.approx(0.2)
    assert kept["train.weight_decay"] == pytest.approx(0.06), "inside values are left alone"
    assert keep_in_bounds({"train.label_smoothing": 0.13}, bounds)["train.label_smoothing"] == (
        pytest.approx(0.15)
    ), "quniform values land on their step"


def test_pbt_scheduler_judges_epochs_with_the_recipes_settings():
    from fulcrum.tune.campaign import _scheduler

    recipe = recipe_with(
        {"train.lr": {"loguniform": [1e-4, 1e-2]}, "peft.r": {"choice": [4, 8]}},
        scheduler="pbt",
        perturbation_interval=2,
        quantile_fraction=0.5,
        resample_probability=0.0,
    )
    scheduler = _scheduler(recipe)
    assert scheduler._time_attr == "perturbable_epoch" and scheduler._perturbation_interval == 2
    assert scheduler._quantile_fraction == 0.5 and scheduler._resample_probability == 0.0
    assert set(scheduler._hyperparam_mutations) == {"train.lr"}
    assert scheduler._custom_explore_fn({"train.lr": 1.0})["train.lr"] == 1e-2


def test_clone_ledger_is_read_once_per_clone(tmp_path):
    import json

    from fulcrum.tune.report import read_clones

    ledger = tmp_path / "clones.jsonl"
    clone = {"trial_id": "b", "cloned": "a", "epoch": 2, "train.lr": 0.001}
    ledger.write_text("\n".join(json.dumps(line) for line in (clone, clone, {**clone, "epoch": 3})))
    assert [entry["epoch"] for entry in read_clones(ledger)] == [2, 3]
    assert read_clones(tmp_path / "absent.jsonl") == []


def test_trial_budget_counts_every_grid_crossing():
    from fulcrum.tune.plan import trial_budget

    recipe = recipe_with(
        {"peft.r": {"grid": [4, 8]}, "train.epochs": {"grid": [1, 2, 3]}},
        search="grid",
        num_samples=2,
    )
    assert trial_budget(recipe) == 12
    assert trial_budget(recipe_with({"peft.r": {"choice": [4, 8]}}, num_samples=5)) == 5


def test_pbt_refuses_a_population_the_cluster_cannot_hold_at_once():
    from fulcrum.tune.population import check_population_fits

    recipe = validate_recipe(
        {
            **BASE,
            "train": {"workers": 2},
            "tune": {"space": {"train.lr": {"uniform": [1e-4, 1e-3]}}, "scheduler": "pbt"},
        }
    )
    check_population_fits(
        recipe.model_copy(update={"tune": recipe.tune.model_copy(update={"num_samples": 2})}),
        fits=2,
    )
    with pytest.raises(
        RecipeError, match=r"16 trials of 2 CPU\(s\) each do not fit this cluster \(2 at a time\)"
    ):
        check_population_fits(recipe, fits=2)


def test_a_clone_cuts_the_trials_curve_where_it_took_the_weights():
    from fulcrum.tune.report import segments

    points = [(1.0, 0.3, 100.0), (2.0, 0.9, 160.0), (3.0, 0.95, 190.0)]
    assert segments(points, []) == [points]
    assert segments(points, [130.0]) == [points[:1], points[1:]]
