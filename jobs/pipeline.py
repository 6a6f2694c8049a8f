"""The whole pipeline from a recipe as one Ray job (`fulcrum run --no-serve`, run by the
job's driver): tune (with a `tune:` section), train (resuming an interrupted run), export,
and compress (with a `compress:` section), each skipped when its artifact is up to date.
`fulcrum submit` runs the same from anywhere; by hand:

    ray job submit --working-dir . -- python jobs/pipeline.py RECIPE --output-dir /shared/artifacts

Serving is left to `serve deploy` of a config from `fulcrum serve config`: a job ends, an
endpoint should not.
"""

import sys

from fulcrum.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:], "--no-serve"]))
