"""Scored texts -> one row per entity and time window: how many texts, the share predicted as
each label, and the mean probability of each label.

Windows are calendar windows in UTC (an hour, a day, or an ISO week from Monday), so a
window means the same on every run and two runs over overlapping data agree on it. Every
window between an entity's first and last is present, empty ones with a count of 0, so a
rolling baseline over "the last 28 days" is 28 days, not the last 28 days that had posts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fulcrum.errors import DataError

WINDOWS = {"hour": "h", "day": "D", "week": "W-MON"}
ENTITY, START, COUNT = "entity", "window_start", "count"


def window_starts(times: pd.Series, window: str) -> pd.Series:
    """The start of each time's window (UTC)."""
    if window not in WINDOWS:
        raise DataError(f"monitor.window: {window!r} is not one of {', '.join(WINDOWS)}")
    if window == "week":
        days = times.dt.floor("D")
        return days - pd.to_timedelta(days.dt.weekday, unit="D")
    return times.dt.floor(WINDOWS[window])


def parse_times(values: pd.Series, column: str) -> pd.Series:
    """UTC timestamps from ISO-8601 strings (or datetimes); a naive time is taken as UTC.
    Unreadable ones raise naming the first, so a wrong column fails plainly."""
    parsed = pd.to_datetime(values, utc=True, errors="coerce", format="mixed")
    bad = parsed.isna() & values.notna()
    if bad.any():
        first = values[bad].iloc[0]
        raise DataError(
            f"monitor.time_column {column!r}: {int(bad.sum())} value(s) are not times, e.g. "
            f"{str(first)[:60]!r}"
        )
    return parsed


def aggregate(
    scored: pd.DataFrame, labels: list[str], window: str, entities: str = "entities"
) -> pd.DataFrame:
    """`scored`: one row per text with `time` (UTC), `entities` (a list), `label` (the
    predicted one) and `p_<label>` for every label. Returns entity, window_start, count,
    `share_<label>` and `mean_p_<label>` per label, every window of each entity's span."""
    rows = scored[scored[entities].map(len) > 0]
    rows = rows.explode(entities).rename(columns={entities: ENTITY})
    rows[START] = window_starts(rows["time"], window)
    grouped = rows.groupby([ENTITY, START], sort=True)
    counts = grouped.size().rename(COUNT)
    columns = [counts]
    for label in labels:
        hits = (rows["label"] == label).groupby([rows[ENTITY], rows[START]]).sum()
        columns.append((hits / counts).rename(f"share_{label}"))
        columns.append(grouped[f"p_{label}"].mean().rename(f"mean_p_{label}"))
    table = pd.concat(columns, axis=1).reset_index()
    return _with_empty_windows(table, labels, window)


def _with_empty_windows(table: pd.DataFrame, labels: list[str], window: str) -> pd.DataFrame:
    frequency = "7D" if window == "week" else WINDOWS[window]
    parts = []
    for entity, rows in table.groupby(ENTITY, sort=True):
        span = pd.date_range(rows[START].min(), rows[START].max(), freq=frequency)
        full = rows.set_index(START).reindex(span)
        full.index.name = START
        full[ENTITY] = entity
        full[COUNT] = full[COUNT].fillna(0).astype(np.int64)
        parts.append(full.reset_index())
    if not parts:
        columns = [ENTITY, START, COUNT] + [
            f"{kind}_{label}" for label in labels for kind in ("share", "mean_p")
        ]
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[table.columns]
