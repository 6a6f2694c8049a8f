"""A sequence classifier wrapped by a PEFT method, built from the recipe.

PEFT methods live in a table from the recipe name to a builder of the PEFT config, so adding
a method is adding one entry.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fulcrum.recipe import PeftSection


def _lora_config(section: PeftSection):
    from peft import LoraConfig, TaskType

    # SEQ_CLS makes PEFT train and save the new classification head (modules_to_save)
    # beside the adapter; without it the head would stay at its random initialisation.
    return LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=section.r,
        lora_alpha=section.alpha,
        lora_dropout=section.dropout,
        target_modules=section.target_modules,
    )


PEFT_CONFIGS: dict[str, Callable[[PeftSection], object]] = {"lora": _lora_config}


def name_deepspeed_accelerator(use_gpu: bool) -> None:
    """DeepSpeed guesses its accelerator on import and warns when it settles on the CPU;
    PEFT imports it too. Naming it up front (before that import) is exact and quiet."""
    import os

    os.environ["DS_ACCELERATOR"] = "cuda" if use_gpu else "cpu"


def quiet_transformers() -> None:
    """The load report lists the fresh classifier as MISSING on every load; that is expected."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def load_base_classifier(model_dir: Path, label_names: list[str]):
    from transformers import AutoModelForSequenceClassification

    quiet_transformers()
    return AutoModelForSequenceClassification.from_pretrained(
        model_dir,
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={name: index for index, name in enumerate(label_names)},
    )


def build_peft_classifier(model_dir: Path, label_names: list[str], section: PeftSection):
    from peft import get_peft_model

    model = load_base_classifier(model_dir, label_names)
    return get_peft_model(model, PEFT_CONFIGS[section.method](section))


def load_tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    quiet_transformers()
    return AutoTokenizer.from_pretrained(model_dir)
