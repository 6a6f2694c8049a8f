"""Integrated Gradients on the embedding layer (Captum's LayerIntegratedGradients), for
PyTorch models: the gradient of the target's probability, integrated along the straight
path from a baseline (every word replaced by padding; [CLS] and [SEP] kept) to the text.
Its attributions add up to the change in the target's probability from baseline to text;
what they miss by is the convergence delta, reported with every explanation."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# (logits of shape [n, ...]) -> the target's probability for each row, differentiably
TargetOfLogits = Callable[["torch.Tensor"], "torch.Tensor"]  # noqa: F821


def integrated_gradients(
    model,
    input_ids: np.ndarray,
    attention_mask: np.ndarray,
    special_mask: np.ndarray,
    pad_id: int,
    target_of_logits: TargetOfLogits,
    steps: int = 50,
    internal_batch_size: int = 32,
    token_type_ids: np.ndarray | None = None,
) -> tuple[np.ndarray, float, float]:
    """(per-token attributions [length], convergence delta, the target's probability) for
    one text. `special_mask` marks [CLS]/[SEP], kept in the baseline; a text pair's
    segment ids (`token_type_ids`) are the same along the path."""
    import torch
    from captum.attr import LayerIntegratedGradients

    ids = torch.as_tensor(input_ids, dtype=torch.long)[None, :]
    mask = torch.as_tensor(attention_mask, dtype=torch.long)[None, :]
    special = torch.as_tensor(special_mask, dtype=torch.bool)[None, :]
    baseline = torch.where(special, ids, torch.full_like(ids, pad_id))
    types = (
        None
        if token_type_ids is None
        else torch.as_tensor(token_type_ids, dtype=torch.long)[None, :]
    )

    def forward(
        token_ids: torch.Tensor, attention: torch.Tensor, types: torch.Tensor | None = None
    ) -> torch.Tensor:
        extra = {}
        if types is not None:
            # Captum repeats the inputs per step; the segment ids follow them.
            extra["token_type_ids"] = types.expand(token_ids.shape[0], -1)
        return target_of_logits(
            model(input_ids=token_ids, attention_mask=attention, **extra).logits
        )

    model.eval()
    method = LayerIntegratedGradients(forward, model.get_input_embeddings())
    attributions, delta = method.attribute(
        inputs=ids,
        baselines=baseline,
        additional_forward_args=(mask, types),
        n_steps=steps,
        internal_batch_size=internal_batch_size,
        return_convergence_delta=True,
    )
    with torch.no_grad():
        probability = float(forward(ids, mask, types)[0])
    per_token = attributions.sum(dim=-1)[0].detach().numpy()
    return per_token, float(delta[0]), probability
