"""A text classifier over an export artifact: `tokenizers` + ONNX Runtime + numpy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from fulcrum.artifacts import open_artifact
from fulcrum.errors import ArtifactError
from fulcrum.inference.session import open_session

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer/tokenizer.json"


class OnnxClassifier:
    def __init__(
        self, artifact_dir: str | Path, threads: int | None = None, verify: bool = True
    ) -> None:
        from tokenizers import Tokenizer

        artifact = open_artifact(artifact_dir, kind="export", verify=verify)
        self.artifact = artifact
        self.labels: list[str] = artifact.labels
        self.max_length: int = int(artifact.manifest["max_length"])
        self.tokenizer = Tokenizer.from_file(str(artifact.file(TOKENIZER_FILE)))
        _check_tokenizer_fits(self.tokenizer, artifact)
        self.tokenizer.enable_truncation(max_length=self.max_length)
        pad = _pad_token(artifact.path)
        self.tokenizer.enable_padding(pad_id=self.tokenizer.token_to_id(pad), pad_token=pad)

        self.session = open_session(artifact.file(MODEL_FILE), threads)
        self.input_names = [item.name for item in self.session.get_inputs()]

    def encode(self, texts: list[str]) -> dict[str, np.ndarray]:
        encodings = self.tokenizer.encode_batch(texts)
        arrays = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        return {name: arrays[name] for name in self.input_names}

    def logits(self, texts: list[str]) -> np.ndarray:
        return self.session.run(["logits"], self.encode(texts))[0]

    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        probabilities = softmax(self.logits(texts))
        return [
            {
                "label": self.labels[int(row.argmax())],
                "score": float(row.max()),
                "probabilities": {name: float(p) for name, p in zip(self.labels, row)},
            }
            for row in probabilities
        ]


def _check_tokenizer_fits(tokenizer, artifact) -> None:
    """Every file can be intact and the pair still wrong: a tokenizer copied from another
    model yields ids the embedding table does not have (or silently different words)."""
    rows = artifact.manifest.get("vocab_size")
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    if rows is not None and size > rows:
        raise ArtifactError(
            f"{artifact.file(TOKENIZER_FILE)}: {size} tokens, but the model's embedding has "
            f"{rows} rows: this tokenizer is not the model's"
        )


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def _pad_token(artifact_dir: Path) -> str:
    config_path = artifact_dir / "tokenizer" / "tokenizer_config.json"
    if config_path.is_file():
        pad = json.loads(config_path.read_text()).get("pad_token")
        if isinstance(pad, dict):
            pad = pad.get("content")
        if pad:
            return pad
    return "[PAD]"
