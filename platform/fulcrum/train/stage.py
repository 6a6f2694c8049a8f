"""The train stage: recipe in, training artifact out.

Reads top to bottom: load and split the data, resolve the model and check the method can
wrap it (before any worker starts), augment the training split and label it with the
teacher's logits when asked (Ray Data), run Ray Train with progress, then turn the best
checkpoint into an artifact (adapter, merged weights, tokenizer, labels, metrics, step
logs, plots, manifest) and re-measure it from its own files.

The Ray run is named after the recipe's hash, so running an interrupted recipe again
resumes it from its last checkpoint; a finished run's checkpoints are removed once its
artifact is written.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fulcrum import continual
from fulcrum.artifacts import artifact_dir, staged_artifact, write_json_atomic, write_manifest
from fulcrum.data import LabelledSplits, recipe_splits
from fulcrum.data.augment import augment_split
from fulcrum.data.continued import open_parent
from fulcrum.errors import TrainingError
from fulcrum.log import stage_log
from fulcrum.models.classifier import config_overrides, load_tokenizer
from fulcrum.models.methods import preflight
from fulcrum.out_of_scope import describe, measure
from fulcrum.recipe import Recipe
from fulcrum.runtime import beside_this_process, init_ray
from fulcrum.storage import is_uri, join
from fulcrum.tasks import TASKS, Task
from fulcrum.train.deepspeed_config import deepspeed_config
from fulcrum.train.distill import open_teacher, with_teacher_logits
from fulcrum.train.loop import WorkerConfig
from fulcrum.train.merge import (
    MERGED_DIR,
    TOKENIZER_DIR,
    Evaluation,
    evaluate_merged,
    merge_adapter,
)
from fulcrum.train.objective import class_weight_vector
from fulcrum.train.plots import plot_learning_curve
from fulcrum.train.report import describe_warning, learning_warnings, write_report
from fulcrum.train.settle import Settled, settle_with_model
from fulcrum.train.steps import EpochPlan
from fulcrum.train.worker import ADAPTER_DIR, LOGS_DIR, STATE_FILE, train_worker

log = stage_log("train")

KIND = "train"


def run_name(recipe: Recipe) -> str:
    """Stable per recipe content: the same recipe finds (and resumes) its own run."""
    return f"{recipe.name}-{recipe.hash[:12]}"


@dataclass(frozen=True)
class _Plan:
    """Everything a run needs, settled and checked on the driver before a worker starts."""

    written: Recipe  # as the user wrote it: names the run and the artifact
    recipe: Recipe  # settled: every value concrete
    settled: Settled
    task: Task
    splits: LabelledSplits
    model_dir: Path
    overrides: dict[str, Any]
    counts: dict[str, int]
    teacher: Any
    parent: Any  # continual.parent's artifact, else None
    ds_config: dict[str, Any]
    class_weights: list[float] | None
    artifact_dir: Path
    storage: str


def train(
    recipe: Recipe,
    output_dir: str | Path | None = None,
    callbacks: list | None = None,
    initial_checkpoint: str | None = None,
) -> Path:
    """`callbacks`: Ray Train callbacks for the run, e.g. Tune's TuneReportCallback when a
    campaign trial runs this stage. `initial_checkpoint`: a checkpoint folder (readable by
    every worker) to start from when the run has none of its own, as a PBT trial that
    clones another does; the recipe's learning rate and weight decay replace its own."""
    started = time.time()
    plan = _plan(recipe, output_dir)
    _describe(plan)
    train_rows = _training_table(
        plan.recipe,
        plan.splits,
        plan.model_dir,
        _logits_from(plan),
        plan.artifact_dir.parent / "data",
    )
    result = _fit(plan, train_rows, callbacks or [], initial_checkpoint)
    warnings = _publish(plan, result, train_rows, started)
    for warning in warnings:
        log.info(describe_warning(warning))
    # The artifact holds everything worth keeping; Ray's copies of the checkpoints go,
    # wherever they are (a local folder, or s3://... through the run's pyarrow filesystem).
    with contextlib.suppress(OSError):
        result.filesystem.delete_dir(result.path)
    if plan.recipe.train.storage_path is None and not is_uri(plan.storage):
        with contextlib.suppress(OSError):
            Path(plan.storage).rmdir()  # our default folder, once no other run's are there
    return plan.artifact_dir


def _plan(recipe: Recipe, output_dir: str | Path | None) -> _Plan:
    """Read the data, settle what the recipe leaves to it, and check the method can wrap the
    model (on the meta device), all before any worker starts."""
    task = TASKS[recipe.task.type]
    splits = recipe_splits(recipe)
    settled, model_dir = settle_with_model(recipe, splits)
    trained = settled.recipe
    overrides = config_overrides(model_dir, trained.model.architecture())
    target = artifact_dir(trained, "train", output_dir)
    return _Plan(
        written=recipe,
        recipe=trained,
        settled=settled,
        task=task,
        splits=splits,
        model_dir=model_dir,
        overrides=overrides,
        counts=preflight(model_dir, splits.label_names, trained.peft, task, overrides),
        teacher=open_teacher(trained, splits.label_names) if trained.distill else None,
        parent=open_parent(trained) if trained.continual else None,
        ds_config=deepspeed_config(trained.train),
        class_weights=class_weight_vector(
            trained.train.class_weights, _label_ids(splits.train), splits.label_names
        ),
        artifact_dir=target,
        storage=trained.train.storage_path or _default_storage(trained, output_dir, target),
    )


def _describe(plan: _Plan) -> None:
    recipe, splits, counts = plan.recipe, plan.splits, plan.counts
    cut = f" cut to {recipe.model.num_layers} layers" if recipe.model.num_layers else ""
    unseen = "".join(
        f" (+{table.num_rows:,} {split} texts with labels training lacks: out of scope)"
        for split, table in splits.unseen.items()
    )
    log.info(
        f"data: {splits.sizes()} rows{unseen}, {len(splits.label_names)} labels; model: "
        f"{recipe.model.base}{cut} ({counts['trainable']:,} of {counts['total']:,} parameters "
        f"train with {recipe.peft.method})"
    )
    if plan.parent is not None:
        new = len(splits.label_names) - len(plan.parent.labels)
        log.info(
            f"continuing from {plan.parent.path}: its {len(plan.parent.labels)} labels"
            + (f" and {new} new ({', '.join(splits.label_names[-new:])})" if new else "")
            + f"; {splits.replayed:,} of its training rows replayed "
            f"(continual.replay {recipe.continual.replay:g})"
            + (
                f", its outputs distilled (continual.distill {recipe.continual.distill:g})"
                if recipe.continual.distill
                else ""
            )
            + "; its test split measured for forgetting"
        )
    if plan.settled.choices:
        log.info("settled from the method and data: " + plan.settled.describe())
    if plan.class_weights:
        setting = recipe.train.class_weights
        log.info(
            f"class weights ({setting if isinstance(setting, str) else 'as given'}): "
            + _weights(splits.label_names, plan.class_weights)
        )


def _weights(names: list[str], weights: list[float], shown: int = 12) -> str:
    """Each label's weight, or for many labels the range and the extremes."""
    if len(names) <= shown:
        return ", ".join(
            f"{name} {weight:.3g}" for name, weight in zip(names, weights, strict=True)
        )
    if max(weights) - min(weights) < 1e-6:
        return f"{weights[0]:.3g} for each of the {len(names)} labels (they are balanced)"
    order = sorted(range(len(names)), key=lambda index: weights[index])
    ends = [*order[:3], *order[-3:]]
    return (
        f"{min(weights):.3g} to {max(weights):.3g} over {len(names)} labels (lowest and highest: "
        + ", ".join(f"{names[index]} {weights[index]:.3g}" for index in ends)
        + ")"
    )


def _publish(plan: _Plan, result, train_rows: pa.Table, started: float) -> list[dict[str, Any]]:
    """The best checkpoint as an artifact, measured from its own files; returns the
    warnings recorded in its manifest."""
    recipe, splits = plan.recipe, plan.splits
    best_checkpoint, best_metrics = _best(result, recipe.metric)
    with result.checkpoint.as_directory() as latest_dir:
        latest = Path(latest_dir)
        final_state = json.loads((latest / STATE_FILE).read_text())
        history = final_state["history"]
        with (
            best_checkpoint.as_directory() as best_dir,
            staged_artifact(plan.artifact_dir) as staging,
        ):
            evaluations, out_of_scope = _assemble(staging, Path(best_dir), plan)
            if (latest / LOGS_DIR).is_dir():
                shutil.copytree(latest / LOGS_DIR, staging / LOGS_DIR)
            warnings = learning_warnings(
                plan.task, evaluations["validation"], splits.label_names, recipe, history
            )
            continued = None
            if plan.parent is not None:
                continued = continual.report(plan.parent, evaluations, splits, recipe)
                for line in continual.describe(continued):
                    log.info(line)
                if not continued["gate"]["passed"]:
                    warnings.append(continual.refusal(continued["gate"]))
            metrics = {
                "metric": recipe.metric,
                "best_epoch": best_metrics["epoch"],
                "best_step": best_metrics["step"],
                **{split: item.metrics if item else None for split, item in evaluations.items()},
                # What the workers measured at training time; `validation` above is
                # re-measured from the merged weights as saved, and the two must agree.
                "training_validation": {
                    key.removeprefix("val_"): value
                    for key, value in best_metrics.items()
                    if key.startswith("val_")
                },
                "per_label": write_report(
                    staging, plan.task, evaluations, splits.label_names, recipe.name
                ),
                "parameters": plan.counts,
                "training_rows": train_rows.num_rows,
                "class_weights": dict(zip(splits.label_names, plan.class_weights, strict=True))
                if plan.class_weights
                else None,
                "out_of_scope": out_of_scope,
                "continual": continued,
                "stopped_early": final_state.get("stopped_early"),
                "workers": final_state.get("workers", []),
                "history": history,
                "train_seconds": round(time.time() - started, 1),
            }
            write_json_atomic(staging / "metrics.json", metrics)
            plot_learning_curve(
                staging / LOGS_DIR / "steps.csv",
                history,
                staging / "learning_curve.png",
                f"{recipe.name}: {recipe.peft.method} on {recipe.model.base}",
                recipe.metric,
            )
            write_manifest(
                staging,
                kind=KIND,
                recipe=plan.written.to_dict(),
                recipe_hash=plan.written.hash,
                labels=splits.label_names,
                metrics=metrics,
                parent=_lineage_parent(plan),
                data_fingerprint=splits.fingerprint,
                extra={
                    "task": plan.task.name,
                    "base_model": recipe.model.base,
                    "method": recipe.peft.method,
                    "settled_recipe": recipe.to_dict(),
                    "settled": plan.settled.record(),
                    "warnings": warnings,
                    "model_overrides": plan.overrides,
                    "out_of_scope": out_of_scope["detector"] if out_of_scope else None,
                    "split_sizes": splits.sizes(),
                    "deepspeed": plan.ds_config,
                },
            )
    return warnings


def _logits_from(plan: _Plan):
    """The model whose logits the training rows carry: the teacher, or the parent of a
    continued model with continual.distill."""
    if plan.parent is not None and plan.recipe.continual.distill:
        return plan.parent
    return plan.teacher


def _lineage_parent(plan: _Plan) -> Path | None:
    """The artifact this one was made from: the model it continues, or its teacher."""
    if plan.parent is not None:
        return plan.parent.path
    return plan.teacher.path if plan.teacher else None


def _label_ids(table: pa.Table) -> np.ndarray:
    """Every training label id: one per row, or one per word for tags."""
    column = table.column("label")
    if pa.types.is_list(column.type):
        column = pc.list_flatten(column)
    return column.to_numpy()


def _default_storage(recipe: Recipe, output_dir: str | Path | None, target: Path) -> str:
    """Checkpoints go beside the artifact: under an output_dir that is a URI, to the URI
    itself, so that every node reads them and a run resumes on another machine."""
    location = str(output_dir or recipe.output_dir)
    if is_uri(location):
        return join(location.rstrip("/"), f"{recipe.name}/_ray")
    return str((target.parent / "_ray").resolve())


def _training_table(
    recipe: Recipe, splits: LabelledSplits, model_dir: Path, teacher, data_dir: Path
) -> pa.Table:
    """The rows the workers train on: the training split, augmented, with teacher logits."""
    table = splits.train
    if recipe.augment_operations:
        init_ray()
        started = time.time()
        table = augment_split(table, recipe, splits.label_names, model_dir)
        log.info(
            f"augmented: {splits.train.num_rows} -> {table.num_rows} training rows "
            f"({', '.join(recipe.augment_operations)}) in {time.time() - started:.0f}s"
        )
    if teacher is not None:
        init_ray()
        started = time.time()
        table = with_teacher_logits(table, recipe, teacher, data_dir)
        log.info(
            f"teacher logits for {table.num_rows} rows from {teacher.path} "
            f"({time.time() - started:.0f}s, cached as Parquet in {data_dir})"
        )
    return table


def _fit(plan: _Plan, train_rows: pa.Table, callbacks: list, initial_checkpoint: str | None):
    init_ray()
    from ray.util.queue import Queue

    from fulcrum.train.progress import ProgressPrinter, run_with_progress

    recipe, ds_config, name = plan.recipe, plan.ds_config, run_name(plan.written)
    cfg = recipe.train
    epochs = EpochPlan(
        rows=train_rows.num_rows,
        world=cfg.workers,
        batch_size=ds_config["train_micro_batch_size_per_gpu"],
        accumulation=ds_config["gradient_accumulation_steps"],
        seed=recipe.seed,
    )
    if epochs.steps_per_epoch == 0:
        raise TrainingError(
            f"{train_rows.num_rows} training rows over {cfg.workers} worker(s) fill no optimizer "
            f"step of {epochs.batch_size} x {epochs.accumulation} micro-batches; lower "
            "train.batch_size, train.gradient_accumulation_steps or train.workers"
        )
    queue = Queue(maxsize=10_000, actor_options=beside_this_process())
    trainer = _trainer(plan, train_rows, epochs, queue, callbacks, initial_checkpoint)
    log.info(
        f"training: {cfg.workers} worker(s) x batch {epochs.batch_size} x {epochs.accumulation} "
        f"accumulated, {cfg.epochs} epoch(s) of {epochs.steps_per_epoch} step(s), DeepSpeed "
        f"ZeRO-{cfg.zero_stage}, checkpoints in {join(plan.storage, name)}"
    )
    try:
        result = run_with_progress(
            trainer.fit, queue, ProgressPrinter(epochs.steps_per_epoch * cfg.epochs)
        )
    except Exception as error:
        raise TrainingError(f"training failed: {_root_cause(error)}") from error
    finally:
        queue.shutdown()
    return result


def _trainer(plan: _Plan, train_rows: pa.Table, epochs: EpochPlan, queue, callbacks, initial):
    """The Ray Train run: every rank gets the WorkerConfig, the whole training table and
    the validation split; checkpoints scored on the validation metric."""
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

    recipe, cfg = plan.recipe, plan.recipe.train
    return TorchTrainer(
        train_worker,
        train_loop_config=WorkerConfig(
            recipe=recipe.to_dict(),
            label_names=plan.splits.label_names,
            model_dir=str(plan.model_dir),
            deepspeed=plan.ds_config,
            eval_batch_size=max(32, epochs.batch_size),
            model_overrides=plan.overrides,
            progress_queue=queue,
            initial_checkpoint=initial,
            class_weights=plan.class_weights,
            teacher_labels=len(teacher.labels) if (teacher := _logits_from(plan)) else None,
        ).as_dict(),
        scaling_config=ScalingConfig(
            num_workers=cfg.workers,
            use_gpu=cfg.use_gpu,
            resources_per_worker={"CPU": cfg.cpus_per_worker},  # use_gpu adds 1 GPU each
        ),
        run_config=RunConfig(
            name=run_name(plan.written),
            storage_path=plan.storage,
            checkpoint_config=CheckpointConfig(
                num_to_keep=cfg.keep_checkpoints,
                checkpoint_score_attribute=f"val_{recipe.metric}",
                checkpoint_score_order="max",
            ),
            failure_config=FailureConfig(max_failures=cfg.max_failures),
            logging_config=LoggingConfig(log_level="WARNING"),
            callbacks=callbacks,
        ),
        datasets={
            "train": ray.data.from_arrow(train_rows),
            "validation": ray.data.from_arrow(plan.splits.validation),
        },
        # Nothing is split by Ray Data: every rank reads the training table whole and the
        # EpochPlan picks its rows (a seeded order that resumes exactly), and every rank
        # evaluates its own share of validation batches, so no row is dropped there.
        dataset_config=DataConfig(datasets_to_split=[]),
    )


def _best(result, metric: str) -> tuple[Any, dict[str, Any]]:
    candidates = result.best_checkpoints or []
    if not candidates:
        raise TrainingError("training finished without a checkpoint")
    key = f"val_{metric}"
    # Ties go to the later step: same validation score, more training.
    return max(candidates, key=lambda pair: (pair[1][key], pair[1]["step"]))


def _assemble(
    staging: Path, checkpoint_dir: Path, plan: _Plan
) -> tuple[dict[str, Evaluation | None], dict[str, Any] | None]:
    """Write adapter, merged weights, tokenizer and labels; evaluate the merged weights as
    saved, so the artifact's metrics describe its files rather than the training process.
    Returns the evaluations and the out-of-scope report (None when detection is off)."""
    recipe, splits = plan.recipe, plan.splits
    shutil.copytree(checkpoint_dir / ADAPTER_DIR, staging / "adapter")
    merged = merge_adapter(
        plan.model_dir, staging / "adapter", splits.label_names, recipe, plan.overrides
    )
    merged.save_pretrained(staging / MERGED_DIR, safe_serialization=True)
    load_tokenizer(plan.model_dir).save_pretrained(staging / TOKENIZER_DIR)
    write_json_atomic(staging / "labels.json", {"labels": splits.label_names})
    tables = {split: getattr(splits, split) for split in ("validation", "test")}
    if splits.old_test is not None:
        tables["old_test"] = splits.old_test
    evaluations, unseen = evaluate_merged(
        staging, tables, splits.label_names, recipe, splits.unseen
    )
    return evaluations, _out_of_scope(recipe, splits, evaluations, unseen)


def _out_of_scope(
    recipe: Recipe, splits: LabelledSplits, evaluations, unseen: dict[str, np.ndarray]
) -> dict[str, Any] | None:
    """The detector calibrated on validation and measured on both splits (None: off)."""
    if recipe.out_of_scope is None:
        return None
    measured = {split: item for split, item in evaluations.items() if item is not None}
    report = measure(
        recipe.out_of_scope,
        splits.label_names,
        {split: item.logits for split, item in measured.items()},
        {split: getattr(splits, split).column("label").to_numpy() for split in measured},
        unseen,
    )
    log.info(describe(report, "test" if "test" in measured else "validation"))
    return report


def _root_cause(error: BaseException) -> str:
    while error.__cause__ is not None:
        error = error.__cause__
    text = str(error).strip().splitlines()
    return text[-1] if text else type(error).__name__
