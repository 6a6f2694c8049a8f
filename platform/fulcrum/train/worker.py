"""The per-worker training loop that Ray Train runs on every rank.

Each rank builds the same model (same seed), wraps it in a DeepSpeed engine over the
process group Ray Train set up, and trains on its share of each epoch's permutation of the
training rows (EpochPlan). At every checkpoint (each epoch end, and every N steps if asked)
all ranks evaluate the validation set, sum their counts, and report through Ray Train with
a checkpoint that holds everything a resumed run needs: the DeepSpeed state (weights,
optimizer, LR schedule, per rank), each rank's RNG state, the adapter, the step logs.
A restarted worker group (train.max_failures) or a rerun of an interrupted run picks up
that checkpoint and continues from the exact global step.
"""

from __future__ import annotations

import csv
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from fulcrum.log import quiet_libraries
from fulcrum.models.classifier import load_tokenizer, name_deepspeed_accelerator
from fulcrum.models.methods import (
    METHODS,
    build_trainable_model,
    parameter_counts,
    trainable_parameters,
)
from fulcrum.models.registry import resolve_model_dir
from fulcrum.recipe import Recipe
from fulcrum.runtime import quiet_ray_data
from fulcrum.tasks import TASKS, Task, evaluate_counts, model_inputs
from fulcrum.train.adversarial import Attack, EmbeddingPerturbation
from fulcrum.train.deepspeed_config import clear_stale_build_locks, skip_inference_comm_op
from fulcrum.train.distill import TEACHER_COLUMN, teacher_targets
from fulcrum.train.integrity import damage, newest_whole, seal
from fulcrum.train.loop import TrainState, WorkerConfig, batch_loss, judge
from fulcrum.train.merge import table_batches
from fulcrum.train.objective import Objective
from fulcrum.train.progress import ProgressSink
from fulcrum.train.steps import (
    AdaLoraBudget,
    EpochPlan,
    make_scheduler,
    peak_memory_mb,
    rng_state,
    seed_everything,
    set_rng_state,
    to_device,
)

ADAPTER_DIR = "adapter"
STATE_FILE = "trainer_state.json"
DEEPSPEED_DIR = "deepspeed"
RNG_DIR = "rng"
LOGS_DIR = "logs"
STEPS_CSV = "steps.csv"
TENSORBOARD_DIR = "tensorboard"


def train_worker(raw: dict[str, Any]) -> None:
    """Ray Train's entry point on every rank: build, resume, train."""
    run = _build(WorkerConfig(**raw))
    first_epoch, skip = run.plan.position(run.state.global_step)
    if run.state.global_step >= run.total_steps or run.state.stopped_early:
        # Resumed after the last step (or the early stop): measure once more, report.
        history = run.state.history
        _checkpoint(run, run.train.epochs, history[-1]["train_loss"] if history else float("nan"))
        return
    _train(run, first_epoch, skip)
    shutil.rmtree(run.logs_dir, ignore_errors=True)


@dataclass
class _Run:
    """One rank's run: its engine and everything its loop reads, built once by `_build`."""

    recipe: Recipe
    config: WorkerConfig
    task: Task
    rank: int
    world: int
    dist: Any  # torch.distributed, as Ray Train set it up
    progress: ProgressSink
    train_rows: pa.Table
    plan: EpochPlan
    engine: Any  # the DeepSpeed engine
    engine_scheduler: Any
    collate: Callable[[dict[str, Any]], dict[str, Any]]
    objective: Objective
    attack: Attack | None
    perturbation: EmbeddingPerturbation | None
    budget: AdaLoraBudget | None
    logs_dir: Path
    state: TrainState
    logger: StepLogger
    validation_rows: pa.Table | None = None  # read on the first evaluation

    @property
    def train(self):
        return self.recipe.train

    @property
    def total_steps(self) -> int:
        return self.plan.steps_per_epoch * self.train.epochs


def _build(config: WorkerConfig) -> _Run:
    recipe = Recipe.model_validate(config.recipe)
    train_cfg = recipe.train
    name_deepspeed_accelerator(train_cfg.use_gpu)
    import ray.train
    import torch.distributed as dist

    # DeepSpeed's per-step INFO lines and Ray Train's per-report ones (through the root
    # logger) would bury any real error in the workers' logs.
    quiet_libraries()
    quiet_ray_data()
    # As many intra-op threads as CPUs reserved: more would contend with the other ranks.
    torch.set_num_threads(max(1, int(train_cfg.cpus_per_worker)))
    task = TASKS[recipe.task.type]
    ds_config = config.deepspeed
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    progress = ProgressSink(config.progress_queue if rank == 0 else None)

    train_rows = _materialize(ray.train.get_dataset_shard("train"))
    plan = EpochPlan(
        rows=train_rows.num_rows,
        world=world,
        batch_size=ds_config["train_micro_batch_size_per_gpu"],
        accumulation=ds_config["gradient_accumulation_steps"],
        seed=recipe.seed,
    )
    total_steps = plan.steps_per_epoch * train_cfg.epochs

    seed_everything(recipe.seed)
    model_dir = Path(config.model_dir)
    if not model_dir.is_dir() and recipe.continual is not None:
        from fulcrum.continual import continued_base
        from fulcrum.data.continued import open_parent

        model_dir = continued_base(open_parent(recipe), config.label_names)  # built here
    elif not model_dir.is_dir():  # a hub model the driver's node cached: this node fetches it
        model_dir = resolve_model_dir(recipe.model.base)
    model = build_trainable_model(
        model_dir, config.label_names, recipe.peft, task, total_steps, config.model_overrides
    )
    counts = parameter_counts(model)
    objective = Objective.from_recipe(
        recipe, adalora_weight=_orthogonality_weight(model), class_weights=config.class_weights
    )
    attack = Attack.from_recipe(train_cfg.adversarial)

    engine, optimizer, scheduler, engine_scheduler = _engine(
        model, train_cfg, ds_config, total_steps, progress
    )
    logs_dir = Path(tempfile.mkdtemp(prefix="fulcrum-logs-"))
    state, resumed = _resume(engine, config, progress, rank, logs_dir, _placement(dist, world))
    if resumed and optimizer is not None:
        apply_optimizer_settings(engine.optimizer, scheduler, train_cfg.lr, train_cfg.weight_decay)
    start_step = state.global_step
    _say_ready(progress, recipe, world, engine.device, counts, start_step)
    return _Run(
        recipe=recipe,
        config=config,
        task=task,
        rank=rank,
        world=world,
        dist=dist,
        progress=progress,
        train_rows=train_rows,
        plan=plan,
        engine=engine,
        engine_scheduler=engine_scheduler,
        collate=task.make_collate(load_tokenizer(model_dir), recipe.model.max_length),
        objective=objective,
        attack=attack,
        perturbation=EmbeddingPerturbation(engine.module) if attack else None,
        budget=AdaLoraBudget(engine.module) if recipe.peft.method == "adalora" else None,
        logs_dir=logs_dir,
        state=state,
        logger=StepLogger(logs_dir, enabled=rank == 0),
    )


def _say_ready(progress, recipe: Recipe, world: int, device, counts: dict, start_step: int) -> None:
    """The line that starts the driver's clock: from here on, the rate is the training's own."""
    train_cfg = recipe.train
    progress.emit(
        type="message",
        text=(
            f"{world} DeepSpeed engine(s) ready (ZeRO-{train_cfg.zero_stage}, {device}, "
            f"{train_cfg.resolved_precision}); {recipe.peft.method}: {counts['trainable']:,} of "
            f"{counts['total']:,} parameters train"
            + (f"; resumed at step {start_step}" if start_step else "")
        ),
        clock_start=True,
        start_step=start_step,
    )


def _engine(model, train_cfg, ds_config: dict[str, Any], total_steps: int, progress):
    """(DeepSpeed engine, our optimizer, our schedule, the engine's schedule). A user
    DeepSpeed JSON with its own optimizer or scheduler takes precedence over ours."""
    import deepspeed

    optimizer = scheduler = None
    if "optimizer" not in ds_config:
        optimizer = torch.optim.AdamW(
            trainable_parameters(model), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay
        )
        if "scheduler" not in ds_config:
            warmup = round(train_cfg.warmup_ratio * total_steps)
            scheduler = make_scheduler(optimizer, warmup, total_steps, train_cfg.scheduler)
    for lock in clear_stale_build_locks():
        progress.emit(type="message", text=f"removed a stale DeepSpeed build lock: {lock}")
    skip_inference_comm_op()
    engine, _, _, engine_scheduler = deepspeed.initialize(
        model=model,
        optimizer=optimizer,
        model_parameters=trainable_parameters(model) if optimizer is None else None,
        lr_scheduler=scheduler,
        config=ds_config,
        dist_init_required=False,
    )
    return engine, optimizer, scheduler, engine_scheduler


def _resume(
    engine, config: WorkerConfig, progress, rank: int, logs_dir: Path, workers
) -> tuple[TrainState, bool]:
    """(the state to continue from, whether a checkpoint was loaded): the run's own latest
    whole checkpoint, else the one it was asked to start from (a PBT trial continuing
    another trial's weights), else a fresh start."""
    import ray.train

    resumed_from = ray.train.get_checkpoint()
    if resumed_from is not None:
        resumed_from = _whole_checkpoint(resumed_from, progress)
    elif config.initial_checkpoint:
        resumed_from = ray.train.Checkpoint(config.initial_checkpoint)
        with resumed_from.as_directory() as directory:
            if problem := damage(Path(directory)):
                raise RuntimeError(f"{resumed_from.path}: cannot start from it: {problem}")
    if resumed_from is None:
        return TrainState(workers=workers), False
    with resumed_from.as_directory() as checkpoint_dir:
        return _restore(engine, Path(checkpoint_dir), rank, logs_dir, workers), True


def _train(run: _Run, first_epoch: int, skip: int) -> None:
    """The epochs from where the state says, each rank its share of every optimizer step;
    a log line every log_every_steps, a checkpoint at each epoch end (and every
    checkpoint_every_steps)."""
    engine, train_cfg = run.engine, run.train
    window = _Window()
    for epoch in range(first_epoch, train_cfg.epochs + 1):
        engine.train()
        batches = run.plan.batches(epoch, run.rank)
        for micro, rows in enumerate(batches):
            if epoch == first_epoch and micro < skip:
                continue
            loss, model_batch = _loss(run, _rows(run.train_rows, rows))
            engine.backward(loss)
            boundary = engine.is_gradient_accumulation_boundary()
            if run.budget is not None and boundary:
                run.budget.before_step(int(engine.global_steps))
            engine.step()
            if run.budget is not None and boundary:
                run.budget.after_step()
            window.add(loss.item(), len(rows), int(model_batch["attention_mask"].sum()))
            if not boundary:
                continue
            step = int(engine.global_steps)
            every = train_cfg.checkpoint_every_steps
            checkpoint_now = micro == len(batches) - 1 or bool(every and step % every == 0)
            # A log line at every checkpoint too, so each checkpoint's training loss covers
            # the steps up to it.
            logged = step % train_cfg.log_every_steps == 0 or checkpoint_now
            if logged:
                _log_step(run, window, step, epoch)
            stopped = checkpoint_now and _checkpoint(run, epoch, run.logger.epoch_loss(epoch))
            if logged:  # after the checkpoint: throughput counts training, not evaluation
                window = _Window()
            if stopped:
                return


def _loss(run: _Run, batch_rows: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
    inputs = to_device(model_inputs(run.collate(batch_rows)), run.engine.device)
    labels = inputs.pop("labels")
    teacher = None
    if TEACHER_COLUMN in batch_rows:
        classes = run.config.teacher_labels or len(run.config.label_names)
        teacher = teacher_targets(batch_rows[TEACHER_COLUMN], labels.cpu(), classes).to(
            run.engine.device
        )
    loss = batch_loss(
        run.engine,
        run.engine.module,
        inputs,
        labels,
        run.objective,
        run.attack,
        run.perturbation,
        teacher,
    )
    return loss, inputs


def _log_step(run: _Run, window: _Window, step: int, epoch: int) -> None:
    lr = _current_lr(run.engine_scheduler, run.engine)
    row = window.summary(run.engine, run.dist, run.world, step, epoch, lr)
    run.logger.log(row)
    shown = ("epoch", "step", "loss", "lr", "samples_per_s", "tokens_per_s")
    run.progress.emit(type="step", **{key: row[key] for key in shown})


def _checkpoint(run: _Run, epoch: int, train_loss: float) -> bool:
    """Evaluate, judge, report a checkpoint; True when early stopping says to stop."""
    engine, recipe = run.engine, run.recipe
    metrics, counts = _evaluate(run)
    record = {"epoch": epoch, "step": int(engine.global_steps), "train_loss": train_loss}
    record |= {f"val_{key}": value for key, value in metrics.items()}
    record |= _peak_memory(engine, run.dist)
    judgement = judge(run.state, record, run.task.findings(counts, run.config.label_names), recipe)
    for text in judgement.warnings:
        run.progress.emit(type="warning", text=text)
    run.progress.emit(
        type="epoch",
        epoch=epoch,
        epochs=run.train.epochs,
        step=record["step"],
        metrics=_scalars({"train_loss": train_loss, **{f"val_{k}": v for k, v in metrics.items()}}),
    )
    if judgement.stop:
        run.progress.emit(
            type="message",
            text=(
                f"early stopping at step {record['step']}: val_{recipe.metric} has not "
                f"improved by more than {run.train.early_stopping_min_delta} for "
                f"{judgement.stale} evaluation(s)"
            ),
        )
    _report(run)
    return judgement.stop


# --------------------------------------------------------------------------- pieces


class _Window:
    """Loss and throughput since the last log line, on this rank."""

    def __init__(self) -> None:
        self.started = time.time()
        self.loss_sum = 0.0
        self.micro_batches = 0
        self.samples = 0
        self.tokens = 0

    def add(self, loss: float, samples: int, tokens: int) -> None:
        self.loss_sum += loss
        self.micro_batches += 1
        self.samples += samples
        self.tokens += tokens

    def summary(self, engine, dist, world: int, step: int, epoch: int, lr: float) -> dict[str, Any]:
        """One collective per log line: loss averaged over ranks, throughput summed, and
        every rank's peak memory."""
        elapsed = max(time.time() - self.started, 1e-9)
        rss_mb, gpu_mb = peak_memory_mb(engine.device)
        local = torch.tensor(
            [self.loss_sum, self.micro_batches, self.samples, self.tokens, rss_mb, gpu_mb],
            dtype=torch.float64,
            device=engine.device,
        )
        gathered = [torch.zeros_like(local) for _ in range(world)]
        dist.all_gather(gathered, local)
        table = torch.stack(gathered).cpu().numpy()
        row = {
            "step": step,
            "epoch": epoch,
            "loss": float(table[:, 0].sum() / max(table[:, 1].sum(), 1)),
            "lr": lr,
            "samples_per_s": float(table[:, 2].sum() / elapsed),
            "tokens_per_s": float(table[:, 3].sum() / elapsed),
            "time": time.time(),
        }
        for rank_index in range(world):
            row[f"peak_rss_mb_rank{rank_index}"] = round(float(table[rank_index, 4]), 1)
            row[f"peak_gpu_mb_rank{rank_index}"] = round(float(table[rank_index, 5]), 1)
        return row


class StepLogger:
    """Rank 0's step log: a CSV and TensorBoard events, kept in the checkpoint so a resumed
    run continues the same files and the artifact gets the whole history."""

    def __init__(self, directory: Path, enabled: bool) -> None:
        self.directory = directory
        self.enabled = enabled
        self.rows: list[dict[str, Any]] = []
        csv_path = directory / STEPS_CSV
        if enabled and csv_path.is_file():
            with open(csv_path, newline="") as handle:
                self.rows = [
                    {k: _number(v) for k, v in row.items()} for row in csv.DictReader(handle)
                ]
        self._writer = None

    def log(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.rows.append(row)
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.directory / TENSORBOARD_DIR))
        for key in ("loss", "lr", "samples_per_s", "tokens_per_s"):
            self._writer.add_scalar(f"train/{key}", row[key], row["step"])
        for key, value in row.items():
            if key.startswith("peak_"):
                self._writer.add_scalar(f"memory/{key}", value, row["step"])

    def log_eval(self, step: int, metrics: dict[str, float]) -> None:
        if self.enabled and self._writer is not None:
            for key, value in metrics.items():
                self._writer.add_scalar(f"validation/{key}", value, step)

    def epoch_loss(self, epoch: int) -> float:
        losses = [row["loss"] for row in self.rows if row["epoch"] == epoch]
        return float(np.mean(losses)) if losses else float("nan")

    def flush(self) -> None:
        if not self.enabled:
            return
        if self._writer is not None:
            self._writer.flush()
        if self.rows:
            fields = list(dict.fromkeys(key for row in self.rows for key in row))
            with open(self.directory / STEPS_CSV, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=fields)
                writer.writeheader()
                writer.writerows(self.rows)


def _placement(dist, world: int) -> list[dict[str, Any]]:
    """Where each rank runs (node and host), for the record: a multi-node run should show
    its ranks spread over nodes."""
    import socket

    import ray

    mine = {"node_id": ray.get_runtime_context().get_node_id(), "host": socket.gethostname()}
    everyone: list[Any] = [None] * world
    dist.all_gather_object(everyone, mine)
    return [{"rank": rank, **where} for rank, where in enumerate(everyone)]


def _materialize(iterator) -> pa.Table:
    """The whole training table on every rank: the epoch plan picks rows by index."""
    return pa.concat_tables(list(iterator.iter_batches(batch_size=None, batch_format="pyarrow")))


def _rows(table: pa.Table, indices: np.ndarray) -> dict[str, Any]:
    chunk = table.take(pa.array(indices))
    return {name: chunk.column(name).to_pylist() for name in chunk.column_names}


def _orthogonality_weight(model) -> float:
    """AdaLoRA's orthogonality penalty weight, which the objective applies (0 otherwise)."""
    configs = getattr(model, "peft_config", {})
    return float(getattr(next(iter(configs.values()), None), "orth_reg_weight", 0.0) or 0.0)


def _current_lr(scheduler, engine) -> float:
    if scheduler is not None:
        return float(scheduler.get_last_lr()[0])
    return float(engine.get_lr()[0])


def _evaluate(run: _Run) -> tuple[dict[str, Any], np.ndarray]:
    """(metrics, the summed counts they come from). Each rank evaluates every world-th
    batch and the counts are summed. Under ZeRO-3 each forward gathers parameters
    collectively, so there all ranks run every batch and rank 0's counts are used."""
    import ray.train

    engine, rank, world = run.engine, run.rank, run.world
    partitioned = engine.zero_optimization_stage() == 3
    engine.eval()
    if run.validation_rows is None:
        run.validation_rows = _materialize(ray.train.get_dataset_shard("validation"))
    batches = (
        run.collate(batch)
        for index, batch in enumerate(
            table_batches(run.validation_rows, run.config.eval_batch_size)
        )
        if partitioned or index % world == rank
    )
    labels = run.config.label_names
    counts = evaluate_counts(engine, batches, run.task, labels, engine.device)
    if not partitioned and world > 1:
        summed = torch.as_tensor(counts, dtype=torch.float64, device=engine.device)
        run.dist.all_reduce(summed)
        counts = summed.cpu().numpy().astype(counts.dtype)
    engine.train()
    return run.task.metrics(counts, labels), counts


def _report(run: _Run) -> None:
    """Every rank writes its part of the checkpoint and calls report (a barrier); Ray Train
    merges the parts into one directory. Under ZeRO-3 parameters are partitioned, so they
    are gathered before the adapter is written, or the saved weights would be empty."""
    import deepspeed
    import ray.train

    engine, rank = run.engine, run.rank
    record = run.state.history[-1]
    run.logger.log_eval(
        record["step"], _scalars({k[4:]: v for k, v in record.items() if k.startswith("val_")})
    )
    run.logger.flush()
    with tempfile.TemporaryDirectory() as checkpoint_dir:
        directory = Path(checkpoint_dir)
        # Frozen base weights are not saved: the base model is on every node already.
        engine.save_checkpoint(
            str(directory / DEEPSPEED_DIR), tag="state", exclude_frozen_parameters=True
        )
        (directory / RNG_DIR).mkdir()
        torch.save(rng_state(), directory / RNG_DIR / f"rank{rank}.pt")
        model = engine.module
        gather = engine.zero_optimization_stage() == 3
        with deepspeed.zero.GatheredParameters(
            trainable_parameters(model), modifier_rank=None, enabled=gather
        ):
            if rank == 0:
                METHODS[run.recipe.peft.method].save(model, directory / ADAPTER_DIR)
        if rank == 0:
            (directory / STATE_FILE).write_text(run.state.to_json())
            shutil.copytree(run.logs_dir, directory / LOGS_DIR)
        seal(directory, rank)
        ray.train.report(
            _scalars(record), checkpoint=ray.train.Checkpoint.from_directory(checkpoint_dir)
        )


def apply_optimizer_settings(optimizer, scheduler, lr: float, weight_decay: float) -> None:
    """A checkpoint brings back the learning rate and weight decay it was trained with; the
    recipe's values win, so a PBT trial that continues another trial's checkpoint trains
    with its own (perturbed) ones. The schedule keeps its place: the rate becomes the new
    peak times the schedule's factor at the restored step. For a run's own checkpoint the
    values are the same and nothing changes."""
    if scheduler is not None:
        scheduler.base_lrs = [lr] * len(scheduler.base_lrs)
        factors = [factor(scheduler.last_epoch) for factor in scheduler.lr_lambdas]
        scheduler._last_lr = [lr * factor for factor in factors]
    else:
        factors = [1.0] * len(optimizer.param_groups)
    for group, factor in zip(optimizer.param_groups, factors, strict=True):
        group["lr"] = lr * factor
        group["initial_lr"] = lr
        group["weight_decay"] = weight_decay


def _whole_checkpoint(latest, progress: ProgressSink):
    """The run's latest checkpoint if it is whole, else the newest earlier one that is:
    a damaged checkpoint is skipped, never loaded, and the run redoes the steps since."""
    import pyarrow.fs as pafs
    import ray.train

    folder = PurePosixPath(latest.path)
    found = latest.filesystem.get_file_info(pafs.FileSelector(str(folder.parent)))
    earlier = sorted(
        (
            info.path
            for info in found
            if info.type == pafs.FileType.Directory
            and PurePosixPath(info.path).name.startswith("checkpoint_")
            and PurePosixPath(info.path).name < folder.name
        ),
        reverse=True,
    )
    candidates = [latest] + [ray.train.Checkpoint(path, latest.filesystem) for path in earlier]
    whole, skipped = newest_whole(
        candidates,
        lambda checkpoint: checkpoint.as_directory(),
        lambda text: progress.emit(type="message", text=text),
    )
    if whole is None:
        raise RuntimeError(
            f"every checkpoint in {folder.parent} is damaged; delete that folder to train "
            "from the start"
        )
    if skipped:
        progress.emit(type="message", text=f"resuming from {PurePosixPath(whole.path).name}")
    return whole


def _restore(engine, checkpoint_dir: Path, rank: int, logs_dir: Path, workers) -> TrainState:
    engine.load_checkpoint(
        str(checkpoint_dir / DEEPSPEED_DIR),
        tag="state",
        load_module_strict=False,
        load_optimizer_states=True,
        load_lr_scheduler_states=True,
    )
    rng_file = checkpoint_dir / RNG_DIR / f"rank{rank}.pt"
    if rng_file.is_file():
        set_rng_state(torch.load(rng_file, weights_only=False))
    if (checkpoint_dir / LOGS_DIR).is_dir():
        shutil.copytree(checkpoint_dir / LOGS_DIR, logs_dir, dirs_exist_ok=True)
    return TrainState.from_json((checkpoint_dir / STATE_FILE).read_text(), workers)


def _peak_memory(engine, dist) -> dict[str, float]:
    """The largest peak RSS and accelerator memory of any rank so far, in MiB: what a run
    (or a Tune trial) needs of a node, reported with every evaluation."""
    peaks = torch.tensor(peak_memory_mb(engine.device), dtype=torch.float64, device=engine.device)
    if dist.is_initialized():
        dist.all_reduce(peaks, op=dist.ReduceOp.MAX)
    rss_mb, gpu_mb = peaks.tolist()
    return {"peak_rss_mb": round(rss_mb, 1), "peak_gpu_mb": round(gpu_mb, 1)}


def _scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    """Ray Train scores checkpoints on flat numbers; nested detail stays in the history."""
    return {key: value for key, value in metrics.items() if isinstance(value, int | float)}


def _number(text: str) -> Any:
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text and "e" not in text else number
