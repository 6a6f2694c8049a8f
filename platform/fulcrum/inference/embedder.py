"""Sentence embeddings on ONNX Runtime: what the assistant searches its knowledge base with,
and what /rank's prefilter keeps a pair model's candidates by.

A sentence-embedding model (all-MiniLM-L6-v2, multilingual-e5-small) is its encoder's token
vectors averaged over the real tokens and scaled to unit length. Both steps are put inside
the exported graph, so the runtime side is tokenise, run, done, and a dot product between
two embeddings is their cosine similarity. E5 models were trained with a "query: " prefix
on every text they compare symmetrically; `prefix` carries it, recorded in the artifact so
that the knowledge base and the questions are embedded alike.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import uuid
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np

from fulcrum.inference.predictor import padded_inputs
from fulcrum.inference.session import open_session

MODEL_FILE = "embedder.onnx"
TOKENIZER_DIR = "embedder_tokenizer"


def default_embedder(trained_base: str | None) -> str:
    """The multilingual sentence model beside a multilingual classifier (its texts are in
    the customers' language), else MiniLM."""
    return "builtin:multilingual" if trained_base == "builtin:multilingual" else "builtin:minilm"


def prefix_for(model_dir: Path) -> str:
    """E5's own instruction for symmetric similarity; nothing for other models."""
    return "query: " if "e5" in Path(model_dir).name.lower() else ""


def export_embedder(model_dir: Path, target_dir: Path, max_length: int, opset: int = 18) -> None:
    """The encoder of `model_dir` with mean pooling and L2 normalisation, as
    `target_dir/embedder.onnx` (output `embeddings`), and its tokenizer beside it."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from fulcrum.compress.onnx_export import model_input_names
    from fulcrum.models.classifier import quiet_transformers

    quiet_transformers()  # an encoder without its pretraining pooler is what is wanted
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    encoder = AutoModel.from_pretrained(model_dir, use_kernels=False).eval()
    names = model_input_names(encoder, tokenizer)

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
            tokens = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, **extra
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            mean = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=-1)

    example = tokenizer(
        ["a short one", "a somewhat longer example sentence for tracing"],
        padding=True,
        return_tensors="pt",
    )
    axes = {name: {0: "batch", 1: "sequence"} for name in names} | {"embeddings": {0: "batch"}}
    target_dir.mkdir(parents=True, exist_ok=True)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Pooled(),
            tuple(example[name] for name in names),
            str(target_dir / MODEL_FILE),
            input_names=names,
            output_names=["embeddings"],
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )
    tokenizer.model_max_length = max_length
    tokenizer.save_pretrained(target_dir / TOKENIZER_DIR)


class OnnxEmbedder:
    """Unit-length sentence embeddings, [texts, dim] float32, from an exported embedder."""

    def __init__(
        self, folder: str | Path, max_length: int, prefix: str = "", threads: int | None = None
    ) -> None:
        from tokenizers import Tokenizer

        folder = Path(folder)
        self.tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_DIR / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=max_length)
        self.tokenizer.no_padding()
        self.pad_id = next(
            (
                self.tokenizer.token_to_id(t)
                for t in ("[PAD]", "<pad>")
                if self.tokenizer.token_to_id(t) is not None
            ),
            0,
        )
        self.prefix = prefix
        self.session = open_session(folder / MODEL_FILE, threads, spin=False)
        self.input_names = [item.name for item in self.session.get_inputs()]

    def embed(self, texts: list[str]) -> np.ndarray:
        """Rows in the texts' order; the texts run in groups of similar length
        (fulcrum.inference.buckets), so a long query does not pad a hundred short ones."""
        from fulcrum.inference.buckets import length_groups

        encodings = self.tokenizer.encode_batch([self.prefix + text for text in texts])
        if not encodings:
            return np.zeros((0, 0), dtype=np.float32)
        rows: list[np.ndarray | None] = [None] * len(encodings)
        for group in length_groups([len(encoding.ids) for encoding in encodings]):
            feed = padded_inputs([encodings[i] for i in group], self.pad_id, self.input_names)
            vectors = self.session.run(["embeddings"], feed)[0].astype(np.float32)
            for index, vector in zip(group, vectors, strict=True):
                rows[index] = vector
        return np.stack(rows)


class EmbeddingCache:
    """Embeddings of texts seen before, up to `size` of them, least recently used out
    first: a catalogue's items come back request after request, and each is embedded once."""

    def __init__(self, embedder: OnnxEmbedder, size: int) -> None:
        self.embedder, self.size = embedder, size
        self.vectors: OrderedDict[str, np.ndarray] = OrderedDict()

    def embed(self, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(text for text in texts if text not in self.vectors))
        if missing:
            for text, vector in zip(missing, self.embedder.embed(missing), strict=True):
                self.vectors[text] = vector
        rows = []
        for text in texts:
            self.vectors.move_to_end(text)
            rows.append(self.vectors[text])
        while len(self.vectors) > self.size:
            self.vectors.popitem(last=False)
        return np.stack(rows)


def cached_embedder(name: str, max_length: int, threads: int | None = None) -> OnnxEmbedder:
    """The sentence model `name` as an OnnxEmbedder, exported once per machine under
    $FULCRUM_CACHE/embedders/ (the Serve replicas of a node share one export; another
    process finishing first is fine, its export is the same)."""
    from fulcrum.models.registry import resolve_model_dir
    from fulcrum.storage import cache_root

    model_dir = resolve_model_dir(name)
    folder = cache_root() / "embedders" / f"{Path(model_dir).name}-{max_length}"
    if not (folder / MODEL_FILE).is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = folder.parent / f".{folder.name}.{uuid.uuid4().hex[:8]}"
        try:
            export_embedder(model_dir, staging, max_length)
            try:
                os.replace(staging, folder)
            except OSError:
                if not (folder / MODEL_FILE).is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return OnnxEmbedder(folder, max_length, prefix_for(model_dir), threads)


def nearest(query: np.ndarray, candidates: np.ndarray, keep: int) -> np.ndarray:
    """Indices of the `keep` candidate embeddings nearest the query's (unit vectors: the
    dot product is the cosine), nearest first; ties keep the candidates' order."""
    similarity = candidates @ query
    return np.argsort(-similarity, kind="stable")[:keep]
