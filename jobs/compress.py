"""Build, gate and report a recipe's compressed variants as a Ray job:

    ray job submit --working-dir . -- python jobs/compress.py examples/demo.yaml \
        --output-dir /shared/artifacts [--from /shared/artifacts/demo/train] \
        [--set compress.max_metric_drop=0.5]

Each variant (fp32, dynamic or static INT8, fp16 ONNX) is measured against the PyTorch
parent on the validation and test splits and written as an export artifact that says
whether it may be deployed; report.md compares them all.
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
        "--from", dest="train_dir", help="training artifact (default: the recipe's)"
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE"
    )
    args = parser.parse_args()
    try:
        from fulcrum.compress.stage import compress

        artifact = compress(
            load_recipe(args.recipe, args.overrides), args.train_dir, args.output_dir
        )
        print((artifact / "report.md").read_text())
        print(f"compress artifact: {artifact.resolve()}")
    except FulcrumError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
