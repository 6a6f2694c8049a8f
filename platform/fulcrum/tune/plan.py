"""How big a campaign is: the trials it runs at most, what each takes from the cluster, how
many run at once, and the most epochs one runs. Shared by the campaign, PBT's checks, the
trials and the report, and importing none of them."""

from __future__ import annotations

import math

from fulcrum.recipe import Recipe


def max_epochs(recipe: Recipe) -> int:
    """The most epochs a trial runs: the searched maximum, else the recipe's epochs (settled
    from the data when the recipe leaves them unset, as each trial will)."""
    dimension = recipe.tune.space.get("train.epochs")
    if dimension:
        return int(max(dimension.extremes))
    if recipe.train.epochs is not None:
        return recipe.train.epochs
    from fulcrum.train.settle import settle_from_files

    return settle_from_files(recipe).recipe.train.epochs


def trial_budget(recipe: Recipe) -> int:
    """Trials the campaign runs at most: num_samples, times every crossing of `grid` values."""
    crossings = math.prod(
        len(dimension.grid) for dimension in recipe.tune.space.values() if dimension.kind == "grid"
    )
    return recipe.tune.num_samples * crossings


def trial_resources(recipe: Recipe) -> dict[str, float]:
    train = recipe.train
    return {
        "CPU": train.workers * train.cpus_per_worker,
        "GPU": float(train.workers) if train.use_gpu else 0.0,
    }


def concurrency(recipe: Recipe) -> int:
    """As many trials as the cluster holds at once (or what the recipe says)."""
    if recipe.tune.max_concurrent_trials:
        return recipe.tune.max_concurrent_trials
    import ray

    available = ray.cluster_resources()
    fits = [
        int(available.get(name, 0) // need)
        for name, need in trial_resources(recipe).items()
        if need
    ]
    return max(1, min(fits))
