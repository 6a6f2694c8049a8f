"""Fulcrum as a user installs it: the wheel, in a fresh environment that cannot see this
checkout, run from a directory outside it. Its `fulcrum serve config` writes a Serve config
whose application imports from the installed package and builds."""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from ..conftest import REPOSITORY

pytestmark = pytest.mark.integration

IMPORT_APP = """
import importlib, sys, yaml
config = yaml.safe_load(open(sys.argv[1]))
(application,) = config["applications"]
module_name, attribute = application["import_path"].split(":")
module = importlib.import_module(module_name)
build_app = getattr(module, attribute)
app = build_app(build_app.__annotations__["args"].model_validate(application["args"]))
print(module.__file__, type(app).__name__)
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv holding only the wheel's files; the dependencies are this venv's, reached
    through a .pth file, which does not run this venv's editable-install hook."""
    root = tmp_path_factory.mktemp("installed")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["--wheel-dir", str(root / "dist"), str(REPOSITORY)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = (root / "dist").glob("fulcrum-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps"]
        + ["--ignore-installed", str(wheel)],  # never touch this venv's editable install
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    return venv


def _run_installed(venv: Path, program: str, *args, cwd: Path) -> subprocess.CompletedProcess:
    """`program` from the installed venv's bin/, in `cwd`, with nothing pointing back at
    this checkout or the session's cluster."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RAY_ADDRESS")}
    return subprocess.run(
        [venv / "bin" / program, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=env,
    )


def test_installed_wheel_writes_a_serve_config_whose_app_imports_from_it(
    installed, pipeline, tmp_path
):
    _, _, export_dir = pipeline
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    written = _run_installed(
        installed, "fulcrum", "serve", "config", f"posts={export_dir}", "-o", "s.yaml", cwd=outside
    )
    assert written.returncode == 0, written.stderr
    config = yaml.safe_load((outside / "s.yaml").read_text())
    (application,) = config["applications"]
    assert application["import_path"] == "fulcrum.serve.app:build_app"
    assert application["args"]["models"][0]["name"] == "posts"

    imported = _run_installed(installed, "python", "-c", IMPORT_APP, "s.yaml", cwd=outside)
    assert imported.returncode == 0, imported.stderr
    module_file, app_type = imported.stdout.split()
    assert Path(module_file).is_relative_to(installed), module_file
    assert not Path(module_file).is_relative_to(REPOSITORY)
    assert app_type == "Application"


def test_installed_wheel_runs_as_a_module_where_no_script_is_on_path(installed, tmp_path):
    """What a Ray job's driver runs when fulcrum came to the cluster as a wheel."""
    result = _run_installed(installed, "python", "-m", "fulcrum", "run", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "--no-serve" in result.stdout
