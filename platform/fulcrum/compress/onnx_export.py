"""PyTorch classifier -> ONNX graph with dynamic batch and sequence axes."""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import warnings
from pathlib import Path

import torch

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


class LogitsOnly(torch.nn.Module):
    """Hugging Face models return a ModelOutput; the graph should return one tensor."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits


def model_input_names(model: torch.nn.Module, tokenizer) -> list[str]:
    """The inputs both sides have: a BERT tokenizer makes token_type_ids that DistilBERT
    does not take, and a DeBERTa without token types ignores them."""
    accepted = inspect.signature(model.forward).parameters
    return [
        name for name in INPUT_NAMES if name in tokenizer.model_input_names and name in accepted
    ]


def graph_input_names(path: Path) -> list[str]:
    """What a session must be fed: the exporter drops inputs the model never reads."""
    import onnx

    return [item.name for item in onnx.load(str(path), load_external_data=False).graph.input]


def export_onnx(model: torch.nn.Module, tokenizer, target: Path, opset: int) -> list[str]:
    """Export with the dynamo exporter and return the graph's input names."""
    from torch.export import Dim

    input_names = model_input_names(model, tokenizer)
    # Trace with two texts of different lengths so padding is part of the traced graph.
    example = tokenizer(
        ["a short one", "a somewhat longer example sentence for tracing"],
        padding=True,
        return_tensors="pt",
    )
    batch, sequence = Dim("batch", min=1, max=4096), Dim("sequence", min=2, max=4096)
    dynamic = {name: {0: batch, 1: sequence} for name in input_names}
    # The exporter narrates each pass on stdout and warns about optional torchvision ops;
    # neither helps a user, and a real failure still raises.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LogitsOnly(model.eval()),
            (),
            str(target),
            kwargs={name: example[name] for name in input_names},
            input_names=input_names,
            output_names=["logits"],
            dynamic_shapes=dynamic,
            opset_version=opset,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    return graph_input_names(target)


def export_onnx_for_fusion(
    model: torch.nn.Module, tokenizer, target: Path, opset: int
) -> list[str]:
    """The graph ONNX Runtime's transformer optimizer can fuse whole: the TorchScript
    exporter over eager attention. Its BERT fusions recognise that graph's attention and
    embedding patterns (Attention, EmbedLayerNormalization, and so QAttention under INT8);
    they recognise neither the dynamo exporter's graph nor SDPA's (checked with torch 2.13,
    transformers 5.24 and onnxruntime 1.32: only SkipLayerNormalization and BiasGelu fuse
    there). The model's own attention implementation is put back afterwards."""
    input_names = model_input_names(model, tokenizer)
    example = tokenizer(
        ["a short one", "a somewhat longer example sentence for tracing"],
        padding=True,
        return_tensors="pt",
    )
    axes = {name: {0: "batch", 1: "sequence"} for name in input_names}
    with torch.no_grad():
        per_token = model.eval()(**{name: example[name] for name in input_names}).logits.ndim == 3
    axes["logits"] = {0: "batch", 1: "sequence"} if per_token else {0: "batch"}
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                LogitsOnly(model.eval()),
                tuple(example[name] for name in input_names),
                str(target),
                input_names=input_names,
                output_names=["logits"],
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
            )
    finally:
        model.set_attn_implementation(previous)
    return graph_input_names(target)
