"""Dotted key paths into a recipe (`train.lr`): setting one in raw YAML, telling whether
it names a field, and suggesting the key a user meant."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel

# Names users bring from Hugging Face Trainer, PEFT and Ray configs, pointed at ours.
FAMILIAR_NAMES = {
    "learning_rate": "lr",
    "num_epochs": "epochs",
    "num_train_epochs": "epochs",
    "per_device_train_batch_size": "batch_size",
    "num_workers": "workers",
    "lora_alpha": "alpha",
    "lora_dropout": "dropout",
    "lora_r": "r",
    "rank": "r",
    "model_name_or_path": "base",
    "max_seq_length": "max_length",
    "gradient_accumulation": "gradient_accumulation_steps",
    "lr_scheduler": "scheduler",
    "lr_scheduler_type": "scheduler",
    "mixed_precision": "precision",
    "stage": "zero_stage",
}


def set_key_path(raw: dict[str, Any], key_path: str, value: Any) -> dict[str, Any]:
    """Set `a.b.c` in nested dicts (creating sections on the way); returns `raw`."""
    node = raw
    keys = key_path.split(".")
    for key in keys[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise ValueError(f"{key} is not a section")
        node = child
    node[keys[-1]] = value
    return raw


def schema_problem(root: type[BaseModel], keys: list[str]) -> str | None:
    """Why a dotted key names no field of `root` (None when it does)."""
    model = root
    for index, key in enumerate(keys):
        if key not in model.model_fields:
            return "unknown key" + suggestion(root, keys[: index + 1])
        if index == len(keys) - 1:
            return None
        nested = section_model(model.model_fields[key].annotation)
        if nested is None:
            return f"{'.'.join(keys[: index + 1])} is a value, not a section"
        model = nested
    return None


def section_model(annotation: Any) -> type[BaseModel] | None:
    """The section model behind a field's annotation (`X`, or `X | None`)."""
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def key_path_of(loc: list[Any]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def suggestion(root: type[BaseModel], loc: list[Any]) -> str:
    """` (did you mean `x`?)` for a key `root` does not have at `loc`, or the known keys."""
    model = root
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        nested = section_model(field.annotation) if field else None
        if nested is None:
            return ""
        model = nested
    alias = FAMILIAR_NAMES.get(str(loc[-1]))
    if alias in model.model_fields:
        return f" (did you mean `{alias}`?)"
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1, cutoff=0.5)
    return (
        f" (did you mean `{close[0]}`?)" if close else f" (known: {', '.join(model.model_fields)})"
    )
