"""Run a hyperparameter campaign from a recipe's `tune:` section as a Ray job:

    ray job submit --working-dir . -- python jobs/tune.py examples/tune_intents.yaml \
        --output-dir /shared/artifacts [--set tune.num_samples=32]

Each trial is a Ray Train run on the cluster's workers. Submitting the same recipe again
(after the driver was stopped, say) continues the campaign: finished trials are kept and
the searcher's state is restored. The campaign artifact's best_recipe.yaml trains the
winner with jobs/finetune.py.
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
    args = parser.parse_args()
    try:
        from fulcrum.tune.campaign import tune

        campaign = tune(load_recipe(args.recipe, args.overrides), args.output_dir)
        print(f"campaign artifact: {campaign.resolve()}")
        print(f"best recipe: {(campaign / 'best_recipe.yaml').resolve()}")
    except FulcrumError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
