"""The whole pipeline from a recipe as one Ray job: train (resuming an interrupted run),
export, and compress when the recipe has a `compress:` section. What `fulcrum submit`
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
from fulcrum.recipe import load_recipe

RECIPE_ENV = "FULCRUM_RECIPE_YAML"  # how `fulcrum submit` ships a recipe from anywhere


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", nargs="?", help=f"recipe file (default: ${RECIPE_ENV})")
    parser.add_argument("--output-dir", help="artifact root; use a path that outlives the job")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE"
    )
    args = parser.parse_args()
    try:
        recipe = load_recipe(_recipe_file(args.recipe), args.overrides)
        from fulcrum.compress.export import export
        from fulcrum.train.stage import train

        train_dir = train(recipe, args.output_dir)
        print(f"training artifact: {train_dir.resolve()}", flush=True)
        export_dir = export(recipe, train_dir, args.output_dir)
        print(f"export artifact: {export_dir.resolve()}", flush=True)
        if recipe.compress is not None:
            from fulcrum.compress.stage import compress

            print(f"compress artifact: {compress(recipe, train_dir, args.output_dir).resolve()}")
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
