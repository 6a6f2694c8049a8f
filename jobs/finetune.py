"""Fine-tune from a recipe as a Ray job (`fulcrum train`, run by the job's driver):

    ray job submit --working-dir . -- python jobs/finetune.py examples/demo.yaml \
        --output-dir /shared/artifacts [--set train.epochs=1] [--export]

The job's driver joins the cluster that runs it (RAY_ADDRESS is set by the job server),
so the Ray Train workers land on the cluster's nodes. `fulcrum` must be importable there:
installed in the nodes' environment, or its wheel shipped with --runtime-env-json
'{"py_modules": ["dist/fulcrum-0.1.0-py3-none-any.whl"]}' (pip wheel --no-deps -w dist .).
"""

import sys

from fulcrum.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
