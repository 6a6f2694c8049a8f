"""What differs between encoder families that Fulcrum must know by name: which linear layers
are the attention projections and the feed-forward output (where `peft-default` puts LoRA
and IA3), and which families ONNX Runtime's transformer optimizer fuses as BERT.

Families not listed still train with `all-linear` adapters, head-only, full fine-tuning,
and (where their attention is BERT's) prefixes; `peft-default` then falls back to PEFT's
own table for the architecture.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class Layout:
    """Regular expressions over full module names (`roberta.encoder.layer.0.attention...`)."""

    query: str
    key: str
    value: str
    ffn_out: str


_BERT = Layout(
    query=r"attention\.self\.query$",
    key=r"attention\.self\.key$",
    value=r"attention\.self\.value$",
    ffn_out=r"layer\.\d+\.output\.dense$",  # not attention.output.dense
)
LAYOUTS: dict[str, Layout] = {
    "bert": _BERT,
    "roberta": _BERT,
    "xlm-roberta": _BERT,
    "camembert": _BERT,
    "electra": _BERT,
    "distilbert": Layout(
        query=r"attention\.q_lin$",
        key=r"attention\.k_lin$",
        value=r"attention\.v_lin$",
        ffn_out=r"ffn\.lin2$",
    ),
    "deberta-v2": Layout(
        query=r"attention\.self\.query_proj$",
        key=r"attention\.self\.key_proj$",
        value=r"attention\.self\.value_proj$",
        ffn_out=r"layer\.\d+\.output\.dense$",
    ),
    # One fused projection computes queries, keys and values together.
    "modernbert": Layout(
        query=r"attn\.Wqkv$", key=r"attn\.Wqkv$", value=r"attn\.Wqkv$", ffn_out=r"mlp\.Wo$"
    ),
}

# The architectures ONNX Runtime's optimizer knows as "bert" (the same encoder layout).
FUSABLE_MODEL_TYPES = ("bert", "roberta", "xlm-roberta", "electra")

# Families whose position ids start after the padding index, so two positions are not usable.
POSITION_OFFSET = {"roberta": 2, "xlm-roberta": 2, "camembert": 2, "longformer": 2}


def linear_layers(model: nn.Module, head: list[str]) -> list[str]:
    """Every linear layer outside the new task head, by full name, so a head layer that
    shares an encoder layer's name (RoBERTa's `classifier.dense`) stays out."""
    head_modules = {name.rsplit(".", 1)[0] for name in head}
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and name not in head_modules
    ]


def classic_targets(
    model: nn.Module, head: list[str], method: str
) -> tuple[list[str], list[str]] | None:
    """(target modules, feed-forward modules) where each method's paper puts it: LoRA on
    the query and value projections, IA3 on keys, values and the feed-forward output (whose
    input it scales, the others' output). None for a family not in LAYOUTS."""
    layout = LAYOUTS.get(getattr(model.config, "model_type", ""))
    if layout is None:
        return None
    roles = ("query", "value") if method in ("lora", "adalora") else ("key", "value", "ffn_out")
    names = linear_layers(model, head)

    def matching(*wanted: str) -> list[str]:
        patterns = [re.compile(getattr(layout, role)) for role in wanted]
        return [name for name in names if any(p.search(name) for p in patterns)]

    feedforward = matching("ffn_out") if "ffn_out" in roles else []
    return matching(*roles), feedforward
