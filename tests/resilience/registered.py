"""Which checkpoints Ray Train has registered, read from the snapshot its checkpoint manager
writes to the run's storage. A checkpoint folder exists before its registration (the ranks
upload, then the controller takes the report on its next poll), so a fault injected when a
folder appears may find the run resuming from an earlier one; a fault injected once a
checkpoint is registered has a known place to resume from."""

from __future__ import annotations

import json
from pathlib import Path

SNAPSHOT = "checkpoint_manager_snapshot.json"


def registered(run_dir: Path) -> list[str]:
    """Folder names of the registered checkpoints, oldest first ([] before the first)."""
    try:
        state = json.loads((Path(run_dir) / SNAPSHOT).read_text())
    except (OSError, ValueError):
        return []
    return [result["checkpoint_dir_name"] for result in state.get("checkpoint_results", [])]


def latest(run_dir: Path) -> str | None:
    try:
        state = json.loads((Path(run_dir) / SNAPSHOT).read_text())
    except (OSError, ValueError):
        return None
    return (state.get("latest_checkpoint_result") or {}).get("checkpoint_dir_name")
