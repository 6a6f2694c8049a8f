"""Loading a pretrained encoder with a fresh task head, and its tokenizer."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from fulcrum.errors import ModelError
from fulcrum.models.families import POSITION_OFFSET
from fulcrum.models.prefix import add_prefix, prefix_tokens
from fulcrum.tasks import Task

# The recipe's architecture knobs and the config attribute each model family calls them by
# (BERT/RoBERTa/ELECTRA first, DistilBERT second).
CONFIG_NAMES = {
    "num_layers": ("num_hidden_layers", "n_layers"),
    "hidden_dropout": ("hidden_dropout_prob", "dropout"),
    "attention_dropout": ("attention_probs_dropout_prob", "attention_dropout"),
    "classifier_dropout": ("classifier_dropout", "seq_classif_dropout"),
}


def name_deepspeed_accelerator(use_gpu: bool) -> None:
    """DeepSpeed guesses its accelerator on import and warns when it settles on the CPU;
    PEFT imports it too. Naming it up front (before that import) is exact and quiet."""
    os.environ["DS_ACCELERATOR"] = "cuda" if use_gpu else "cpu"


def quiet_transformers() -> None:
    """The load report lists the fresh head as MISSING on every load; that is expected.

    Every load also passes use_kernels=False: transformers 5.25 swaps layers for Hub
    kernels by default, which fails on the meta device, and a swapped layer would no longer
    be the module that ONNX export and the parity gate compare against."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


CARRIED_HEAD = "fulcrum_head.safetensors"  # a continued base's grown head (fulcrum.continual)


def label_maps(label_names: list[str]) -> dict:
    return {
        "num_labels": len(label_names),
        "id2label": dict(enumerate(label_names)),
        "label2id": {name: index for index, name in enumerate(label_names)},
    }


def config_overrides(model_dir: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """The recipe's `model` knobs (num_layers, dropouts; None = keep) as keyword overrides
    of the pretrained config. Cutting to the first k layers is how a distillation student
    is made from its teacher's base: the kept layers load their pretrained weights."""
    from transformers import AutoConfig

    wanted = {key: value for key, value in settings.items() if value is not None}
    if not wanted:
        return {}
    config = AutoConfig.from_pretrained(model_dir).to_dict()
    overrides = {}
    for key, value in wanted.items():
        attribute = next((name for name in CONFIG_NAMES[key] if name in config), None)
        if attribute is None:
            raise ModelError(
                f"model.{key}: a {config.get('model_type', 'this')} model's config has none of "
                f"{', '.join(CONFIG_NAMES[key])}"
            )
        if key == "num_layers" and value > config[attribute]:
            raise ModelError(
                f"model.num_layers: {model_dir} has {config[attribute]} layers (asked for {value})"
            )
        overrides[attribute] = value
    return overrides


def load_base_model(
    model_dir: Path, label_names: list[str], task: Task, overrides: dict[str, Any] | None = None
):
    """The pretrained encoder with a new head; returns (model, names of the head's
    parameters), the head being whatever the checkpoint did not provide. A continued
    model's base (fulcrum.continual) carries its grown head beside the weights: it starts
    from those values, and still trains as the head."""
    quiet_transformers()
    model, info = task.model_class().from_pretrained(
        model_dir,
        output_loading_info=True,
        use_kernels=False,
        **label_maps(label_names),
        **(overrides or {}),
    )
    head = new_head(model, info["missing_keys"])
    load_carried_head(model, model_dir, head)
    return model, head


def load_carried_head(model, model_dir: Path, head: list[str]) -> None:
    """Put a continued base's grown head (CARRIED_HEAD) in place of the fresh one."""
    from safetensors.torch import load_file

    carried = Path(model_dir) / CARRIED_HEAD
    if not carried.is_file():
        return
    tensors = load_file(str(carried))
    unexpected = sorted(set(tensors) - set(head))
    if unexpected:
        raise ModelError(f"{carried}: holds {', '.join(unexpected)}, which is not the model's head")
    model.load_state_dict(tensors, strict=False)


def new_head(model, missing_keys: list[str]) -> list[str]:
    """The parameters the checkpoint did not provide: the head that trains from scratch. A
    buffer the checkpoint lacks is no head (its module would be trained and saved whole)."""
    parameters = {name for name, _ in model.named_parameters()}
    return sorted(set(missing_keys) & parameters)


def load_model_from_config(config_dir: Path, task: Task):
    """A model with the architecture saved in config_dir, weights not yet loaded, with the
    structure Fulcrum added (prefixes) rebuilt so a saved state dict fits it."""
    from transformers import AutoConfig

    quiet_transformers()
    config = AutoConfig.from_pretrained(config_dir)
    model = task.model_class().from_config(config)
    tokens = prefix_tokens(config)
    return add_prefix(model, tokens) if tokens else model


def load_tokenizer(model_dir: Path):
    """The folder's tokenizer, loaded once per process while its files stay as they are:
    a 250k-piece SentencePiece tokenizer (XLM-R, the multilingual models) takes seconds to
    load, and one run reads the same folder for settling, training and the artifact.
    Shared: use it, do not change it."""
    folder = Path(model_dir).resolve()
    if not folder.is_dir():
        return _load_tokenizer.__wrapped__(model_dir, ())  # transformers says what is wrong
    stamp = tuple(
        (entry.name, entry.stat().st_size, entry.stat().st_mtime_ns)
        for entry in sorted(folder.iterdir())
        if entry.is_file()
    )
    return _load_tokenizer(folder, stamp)


@functools.lru_cache(maxsize=8)
def _load_tokenizer(model_dir: Path, stamp: tuple):
    from transformers import AutoTokenizer

    quiet_transformers()
    return AutoTokenizer.from_pretrained(model_dir)


def model_limit(model_dir: Path, tokenizer) -> int:
    """The longest input the model takes: its position embeddings (less any offset), or the
    tokenizer's own limit where that is lower (tokenizers without one say ~1e30)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    positions = getattr(config, "max_position_embeddings", None) or 512
    limit = positions - POSITION_OFFSET.get(config.model_type, 0)
    declared = getattr(tokenizer, "model_max_length", None)
    if isinstance(declared, int) and 0 < declared < 100_000:
        limit = min(limit, declared)
    return int(limit)
