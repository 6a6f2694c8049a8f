"""Guard the layout: platform/ is a source root, never a package shadowing the stdlib."""

import re
import subprocess
import sys
from pathlib import Path

import yaml

from fulcrum.recipe import load_recipe

REPOSITORY = Path(__file__).resolve().parents[2]


def test_platform_has_no_init():
    assert not (REPOSITORY / "platform" / "__init__.py").exists()


def test_stdlib_platform_works_with_repository_first_on_path():
    code = "import platform, sys; print(platform.system())"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPOSITORY)},
        check=True,
    )
    assert result.stdout.strip() == "Linux"


def test_no_job_file_shadows_a_module():
    import importlib.util

    for path in (REPOSITORY / "jobs").glob("*.py"):
        assert importlib.util.find_spec(path.stem) is None, (
            f"jobs/{path.name} shadows an importable module"
        )


def test_example_recipes_validate():
    recipes = sorted((REPOSITORY / "examples").glob("*.yaml"))
    assert len(recipes) >= 4, "examples/ should hold the demo and the task examples"
    for path in recipes:
        recipe = load_recipe(path)
        source = Path(recipe.data.path or recipe.data.train)
        if source.is_relative_to(REPOSITORY / "artifacts"):
            # Written from the shared data by a script the recipe names (never committed).
            scripts = re.findall(r"python (examples/data/write_\w+\.py)", path.read_text())
            assert scripts and (REPOSITORY / scripts[0]).is_file(), path
        elif "shared/data" not in str(source):  # the shared datasets live beside the checkout
            assert source.is_file(), path
        if recipe.train.deepspeed_config:
            from fulcrum.train.deepspeed_config import deepspeed_config

            assert (
                deepspeed_config(recipe.train)["zero_optimization"]["stage"]
                == recipe.train.zero_stage
            )


def test_yaml_files_parse():
    for path in list((REPOSITORY / "cluster").glob("*.yaml")) + list(
        (REPOSITORY / "examples").glob("*.yaml")
    ):
        assert isinstance(yaml.safe_load(path.read_text()), dict), path
