"""What is in an output directory: every artifact, its lineage and the figures a person
looks at first. Read from the manifests alone (no model is loaded), so `fulcrum runs` is
instant on any number of artifacts and the Serve gateway can describe a model cheaply."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fulcrum.artifacts import MANIFEST
from fulcrum.errors import ArtifactError
from fulcrum.manifest import ExportManifest, Manifest, parse_manifest
from fulcrum.storage import artifact_uris, is_uri, read_manifest_bytes

# Folders that hold a stage's working state rather than artifacts.
SKIPPED_DIRS = {"_ray", "checkpoints", "logs", "merged", "adapter", "tokenizer", "data"}


def find_artifacts(root: str | Path, max_depth: int = 6) -> list[dict[str, Any]]:
    """One summary per manifest under `root` (a folder or a URI), oldest first."""
    if is_uri(root):
        found = [
            summary(uri, read_manifest_bytes(uri))
            for uri in artifact_uris(str(root), SKIPPED_DIRS, max_depth)
        ]
        return sorted(found, key=lambda item: item["created_at"] or "")
    root = Path(root)
    found = []

    def walk(folder: Path, depth: int) -> None:
        manifest = folder / MANIFEST
        if manifest.is_file():
            found.append(summary(folder, manifest.read_bytes()))
        if depth == max_depth:
            return
        for child in sorted(folder.iterdir()):
            if child.is_dir() and child.name not in SKIPPED_DIRS and not child.name.startswith("."):
                walk(child, depth + 1)

    if root.is_dir():
        walk(root, 0)
    return sorted(found, key=lambda item: item["created_at"] or "")


def summary(folder: str | Path, raw: bytes | None) -> dict[str, Any]:
    """One line of `fulcrum runs`. A manifest this version cannot read is listed with why,
    rather than hiding the other artifacts behind one error."""
    try:
        manifest = parse_manifest(raw or b"", where=f"{folder}/{MANIFEST}")
    except ArtifactError as error:
        return dict.fromkeys(("kind", "name", "created_at", "recipe_hash", "parent")) | {
            "path": str(folder),
            "headline": f"unreadable: {error}",
        }
    return {
        "path": str(folder),
        "kind": manifest.kind,
        "name": manifest.name,
        "created_at": manifest.created_at,
        "recipe_hash": manifest.recipe_hash[:12],
        "parent": manifest.parent.path if manifest.parent else None,
        "headline": headline(manifest),
    }


def headline(manifest: Manifest) -> str:
    """The figure that says how good the artifact is, in a few words."""
    metrics = manifest.metrics
    if manifest.kind == "compress":
        return f"recommended: {metrics.get('recommended') or 'none passed'}"
    if manifest.kind == "tune":
        best, metric = metrics.get("best") or {}, metrics.get("metric")
        score = best.get(metric) if isinstance(best, dict) else None
        finished = f"{metrics.get('trials', '?')} trials"
        return f"{finished}, best {metric} {score:.4f}" if isinstance(score, float) else finished
    parts = []
    for split in ("validation", "test"):
        values = metrics.get(split) or (metrics.get("gate") or {}).get(split, {}).get("metrics")
        if isinstance(values, dict):
            key = "f1" if "f1" in values else "macro_f1" if "macro_f1" in values else "accuracy"
            if isinstance(values.get(key), float):
                parts.append(f"{split} {key} {values[key]:.4f}")
    if isinstance(manifest, ExportManifest) and not manifest.deployable:
        parts.append("NOT deployable")
    return ", ".join(parts)


def lineage(path: str | Path, limit: int = 8) -> list[dict[str, Any]]:
    """This artifact and its parents, newest first: what made each, from which recipe and
    data, and what it measured on test where it did."""
    chain = []
    current: str | Path | None = path if is_uri(path) else Path(path)
    while current is not None and len(chain) < limit:
        raw = read_manifest_bytes(current)
        if raw is None:
            break
        manifest = parse_manifest(raw, where=f"{current}/{MANIFEST}")
        chain.append(
            {
                "kind": manifest.kind,
                "path": str(current),
                "created_at": manifest.created_at,
                "recipe": manifest.name,
                "recipe_hash": manifest.recipe_hash[:12],
                "data_fingerprint": (manifest.data_fingerprint or "")[:12] or None,
                "test": manifest.metrics.get("test"),
            }
        )
        parent = manifest.parent.path if manifest.parent else None
        current = None if not parent else parent if is_uri(parent) else Path(parent)
    return chain
