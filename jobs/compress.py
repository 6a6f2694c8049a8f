"""Build, gate and report a recipe's compressed variants as a Ray job (`fulcrum
compress`, run by the job's driver):

    ray job submit --working-dir . -- python jobs/compress.py examples/demo.yaml \
        --output-dir /shared/artifacts [--from /shared/artifacts/demo/train] \
        [--set compress.max_metric_drop=0.5]

Each variant (fp32, dynamic or static INT8, fp16 ONNX) is measured against the PyTorch
parent on the validation and test splits and written as an export artifact that says
whether it may be deployed; report.md compares them all.
"""

import sys

from fulcrum.cli import main

if __name__ == "__main__":
    sys.exit(main(["compress", *sys.argv[1:]]))
