"""GPU path check: the built-in model trained with bf16 and DeepSpeed ZeRO-2 on CUDA.

One Ray Train worker per visible GPU, NCCL, bf16; LoRA on all linear layers and, for
comparison, full fine-tuning. Data: the demo messages repeated to 6,000 rows (the real
datasets are not on the GPU machine), sequence length 64, batch 64 per GPU. Prints steady
samples/s, tokens/s and peak GPU memory per worker, and writes the results JSON.

    python benchmarks/gpu_check.py [--epochs 2]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

from common import REPOSITORY, steps_csv_rates, table, write_results


def repeated_demo_data(target: Path, copies: int = 20) -> Path:
    lines = (REPOSITORY / "examples" / "data" / "support_intents.csv").read_text().splitlines()
    header, rows = lines[0], lines[1:]
    target.write_text("\n".join([header] + rows * copies) + "\n")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this check is for GPU machines")
    from fulcrum.artifacts import open_artifact
    from fulcrum.recipe import validate_recipe
    from fulcrum.train.stage import train

    gpus = torch.cuda.device_count()
    rows = []
    with tempfile.TemporaryDirectory() as output:
        data = repeated_demo_data(Path(output) / "messages.csv")
        for method, options, lr in (
            (
                "lora",
                {"r": 16, "alpha": 32, "target_modules": ["query", "key", "value", "dense"]},
                2e-3,
            ),
            ("full", {}, 1e-4),
        ):
            recipe = validate_recipe(
                {
                    "name": f"gpu-{method}",
                    "seed": 13,
                    "output_dir": output,
                    "data": {"path": str(data), "label_column": "intent"},
                    "model": {"base": "builtin:minilm", "max_length": 64},
                    "peft": {"method": method, **options},
                    "train": {
                        "workers": gpus,
                        "use_gpu": True,
                        "precision": "bf16",
                        "zero_stage": 2,
                        "epochs": args.epochs,
                        "batch_size": 64,
                        "lr": lr,
                        "log_every_steps": 10,
                    },
                }
            )
            started = time.time()
            artifact = open_artifact(train(recipe), kind="train")
            with open(artifact.file("logs/steps.csv"), newline="") as handle:
                log = list(csv.DictReader(handle))
            gpu_peak = max(
                float(v) for row in log for k, v in row.items() if k.startswith("peak_gpu_mb")
            )
            rows.append(
                {
                    "method": method,
                    **steps_csv_rates(artifact.path),
                    "peak_gpu_mb": gpu_peak,
                    "validation_accuracy": artifact.metrics["validation"]["accuracy"],
                    "wall_s": time.time() - started,
                }
            )
    print(f"{gpus} x {torch.cuda.get_device_name(0)}, bf16, DeepSpeed ZeRO-2")
    print(
        table(
            rows,
            [
                ("method", "method"),
                ("samples_per_s", "samples/s"),
                ("tokens_per_s", "tokens/s"),
                ("peak_gpu_mb", "peak GPU MiB/worker"),
                ("peak_rss_mb", "peak RSS MiB/worker"),
                ("validation_accuracy", "val accuracy"),
                ("wall_s", "wall s"),
            ],
        )
    )
    print(
        f"\nwrote {write_results('gpu_check', {'gpus': gpus, 'epochs': args.epochs, 'rows': rows})}"
    )


if __name__ == "__main__":
    main()
