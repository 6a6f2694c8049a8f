"""Alerts: a window where an entity's negative share, or its volume, leaves its own recent
history.

The baseline is the entity's previous `baseline_windows` windows (the current one left
out), so each company is judged against itself: a stock people always complain about is not
alerting every day, and a quiet one is heard when it turns.

- **Negative share.** z = (share - baseline) / sqrt(variance of the baseline's shares +
  p(1-p)/n), where p is the baseline share and n the window's count: the second term is the
  binomial noise of a window of n texts, so a window of 12 posts needs a larger jump than a
  window of 1,200 to alert. Only windows with at least `min_count` texts, after at least
  `min_baseline` such windows, are judged; the share must also rise by `min_rise` (absolute),
  so a z-score on a near-constant baseline cannot alert on a wobble.
- **Volume.** z on log(1 + count) against the same windows (empty ones count, as zero), for
  a surge of texts whatever their tone, in a window of at least `min_count` texts (3 posts
  after a silent month is not a surge); `volume_z: null` turns it off.

Both are z-scores against a rolling baseline: simple, explainable in one line of an alert,
and the figures that decided are written with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fulcrum.monitor.aggregate import COUNT, ENTITY, START


@dataclass(frozen=True)
class Rules:
    baseline_windows: int = 28
    min_baseline: int = 7
    min_count: int = 10
    z: float = 3.0
    min_rise: float = 0.1
    volume_z: float | None = 4.0


def find_alerts(aggregates: pd.DataFrame, negative: str, rules: Rules) -> list[dict[str, Any]]:
    """Alerts in time order, each with the window, the entity, the rule and its figures."""
    alerts = []
    share = f"share_{negative}"
    for entity, rows in aggregates.groupby(ENTITY, sort=True):
        rows = rows.sort_values(START).reset_index(drop=True)
        counts = rows[COUNT].to_numpy(dtype=np.float64)
        shares = rows[share].to_numpy(dtype=np.float64)
        for index in range(len(rows)):
            start = max(0, index - rules.baseline_windows)
            previous = slice(start, index)
            window = rows[START].iloc[index]
            judged = counts[previous] >= rules.min_count
            if counts[index] >= rules.min_count and judged.sum() >= rules.min_baseline:
                found = _share_alert(shares[index], counts[index], shares[previous][judged], rules)
                if found:
                    alerts.append(_alert(entity, window, "negative_share", found, counts[index]))
            enough = counts[index] >= rules.min_count and index - start >= rules.min_baseline
            if rules.volume_z is not None and enough:
                found = _volume_alert(counts[index], counts[previous], rules)
                if found:
                    found["negative_share"] = None if np.isnan(shares[index]) else shares[index]
                    alerts.append(_alert(entity, window, "volume", found, counts[index]))
    alerts.sort(key=lambda alert: (alert["window_start"], alert["entity"], alert["rule"]))
    return alerts


def _share_alert(current: float, count: float, baseline: np.ndarray, rules: Rules):
    mean = float(baseline.mean())
    spread = float(np.sqrt(baseline.var() + mean * (1 - mean) / count))
    rise = current - mean
    z = rise / spread if spread > 0 else (np.inf if rise > 0 else 0.0)
    if z >= rules.z and rise >= rules.min_rise:
        return {"value": current, "baseline": mean, "z": float(z), "rise": rise}
    return None


def _volume_alert(count: float, baseline: np.ndarray, rules: Rules):
    logged = np.log1p(baseline)
    spread = max(float(logged.std()), 0.25)  # a flat history: a quarter of e in volume
    z = (np.log1p(count) - float(logged.mean())) / spread
    if z >= rules.volume_z:
        return {"value": count, "baseline": float(np.expm1(logged.mean())), "z": float(z)}
    return None


def _alert(entity: str, window, rule: str, figures: dict[str, Any], count: float) -> dict:
    return {
        "window_start": pd.Timestamp(window).isoformat(),
        "entity": entity,
        "rule": rule,
        "count": int(count),
        **{
            key: round(float(value), 4) if value is not None else None
            for key, value in figures.items()
        },
    }
