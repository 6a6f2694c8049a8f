"""`fulcrum predict` killed (SIGKILL: no chance to tidy up) part way through a corpus, then
run again with the same command: the files finished before the kill are not scored again,
the file being scored when it died is scored whole, and no row is lost or written twice."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.integration

FULCRUM = str(Path(sys.executable).parent / "fulcrum")
FILES, ROWS = 6, 20_000


def _listed(output: Path) -> dict:
    try:
        return json.loads((output / "manifest.json").read_text())["files"]
    except (OSError, ValueError, KeyError):
        return {}


def test_a_killed_run_goes_on_where_it_stopped(pipeline, tmp_path):
    _, _, export_dir = pipeline
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for index in range(FILES):
        lines = ["id,text"] + [f"{row},my car needs a new wheel {row}" for row in range(ROWS)]
        (corpus / f"day-{index}.csv").write_text("\n".join(lines) + "\n")
    output = tmp_path / "scored"
    command = [FULCRUM, "predict", str(export_dir), str(corpus), "--output", str(output)]

    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while len(_listed(output)) < 2 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    before = _listed(output)
    assert 2 <= len(before) < FILES, f"killed too late or too early: {sorted(before)}"
    written = {name: os.stat(output / entry["part"]).st_mtime_ns for name, entry in before.items()}

    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"skipped {len(before)} file(s) scored by an earlier run" in again.stdout
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["complete"] and manifest["rows"] == FILES * ROWS
    for name, entry in manifest["files"].items():
        ids = pq.read_table(output / entry["part"], columns=["id"]).column("id").to_pylist()
        assert ids == [str(row) for row in range(ROWS)], name  # each once, in file order
        if name in written:  # finished before the kill: left as it was
            assert os.stat(output / entry["part"]).st_mtime_ns == written[name]
    assert not [path.name for path in (output / "parts").iterdir() if path.name.startswith(".")]
