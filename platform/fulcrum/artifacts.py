"""Artifact directories: the only hand-off between stages.

An artifact is a directory with a manifest.json saying what produced it (recipe and its hash,
parent artifact, data fingerprint, package versions), what it holds (every file with its
sha256) and what it measured. It is built in a hidden staging directory next to its final
path and renamed into place only when complete, so a crash never leaves a half-written
artifact where a later stage would pick it up. Under an `output_dir` that is a URI (s3://,
gs://), the artifact is built in the URI's local mirror and then uploaded (storage.py).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from fulcrum.errors import ArtifactError
from fulcrum.manifest import FORMAT_VERSION, AnyManifest, new_manifest, parse_manifest
from fulcrum.storage import MANIFEST, local_path, output_root, publish, refresh, remote_of

__all__ = [
    "MANIFEST",
    "Artifact",
    "artifact_dir",
    "open_artifact",
    "recipe_hash_of",
    "staged_artifact",
]

# What each stage writes, named after it: <output_dir>/<recipe name>/<stage>.
STAGES = ("train", "export", "compress", "tune", "assistant", "monitor")
# A disk or quota that is full, a file-size limit, a file system mounted read-only.
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)
TRACKED_PACKAGES = (
    "fulcrum",
    "torch",
    "transformers",
    "peft",
    "deepspeed",
    "ray",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
    "tokenizers",
    "pyarrow",
)


@dataclass(frozen=True)
class Artifact:
    path: Path
    manifest: AnyManifest

    @property
    def kind(self) -> str:
        return self.manifest.kind

    @property
    def metrics(self) -> dict[str, Any]:
        return self.manifest.metrics

    @property
    def labels(self) -> list[str]:
        return list(self.manifest.labels)

    def file(self, relative: str) -> Path:
        return self.path / relative


@contextmanager
def staged_artifact(final_dir: str | Path) -> Iterator[Path]:
    """Yield a staging directory; on success it replaces `final_dir`, on error it vanishes.

    The caller must write the manifest (write_manifest) before leaving the block: an artifact
    without one is refused, because nothing could check it later.
    """
    final_dir = Path(final_dir)
    try:
        final_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = final_dir.parent / f".{final_dir.name}.staging-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
    except OSError as error:
        raise ArtifactError(
            f"{final_dir}: cannot create the artifact here ({error.strerror})"
        ) from None
    try:
        yield staging
        if not (staging / MANIFEST).is_file():
            raise ArtifactError(f"{final_dir}: artifact has no {MANIFEST}; refusing to publish it")
        _replace_dir(staging, final_dir)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        cause = _write_failure(error)
        if cause is None:
            raise
        kept = "the previous artifact is unchanged" if final_dir.exists() else "no artifact there"
        raise ArtifactError(
            f"{final_dir}: could not write the artifact ({cause}); nothing was published; {kept}"
        ) from error
    remote = remote_of(final_dir)
    if remote is not None:
        publish(final_dir, remote)


def write_manifest(
    artifact_dir: Path,
    *,
    kind: str,
    recipe: dict[str, Any],
    recipe_hash: str,
    labels: list[str],
    metrics: dict[str, Any],
    parent: Path | None = None,
    data_fingerprint: str | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Hash every file in the directory and write manifest.json beside them. `extra`: the
    fields of this kind's manifest beyond the ones every artifact has (fulcrum.manifest)."""
    manifest = new_manifest(
        kind,
        format_version=FORMAT_VERSION,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        recipe=recipe,
        recipe_hash=recipe_hash,
        parent=_parent_entry(parent),
        data_fingerprint=data_fingerprint,
        labels=labels,
        metrics=metrics,
        packages=package_versions(),
        files={rel: sha256_file(artifact_dir / rel) for rel in _files(artifact_dir)},
        **(extra or {}),
    )
    write_json_atomic(artifact_dir / MANIFEST, manifest.model_dump(mode="json"))


def open_artifact(path: str | Path, kind: str | None = None, verify: bool = True) -> Artifact:
    """Open an artifact, refusing one that is incomplete, of the wrong kind, or altered.
    `path` may be a URI, or a folder in a URI's mirror: either is first brought up to date
    with the URI, and the Artifact's path is then the local copy."""
    path = local_path(path)
    refresh(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise ArtifactError(f"{path}: not an artifact (no {MANIFEST}); run the stage that makes it")
    manifest = parse_manifest(manifest_path.read_bytes(), where=str(manifest_path))
    if kind is not None and manifest.kind != kind:
        raise ArtifactError(
            f"{path}: expected a {kind} artifact, found a {manifest.kind!r} artifact"
        )
    if verify:
        for rel, expected in manifest.files.items():
            file_path = path / rel
            if not file_path.is_file():
                raise ArtifactError(f"{file_path}: listed in the manifest but missing")
            if sha256_file(file_path) != expected:
                raise ArtifactError(
                    f"{file_path}: sha256 does not match the manifest "
                    "(the file was truncated, corrupted or changed after it was written)"
                )
    return Artifact(path=path, manifest=manifest)


def artifact_dir(recipe, stage: str, output_dir: str | Path | None = None) -> Path:
    """Where `stage`'s artifact of `recipe` lives (a local folder; a URI's local mirror):
    the recipe's output_dir unless another is given."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; one of {', '.join(STAGES)}")
    return output_root(output_dir or recipe.output_dir) / recipe.name / stage


def recipe_hash_of(artifact_dir: Path) -> str | None:
    """The hash of the recipe an artifact was made from, without verifying its files: how a
    stage tells whether its artifact is up to date. None where there is no manifest, or one
    this version cannot read: either way the stage runs again."""
    path = Path(artifact_dir) / MANIFEST
    try:
        return parse_manifest(path.read_bytes(), where=str(path)).recipe_hash
    except (OSError, ArtifactError):
        return None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json_atomic(path: Path, content: Any) -> None:
    write_text_atomic(path, json.dumps(content, indent=2, sort_keys=False) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never half of one."""
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temp, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def package_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _files(root: Path) -> list[str]:
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and path.name != MANIFEST
    )


def _write_failure(error: BaseException) -> str | None:
    """What a failed write says, when the error (or one it was raised from: libraries wrap
    them) is the file system refusing one: a full disk, a quota, a read-only mount."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in WRITE_ERRNOS:
            return f"{error.strerror}" + (f": {error.filename}" if error.filename else "")
        text = str(error)
        for errno_value in WRITE_ERRNOS:
            if os.strerror(errno_value) in text:
                return os.strerror(errno_value)
        error = error.__cause__ or error.__context__
    return None


def _parent_entry(parent: Path | None) -> dict[str, str] | None:
    if parent is None:
        return None
    where = remote_of(parent) or str(Path(parent).resolve())  # a URI reads the same on every node
    return {"path": where, "manifest_sha256": sha256_file(Path(parent) / MANIFEST)}


def _replace_dir(staging: Path, final_dir: Path) -> None:
    if final_dir.exists():
        retired = final_dir.parent / f".{final_dir.name}.retired-{uuid.uuid4().hex[:8]}"
        os.replace(final_dir, retired)
        os.replace(staging, final_dir)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(staging, final_dir)
