"""Training throughput: `fulcrum train` (Ray Train + DeepSpeed) against a plain PyTorch loop.

Same model (built-in all-MiniLM-L6-v2 with LoRA r=8 on query/value), same data (Financial
PhraseBank AllAgree, seeded 80/10/10 split), same batch (32 per optimizer step), same
tokenisation, side by side in one run:

  plain      one process, a hand-written loop: tokenise, forward, backward, AdamW step
  fulcrum-1  `fulcrum train`, 1 worker with both CPUs, DeepSpeed ZeRO-0
  fulcrum-2  `fulcrum train`, 2 workers with 1 CPU each and batch 16 each, ZeRO-0 and ZeRO-2

Throughput is steady-state samples/s (the first logged window, with start-up, is dropped);
wall time is the whole command, start-up, evaluation and artifact included.

    python benchmarks/train_throughput.py [--epochs 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import phrasebank_data, steps_csv_rates, table, write_results

SEED = 13
BATCH = 32
MAX_LENGTH = 64


def recipe_dict(output_dir: str, epochs: int, workers: int, zero: int) -> dict:
    return {
        "name": f"throughput-{workers}w-z{zero}",
        "seed": SEED,
        "output_dir": output_dir,
        "data": phrasebank_data(),
        "model": {"base": "builtin:minilm", "max_length": MAX_LENGTH},
        "peft": {"method": "lora", "r": 8, "alpha": 16, "target_modules": ["query", "value"]},
        "train": {
            "workers": workers,
            "cpus_per_worker": 2 // workers,
            "epochs": epochs,
            "batch_size": BATCH // workers,
            "lr": 1e-3,
            "zero_stage": zero,
            "log_every_steps": 5,
        },
    }


def plain_loop(epochs: int) -> dict:
    """What a user writes without Fulcrum: the same model, data order and batches, one process."""
    import numpy as np
    import torch

    from fulcrum.data import load_splits
    from fulcrum.models.classifier import load_tokenizer
    from fulcrum.models.methods import build_trainable_model, trainable_parameters
    from fulcrum.models.registry import resolve_model_dir
    from fulcrum.recipe import validate_recipe
    from fulcrum.tasks import SEQUENCE_CLASSIFICATION
    from fulcrum.train.steps import EpochPlan

    torch.set_num_threads(2)
    recipe = validate_recipe(recipe_dict("/tmp", epochs, 1, 0))
    splits = load_splits(recipe.data, recipe.seed)
    model_dir = resolve_model_dir(recipe.model.base)
    torch.manual_seed(SEED)
    plan = EpochPlan(splits.train.num_rows, 1, BATCH, 1, SEED)
    model = build_trainable_model(
        model_dir,
        splits.label_names,
        recipe.peft,
        SEQUENCE_CLASSIFICATION,
        plan.steps_per_epoch * epochs,
    )
    optimizer = torch.optim.AdamW(trainable_parameters(model), lr=recipe.train.lr)
    collate = SEQUENCE_CLASSIFICATION.make_collate(load_tokenizer(model_dir), MAX_LENGTH)
    texts = np.array(splits.train.column("text").to_pylist(), dtype=object)
    labels = splits.train.column("label").to_numpy()
    model.train()
    timings, samples = [], 0
    for epoch in range(1, epochs + 1):
        for rows in plan.batches(epoch, 0):
            started = time.perf_counter()
            batch = collate({"text": texts[rows].tolist(), "label": labels[rows]})
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable_parameters(model), 1.0)
            optimizer.step()
            optimizer.zero_grad()
            timings.append((time.perf_counter() - started, len(rows)))
    steady = timings[5:]  # as for Fulcrum, skip the first window of 5 steps
    samples = sum(n for _, n in steady)
    return {"samples_per_s": samples / sum(t for t, _ in steady), "steps": len(timings)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()

    from fulcrum.recipe import validate_recipe
    from fulcrum.train.stage import train

    rows = []
    started = time.time()
    plain = plain_loop(args.epochs)
    rows.append(
        {
            "run": "plain PyTorch loop (1 process, 2 threads)",
            "samples_per_s": plain["samples_per_s"],
            "wall_s": time.time() - started,
        }
    )
    with tempfile.TemporaryDirectory() as output:
        for workers, zero in ((1, 0), (2, 0), (2, 2)):
            started = time.time()
            artifact = train(validate_recipe(recipe_dict(output, args.epochs, workers, zero)))
            wall = time.time() - started
            rates = steps_csv_rates(Path(artifact))
            rows.append(
                {"run": f"fulcrum train, {workers} worker(s), ZeRO-{zero}", "wall_s": wall, **rates}
            )
    base = rows[0]["samples_per_s"]
    one_worker = rows[1]["samples_per_s"]
    for row in rows:
        row["vs_plain"] = row["samples_per_s"] / base
        row["vs_1_worker"] = row["samples_per_s"] / one_worker
    print(
        table(
            rows,
            [
                ("run", "run"),
                ("samples_per_s", "samples/s"),
                ("vs_plain", "x plain"),
                ("vs_1_worker", "x 1 worker"),
                ("peak_rss_mb", "peak RSS MiB/worker"),
                ("wall_s", "wall s"),
            ],
        )
    )
    target = write_results(
        "train_throughput",
        {"epochs": args.epochs, "batch": BATCH, "max_length": MAX_LENGTH, "rows": rows},
    )
    print(f"\nwrote {target}")


if __name__ == "__main__":
    main()
