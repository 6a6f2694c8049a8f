"""`fulcrum monitor RECIPE`: the recipe's `monitor:` inputs scored, counted, and alerted on.

1. `fulcrum predict` scores the inputs into OUT/scored (the stream underneath: memory stays
   bounded, and a rerun scores only files it has not finished).
2. The scored parts are read back (the columns needed only), filtered (`where`), their texts
   attributed to entities and counted per entity and window (aggregate.py).
3. Alerts are found against each entity's own history (alerts.py), each with the texts that
   drove it and their word attributions.
4. Everything is rewritten from all the scored parts, each file written aside and renamed
   into place: a rerun on a folder that gained files extends the aggregates and alerts, and
   an interrupted run leaves the previous files whole. New alerts (not in the previous
   alerts.jsonl) are POSTed to the webhook, once.
"""

from __future__ import annotations

import html
import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.dataset as ds

from fulcrum.artifacts import artifact_dir, open_artifact
from fulcrum.errors import DataError, FulcrumError
from fulcrum.log import stage_log
from fulcrum.monitor.aggregate import COUNT, ENTITY, aggregate, parse_times, window_starts
from fulcrum.monitor.alerts import Rules, find_alerts
from fulcrum.monitor.entities import Attribution, attribute, read_names
from fulcrum.recipe import MonitorSection, Recipe
from fulcrum.storage import is_uri

log = stage_log("monitor")

SCORED, AGGREGATES, ALERTS, REPORT, TIMELINES = (
    "scored",
    "aggregates.parquet",
    "alerts.jsonl",
    "report.html",
    "timelines",
)
NEGATIVE_NAMES = ("negative", "bearish", "neg", "bad")


@dataclass
class Outcome:
    output: Path
    texts: int  # scored texts read back, after `where`
    attributed: int  # of those, texts about at least one entity
    entities: int
    windows: int
    alerts: list[dict[str, Any]]
    new_alerts: int
    seconds: float
    predict_seconds: float
    summary: list[dict[str, Any]]  # summary_rows: the most mentioned entities
    files: int  # input files
    files_skipped: int  # of those, scored by an earlier run


def monitor(recipe: Recipe, output: str | None = None, model: str | None = None) -> Outcome:
    started = time.monotonic()
    settings = recipe.monitor
    if settings is None:
        raise FulcrumError(f"{recipe.name}: the recipe has no monitor: section")
    target = Path(output or settings.output or artifact_dir(recipe, "monitor"))
    if is_uri(str(target)):
        raise FulcrumError(
            f"monitor.output: {target}: write the monitor's output to a local folder"
        )
    artifact = model or settings.model or str(artifact_dir(recipe, "export"))
    exported = open_artifact(artifact, kind="export")
    if exported.manifest.task != "sequence_classification":
        raise FulcrumError(f"{artifact}: monitoring needs a text classifier, not a tagger")
    labels = exported.labels
    negative = negative_label(labels, settings.negative_label)

    from fulcrum.predict.run import predict

    scored_at = time.monotonic()
    scoring = predict(
        artifact, settings.inputs, str(target / SCORED), text_column=settings.text_column
    )
    predict_seconds = time.monotonic() - scored_at

    frame = read_scored(target / SCORED, settings, labels)
    attribution = _attribution(settings)
    column = frame[settings.entity_column] if settings.entity_column else None
    frame["entities"] = attribute(
        frame["text"].tolist(), attribution, None if column is None else column.tolist()
    )
    about = frame[frame["entities"].map(len) > 0]
    table = aggregate(about, labels, settings.window)
    rules = Rules(**settings.rules.model_dump())
    alerts = find_alerts(table, negative, rules)
    for alert in alerts:
        alert["examples"] = _examples(about, alert, settings, negative)
    _explain(alerts, artifact, negative)
    previous = _read_alerts(target / ALERTS)
    new = [alert for alert in alerts if _key(alert) not in previous]

    _write_parquet(table, target / AGGREGATES)
    _write_lines(alerts, target / ALERTS)
    from fulcrum.monitor.report import draw_timelines, write_report

    drawn = draw_timelines(table, alerts, negative, settings.timelines, target / TIMELINES)
    write_report(target / REPORT, recipe.name, table, alerts, drawn, negative, settings)
    if settings.webhook:
        _post(settings.webhook, new)
    return Outcome(
        output=target,
        texts=len(frame),
        attributed=len(about),
        entities=int(table[ENTITY].nunique()) if len(table) else 0,
        windows=len(table),
        alerts=alerts,
        new_alerts=len(new),
        seconds=time.monotonic() - started,
        predict_seconds=predict_seconds,
        summary=summary_rows(table, alerts, negative),
        files=scoring.files,
        files_skipped=scoring.skipped,
    )


def negative_label(labels: list[str], named: str | None) -> str:
    if named is not None:
        if named not in labels:
            raise FulcrumError(
                f"monitor.negative_label: {named!r} is not one of the model's labels "
                f"({', '.join(labels)})"
            )
        return named
    for label in labels:
        if label.lower() in NEGATIVE_NAMES:
            return label
    raise FulcrumError(
        f"monitor.negative_label: none of the model's labels ({', '.join(labels)}) is named "
        "as negative; say which one is"
    )


def read_scored(folder: Path, settings: MonitorSection, labels: list[str]) -> pd.DataFrame:
    """The scored rows with what monitoring needs: text, time, the entity and `where`
    columns, the predicted label and each label's probability."""
    parts = sorted((folder / "parts").glob("*.parquet"))
    if not parts:
        raise DataError(f"{folder}: nothing was scored (no parts)")
    wanted = {settings.text_column, settings.time_column, *settings.where}
    if settings.entity_column:
        wanted.add(settings.entity_column)
    dataset = ds.dataset([str(part) for part in parts], format="parquet")
    missing = sorted(wanted - set(dataset.schema.names))
    if missing:
        raise DataError(
            f"{settings.inputs[0]}: column(s) {', '.join(missing)} not in the input (monitor."
            f"time_column, entity_column or where name them); it has "
            f"{', '.join(n for n in dataset.schema.names if n not in _ANSWERS)}"
        )
    table = dataset.to_table(
        columns=sorted(wanted | {"predicted_label", "probabilities"}),
        filter=ds.field("predicted_label").is_valid(),  # rejected rows have no answer
    )
    frame = table.drop_columns(["probabilities"]).to_pandas()
    probabilities = table.column("probabilities").combine_chunks()
    for index, label in enumerate(labels):
        frame[f"p_{label}"] = probabilities.field(index).to_numpy(zero_copy_only=False)
    for column, values in settings.where.items():
        frame = frame[frame[column].astype(str).isin([str(value) for value in values])]
    frame = frame.rename(columns={"predicted_label": "label"})
    if settings.text_column != "text":
        frame = frame.rename(columns={settings.text_column: "text"})
    frame["time"] = parse_times(frame[settings.time_column], settings.time_column)
    return frame.reset_index(drop=True)


_ANSWERS = ("predicted_label", "predicted_score", "probabilities", "out_of_scope", "in_scope_score")


def _attribution(settings: MonitorSection) -> Attribution:
    return Attribution(
        column=settings.entity_column,
        cashtags=settings.cashtags,
        min_cashtag_letters=settings.min_cashtag_letters,
        names=read_names(settings.names) if settings.names else {},
        only=frozenset(name.upper() for name in settings.entities) if settings.entities else None,
    )


def _examples(about: pd.DataFrame, alert: dict, settings: MonitorSection, negative: str):
    """The window's texts about the entity that most drove the alert: the most confidently
    negative ones (for a volume alert too: what the surge is saying)."""
    start = pd.Timestamp(alert["window_start"])
    rows = about[window_starts(about["time"], settings.window) == start]
    rows = rows[rows["entities"].map(lambda names: alert["entity"] in names)]
    rows = rows.sort_values(f"p_{negative}", ascending=False).head(settings.examples)
    return [
        {
            "time": row.time.isoformat(),
            "text": html.unescape(str(row.text)),
            "label": row.label,
            f"p_{negative}": round(float(getattr(row, f"p_{negative}")), 4),
        }
        for row in rows.itertuples()
    ]


def _explain(alerts: list[dict], artifact: str, negative: str) -> None:
    """Each example's words that pushed it towards the negative label (occlusion on the
    model that scored it): what a person reading the alert looks at first."""
    texts = [example["text"] for alert in alerts for example in alert["examples"]]
    if not texts:
        return
    from fulcrum.explain.explainer import OnnxModel
    from fulcrum.inference import OnnxClassifier

    model = OnnxModel(predictor=OnnxClassifier(artifact, verify=False))
    for alert in alerts:
        for example in alert["examples"]:
            (explanation,) = model.explain(example["text"], "occlusion", 0, negative)
            example["negative_words"] = [
                {"word": word.word, "score": round(float(word.score), 4)}
                for word in explanation.top(5)
                if word.score > 0
            ]


def _key(alert: dict) -> tuple:
    return (alert["window_start"], alert["entity"], alert["rule"])


def _read_alerts(path: Path) -> set[tuple]:
    if not path.is_file():
        return set()
    return {_key(json.loads(line)) for line in path.read_text().splitlines() if line.strip()}


def _write_parquet(table: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.partial")
    table.to_parquet(staging, index=False)
    os.replace(staging, path)


def _write_lines(records: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.partial")
    with open(staging, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(staging, path)


def _post(url: str, alerts: list[dict]) -> None:
    """Each new alert as its own JSON POST; a webhook that fails is reported, not fatal:
    the alerts are in alerts.jsonl either way, and the next run does not resend them."""
    for alert in alerts:
        request = urllib.request.Request(
            url,
            data=json.dumps(alert, ensure_ascii=False).encode(),
            headers={"content-type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
        except (urllib.error.URLError, OSError) as error:
            log.warning(f"monitor.webhook {url}: not delivered ({error}); it is in {ALERTS}")
            return


def summary_lines(outcome: Outcome, top: int = 10) -> list[str]:
    """What the terminal shows at the end: the most mentioned entities, then the files."""
    from fulcrum.train.progress import format_seconds

    lines = [
        f"[monitor] {outcome.files} input file(s), {outcome.files_skipped} of them scored by "
        "an earlier run",
        f"[monitor] {outcome.texts:,} texts, {outcome.attributed:,} about one of "
        f"{outcome.entities} entities, {outcome.windows:,} entity windows; "
        f"{len(outcome.alerts)} alert(s), {outcome.new_alerts} new; "
        f"{format_seconds(outcome.seconds)} ({format_seconds(outcome.predict_seconds)} scoring)",
        "",
        "| entity | texts | negative | windows | alerts |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {row['entity']} | {row['texts']:,} | {row['negative']:.1%} | {row['windows']:,} "
        f"| {row['alerts']} |"
        for row in outcome.summary[:top]
    ]
    lines += [
        "",
        f"alerts: {outcome.output / ALERTS}",
        f"report: {outcome.output / REPORT}",
        f"aggregates: {outcome.output / AGGREGATES}",
    ]
    return lines


def summary_rows(table: pd.DataFrame, alerts: list[dict], negative: str, top: int = 10):
    """The most mentioned entities: texts, negative share overall, and alerts."""
    if not len(table):
        return []
    counts = table.groupby(ENTITY)[COUNT].sum().sort_values(ascending=False).head(top)
    share = f"share_{negative}"
    weighted = (table[share].fillna(0) * table[COUNT]).groupby(table[ENTITY]).sum()
    by_entity: dict[str, int] = {}
    for alert in alerts:
        by_entity[alert["entity"]] = by_entity.get(alert["entity"], 0) + 1
    return [
        {
            "entity": entity,
            "texts": int(count),
            "negative": float(weighted[entity] / count) if count else np.nan,
            "windows": int((table[ENTITY] == entity).sum()),
            "alerts": by_entity.get(entity, 0),
        }
        for entity, count in counts.items()
    ]
