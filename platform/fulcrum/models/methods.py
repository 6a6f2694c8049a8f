"""Fine-tuning methods: which parameters train, how they are saved, how they are put back.

One table maps `peft.method` to a Method; adding a method is adding one entry. Every
method saves only what it trained (an adapter directory) and can rebuild a plain model
from the base weights plus that adapter, merged where the method allows, for export.

  lora, adalora, ia3   PEFT adapters, merged into the base weights for export
  prefix               Fulcrum's key/value prefixes (models/prefix.py); kept, not merged
  head_only            the encoder frozen, only the new task head trains
  full                 every parameter trains
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from fulcrum.defaults import METHOD_TARGETS
from fulcrum.errors import ModelError
from fulcrum.models.families import classic_targets, linear_layers
from fulcrum.models.prefix import add_prefix
from fulcrum.recipe import PeftSection
from fulcrum.tasks import Task

WEIGHTS_FILE = "trainable.safetensors"
METHOD_FILE = "method.json"


@dataclass(frozen=True)
class Method:
    name: str
    # (base model, head parameter names, recipe section, task, total optimizer steps) -> model
    wrap: Callable[[nn.Module, list[str], PeftSection, Task, int], nn.Module]
    save: Callable[[nn.Module, Path], None]
    # (base model with fresh head, adapter dir) -> model for inference
    restore: Callable[[nn.Module, Path], nn.Module]
    uses_peft: bool = False


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [parameter for parameter in model.parameters() if parameter.requires_grad]


def parameter_counts(model: nn.Module) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in trainable_parameters(model))
    return {"total": total, "trainable": trainable}


# --------------------------------------------------------------------------- PEFT adapters


# Each builder: (recipe section, target modules, IA3's feed-forward modules, PEFT task type,
# optimizer steps of the run) -> PEFT config.
def _lora(section: PeftSection, targets, feedforward, task_type, total_steps: int):
    from peft import LoraConfig

    return LoraConfig(
        task_type=task_type,
        r=section.r,
        lora_alpha=section.alpha,
        lora_dropout=section.dropout,
        target_modules=targets,
    )


def _adalora(section: PeftSection, targets, feedforward, task_type, total_steps: int):
    from peft import AdaLoraConfig

    # The rank schedule is in steps in PEFT, in shares of the run in the recipe.
    return AdaLoraConfig(
        task_type=task_type,
        init_r=section.adalora_init_r,
        target_r=section.r,
        lora_alpha=section.alpha,
        lora_dropout=section.dropout,
        target_modules=targets,
        total_step=max(total_steps, 1),
        tinit=int(section.adalora_warmup * total_steps),
        tfinal=int(section.adalora_final * total_steps),
        deltaT=section.adalora_interval,
    )


def _ia3(section: PeftSection, targets, feedforward, task_type, total_steps: int):
    from peft import IA3Config

    return IA3Config(task_type=task_type, target_modules=targets, feedforward_modules=feedforward)


PEFT_CONFIGS = {"lora": _lora, "adalora": _adalora, "ia3": _ia3}
# The modules PEFT's SEQ_CLS and TOKEN_CLS tasks train and save on their own.
PEFT_SAVES = ("classifier", "score")


def _peft_wrap(model, head, section, task, total_steps):
    import peft

    # SEQ_CLS/TOKEN_CLS make PEFT train and save the new classifier (modules_to_save) beside
    # the adapter; without it the head would stay at its random initialisation. The rest of
    # the new head trains and is saved the same way: a pooler the checkpoint lacks (DeBERTa's,
    # ModernBERT's, multilingual-e5's), else it would be drawn afresh at every load.
    task_type = getattr(peft.TaskType, task.peft_task_type)
    targets, feedforward = adapter_targets(model, head, section)
    config = PEFT_CONFIGS[section.method](section, targets, feedforward, task_type, total_steps)
    # PEFT adds its classifier names to these when it wraps the model.
    config.modules_to_save = [
        module
        for module in sorted({name.rsplit(".", 1)[0] for name in head})
        if module.split(".", 1)[0] not in PEFT_SAVES
    ] or None
    try:
        return peft.get_peft_model(model, config)
    except Exception as error:  # PEFT's own error types vary by version; say which pair failed
        raise ModelError(
            f"peft.method {section.method} cannot wrap {type(model).__name__}: {error}"
        ) from None


def adapter_targets(
    model: nn.Module, head: list[str], section: PeftSection
) -> tuple[list[str] | None, list[str] | None]:
    """(target modules, IA3's feed-forward modules) for a PEFT adapter. `all-linear`: every
    linear layer outside the new task head (PEFT's own `all-linear` would wrap a token head,
    which it also trains whole); `peft-default`: where the method's paper puts it, by the
    family's layer names (models/families.py), else PEFT's default for the architecture
    (None)."""
    wanted = section.target_modules or METHOD_TARGETS.get(section.method, "peft-default")
    if wanted == "peft-default":
        return classic_targets(model, head, section.method) or (None, None)
    names = linear_layers(model, head) if wanted == "all-linear" else list(wanted)
    return names, [] if section.method == "ia3" else None


def _peft_save(model, directory: Path) -> None:
    model.save_pretrained(directory)


def _peft_restore(base, directory: Path):
    from peft import PeftModel
    from peft.utils import ModulesToSaveWrapper

    model = PeftModel.from_pretrained(base, directory)
    # The trained head goes back in place of its wrapper first: PEFT's IA3 merge cannot
    # unload a wrapped head made of several layers (RoBERTa's and ELECTRA's dense + out_proj).
    for name, module in list(model.named_modules()):
        if isinstance(module, ModulesToSaveWrapper):
            parent, _, child = name.rpartition(".")
            (trained,) = module.modules_to_save.values()
            setattr(model.get_submodule(parent), child, trained)
    return model.merge_and_unload()


# --------------------------------------------------------------------------- plain parameters


def _freeze_all_but(model: nn.Module, trainable: Callable[[str], bool]) -> nn.Module:
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(trainable(name))
    return model


def _head_only_wrap(model, head, section, task, total_steps):
    # The "update only the top" recipe: the encoder's features stay as pretrained.
    return _freeze_all_but(model, lambda name: name in head)


def _full_wrap(model, head, section, task, total_steps):
    return _freeze_all_but(model, lambda name: True)


def _prefix_wrap(model, head, section, task, total_steps):
    add_prefix(model, section.num_virtual_tokens)
    return _freeze_all_but(model, lambda name: name in head or ".fulcrum_prefix." in name)


def _save_trainable(model, directory: Path) -> None:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    tensors = {
        name: p.detach().cpu().contiguous()
        for name, p in model.named_parameters()
        if p.requires_grad
    }
    save_file(tensors, str(directory / WEIGHTS_FILE))
    prefix = getattr(model.config, "fulcrum_prefix_tokens", None)
    (directory / METHOD_FILE).write_text(json.dumps({"prefix_tokens": prefix}))


def _restore_trainable(base, directory: Path):
    from safetensors.torch import load_file

    prefix = json.loads((directory / METHOD_FILE).read_text()).get("prefix_tokens")
    if prefix:
        add_prefix(base, prefix)
    weights = load_file(str(directory / WEIGHTS_FILE))
    unknown = sorted(set(weights) - set(base.state_dict()))
    if unknown:
        raise ModelError(
            f"{directory}: adapter weights do not fit the base model (e.g. {unknown[0]})"
        )
    base.load_state_dict(weights, strict=False)
    return base


METHODS: dict[str, Method] = {
    name: Method(name, _peft_wrap, _peft_save, _peft_restore, uses_peft=True)
    for name in PEFT_CONFIGS
} | {
    "prefix": Method("prefix", _prefix_wrap, _save_trainable, _restore_trainable),
    "head_only": Method("head_only", _head_only_wrap, _save_trainable, _restore_trainable),
    "full": Method("full", _full_wrap, _save_trainable, _restore_trainable),
}


# --------------------------------------------------------------------------- entry points


def build_trainable_model(
    model_dir: Path,
    label_names: list[str],
    section: PeftSection,
    task: Task,
    total_steps: int,
    overrides: dict[str, Any] | None = None,
):
    from fulcrum.models.classifier import load_base_model

    model, head = load_base_model(model_dir, label_names, task, overrides)
    return METHODS[section.method].wrap(model, head, section, task, total_steps)


def restore_model(
    model_dir: Path,
    adapter_dir: Path,
    label_names: list[str],
    section: PeftSection,
    task: Task,
    overrides: dict[str, Any] | None = None,
):
    """Base weights + saved adapter -> one model for inference (merged where possible)."""
    from fulcrum.models.classifier import load_base_model

    base, _ = load_base_model(model_dir, label_names, task, overrides)
    return METHODS[section.method].restore(base, adapter_dir).eval()


def preflight(
    model_dir: Path,
    label_names: list[str],
    section: PeftSection,
    task: Task,
    overrides: dict[str, Any] | None = None,
) -> dict[str, int]:
    """Build the model on the meta device (no weights in memory) and apply the method, so a
    method/model/task pair that cannot work fails here, on the driver, with the recipe's
    words, rather than inside every worker. Returns parameter counts."""
    from fulcrum.models.classifier import label_maps, new_head, quiet_transformers

    quiet_transformers()
    model, info = task.model_class().from_pretrained(
        model_dir,
        device_map="meta",
        use_kernels=False,
        output_loading_info=True,
        **label_maps(label_names),
        **(overrides or {}),
    )
    head = new_head(model, info["missing_keys"])
    wrapped = METHODS[section.method].wrap(model, head, section, task, 100)
    counts = parameter_counts(wrapped)
    if counts["trainable"] == 0:
        raise ModelError(
            f"peft.method {section.method}: nothing to train in {type(model).__name__} "
            "(no parameters left trainable)"
        )
    return counts
