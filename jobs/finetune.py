"""Fine-tune from a recipe as a Ray job:

    ray job submit --working-dir . -- python jobs/finetune.py examples/demo.yaml \
        --output-dir /shared/artifacts [--set train.epochs=1] [--export]

The job's driver joins the cluster that runs it (RAY_ADDRESS is set by the job server),
so the Ray Train workers land on the cluster's nodes. `fulcrum` must be importable there:
installed in the nodes' environment, or its wheel shipped with --runtime-env-json
'{"py_modules": ["dist/fulcrum-0.1.0-py3-none-any.whl"]}' (pip wheel --no-deps -w dist .).
"""

import argparse
import sys

from fulcrum.errors import FulcrumError
from fulcrum.recipe import load_recipe


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe")
    parser.add_argument("--output-dir", help="artifact root; use a path that outlives the job")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE"
    )
    parser.add_argument(
        "--export", action="store_true", help="also export to ONNX (parity-checked)"
    )
    args = parser.parse_args()
    try:
        from fulcrum.train.stage import train

        recipe = load_recipe(args.recipe, args.overrides)
        train_dir = train(recipe, args.output_dir)
        print(f"training artifact: {train_dir.resolve()}")
        if args.export:
            from fulcrum.compress.export import export

            print(f"export artifact: {export(recipe, train_dir, args.output_dir).resolve()}")
    except FulcrumError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
