"""Score a corpus with an export artifact as a Ray job (`fulcrum predict`, run by the job's
driver; the readers and ONNX Runtime actors run across the cluster):

    ray job submit --working-dir . -- python jobs/predict.py \
        s3://bucket/artifacts/posts/export 's3://bucket/posts/2026-12-*/*.jsonl' \
        --output s3://bucket/scored/posts [--text-column body]

The same command again after an interruption goes on where it stopped: input files already
scored into --output are skipped.
"""

import sys

from fulcrum.cli import main

if __name__ == "__main__":
    sys.exit(main(["predict", *sys.argv[1:]]))
