"""Storage that fails under a stage: an output directory that cannot be written (read-only
even for root: the immutable attribute), and a disk that fills while an artifact is being
written (a file-size limit on the process: every write past it fails as ENOSPC would). Each
ends in a one-line error naming the path, no traceback, no half-written artifact, and a
good artifact already at that path left as it was. A damaged artifact is refused at load."""

import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fulcrum.artifacts import open_artifact
from fulcrum.errors import ArtifactError

pytestmark = pytest.mark.integration

FULCRUM = str(Path(sys.executable).parent / "fulcrum")


def export_into(recipe, train_dir, output_dir: Path, tmp_path, preexec=None):
    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_text(yaml.safe_dump(recipe.to_dict()))
    command = [FULCRUM, "export", str(recipe_file), "--from", str(train_dir)]
    return subprocess.run(
        command + ["--output-dir", str(output_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=preexec,
        env={key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"},
    )


def leftovers(folder: Path) -> list[str]:
    return [path.name for path in folder.rglob(".*") if "staging" in path.name]


@pytest.fixture
def read_only_dir(tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() == 0:
        made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
        if made.returncode != 0:
            pytest.skip(f"cannot make a directory read-only for root here: {made.stderr!r}")
        yield folder
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)


def test_a_read_only_output_directory_is_a_clear_error(pipeline, tmp_path, read_only_dir):
    recipe, train_dir, _ = pipeline
    result = export_into(recipe, train_dir, read_only_dir, tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: {read_only_dir}/tiny/export: cannot create the artifact here")
    assert not any(read_only_dir.iterdir())


def _disk_fills_at(limit_bytes: int):
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return limit


def test_a_disk_that_fills_mid_artifact_leaves_the_previous_artifact_whole(pipeline, tmp_path):
    recipe, train_dir, export_dir = pipeline
    output = tmp_path / "out"
    shutil.copytree(export_dir, output / "tiny" / "export")
    before = open_artifact(output / "tiny" / "export").manifest
    result = export_into(recipe, train_dir, output, tmp_path, preexec=_disk_fills_at(256 * 1024))
    assert result.returncode == 2, (result.stdout + result.stderr)[-2000:]
    assert "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: {output}/tiny/export: could not write the artifact"), error
    assert "File too large" in error or "No space left" in error
    assert "nothing was published; the previous artifact is unchanged" in error
    assert leftovers(output) == []
    assert open_artifact(output / "tiny" / "export").manifest == before  # verified, same


def test_a_damaged_artifact_file_is_refused_at_load(pipeline, tmp_path):
    _, _, export_dir = pipeline
    copy = shutil.copytree(export_dir, tmp_path / "export")
    model = copy / "model.onnx"
    model.write_bytes(model.read_bytes()[:-100])
    with pytest.raises(ArtifactError, match=r"model\.onnx.*(sha256|changed|altered)"):
        open_artifact(copy)
