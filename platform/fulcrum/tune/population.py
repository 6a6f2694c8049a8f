"""Population-based training: a trailing trial continues a leading trial's weights with
perturbed values. What PBT may perturb, how it stays inside the search space, and the
scheduler itself (Ray's, without the pauses meant for a cluster too small to hold the
population, since a campaign refuses one). The checkpoint hand-off is in tune/trial.py."""

from __future__ import annotations

import functools
from typing import Any

from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler

from fulcrum.errors import RecipeError
from fulcrum.recipe import Recipe
from fulcrum.tune.plan import trial_budget, trial_resources
from fulcrum.tune.space import ray_domain

# PBT's clock: the epoch of every evaluation but a trial's last. Cloning at the last epoch
# would only restart a trial to report the leader's finished weights again.
PBT_TIME_ATTR = "perturbable_epoch"


class WholePopulationPBT(PopulationBasedTraining):
    """Ray's PBT pauses a reporting trial whenever another is pending, to share a cluster
    that cannot hold the whole population. A campaign's cluster always holds it, so a
    pending trial is a clone restarting from a leader's checkpoint; pausing the leader too
    would only restart it for nothing."""

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        return TrialScheduler.CONTINUE if decision == TrialScheduler.PAUSE else decision


def check_population_fits(recipe: Recipe, fits: int) -> None:
    """PBT compares the trials that train together, and Tune cannot tell that a trial is
    waiting for its Train workers' CPUs (the trial itself asks for none), so trials beyond
    what the cluster holds would only start once others finished, in a population of their
    own. Better to say so before anything runs. `fits`: trials the cluster holds at once."""

    population = trial_budget(recipe)
    if population > fits:
        need = trial_resources(recipe)
        raise RecipeError(
            f"{recipe.name}: tune.num_samples: pbt trains the whole population at once, and "
            f"{population} trials of {need['CPU']:g} CPU(s)"
            + (f" and {need['GPU']:g} GPU(s)" if need["GPU"] else "")
            + f" each do not fit this cluster ({fits} at a time); lower num_samples, "
            "train.workers or train.cpus_per_worker"
        )


def pbt_scheduler(recipe: Recipe) -> WholePopulationPBT:
    settings = recipe.tune
    return WholePopulationPBT(
        time_attr=PBT_TIME_ATTR,
        perturbation_interval=settings.perturbation_interval,
        hyperparam_mutations=pbt_mutations(recipe),
        quantile_fraction=settings.quantile_fraction,
        resample_probability=settings.resample_probability,
        custom_explore_fn=functools.partial(keep_in_bounds, bounds=pbt_bounds(recipe)),
        # Neither a trial's last epoch nor its closing report (the artifact's metrics and
        # cost) is a point to clone at.
        require_attrs=False,
    )


def pbt_mutations(recipe: Recipe) -> dict[str, Any]:
    """What PBT perturbs when a trial clones another: listed values move to a neighbour,
    ranges are multiplied by 0.8 or 1.2 (either may be drawn afresh instead)."""
    space = recipe.tune.space
    return {
        key: list(getattr(space[key], space[key].kind))
        if space[key].kind in ("choice", "grid")
        else ray_domain(space[key])
        for key in recipe.tune.mutable_keys
    }


def pbt_bounds(recipe: Recipe) -> dict[str, tuple[str, list]]:
    """(kind, [low, high(, step)]) of each perturbed range: PBT's x0.8 / x1.2 knows nothing
    of a dimension's ends, and a label smoothing of 1.1 would fail the trial."""
    space = recipe.tune.space
    return {
        key: (space[key].kind, list(getattr(space[key], space[key].kind)))
        for key in recipe.tune.mutable_keys
        if space[key].kind not in ("choice", "grid")
    }


def keep_in_bounds(config: dict[str, Any], bounds: dict[str, tuple[str, list]]) -> dict[str, Any]:
    """PBT's custom_explore_fn: each perturbed value back inside its range, on its step."""
    for key, (kind, values) in bounds.items():
        if key not in config:
            continue
        low, high = values[0], values[1]
        value = min(max(float(config[key]), low), high)
        if kind == "quniform":
            step = values[2]
            value = min(max(round(value / step) * step, low), high)
        config[key] = int(round(value)) if kind == "integer" else value
    return config
