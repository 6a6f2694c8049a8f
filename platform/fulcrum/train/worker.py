"""The per-worker training loop that Ray Train runs on every rank.

Each rank builds the same PEFT model (same seed), wraps it in a DeepSpeed engine over the
process group Ray Train already set up, and trains on its shard of the Ray Data training
set. After each epoch all ranks evaluate the validation set (each its share of batches),
sum their confusion matrices, and report through Ray Train; rank 0 attaches a checkpoint.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fulcrum.metrics import classification_metrics
from fulcrum.models.classifier import (
    build_peft_classifier,
    load_tokenizer,
    name_deepspeed_accelerator,
)
from fulcrum.recipe import Recipe
from fulcrum.runtime import quiet_ray_data
from fulcrum.train.deepspeed_config import deepspeed_config
from fulcrum.train.progress import ProgressSink
from fulcrum.train.steps import (
    evaluate_confusion,
    make_collate,
    seed_everything,
    to_device,
    warmup_linear_decay,
)

ADAPTER_DIR = "adapter"
STATE_FILE = "trainer_state.json"


def train_worker(config: dict[str, Any]) -> None:
    recipe = Recipe.model_validate(config["recipe"])
    train_cfg = recipe.train
    name_deepspeed_accelerator(train_cfg.use_gpu)
    import deepspeed
    import ray.train

    _quiet_libraries()
    quiet_ray_data()
    label_names: list[str] = config["label_names"]
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    progress = ProgressSink(config.get("progress_queue") if rank == 0 else None)

    seed_everything(recipe.seed)
    model_dir = Path(config["model_dir"])
    model = build_peft_classifier(model_dir, label_names, recipe.peft)
    tokenizer = load_tokenizer(model_dir)
    collate = make_collate(tokenizer, recipe.model.max_length)

    total_steps = config["steps_per_epoch"] * train_cfg.epochs
    trainable = [param for param in model.parameters() if param.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    scheduler = warmup_linear_decay(
        optimizer, int(train_cfg.warmup_ratio * total_steps), total_steps
    )
    engine, _, _, _ = deepspeed.initialize(
        model=model,
        optimizer=optimizer,
        lr_scheduler=scheduler,
        config=deepspeed_config(train_cfg),
        dist_init_required=False,
    )
    progress.emit(
        type="message",
        text=f"{world} DeepSpeed engine(s) ready (ZeRO-{train_cfg.zero_stage}, {engine.device})",
        clock_start=True,
    )

    train_shard = ray.train.get_dataset_shard("train")
    validation_data = ray.train.get_dataset_shard("validation")
    history: list[dict[str, Any]] = []
    global_step = 0
    for epoch in range(1, train_cfg.epochs + 1):
        engine.train()
        loss_sum, loss_count = 0.0, 0
        window_start, window_samples, window_tokens = time.time(), 0, 0
        for batch in train_shard.iter_batches(
            batch_size=train_cfg.batch_size,
            batch_format="numpy",
            local_shuffle_buffer_size=4 * train_cfg.batch_size,
            local_shuffle_seed=recipe.seed * 1000 + epoch,
        ):
            inputs = to_device(collate(batch), engine.device)
            loss = engine(**inputs).loss
            engine.backward(loss)
            engine.step()
            global_step += 1
            loss_sum += loss.item()
            loss_count += 1
            window_samples += len(batch["label"]) * world
            window_tokens += int(inputs["attention_mask"].sum()) * world
            if global_step % train_cfg.log_every_steps == 0 or global_step == total_steps:
                elapsed = max(time.time() - window_start, 1e-9)
                progress.emit(
                    type="step",
                    epoch=epoch,
                    step=global_step,
                    loss=loss_sum / loss_count,
                    lr=scheduler.get_last_lr()[0],
                    samples_per_s=window_samples / elapsed,
                    tokens_per_s=window_tokens / elapsed,
                )
                window_start, window_samples, window_tokens = time.time(), 0, 0

        metrics = _evaluate(
            engine, validation_data, collate, len(label_names), rank, world, train_cfg
        )
        record = {
            "epoch": epoch,
            "step": global_step,
            "train_loss": loss_sum / max(1, loss_count),
            **{f"val_{name}": value for name, value in metrics.items()},
        }
        history.append(record)
        progress.emit(
            type="epoch",
            epoch=epoch,
            epochs=train_cfg.epochs,
            metrics={k: v for k, v in record.items() if k not in ("epoch", "step", "val_examples")},
        )
        _report(engine, record, history, rank)


def _evaluate(
    engine, validation_data, collate, num_labels, rank, world, train_cfg
) -> dict[str, float]:
    """Each rank evaluates every world-th batch and the confusion matrices are summed.
    Under ZeRO-3 every forward pass gathers parameters collectively, so there all ranks
    must run the same batches: each evaluates everything and rank 0's matrix is used."""
    import torch.distributed as dist

    partitioned = train_cfg.zero_stage == 3
    engine.eval()
    batches = (
        collate(batch)
        for index, batch in enumerate(
            validation_data.iter_batches(batch_size=train_cfg.batch_size, batch_format="numpy")
        )
        if partitioned or index % world == rank
    )
    confusion = evaluate_confusion(engine, batches, num_labels, engine.device)
    if not partitioned and world > 1:
        summed = torch.as_tensor(confusion, dtype=torch.float64)
        dist.all_reduce(summed)
        confusion = summed.numpy().astype(np.int64)
    engine.train()
    return classification_metrics(confusion)


def _report(engine, record: dict[str, Any], history: list[dict[str, Any]], rank: int) -> None:
    """Every rank calls report (it is a barrier); only rank 0 attaches files. Under ZeRO-3
    parameters are partitioned, so they are gathered before the adapter is written,
    otherwise the saved LoRA weights would be empty."""
    import deepspeed
    import ray.train

    model = engine.module
    gather = engine.zero_optimization_stage() == 3
    params = [param for param in model.parameters() if param.requires_grad]
    with deepspeed.zero.GatheredParameters(params, modifier_rank=None, enabled=gather):
        with tempfile.TemporaryDirectory() as checkpoint_dir:
            checkpoint = None
            if rank == 0:
                model.save_pretrained(Path(checkpoint_dir) / ADAPTER_DIR)
                state = {
                    "epoch": record["epoch"],
                    "global_step": record["step"],
                    "history": history,
                }
                (Path(checkpoint_dir) / STATE_FILE).write_text(json.dumps(state, indent=2))
                checkpoint = ray.train.Checkpoint.from_directory(checkpoint_dir)
            ray.train.report(record, checkpoint=checkpoint)


def _quiet_libraries() -> None:
    """Keep worker logs to what a user needs: DeepSpeed's per-step INFO lines and the
    library deprecation chatter would bury the progress and any real error."""
    # Ray Train logs every report at INFO through a logger named by its file path, which
    # only the root level reaches.
    logging.getLogger().setLevel(logging.WARNING)
    for name in ("DeepSpeed", "deepspeed", "torch.distributed", "ray.data", "ray.train"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
