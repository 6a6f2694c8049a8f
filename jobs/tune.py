"""Run a hyperparameter campaign from a recipe's `tune:` section as a Ray job (`fulcrum
tune`, run by the job's driver):

    ray job submit --working-dir . -- python jobs/tune.py examples/tune_intents.yaml \
        --output-dir /shared/artifacts [--set tune.num_samples=32] [--auto --budget 2h]

Each trial is a Ray Train run on the cluster's workers. Submitting the same recipe again
(after the driver was stopped, say) continues the campaign: finished trials are kept and
the searcher's state is restored. The campaign artifact's best_recipe.yaml trains the
winner with jobs/finetune.py.
"""

import sys

from fulcrum.cli import main

if __name__ == "__main__":
    sys.exit(main(["tune", *sys.argv[1:]]))
