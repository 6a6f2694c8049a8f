"""Prefix tuning for encoders (P-tuning v2): learned key/value vectors prepended in every
self-attention layer, the base weights frozen.

PEFT implements prefix tuning by passing the prefixes as `past_key_values`, which
transformers 5 encoders (BERT and kin) no longer accept, so PEFT refuses them. Fulcrum
instead registers an attention function with transformers' AttentionInterface that
concatenates each layer's prefix to its keys and values and widens the attention mask, then
hands over to the standard SDPA kernel. Because it is plain tensor code in the forward pass,
the ONNX exporter traces it with the prefixes as constants.
"""

from __future__ import annotations

import torch
from torch import nn

from fulcrum.errors import ModelError

ATTENTION_NAME = "fulcrum_prefix"
CONFIG_KEY = "fulcrum_prefix_tokens"


class KeyValuePrefix(nn.Module):
    def __init__(self, heads: int, tokens: int, head_size: int) -> None:
        super().__init__()
        # Small random init: zeros would make every prefix position identical.
        self.key = nn.Parameter(torch.randn(heads, tokens, head_size) * 0.02)
        self.value = nn.Parameter(torch.randn(heads, tokens, head_size) * 0.02)


def prefixed_attention(module, query, key, value, attention_mask, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    prefix: KeyValuePrefix = module.fulcrum_prefix
    batch = key.shape[0]
    prefix_key = prefix.key.to(key.dtype).unsqueeze(0).expand(batch, -1, -1, -1)
    prefix_value = prefix.value.to(value.dtype).unsqueeze(0).expand(batch, -1, -1, -1)
    key = torch.cat([prefix_key, key], dim=2)
    value = torch.cat([prefix_value, value], dim=2)
    if attention_mask is not None:
        # Every query may attend to every prefix position: True in a boolean mask, 0 in an
        # additive one.
        shape = (*attention_mask.shape[:-1], prefix.key.shape[1])
        if attention_mask.dtype == torch.bool:
            visible = torch.ones(shape, dtype=torch.bool, device=attention_mask.device)
        else:
            visible = torch.zeros(shape, dtype=attention_mask.dtype, device=attention_mask.device)
        attention_mask = torch.cat([visible, attention_mask], dim=-1)
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def _register() -> None:
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, prefixed_attention)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)


def self_attention_modules(model: nn.Module) -> list[nn.Module]:
    """BERT-family self-attention: query/key/value projections and a head layout."""
    return [
        module
        for module in model.modules()
        if all(
            hasattr(module, name)
            for name in ("query", "key", "value", "num_attention_heads", "attention_head_size")
        )
    ]


def add_prefix(model: nn.Module, tokens: int) -> nn.Module:
    """Attach a prefix to every self-attention layer and route attention through it."""
    layers = self_attention_modules(model)
    if not layers:
        raise ModelError(
            f"peft.method prefix: {type(model).__name__} has no BERT-style self-attention "
            "(query/key/value projections) to prepend prefixes to"
        )
    _register()
    for layer in layers:
        layer.fulcrum_prefix = KeyValuePrefix(
            layer.num_attention_heads, tokens, layer.attention_head_size
        )
    model.set_attn_implementation(ATTENTION_NAME)
    setattr(model.config, CONFIG_KEY, tokens)
    return model


def prefix_tokens(config) -> int | None:
    return getattr(config, CONFIG_KEY, None)
