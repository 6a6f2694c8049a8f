"""The train stage: recipe in, training artifact out.

Reads top to bottom: load and split the data, resolve the model, run Ray Train with
progress, then turn the best checkpoint into an artifact (adapter, merged weights,
tokenizer, labels, metrics, manifest) and re-measure it from its own files.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

from fulcrum.artifacts import staged_artifact, write_json_atomic, write_manifest
from fulcrum.data import LabelledSplits, load_splits
from fulcrum.errors import TrainingError
from fulcrum.models.classifier import load_tokenizer
from fulcrum.models.registry import resolve_model_dir
from fulcrum.recipe import Recipe
from fulcrum.runtime import init_ray
from fulcrum.train.merge import evaluate_merged, merge_adapter
from fulcrum.train.plots import plot_learning_curve
from fulcrum.train.steps import steps_per_epoch
from fulcrum.train.worker import ADAPTER_DIR, STATE_FILE, train_worker

KIND = "train"


def train_artifact_dir(recipe: Recipe, output_dir: str | Path | None = None) -> Path:
    return Path(output_dir or recipe.output_dir) / recipe.name / KIND


def train(recipe: Recipe, output_dir: str | Path | None = None) -> Path:
    started = time.time()
    splits = load_splits(recipe.data, recipe.seed)
    model_dir = resolve_model_dir(recipe.model.base)
    artifact_dir = train_artifact_dir(recipe, output_dir)
    _say(
        f"data: {splits.sizes()} rows, {len(splits.label_names)} labels; "
        f"model: {recipe.model.base} ({model_dir})"
    )

    result = _fit(recipe, splits, model_dir, artifact_dir.parent / "_ray")
    best_checkpoint, best_metrics = _best(result, recipe.train.metric)
    with result.checkpoint.as_directory() as latest_dir:
        history = json.loads((Path(latest_dir) / STATE_FILE).read_text())["history"]
    with best_checkpoint.as_directory() as checkpoint_dir, staged_artifact(artifact_dir) as staging:
        evaluation = _assemble(staging, Path(checkpoint_dir), model_dir, splits, recipe)
        metrics = {
            "best_epoch": best_metrics["epoch"],
            **evaluation,
            # What the workers measured at training time; `validation` above is re-measured
            # from the merged weights as saved, and the two must agree.
            "training_validation": {
                key.removeprefix("val_"): value
                for key, value in best_metrics.items()
                if key.startswith("val_")
            },
            "history": history,
            "train_seconds": round(time.time() - started, 1),
        }
        write_json_atomic(staging / "metrics.json", metrics)
        plot_learning_curve(
            history, staging / "learning_curve.png", f"{recipe.name}: {recipe.model.base}"
        )
        write_manifest(
            staging,
            kind=KIND,
            recipe=recipe.to_dict(),
            recipe_hash=recipe.hash,
            labels=splits.label_names,
            metrics=metrics,
            data_fingerprint=splits.fingerprint,
            extra={
                "task": recipe.task.type,
                "base_model": recipe.model.base,
                "split_sizes": splits.sizes(),
            },
        )
    # The artifact holds everything worth keeping; Ray's copies of the checkpoints go.
    shutil.rmtree(Path(result.path), ignore_errors=True)
    with contextlib.suppress(OSError):
        Path(result.path).parent.rmdir()  # only when no other run's checkpoints are there
    return artifact_dir


def _fit(recipe: Recipe, splits: LabelledSplits, model_dir: Path, storage: Path):
    init_ray()
    import ray.data
    from ray.train import (
        CheckpointConfig,
        DataConfig,
        FailureConfig,
        LoggingConfig,
        RunConfig,
        ScalingConfig,
    )
    from ray.train.torch import TorchTrainer
    from ray.util.queue import Queue

    from fulcrum.train.progress import ProgressPrinter, run_with_progress

    cfg = recipe.train
    per_epoch = steps_per_epoch(splits.train.num_rows, cfg.workers, cfg.batch_size)
    queue = Queue(maxsize=10_000, actor_options={"num_cpus": 0})
    run_name = f"{recipe.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    trainer = TorchTrainer(
        train_worker,
        train_loop_config={
            "recipe": recipe.to_dict(),
            "label_names": splits.label_names,
            "model_dir": str(model_dir),
            "steps_per_epoch": per_epoch,
            "progress_queue": queue,
        },
        scaling_config=ScalingConfig(
            num_workers=cfg.workers,
            use_gpu=cfg.use_gpu,
            resources_per_worker={
                "CPU": cfg.cpus_per_worker,
                **({"GPU": 1} if cfg.use_gpu else {}),
            },
        ),
        run_config=RunConfig(
            name=run_name,
            storage_path=str(storage.resolve()),
            checkpoint_config=CheckpointConfig(
                num_to_keep=cfg.keep_checkpoints,
                checkpoint_score_attribute=f"val_{cfg.metric}",
                checkpoint_score_order="max",
            ),
            failure_config=FailureConfig(max_failures=0),
            logging_config=LoggingConfig(log_level="WARNING"),
        ),
        datasets={
            "train": ray.data.from_arrow(splits.train),
            "validation": ray.data.from_arrow(splits.validation),
        },
        # Validation is not split: every rank sees all of it and evaluates its own share of
        # batches, so no row is dropped to equalise shards as happens with training data.
        dataset_config=DataConfig(datasets_to_split=["train"]),
    )
    _say(
        f"training: {cfg.workers} worker(s) x batch {cfg.batch_size}, {cfg.epochs} epoch(s) of "
        f"{per_epoch} step(s), DeepSpeed ZeRO-{cfg.zero_stage}, {recipe.peft.method} r={recipe.peft.r}"
    )
    try:
        result = run_with_progress(trainer.fit, queue, ProgressPrinter(per_epoch * cfg.epochs))
    except Exception as error:
        raise TrainingError(f"training failed: {_root_cause(error)}") from error
    finally:
        queue.shutdown()
    return result


def _best(result, metric: str) -> tuple[Any, dict[str, Any]]:
    candidates = result.best_checkpoints or []
    if not candidates:
        raise TrainingError("training finished without a checkpoint")
    key = f"val_{metric}"
    # Ties go to the later epoch: same validation score, more training.
    return max(candidates, key=lambda pair: (pair[1][key], pair[1]["epoch"]))


def _assemble(
    staging: Path, checkpoint_dir: Path, model_dir: Path, splits: LabelledSplits, recipe: Recipe
) -> dict[str, Any]:
    """Write adapter, merged weights, tokenizer and labels; evaluate the merged weights as
    saved, so the artifact's metrics describe its files rather than the training process."""
    shutil.copytree(checkpoint_dir / ADAPTER_DIR, staging / "adapter")
    merge_adapter(model_dir, staging / "adapter", splits.label_names).save_pretrained(
        staging / "merged", safe_serialization=True
    )
    load_tokenizer(model_dir).save_pretrained(staging / "tokenizer")
    write_json_atomic(staging / "labels.json", {"labels": splits.label_names})
    num_labels = len(splits.label_names)
    return {
        split: evaluate_merged(staging, getattr(splits, split), num_labels, recipe)
        if getattr(splits, split).num_rows
        else None
        for split in ("validation", "test")
    }


def _root_cause(error: BaseException) -> str:
    while error.__cause__ is not None:
        error = error.__cause__
    text = str(error).strip().splitlines()
    return text[-1] if text else type(error).__name__


def _say(text: str) -> None:
    print(f"[train] {text}", flush=True)
