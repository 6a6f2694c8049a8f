"""The recipe reference, docs/recipe.md, written from the recipe's pydantic models: every key
with its type, default, bounds and description, so the manual says exactly what `fulcrum
validate` accepts. Regenerate with `python -m fulcrum.reference > docs/recipe.md`; a unit
test fails when the file is not current.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from fulcrum.recipe import SETTLED, Recipe

HEADER = """# Recipe reference

Every key a recipe takes, section by section, written from the pydantic models in
`platform/fulcrum/recipe/` and `platform/fulcrum/serve_settings.py` by
`python -m fulcrum.reference > docs/recipe.md` (a test checks it is current). Unknown keys are
errors, and an error names the key path. `null` defaults marked *settled* are chosen from the
method and the data when training starts ([defaults.md](defaults.md)); `fulcrum validate
RECIPE` prints a recipe with every default filled in.
"""

BOUNDS = (
    (annotated_types.Ge, ">= {}", "ge"),
    (annotated_types.Gt, "> {}", "gt"),
    (annotated_types.Le, "<= {}", "le"),
    (annotated_types.Lt, "< {}", "lt"),
    (annotated_types.MinLen, "at least {} long", "min_length"),
    (annotated_types.MaxLen, "at most {} long", "max_length"),
)


def recipe_reference() -> str:
    parts = [HEADER, _section("(top level)", Recipe, "")]
    for path, model in _sections(Recipe, ""):
        parts.append(_section(path, model, path + "."))
    return "\n".join(parts)


def _sections(model: type[BaseModel], prefix: str):
    """(key path, model) of every nested section, depth first, in declaration order; a list
    or mapping of models is shown as `path[]` / `path.NAME`."""
    for name, field in model.model_fields.items():
        for suffix, nested in _models_in(field.annotation):
            path = f"{prefix}{name}{suffix}"
            yield path, nested
            yield from _sections(nested, path + ".")


def _models_in(annotation: Any) -> list[tuple[str, type[BaseModel]]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [("", annotation)]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list:
        return [("[]", model) for _, model in _models_in(args[0])]
    if origin is dict:
        return [(".NAME", model) for _, model in _models_in(args[1])]
    if origin in (typing.Union, types.UnionType):
        return [found for arg in args for found in _models_in(arg)]
    return []


def _section(title: str, model: type[BaseModel], prefix: str) -> str:
    doc = (model.__doc__ or "").strip()
    lines = [f"## `{title}`" if prefix else f"## {title}", ""]
    if doc and not doc.startswith(("Usage docs", "!!!")):
        lines += [" ".join(doc.split()), ""]
    lines += ["| key | type | default | description |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        nested = _models_in(field.annotation)
        if nested and not _is_scalar_union(field.annotation):
            kind = {"": "section", "[]": "list of sections"}.get(
                nested[0][0], "mapping of sections"
            )
            default = "see below"
        else:
            kind, default = _type(field.annotation), _default(field, prefix + name)
        bounds = _bounds(field)
        description = " ".join((field.description or "").split())
        if bounds:
            description = f"{description} ({bounds})" if description else bounds
        lines.append(
            f"| `{prefix}{name}` | {_cell(kind)} | {_cell(default)} | {_cell(description)} |"
        )
    return "\n".join(lines) + "\n"


def _is_scalar_union(annotation: Any) -> bool:
    """A union of a model and plain values (a variant named by a string, say)."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin is list and args:
        return _is_scalar_union(args[0])
    return origin in (typing.Union, types.UnionType) and any(
        arg is not type(None) and not _models_in(arg) for arg in args
    )


def _type(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if origin is Literal:
        return " or ".join(f"`{value}`" for value in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type(arg) for arg in args)
    if annotation is Any:
        return "any value"
    if origin is list:
        return f"list of {_type(args[0])}"
    if origin is tuple:
        return f"[{', '.join(_type(arg) for arg in args)}]"
    if origin is dict:
        return f"mapping of {_type(args[0])} to {_type(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation.__name__
    names = {str: "text", int: "integer", float: "number", bool: "true/false"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default(field: FieldInfo, key: str) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.default_factory() if field.default_factory else field.default
    if value is None:
        return "null, *settled*" if key in SETTLED else "null"
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def _bounds(field: FieldInfo) -> str:
    found = []
    for kind, text, attribute in BOUNDS:
        for item in field.metadata:
            if isinstance(item, kind):
                found.append(text.format(getattr(item, attribute)))
    return ", ".join(found)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


if __name__ == "__main__":
    print(recipe_reference(), end="")
