"""From the recipe's `tune.space` to Ray Tune's search space, and from a sampled config
back to a recipe. Tune sees flat keys that are the dotted recipe paths themselves, so a
results table, a plot axis and an error all name the key the user wrote."""

from __future__ import annotations

import copy
from typing import Any

from fulcrum.recipe import Recipe, SearchDimension, set_key_path


def ray_domain(dimension: SearchDimension):
    from ray import tune

    kind = dimension.kind
    values = getattr(dimension, kind)
    if kind == "choice":
        return tune.choice(values)
    if kind == "grid":
        return tune.grid_search(values)
    if kind == "uniform":
        return tune.uniform(*values)
    if kind == "loguniform":
        return tune.loguniform(*values)
    if kind == "quniform":
        return tune.quniform(*values)
    low, high = values
    return tune.randint(low, high + 1)  # Tune's upper end is exclusive; ours is not


def param_space(recipe: Recipe) -> dict[str, Any]:
    return {key: ray_domain(dimension) for key, dimension in recipe.tune.space.items()}


def trial_recipe(base: dict[str, Any], config: dict[str, Any], name: str, output_dir: str):
    """The plain training recipe of one trial: the campaign's recipe without its `tune`
    section, with the sampled values set and the trial's own name and output folder."""
    raw = copy.deepcopy(base)
    raw.pop("tune", None)
    for key_path, value in sorted(config.items()):
        set_key_path(raw, key_path, _plain(value))
    raw["name"] = name
    raw["output_dir"] = output_dir
    return raw


def _plain(value: Any) -> Any:
    """numpy scalars (as some searchers return) as Python values, so YAML and pydantic
    see ints and floats."""
    return value.item() if hasattr(value, "item") and not isinstance(value, list | dict) else value
