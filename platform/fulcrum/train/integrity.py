"""Checkpoints that prove they are whole before a run resumes from them.

Each rank seals the part of a checkpoint it wrote with the sha256 of every file, before Ray
Train merges the parts. A run resuming checks every seal: a checkpoint truncated by a full
disk, half-copied by a crash, or altered since is refused with the file named, and the run
resumes from the newest earlier checkpoint that is whole (Ray keeps `train.keep_checkpoints`
of them) rather than failing or loading garbage. Checkpoints written before seals existed
have none and are trusted, as they were.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from fulcrum.artifacts import sha256_file

SEALS_DIR = "seals"


def seal(directory: Path, rank: int) -> None:
    """Record the sha256 of every file this rank put in `directory` (call it last)."""
    files = {
        str(path.relative_to(directory)): sha256_file(path)
        for path in sorted(directory.rglob("*"))
        if path.is_file() and SEALS_DIR not in path.relative_to(directory).parts
    }
    (directory / SEALS_DIR).mkdir(exist_ok=True)
    (directory / SEALS_DIR / f"rank{rank}.json").write_text(json.dumps(files, indent=1))


def damage(directory: Path) -> str | None:
    """None when every sealed file is there with its recorded content; otherwise what is
    wrong, naming the file."""
    seals = sorted((directory / SEALS_DIR).glob("rank*.json"))
    for seal_file in seals:
        try:
            files = json.loads(seal_file.read_text())
        except (OSError, ValueError):
            return f"{SEALS_DIR}/{seal_file.name} is unreadable"
        for relative, digest in files.items():
            path = directory / relative
            if not path.is_file():
                return f"{relative} is missing"
            if sha256_file(path) != digest:
                return f"{relative} does not match its sha256 (truncated or altered)"
    return None


def newest_whole(
    candidates: list, open_dir: Callable, warn: Callable[[str], None]
) -> tuple[object | None, int]:
    """The first of `candidates` (newest first) whose directory, as `open_dir(candidate)`
    (a context manager) gives it, is whole; and how many were skipped as damaged."""
    skipped = 0
    for candidate in candidates:
        with open_dir(candidate) as directory:
            problem = damage(Path(directory))
        if problem is None:
            return candidate, skipped
        skipped += 1
        warn(f"checkpoint {_name(candidate)} is damaged ({problem}); trying an earlier one")
    return None, skipped


def _name(candidate) -> str:
    return Path(getattr(candidate, "path", str(candidate))).name
