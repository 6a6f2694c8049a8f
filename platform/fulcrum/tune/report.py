"""What a campaign found, written into its artifact: the results table (Parquet, CSV and
printed), the best recipe as YAML that `fulcrum train` accepts, the trial artifacts worth
keeping, and plots: the metric over trials and time, each hyperparameter against the
metric, and the Pareto front of metric against cost when there is a cost."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import yaml

from fulcrum.artifacts import open_artifact
from fulcrum.log import stage_log
from fulcrum.recipe import Recipe, validate_recipe
from fulcrum.tune.pareto import pareto_front
from fulcrum.tune.plan import trial_resources
from fulcrum.tune.space import trial_recipe
from fulcrum.tune.trial import CLONES_FILE

log = stage_log("tune")

DRIVER_MEMORY_FILE = "driver_memory.jsonl"  # the driver's RSS as each trial ended

COST_COLUMNS = {"latency": "cost_latency_ms", "size": "cost_size_mb"}
STATUS_COLOURS = {"finished": "#2a7", "stopped": "#e90", "error": "#c33"}


def write_campaign(
    staging: Path, recipe: Recipe, grid, work: Path, elapsed_s: float
) -> dict[str, Any]:
    metric = f"val_{recipe.tune_metric}"
    driver = _driver_memory(work / DRIVER_MEMORY_FILE)
    rows = sorted(
        (trial_row(result, recipe, metric, driver) for result in grid),
        key=lambda row: (row["started_s"] is None, row["started_s"] or 0, row["trial_id"]),
    )
    for index, row in enumerate(rows):
        row["trial"] = index
    pbt = recipe.tune.scheduler == "pbt"
    clones = read_clones(work / CLONES_FILE) if pbt else []
    if pbt:
        for row in rows:
            row["clones"] = sum(clone["trial_id"] == row["trial_id"] for clone in clones)
        _write_clones(staging, clones)
        plot_population(staging / "population.png", _curves(grid, metric), clones, recipe, metric)
    best = best_trial(rows, metric, recipe.tune.mode)
    front = (
        pareto_front(rows, metric, recipe.tune.mode, COST_COLUMNS[recipe.tune.cost])
        if recipe.tune.cost != "none"
        else []
    )
    for row in rows:
        row["pareto"] = row["trial_id"] in front
    _keep_trials(staging, rows, {best["trial_id"]} | set(front) if best else set(front), recipe)
    write_table(staging, rows)
    if best:
        write_best_recipe(staging / "best_recipe.yaml", recipe, best, metric)
    plots(staging, rows, recipe, metric)
    log.info(format_table(rows, recipe, metric))
    summary = _summary(rows, best, front, metric, elapsed_s)
    if pbt:
        summary["clones"] = len(clones)
    log.info(
        f"{summary['trials']} trial(s): {summary['finished']} finished, {summary['stopped']} "
        f"stopped early, {summary['errors']} failed; {summary['trial_epochs']:g} trial-epochs "
        f"in {elapsed_s:.0f}s"
        + (f"; {len(clones)} clone(s)" if pbt else "")
        + (f"; best {metric} {best[metric]:.4f} ({best['trial_id']})" if best else "")
    )
    labels, fingerprint = _lineage(staging, best)
    return {"metrics": summary, "labels": labels, "data_fingerprint": fingerprint}


# --------------------------------------------------------------------------- rows


def trial_row(result, recipe: Recipe, metric: str, driver: dict[str, float]) -> dict[str, Any]:
    """One trial as a flat row: its config, outcome, metric and what it cost."""
    last = dict(result.metrics or {})
    history = result.metrics_dataframe
    trial_id = last.get("trial_id") or Path(result.path or "unknown").name  # Tune sets it
    reported = (
        [float(v) for v in history[metric].dropna()]
        if history is not None and metric in history
        else []
    )
    if result.error is not None:
        status = "error"
    elif last.get("finished"):
        status = "finished"
    else:
        status = "stopped"
    if last.get("finished"):
        score = float(last[metric])  # the artifact's own metric, re-measured from its files
    elif reported:
        score = max(reported) if recipe.tune.mode == "max" else min(reported)
    else:
        score = None
    evaluated = history["epoch"].dropna() if history is not None and "epoch" in history else []
    if recipe.tune.scheduler == "pbt" and len(evaluated):
        # A PBT trial that continued another's weights has that trial's epochs in its
        # artifact's history; what it trained itself is what it evaluated (once an epoch).
        epochs = len(evaluated)
    else:
        epochs = last.get("epochs_run")
        if epochs is None and len(evaluated):
            epochs = float(evaluated.max())
    wall = float(last.get("time_total_s") or 0.0)
    resources = _resources(recipe, result.config or {})
    row: dict[str, Any] = {
        "trial_id": trial_id,
        **{f"config/{key}": value for key, value in sorted((result.config or {}).items())},
        "status": status,
        metric: score,
        "epochs": float(epochs or 0),
        **{key: value for key, value in last.items() if key.startswith(("test_", "cost_"))},
        "wall_s": round(wall, 1),
        "cpu_s": round(wall * resources["CPU"], 1),
        "gpu_s": round(wall * resources["GPU"], 1),
        "peak_rss_mb": _peak(last, history, "peak_rss_mb"),
        "peak_gpu_mb": _peak(last, history, "peak_gpu_mb"),
        "driver_rss_mb": driver.get(trial_id),
        "started_s": (last["timestamp"] - wall) if "timestamp" in last else None,
        "artifact": last.get("artifact"),
        "error": _error_line(result.error) if result.error is not None else None,
    }
    return row


def best_trial(rows: list[dict], metric: str, mode: str) -> dict | None:
    """The best finished trial (it has an artifact); stopped trials are judged on fewer
    epochs and are not candidates while any trial finished."""
    for pool in (
        [row for row in rows if row["status"] == "finished" and row[metric] is not None],
        [row for row in rows if row[metric] is not None],
    ):
        if pool:
            sign = 1 if mode == "max" else -1
            return max(pool, key=lambda row: (sign * row[metric], -row["trial"]))
    return None


def _resources(recipe: Recipe, config: dict[str, Any]) -> dict[str, float]:
    try:
        trial = validate_recipe(trial_recipe(recipe.to_dict(), config, recipe.name, "."))
    except Exception:  # an invalid combination: it failed before using its own resources
        trial = recipe
    return trial_resources(trial)


def _peak(last: dict, history, key: str) -> float | None:
    values = [last[key]] if key in last else []
    if history is not None and key in history:
        values += [float(v) for v in history[key].dropna()]
    return max(values) if values else None


def _error_line(error: BaseException) -> str:
    """The user-facing line of a trial's error (its innermost message, not the traceback)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _driver_memory(path: Path) -> dict[str, float]:
    if not path.is_file():
        return {}
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {entry["trial_id"]: entry["driver_rss_mb"] for entry in entries}


def _summary(rows, best, front, metric: str, elapsed_s: float) -> dict[str, Any]:
    driver = [row["driver_rss_mb"] for row in rows if row["driver_rss_mb"] is not None]
    return {
        "metric": metric,
        "trials": len(rows),
        "finished": sum(row["status"] == "finished" for row in rows),
        "stopped": sum(row["status"] == "stopped" for row in rows),
        "errors": sum(row["status"] == "error" for row in rows),
        "trial_epochs": sum(row["epochs"] for row in rows),
        "cpu_s": round(sum(row["cpu_s"] for row in rows), 1),
        "gpu_s": round(sum(row["gpu_s"] for row in rows), 1),
        "wall_s": round(elapsed_s, 1),
        "best": _public(best) if best else None,
        "pareto_front": front,
        "driver_rss_mb": {"first": driver[0], "last": driver[-1], "max": max(driver)}
        if driver
        else None,
    }


def _public(row: dict) -> dict:
    return {key: value for key, value in row.items() if key not in ("started_s",)}


def _lineage(staging: Path, best: dict | None) -> tuple[list[str], str | None]:
    if best and best.get("artifact"):
        manifest = open_artifact(staging / best["artifact"], verify=False).manifest
        return manifest.labels, manifest.data_fingerprint
    return [], None


# --------------------------------------------------------------------------- files


def _keep_trials(staging: Path, rows: list[dict], keep: set[str], recipe: Recipe) -> None:
    """Move the kept trials' artifacts into the campaign artifact; rows then point there."""
    for row in rows:
        source = row.get("artifact")
        wanted = recipe.tune.keep_artifacts == "all" or row["trial_id"] in keep
        if not source or not Path(source).is_dir() or not wanted:
            row["artifact"] = None
            continue
        target = staging / "trials" / row["trial_id"] / "train"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(source, target)
        row["artifact"] = str(target.relative_to(staging))


def write_table(staging: Path, rows: list[dict]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    table = pa.Table.from_pylist([{key: _cell(row.get(key)) for key in columns} for row in rows])
    import pyarrow.parquet as pq

    pq.write_table(table, staging / "results.parquet")
    pacsv.write_csv(table, staging / "results.csv")


def _cell(value: Any) -> Any:
    """Config values of mixed types (a choice of 8 or "auto") are kept as text."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return float(value)
    return str(value)


def read_clones(path: Path) -> list[dict]:
    """The ledger of PBT clones, each once (a trial restarted after an interruption may
    have noted its clone again)."""
    if not path.is_file():
        return []
    seen, clones = set(), []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        clone = json.loads(line)
        key = (clone["trial_id"], clone["cloned"], clone["epoch"])
        if key not in seen:
            seen.add(key)
            clones.append(clone)
    return clones


def _write_clones(staging: Path, clones: list[dict]) -> None:
    columns = ["trial_id", "cloned", "epoch"]
    columns += sorted({key for clone in clones for key in clone} - set(columns))
    table = pa.Table.from_pylist(
        [{key: _cell(clone.get(key)) for key in columns} for clone in clones],
        schema=None if clones else pa.schema([(key, pa.string()) for key in columns]),
    )
    pacsv.write_csv(table, staging / "clones.csv")


def _curves(grid, metric: str) -> dict[str, list[tuple[float, float, float]]]:
    """Each trial's reported (epoch, metric, time), in report order."""
    curves = {}
    for result in grid:
        history = result.metrics_dataframe
        trial_id = (result.metrics or {}).get("trial_id")
        if history is None or trial_id is None or not {"epoch", metric} <= set(history):
            continue
        points = history[["epoch", metric, "timestamp"]].dropna()
        curves[trial_id] = [tuple(map(float, point)) for point in points.itertuples(index=False)]
    return curves


def segments(points: list[tuple], clone_times: list[float]) -> list[list[tuple]]:
    """A trial's curve cut where it took another trial's weights: the points after a clone
    do not continue the ones before it."""
    pieces: list[list[tuple]] = []
    for point in points:
        cut = pieces and any(pieces[-1][-1][2] <= t < point[2] for t in clone_times)
        if not pieces or cut:
            pieces.append([])
        pieces[-1].append(point)
    return pieces


def write_best_recipe(path: Path, recipe: Recipe, best: dict, metric: str) -> None:
    config = {
        key.removeprefix("config/"): value
        for key, value in best.items()
        if key.startswith("config/")
    }
    raw = trial_recipe(recipe.to_dict(), config, recipe.name, recipe.output_dir)
    validate_recipe(raw, source=str(path))  # what we write must train
    header = (
        f"# Best trial of the campaign `{recipe.name}`: {best['trial_id']}, "
        f"{metric} {best[metric]:.4f}.\n"
        f"# Searched: {', '.join(f'{key}={_show(value)}' for key, value in config.items())}\n"
        f"# Train it with: fulcrum train {path.name}\n"
    )
    if recipe.tune.scheduler == "pbt":
        header += (
            "# PBT: these are the trial's last values. Its weights grew under a schedule of\n"
            "# values (clones.csv), so training this recipe from scratch may score lower; the\n"
            f"# trial's own artifact is {best.get('artifact') or 'not kept'}.\n"
        )
    path.write_text(header + yaml.safe_dump(raw, sort_keys=False))


def _show(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def format_table(rows: list[dict], recipe: Recipe, metric: str) -> str:
    keys = [f"config/{key}" for key in recipe.tune.space]
    cost = COST_COLUMNS.get(recipe.tune.cost)
    header = ["trial", "status", *[key.removeprefix("config/") for key in keys], metric]
    header += [cost] if cost else []
    header += ["epochs", "wall s", "peak MB"]
    lines = [header]
    for row in rows:
        cells = [row["trial_id"], row["status"], *[_show(row.get(key)) for key in keys]]
        cells.append("-" if row[metric] is None else f"{row[metric]:.4f}")
        if cost:
            cells.append("-" if row.get(cost) is None else f"{row[cost]:.1f}")
        cells += [
            f"{row['epochs']:g}",
            f"{row['wall_s']:.0f}",
            "-" if row["peak_rss_mb"] is None else f"{row['peak_rss_mb']:.0f}",
        ]
        if row["error"]:
            cells[1] = f"error: {row['error'][:60]}"
        lines.append(cells)
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)) for line in lines
    )


# --------------------------------------------------------------------------- plots


def plots(staging: Path, rows: list[dict], recipe: Recipe, metric: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [row for row in rows if row[metric] is not None]
    if not scored:
        return
    _plot_progress(plt, staging / "progress.png", rows, scored, recipe, metric)
    _plot_hyperparameters(plt, staging / "hyperparameters.png", scored, recipe, metric)
    _plot_pareto(plt, staging / "pareto.png", scored, recipe, metric)


def _plot_progress(plt, path: Path, rows, scored, recipe: Recipe, metric: str) -> None:
    """The metric of each trial over time with the best so far, and over trials."""
    sign = 1 if recipe.tune.mode == "max" else -1
    figure, (over_time, over_trials) = plt.subplots(1, 2, figsize=(11, 4))
    start = min(row["started_s"] for row in scored if row["started_s"] is not None)
    for row in scored:
        finished = (row["started_s"] or start) + row["wall_s"] - start
        colour = STATUS_COLOURS[row["status"]]
        over_time.scatter(finished / 60, row[metric], color=colour, s=24)
        over_trials.scatter(row["trial"], row[metric], color=colour, s=24)
    order = sorted(scored, key=lambda row: (row["started_s"] or start) + row["wall_s"])
    best, times, running = None, [], []
    for row in order:
        best = row[metric] if best is None else sign * max(sign * best, sign * row[metric])
        times.append(((row["started_s"] or start) + row["wall_s"] - start) / 60)
        running.append(best)
    over_time.step(times, running, where="post", color="#333", label="best so far")
    over_time.set_xlabel("minutes since the campaign started (trial end)")
    over_trials.set_xlabel("trial (in start order)")
    for axis in (over_time, over_trials):
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
    for status, colour in STATUS_COLOURS.items():
        over_trials.scatter([], [], color=colour, label=status)
    over_trials.legend(fontsize=8)
    over_time.legend(fontsize=8)
    figure.suptitle(f"{recipe.name}: {len(rows)} trials")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _plot_hyperparameters(plt, path: Path, scored, recipe: Recipe, metric: str) -> None:
    """The metric against each searched key's value."""
    dimensions = list(recipe.tune.space.items())
    columns = min(3, len(dimensions))
    lines = math.ceil(len(dimensions) / columns)
    figure, axes = plt.subplots(lines, columns, figsize=(4.2 * columns, 3.4 * lines), squeeze=False)
    for axis, (key, dimension) in zip(axes.flat, dimensions):
        values = [row.get(f"config/{key}") for row in scored]
        categorical = dimension.kind in ("choice", "grid")
        if categorical:
            categories = [str(value) for value in getattr(dimension, dimension.kind)]
            positions = [categories.index(str(value)) for value in values]
            axis.set_xticks(range(len(categories)), categories, rotation=30, fontsize=8)
        else:
            positions = values
            if dimension.kind == "loguniform":
                axis.set_xscale("log")
        axis.scatter(
            positions,
            [row[metric] for row in scored],
            c=[STATUS_COLOURS[row["status"]] for row in scored],
            s=24,
        )
        axis.set_xlabel(key)
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(dimensions) :]:
        axis.set_visible(False)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _plot_pareto(plt, path: Path, scored, recipe: Recipe, metric: str) -> None:
    """A cost-aware campaign's trials, metric against cost, and their Pareto front."""
    cost = COST_COLUMNS.get(recipe.tune.cost)
    costed = [row for row in scored if cost and row.get(cost) is not None]
    if not (cost and costed):
        return
    figure, axis = plt.subplots(figsize=(6, 4.2))
    axis.scatter(
        [row[cost] for row in costed],
        [row[metric] for row in costed],
        color="#999",
        s=24,
        label="trial",
    )
    front = sorted((row for row in costed if row["pareto"]), key=lambda row: row[cost])
    axis.plot(
        [row[cost] for row in front],
        [row[metric] for row in front],
        "o-",
        color="#c33",
        label="Pareto front",
    )
    for row in front:
        axis.annotate(row["trial_id"].split("_")[-1], (row[cost], row[metric]), fontsize=7)
    unit = f"ms per batch of {recipe.tune.cost_batch_size}"
    axis.set_xlabel(
        f"INT8 ONNX latency ({unit})" if recipe.tune.cost == "latency" else "INT8 ONNX MB"
    )
    axis.set_ylabel(metric)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_population(
    path: Path, curves: dict, clones: list[dict], recipe: Recipe, metric: str
) -> None:
    """PBT at a glance: each trial's metric by epoch, and a dashed line from the point a
    trial's weights were taken to the trial that continued them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not curves:
        return
    figure, axis = plt.subplots(figsize=(7, 4.4))
    colours = plt.get_cmap("tab10")
    for index, (trial_id, points) in enumerate(sorted(curves.items())):
        times = [clone.get("time", 0.0) for clone in clones if clone["trial_id"] == trial_id]
        for number, piece in enumerate(segments(points, times)):
            epochs, values, _ = zip(*piece)
            axis.plot(
                epochs,
                values,
                "o-",
                ms=3,
                color=colours(index % 10),
                label=trial_id if number == 0 else None,
            )
    for clone in clones:
        donor = {epoch: value for epoch, value, _ in curves.get(clone["cloned"], [])}
        taken = donor.get(float(clone["epoch"])) if clone["epoch"] is not None else None
        after = [
            (epoch, value)
            for epoch, value, at in curves.get(clone["trial_id"], [])
            if at >= clone.get("time", 0.0)
        ]
        if taken is not None and after:
            axis.plot(
                [clone["epoch"], after[0][0]], [taken, after[0][1]], "--", color="#555", lw=0.8
            )
    axis.set_xlabel("epoch")
    axis.set_ylabel(metric)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, ncol=2)
    axis.set_title(f"{recipe.name}: PBT population, {len(clones)} clone(s) (dashed)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
