"""Hyperparameter campaigns through the real tune stage: Ray Tune trials that each run the
train stage (Ray Train + DeepSpeed) on a tiny BERT, a failing combination recorded and
skipped, the INT8 ONNX cost of every finished trial, the outputs a user reads, and PBT. The
campaign is the session's `campaign` fixture (tests/conftest.py); that its killed driver
resumes without re-running finished trials is in tests/resilience/test_tune_driver.py."""

import csv

import pyarrow.parquet as pq
import pytest

from fulcrum.artifacts import open_artifact
from fulcrum.recipe import load_recipe
from fulcrum.tune.campaign import campaign_work_dir

pytestmark = pytest.mark.integration


def test_every_trial_is_recorded_and_the_failing_pair_names_its_error(campaign):
    recipe, artifact, _, _ = campaign
    rows = pq.read_table(artifact.file("results.parquet")).to_pylist()
    assert len(rows) == 4
    by_pair = {(row["config/peft.method"], row["config/train.zero_stage"]): row for row in rows}
    failed = by_pair[("adalora", 3.0)]
    assert failed["status"] == "error"
    assert "adalora" in failed["error"] and "ZeRO-3" in failed["error"]
    for pair, row in by_pair.items():
        if pair == ("adalora", 3.0):
            continue
        assert row["status"] == "finished", row
        assert row["epochs"] == 2
        assert 0.0 <= row["val_macro_f1"] <= 1.0
        assert row["cost_latency_ms"] > 0 and row["cost_size_mb"] > 0
        assert row["wall_s"] > 0 and row["cpu_s"] == pytest.approx(row["wall_s"], rel=1e-3)
        assert row["peak_rss_mb"] > 100  # a real worker process, not a placeholder
    metrics = artifact.metrics
    assert (metrics["trials"], metrics["finished"], metrics["errors"]) == (4, 3, 1)
    assert metrics["trial_epochs"] == 6
    assert (artifact.path / "results.csv").read_text().count("\n") == 5  # header + 4 trials


def test_best_recipe_is_the_best_finished_trial_and_trains_as_is(campaign):
    recipe, artifact, _, _ = campaign
    rows = pq.read_table(artifact.file("results.parquet")).to_pylist()
    finished = [row for row in rows if row["status"] == "finished"]
    best = max(finished, key=lambda row: row["val_macro_f1"])
    assert artifact.metrics["best"]["trial_id"] == best["trial_id"]
    best_recipe = load_recipe(artifact.file("best_recipe.yaml"))
    assert best_recipe.tune is None and best_recipe.name == recipe.name
    assert best_recipe.peft.method == best["config/peft.method"]
    assert best_recipe.train.zero_stage == best["config/train.zero_stage"]
    assert best_recipe.train.lr == pytest.approx(best["config/train.lr"])
    kept = {row["trial_id"] for row in rows if row["artifact"]}
    assert kept == {row["trial_id"] for row in finished}, "keep_artifacts: all"
    trained = open_artifact(artifact.path / best["artifact"], kind="train")
    assert trained.metrics["validation"]["macro_f1"] == pytest.approx(best["val_macro_f1"])


def test_fulcrum_run_of_a_recipe_with_a_tune_section_exports_the_best_trial(campaign):
    """`fulcrum run` on the campaign's recipe: the finished campaign is not run again, its
    best trial is what gets exported, and a second run finds everything up to date."""
    from fulcrum.pipeline import run_stages

    recipe, artifact, _, _ = campaign
    best = artifact.path / artifact.metrics["best"]["artifact"]
    run = run_stages(recipe)
    assert run.actions == {"tune": "skipped", "train": "skipped", "export": "ran"}
    assert run.artifacts["train"] == best
    exported = open_artifact(run.artifacts["export"], kind="export")
    assert exported.manifest.parent.path == str(best.resolve())
    assert exported.labels == open_artifact(best, kind="train").labels
    again = run_stages(recipe)
    assert again.actions == {"tune": "skipped", "train": "skipped", "export": "skipped"}
    assert again.served == run.artifacts["export"]


def test_pareto_front_holds_no_dominated_trial_and_plots_are_written(campaign):
    _, artifact, _, _ = campaign
    rows = [
        row
        for row in pq.read_table(artifact.file("results.parquet")).to_pylist()
        if row["status"] == "finished"
    ]
    front = [row for row in rows if row["pareto"]]
    assert front
    for row in front:
        assert not any(
            other["val_macro_f1"] >= row["val_macro_f1"]
            and other["cost_latency_ms"] <= row["cost_latency_ms"]
            and (
                other["val_macro_f1"] > row["val_macro_f1"]
                or other["cost_latency_ms"] < row["cost_latency_ms"]
            )
            for other in rows
        )
    for name in ("progress.png", "hyperparameters.png", "pareto.png"):
        assert artifact.file(name).stat().st_size > 10_000
    assert not campaign_work_dir(campaign[0]).exists(), "Tune's working state is removed"


def test_pbt_trailing_trial_continues_the_leaders_weights_with_its_own_values(
    ray_cluster, tiny_recipe_factory, tmp_path
):
    """Two trials at once, one learning rate far too small: at each epoch the trailing
    trial takes the leading trial's checkpoint (PBT's exploit) and trains on with a
    neighbouring learning rate. The clone's artifact starts with the leader's epochs, and
    its steps after the clone follow its own learning rate, not the checkpoint's."""
    from fulcrum.train.steps import lr_factor
    from fulcrum.tune.campaign import tune

    recipe = tiny_recipe_factory(
        tmp_path,
        name="population",
        # 21 steps an epoch (batch 4): the leader is ahead by its first report. PBT compares
        # only the trials that have a score, so the trailer must still have an epoch to
        # clone at once the leader has reported: the leader is the grid's first trial (the
        # first to start, by up to ten seconds here; second, it had not reported once when
        # the trailer had run all 3 epochs), and 4 epochs give the trailer 3 to clone at.
        train={"workers": 1, "epochs": 4, "batch_size": 4},
        tune={
            # 1e-2 is the rate the tiny model learns at (the pipeline's); 1e-5 learns nothing.
            # (1e-1, tried before, sometimes collapsed onto one label too: a tie, no exploit.)
            "space": {"train.lr": {"grid": [1e-2, 1e-5]}},
            "search": "grid",
            "num_samples": 1,
            "scheduler": "pbt",
            "quantile_fraction": 0.5,
            "resample_probability": 0.0,
            "keep_artifacts": "all",
        },
    )
    artifact = open_artifact(tune(recipe), kind="tune")
    rows = pq.read_table(artifact.file("results.parquet")).to_pylist()
    assert len(rows) == 2 and all(row["status"] == "finished" for row in rows), rows
    clones = list(csv.DictReader(artifact.file("clones.csv").open()))
    assert clones, "the trailing trial never took the leader's weights"
    assert artifact.metrics["clones"] == len(clones)
    assert sum(row["clones"] for row in rows) == len(clones)
    histories = {
        row["trial_id"]: open_artifact(artifact.path / row["artifact"], kind="train")
        for row in rows
    }
    last_clone = {clone["trial_id"]: clone for clone in clones}  # each trial's latest
    for trial_id, clone in last_clone.items():
        taken = int(float(clone["epoch"]))
        clone_history = histories[trial_id].metrics["history"]
        donor_history = histories[clone["cloned"]].metrics["history"]
        assert [r["train_loss"] for r in clone_history[:taken]] == [
            r["train_loss"] for r in donor_history[:taken]
        ], "the clone's artifact carries the leader's epochs up to the clone"
        steps_per_epoch = clone_history[0]["step"]
        total = steps_per_epoch * recipe.train.epochs
        settled = histories[trial_id].manifest.settled_recipe["train"]
        warmup = round(settled["warmup_ratio"] * total)
        steps = csv.DictReader(histories[trial_id].file("logs/steps.csv").open())
        after = [row for row in steps if int(row["step"]) > taken * steps_per_epoch]
        peaks = [
            float(row["lr"]) / factor
            for row in after
            if (factor := lr_factor(int(row["step"]), warmup, total, recipe.train.scheduler))
        ]
        assert peaks and all(
            peak == pytest.approx(float(clone["train.lr"]), rel=1e-3) for peak in peaks
        ), (clone, peaks)
    assert artifact.file("population.png").stat().st_size > 10_000
    assert "PBT: these are the trial's last values" in artifact.file("best_recipe.yaml").read_text()


def _lines(path) -> int:
    return len(path.read_text().splitlines()) if path.is_file() else 0


def test_auto_campaign_sizes_itself_to_its_budget_and_starts_from_the_defaults(
    ray_cluster, tiny_recipe_factory, tmp_path, capsys
):
    """`fulcrum tune --auto --budget`: the built-in space, the settled defaults first, and the
    whole command (probe, trials, report) within the budget."""
    import time

    import yaml

    from fulcrum.cli import main

    recipe = tiny_recipe_factory(tmp_path, name="auto", train={"epochs": 2, "workers": 1})
    recipe_file = tmp_path / "auto.yaml"
    raw = recipe.to_dict()
    del raw["train"]["lr"]  # left to the method's default, as a minimal recipe does
    raw["tune"] = {"max_concurrent_trials": 2}  # the test cluster says 4 CPUs; it has 2
    recipe_file.write_text(yaml.safe_dump(raw))
    budget = 60
    started = time.time()
    assert main(["tune", str(recipe_file), "--auto", "--budget", f"{budget}s"]) == 0
    elapsed = time.time() - started
    said = capsys.readouterr().err
    assert "auto: 1m00s budget; probe:" in said
    assert elapsed < budget + 15, f"{elapsed:.0f}s for a {budget}s budget"

    artifact = open_artifact(tmp_path / "auto" / "tune", kind="tune")
    with open(artifact.file("results.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) >= 2
    # Two trials start at once; one of the first two is the settled defaults.
    (first,) = [row for row in rows[:2] if float(row["config/train.lr"]) == pytest.approx(1e-3)]
    assert float(first["config/train.epochs"]) == 2 and float(first["config/peft.r"]) == 4
    assert first["config/peft.target_modules"] == "all-linear"  # lora's default
    assert {key.removeprefix("config/") for key in first if key.startswith("config/")} == {
        "train.lr",
        "train.epochs",
        "peft.r",
        "peft.target_modules",
    }
    best = artifact.metrics["best"]
    assert best["status"] == "finished" and (artifact.path / best["artifact"]).is_dir()
    assert artifact.manifest.recipe["tune"]["auto"] is True
