"""A pydantic error as a user reads it: `key.path: problem (got value)`."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from fulcrum.recipe.keys import key_path_of, suggestion


def format_error(item: dict[str, Any], raw: Any, root: type[BaseModel]) -> str:
    """One pydantic error as `key.path: problem (got value)`."""
    loc = [part for part in item["loc"] if not str(part).startswith("function-")]
    key_path = key_path_of(loc)
    kind, ctx, value = item["type"], item.get("ctx") or {}, item.get("input")
    got = f" (got {show(value)})"
    bounds = {
        "greater_than": ">",
        "greater_than_equal": ">=",
        "less_than": "<",
        "less_than_equal": "<=",
    }
    if kind in bounds:
        bound = next(iter(ctx.values()))
        bound = int(bound) if isinstance(bound, float) and bound.is_integer() else bound
        problem = f"must be {bounds[kind]} {bound}{got}"
    elif kind == "missing":
        problem = "required"
    elif kind == "extra_forbidden":
        problem = "unknown key" + suggestion(root, loc)
    elif kind == "literal_error":
        problem = f"must be one of {ctx.get('expected')}{got}"
    elif kind in ("int_parsing", "int_type", "int_from_float"):
        problem = f"must be an integer{got}"
    elif kind in ("float_parsing", "float_type"):
        problem = f"must be a number{got}"
    elif kind in ("bool_parsing", "bool_type"):
        problem = f"must be true or false{got}"
    elif kind in ("string_type",):
        problem = f"must be a string{got}"
    elif kind in ("model_type", "dict_type", "model_attributes_type"):
        problem = f"must be a mapping{got}"
    elif kind == "list_type":
        problem = f"must be a list{got}"
    elif kind == "too_short":
        problem = f"needs at least {ctx.get('min_length')} item(s){got}"
    elif kind == "string_pattern_mismatch":
        problem = f"must match {ctx.get('pattern')}{got}"
    elif kind == "value_error":
        problem = str(ctx.get("error", item["msg"]))
    else:
        problem = f"{item['msg']}{got}"
    return f"{key_path}: {problem}" if key_path else problem


def show(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def type_name(value: Any) -> str:
    return {list: "a list", str: "a string", type(None): "an empty file"}.get(
        type(value), type(value).__name__
    )
