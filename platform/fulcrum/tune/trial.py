"""One campaign trial: the train stage on the campaign's recipe with the trial's values.

Ray Train's TuneReportCallback carries each evaluation's metrics to Tune, which is all
ASHA needs. PBT needs more: a trailing trial continues from a leading trial's weights, so
Tune must hold every trial's checkpoints. Under PBT the trial therefore runs the train
stage in a thread and reports each evaluation itself, with the Train checkpoint attached
(Tune copies it into the trial's folder). A trial that Tune starts from a checkpoint, its
own after an interruption or another trial's after a clone, gives it to the Train run as
the checkpoint to start from.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from ray.train.v2.api.callback import UserCallback

from fulcrum.artifacts import artifact_dir, recipe_hash_of
from fulcrum.log import stage_log
from fulcrum.recipe import validate_recipe
from fulcrum.runtime import beside_this_process
from fulcrum.tune.plan import trial_resources
from fulcrum.tune.population import PBT_TIME_ATTR
from fulcrum.tune.space import trial_recipe

log = stage_log("tune")

COST_TEXTS = 320
CLONES_FILE = "clones.jsonl"  # in the campaign's work folder: which trial continued which
HANDOFF_TIMEOUT_S = 600


def run_trial(
    config: dict[str, Any], *, base: dict, campaign: str, trials_dir: str, pbt: bool = False
) -> None:
    from ray import tune

    from fulcrum.artifacts import open_artifact
    from fulcrum.data import recipe_splits, texts_of
    from fulcrum.log import configure as configure_output
    from fulcrum.tune.cost import deployed_cost, describe

    configure_output()  # this trial's process: the level the command was given
    campaign_recipe = validate_recipe(base)
    trial_id = tune.get_context().get_trial_id()
    recipe = validate_recipe(
        trial_recipe(base, config, f"{campaign}-{trial_id}", trials_dir), source=f"trial {trial_id}"
    )
    start = tune.get_checkpoint()
    origin = (start.get_metadata() or {}) if start is not None else {}
    if origin.get("trial_id") not in (None, trial_id):
        _note_clone(Path(trials_dir).parent, trial_id, origin, config)
        log.info(
            f"trial {trial_id} continues trial {origin['trial_id']}'s epoch-{origin.get('epoch')} "
            "weights with " + ", ".join(f"{key}={_short(value)}" for key, value in config.items())
        )
        _forget_runs(recipe)
    done = artifact_dir(recipe, "train")
    if recipe_hash_of(done) == recipe.hash:
        # Finished before the driver was interrupted, after Tune last saved its state.
        artifact = open_artifact(done, kind="train")
    elif pbt:
        artifact = open_artifact(
            _train_handing_checkpoints_to_tune(recipe, trial_id, start), kind="train"
        )
    else:
        from ray.tune.integration.ray_train import TuneReportCallback

        from fulcrum.train.stage import train

        artifact = open_artifact(train(recipe, callbacks=[TuneReportCallback()]), kind="train")
    metrics = artifact.metrics
    metric = campaign_recipe.tune_metric
    last = metrics["history"][-1]
    final = {
        f"val_{metric}": metrics["validation"][metric],
        **{
            f"test_{key}": value
            for key, value in (metrics.get("test") or {}).items()
            if isinstance(value, int | float)
        },
        "epochs_run": last["epoch"],
        "peak_rss_mb": last.get("peak_rss_mb", 0.0),
        "peak_gpu_mb": last.get("peak_gpu_mb", 0.0),
        "finished": 1,
        "artifact": str(artifact.path),
    }
    settings = campaign_recipe.tune
    if settings.cost != "none":
        splits = recipe_splits(recipe)
        cost = deployed_cost(
            artifact.path,
            texts_of(splits.validation, COST_TEXTS),
            settings.cost_batch_size,
            validate_recipe(artifact.manifest.settled_recipe).model.max_length,
            recipe.task.type,
            threads=max(1, int(trial_resources(recipe)["CPU"])),
            opset=recipe.export.opset,
        )
        log.info(f"trial {trial_id}: {describe(cost)}")
        final |= cost
    # No `epoch` here: the schedulers judge epochs, and this report is not one.
    tune.report(final)


class CheckpointsToTrial(UserCallback):
    """Runs in the Train controller: hands each report and its checkpoint to the trial, and
    waits until the trial has passed it on to Tune, so Train cannot delete the checkpoint
    before Tune has its copy. The checkpoint is labelled with the trial and epoch it holds,
    so a trial that continues it can say whose weights it took."""

    def __init__(self, reports, taken, trial_id: str) -> None:
        self.reports, self.taken, self.trial_id = reports, taken, trial_id

    def after_report(self, run_context, metrics, checkpoint) -> None:
        from ray.exceptions import RayError
        from ray.util.queue import Empty

        item = metrics[0].copy()
        path = None
        if checkpoint is not None:
            checkpoint.set_metadata({"trial_id": self.trial_id, "epoch": item.get("epoch")})
            path = checkpoint.path
        self.reports.put((item, path))
        try:
            self.taken.get(timeout=HANDOFF_TIMEOUT_S)
        except (Empty, RayError):
            pass  # the trial has gone (stopped by Tune, or exploited); this run goes with it


class _ReportsToTune:
    """Each report of the Train run, passed to Tune with its checkpoint (Tune copies it),
    then the run is let go on. The epoch is also PBT's clock, except a trial's last."""

    def __init__(self, taken, last_epoch: int) -> None:
        self.taken, self.last_epoch = taken, last_epoch

    def handle(self, item: tuple[dict[str, Any], str | None]) -> None:
        from ray import tune

        metrics, path = item
        if metrics.get("epoch", self.last_epoch) < self.last_epoch:
            metrics[PBT_TIME_ATTR] = metrics["epoch"]
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(path) if path else None)
        self.taken.put(True)

    def close(self) -> None:
        pass


def _train_handing_checkpoints_to_tune(recipe, trial_id: str, start) -> Path:
    from ray.util.queue import Queue

    from fulcrum.train.progress import run_with_progress
    from fulcrum.train.settle import settle_from_files
    from fulcrum.train.stage import train

    reports = Queue(maxsize=1, actor_options=beside_this_process())
    taken = Queue(maxsize=1, actor_options=beside_this_process())
    try:
        return run_with_progress(
            lambda: train(
                recipe,
                callbacks=[CheckpointsToTrial(reports, taken, trial_id)],
                initial_checkpoint=start.path if start is not None else None,
            ),
            reports,
            _ReportsToTune(taken, settle_from_files(recipe).recipe.train.epochs),
        )
    finally:
        reports.shutdown()
        taken.shutdown()


def _note_clone(work: Path, trial_id: str, origin: dict, config: dict) -> None:
    """Appended to the campaign's ledger; a trial restarted after the driver was interrupted
    may note the same clone twice, which the report removes."""
    line = {
        "trial_id": trial_id,
        "cloned": origin["trial_id"],
        "epoch": origin.get("epoch"),
        "time": round(time.time(), 1),
        **{key: _plain(value) for key, value in config.items()},
    }
    with open(work / CLONES_FILE, "a") as handle:
        handle.write(json.dumps(line) + "\n")


def _forget_runs(recipe) -> None:
    """A clone starts a new Train run from the other trial's checkpoint. The runs this
    trial made before hold its old weights, and one may even carry the same name (values
    that come back to what they were): left in place, Train would resume that run and
    ignore the checkpoint."""

    storage = Path(recipe.train.storage_path or artifact_dir(recipe, "train").parent / "_ray")
    if storage.is_dir():
        for run in storage.iterdir():
            if run.is_dir() and run.name.startswith(f"{recipe.name}-"):
                shutil.rmtree(run, ignore_errors=True)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
