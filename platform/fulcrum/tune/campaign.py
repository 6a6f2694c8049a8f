"""The tune stage: recipe with a `tune:` section in, campaign artifact out.

Each trial is a Tune function trainable that runs the ordinary train stage on the recipe
with the sampled keys set (Ray 2.60's way of running Train inside Tune; a Trainer passed
to a Tuner is deprecated). Every epoch's validation metrics reach Tune, so ASHA can stop
a trial that trails its peers, and under PBT with the epoch's checkpoint too, so a
trailing trial can continue a leading one's weights with perturbed values (tune/trial.py).
A trial that finishes reports once more with its artifact's re-measured metrics and, with
`tune.cost`, the size and latency of its INT8 ONNX model.

The campaign's Tune state lives in `NAME/_tune/<run>` (named by the recipe's hash), so
running the same command again restores it: finished trials are kept, the searcher's
state too, and an interrupted trial's Train run resumes from its own last checkpoint
(its run is named by its recipe's hash as well). A failing trial is recorded with its
error and the campaign goes on.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback

from fulcrum.artifacts import artifact_dir, recipe_hash_of, staged_artifact, write_manifest
from fulcrum.errors import RecipeError
from fulcrum.log import stage_log
from fulcrum.recipe import Recipe
from fulcrum.runtime import init_ray
from fulcrum.storage import output_root, refresh
from fulcrum.train.progress import format_seconds
from fulcrum.tune.plan import concurrency, max_epochs, trial_budget
from fulcrum.tune.population import check_population_fits, pbt_scheduler
from fulcrum.tune.report import DRIVER_MEMORY_FILE, write_campaign
from fulcrum.tune.space import param_space
from fulcrum.tune.trial import run_trial

log = stage_log("tune")

KIND = "tune"
SEARCH_DIR = "search"  # Tune's experiment folder inside the run folder
TRIAL_DRIVER_MEMORY = 256 * 2**20  # bytes of Ray's memory resource per trial driver


def campaign_work_dir(recipe: Recipe, output_dir: str | Path | None = None) -> Path:
    """Tune's state and the trials' artifacts while the campaign runs."""
    root = output_root(output_dir or recipe.output_dir) / recipe.name / "_tune"
    return (root / f"{recipe.name}-{recipe.hash[:12]}").resolve()


def tune(recipe: Recipe, output_dir: str | Path | None = None) -> Path:

    if recipe.tune is None:
        raise RecipeError(f"{recipe.name}: the recipe has no tune section to run a campaign from")
    target = artifact_dir(recipe, "tune", output_dir)
    refresh(target)  # under a URI output_dir, the URI says whether it finished
    if recipe_hash_of(target) == recipe.hash:
        log.info(f"this campaign finished already: {target} (delete it to run it again)")
        return target
    started = time.time()
    # Tune saves its state at most every 10 s by default; a campaign's trials take minutes,
    # so saving more often costs nothing and loses less when the driver is killed.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    init_ray()
    if recipe.tune.scheduler == "pbt":
        check_population_fits(recipe, concurrency(recipe))
    # The recipe as written names the campaign; an --auto plan (sized by a timing probe,
    # so not the same twice) is what runs.
    work = campaign_work_dir(recipe, output_dir)
    written, first_trial = recipe, None
    if recipe.tune.auto:
        from fulcrum.tune.auto import plan_auto

        plan = plan_auto(recipe, concurrency(recipe))
        recipe, first_trial = plan.recipe, plan.first_trial
        log.info(plan.description)
    tuner, resumed = _tuner(recipe, work, first_trial)
    settings = recipe.tune
    log.info(
        ("resuming" if resumed else "starting")
        + f" campaign in {work}: up to {trial_budget(recipe)} trial(s) of "
        f"{', '.join(settings.space)}; {settings.searcher} search, scheduler {settings.scheduler}, "
        f"{concurrency(recipe)} at a time, val_{recipe.tune_metric} ({settings.mode})"
        + (f", cost: {settings.cost}" if settings.cost != "none" else "")
    )
    grid, interrupted = _fit_noting_interrupt(tuner)
    if interrupted:
        log.info("interrupted: Tune saved its state; run the same command again to continue")
        raise KeyboardInterrupt
    with staged_artifact(target) as staging:
        summary = write_campaign(staging, recipe, grid, work, time.time() - started)
        write_manifest(
            staging,
            kind=KIND,
            recipe=written.to_dict(),
            recipe_hash=written.hash,
            labels=summary["labels"],
            metrics=summary["metrics"],
            parent=None,
            data_fingerprint=summary["data_fingerprint"],
            extra={
                "best_recipe": "best_recipe.yaml",
                "search_space": list(recipe.tune.space),
                "searched": recipe.tune.model_dump(mode="json"),
            },
        )
    if not summary["metrics"]["finished"]:
        log.info(
            "no trial finished, so there is no model to deploy"
            + (": the budget was too small for this cluster" if written.tune.auto else "")
        )
    # The artifact holds the kept trials and every result; Tune's own state goes.
    shutil.rmtree(work, ignore_errors=True)
    return target


def _fit_noting_interrupt(tuner):
    """(results, whether Ctrl-C ended the run early). On Ctrl-C Tune saves its state, stops
    the running trials and returns normally, so the results alone look like a finished
    campaign with trials stopped early. Tune's SIGINT handler puts back the handler it
    found when it fires, and only then: finding ours in place afterwards means it fired."""
    if threading.current_thread() is not threading.main_thread():
        return tuner.fit(), False

    def interrupted_again(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupted_again)
    try:
        grid = tuner.fit()
        return grid, signal.getsignal(signal.SIGINT) is interrupted_again
    finally:
        signal.signal(signal.SIGINT, previous)


# --------------------------------------------------------------------------- Tune set-up


def _tuner(recipe: Recipe, work: Path, first_trial: dict[str, Any] | None = None):
    from ray import tune

    trainable = tune.with_resources(
        tune.with_parameters(
            run_trial,
            base=recipe.to_dict(),
            campaign=recipe.name,
            trials_dir=str(work / "trials"),
            pbt=recipe.tune.scheduler == "pbt",
        ),
        # The trial function only drives its Train run, whose workers ask for the CPUs
        # and GPUs; giving the driver a CPU (Tune's default) would leave a 2-CPU machine
        # one short. Tune needs some resource in the request: the memory it does use.
        {"cpu": 0, "memory": TRIAL_DRIVER_MEMORY},
    )
    search_path = work / SEARCH_DIR
    if tune.Tuner.can_restore(search_path):
        return tune.Tuner.restore(
            str(search_path), trainable, resume_unfinished=True, resume_errored=False
        ), True
    settings = recipe.tune
    metric = f"val_{recipe.tune_metric}"
    tuner = tune.Tuner(
        trainable,
        param_space=param_space(recipe),
        tune_config=tune.TuneConfig(
            metric=metric,
            mode=settings.mode,
            search_alg=_search_algorithm(recipe, first_trial),
            scheduler=_scheduler(recipe),
            num_samples=settings.num_samples,
            max_concurrent_trials=concurrency(recipe) if settings.searcher == "optuna" else None,
            time_budget_s=settings.time_budget_s,
        ),
        run_config=tune.RunConfig(
            name=SEARCH_DIR,
            storage_path=str(work),
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
            callbacks=[CampaignProgress(work / DRIVER_MEMORY_FILE, recipe)],
            # Tune's status tables every few seconds would bury the per-trial lines below.
            verbose=0,
        ),
    )
    return tuner, False


def _search_algorithm(recipe: Recipe, first_trial: dict[str, Any] | None = None):
    """`first_trial`: values tried before any sampled ones (an --auto campaign's defaults)."""
    settings = recipe.tune
    seed = recipe.seed if settings.seed is None else settings.seed
    points = [first_trial] if first_trial else None
    if settings.searcher == "optuna":
        from optuna.samplers import TPESampler
        from ray.tune.search.optuna import OptunaSearch

        # A few random trials first, then TPE: what Optuna recommends for small budgets.
        startup = max(2, min(10, settings.num_samples // 4))
        return OptunaSearch(
            sampler=TPESampler(seed=seed, n_startup_trials=startup), points_to_evaluate=points
        )
    from ray.tune.search import BasicVariantGenerator

    # PBT compares the trials alive at once: the whole population starts together.
    limit = 0 if settings.scheduler == "pbt" else concurrency(recipe)
    return BasicVariantGenerator(random_state=seed, max_concurrent=limit, points_to_evaluate=points)


def _scheduler(recipe: Recipe):
    settings = recipe.tune
    if settings.scheduler == "none":
        return None
    if settings.scheduler == "pbt":
        return pbt_scheduler(recipe)
    from ray.tune.schedulers import ASHAScheduler

    max_t = max_epochs(recipe)
    return ASHAScheduler(
        time_attr="epoch",
        max_t=max_t,
        grace_period=min(settings.grace_period, max_t),
        reduction_factor=settings.reduction_factor,
        # A trial that reaches the last epoch must be left to write its artifact.
        stop_last_trials=False,
    )


class CampaignProgress(Callback):
    """A line per trial epoch, a line per trial that ends (its metric, the best so far, trials done, ETA), and the
    driver's resident memory at that moment appended to a ledger, so a campaign's results
    show whether the driver grows with the number of trials (it must not)."""

    def __init__(self, ledger: Path, recipe: Recipe) -> None:
        self.ledger = ledger
        self.metric = f"val_{recipe.tune_metric}"
        self.sign = 1 if recipe.tune.mode == "max" else -1
        self.budget = trial_budget(recipe)
        self.started = time.time()
        self.best: float | None = None
        self.done = 0

    def _ended(self, trial, outcome: str) -> None:
        memory = driver_rss_mb()
        with open(self.ledger, "a") as handle:
            handle.write(json.dumps({"trial_id": trial.trial_id, "driver_rss_mb": memory}) + "\n")
        self.done += 1
        value = (trial.last_result or {}).get(self.metric)
        if value is not None and (self.best is None or self.sign * value > self.sign * self.best):
            self.best = value
        elapsed = time.time() - self.started
        remaining = max(self.budget - self.done, 0)
        eta = f", ETA {format_seconds(elapsed / self.done * remaining)}" if remaining else ""
        log.info(
            f"trial {trial.trial_id} {outcome}"
            + (f": {self.metric} {value:.4f}" if value is not None else "")
            + (f" (best {self.best:.4f})" if self.best is not None else "")
            + f"; {self.done}/{self.budget} trials in {format_seconds(elapsed)}{eta}; "
            f"driver {memory:.0f} MB"
        )

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        """Each trial's epochs as they end: the trials' own step lines stay in their
        workers' logs (shown under -v)."""
        value = result.get(self.metric)
        if "epoch" in result and value is not None:
            log.info(f"trial {trial.trial_id} epoch {result['epoch']}: {self.metric} {value:.4f}")

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        config = ", ".join(f"{key}={_short(value)}" for key, value in trial.config.items())
        log.info(f"trial {trial.trial_id} started: {config}")

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        finished = (trial.last_result or {}).get("finished")
        self._ended(trial, "finished" if finished else "stopped early")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._ended(trial, "failed")


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def driver_rss_mb() -> float:
    import psutil

    return round(psutil.Process().memory_info().rss / 2**20, 1)
