"""The whole pipeline from a recipe as one Ray job: tune (with a `tune:` section), train
(resuming an interrupted run), export, and compress (with a `compress:` section), each
skipped when its artifact is up to date. What `fulcrum submit`
runs on a cluster; by hand:

    ray job submit --working-dir . -- python jobs/pipeline.py RECIPE --output-dir /shared/artifacts

Serving is left to `serve deploy` of a config from `fulcrum serve config`: a job ends, an
endpoint should not.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

from fulcrum.errors import FulcrumError
from fulcrum.pipeline import STAGE_SECTIONS
from fulcrum.recipe import load_recipe

RECIPE_ENV = "FULCRUM_RECIPE_YAML"  # how `fulcrum submit` ships a recipe from anywhere


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", nargs="?", help=f"recipe file (default: ${RECIPE_ENV})")
    parser.add_argument("--output-dir", help="artifact root; use a path that outlives the job")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE"
    )
    parser.add_argument("--rerun", action="append", default=[], choices=list(STAGE_SECTIONS))
    parser.add_argument(
        "--force", action="store_true", help="export a model that has not learned (training warned)"
    )
    args = parser.parse_args()
    try:
        recipe = load_recipe(_recipe_file(args.recipe), args.overrides)
        from fulcrum.pipeline import run_stages

        run = run_stages(recipe, args.output_dir, rerun=tuple(args.rerun), force=args.force)
        for stage, path in run.artifacts.items():
            print(f"{stage} artifact: {path.resolve()} ({run.actions[stage]})", flush=True)
        print(f"to serve: {run.served.resolve()}", flush=True)
    except FulcrumError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def _recipe_file(given: str | None) -> str:
    if given:
        return given
    text = os.environ.get(RECIPE_ENV)
    if not text:
        raise FulcrumError(f"no recipe: give a file, or set {RECIPE_ENV}")
    path = Path(tempfile.mkdtemp(prefix="fulcrum-recipe-")) / "recipe.yaml"
    path.write_text(text)
    return str(path)


if __name__ == "__main__":
    sys.exit(main())
