"""Reading a recipe: the YAML file, `--set` overrides, paths relative to the recipe's folder,
and one RecipeError that lists every problem with its key path."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from fulcrum.errors import RecipeError
from fulcrum.recipe.document import Recipe
from fulcrum.recipe.keys import set_key_path
from fulcrum.recipe.messages import format_error, type_name


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read, override (`train.epochs=1`) and validate a recipe; relative data paths are
    resolved against the recipe file's folder so a job runs the same from any directory."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"{path}: recipe file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise RecipeError(f"{path}: {where}not valid YAML ({problem})") from None
    except UnicodeDecodeError as error:
        raise RecipeError(f"{path}: not UTF-8 text ({error.reason})") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of sections (got {type_name(raw)})")
    raw = apply_overrides(raw, overrides)
    _resolve_data_paths(raw, path.parent.resolve())
    return validate_recipe(raw, source=str(path))


def validate_recipe(raw: dict[str, Any], source: str = "recipe") -> Recipe:
    try:
        return Recipe.model_validate(raw)
    except ValidationError as error:
        lines = [format_error(item, raw, Recipe) for item in error.errors()]
        raise RecipeError(
            f"{source}: invalid recipe\n" + "\n".join(f"  {ln}" for ln in lines)
        ) from None


def apply_overrides(raw: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """`key.path=value` assignments; the value is parsed as YAML (`train.lr=1e-4`)."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        key_path, sep, text = item.partition("=")
        if not sep or not key_path:
            raise RecipeError(f"override {item!r}: expected KEY.PATH=VALUE")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        try:
            set_key_path(raw, key_path, value)
        except ValueError as error:
            raise RecipeError(f"override {item!r}: {error}") from None
    return raw


def _resolve_data_paths(raw: dict[str, Any], base_dir: Path) -> None:
    """Paths that name the user's files resolve against the recipe's folder."""
    for section, keys in (
        ("data", ("path", "train", "validation", "test")),
        ("train", ("deepspeed_config",)),
        ("distill", ("teacher",)),
        ("assistant", ("answers", "knowledge_base")),
        ("monitor", ("output", "model", "names")),
    ):
        values = raw.get(section)
        if not isinstance(values, dict):
            continue
        for key in keys:
            value = values.get(key)
            if isinstance(value, str) and "://" not in value and not Path(value).is_absolute():
                values[key] = os.path.normpath(base_dir / value)
    monitor = raw.get("monitor")
    if isinstance(monitor, dict) and isinstance(monitor.get("inputs"), list):
        monitor["inputs"] = [
            os.path.normpath(base_dir / value)
            if isinstance(value, str) and "://" not in value and not Path(value).is_absolute()
            else value
            for value in monitor["inputs"]
        ]
