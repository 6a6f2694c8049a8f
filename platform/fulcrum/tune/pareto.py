"""The Pareto front of a campaign with two objectives: the trials no other trial beats on
both the metric and the cost of the model it would deploy."""

from __future__ import annotations

from typing import Any


def pareto_front(rows: list[dict[str, Any]], metric: str, mode: str, cost: str) -> list[str]:
    """Trial ids on the front, cheapest first. Cost is always minimised; the metric follows
    `mode`. Rows without both values (failed or stopped trials) take no part."""
    sign = 1 if mode == "max" else -1
    points = [
        (row[cost], sign * row[metric], row["trial_id"])
        for row in rows
        if row.get(metric) is not None and row.get(cost) is not None
    ]
    front: list[str] = []
    best_so_far = None
    # Cheapest first, and at equal cost the better metric first: a point is on the front
    # exactly when it beats the best metric of every cheaper (or equally cheap) point.
    for _, score, trial_id in sorted(points, key=lambda point: (point[0], -point[1])):
        if best_so_far is None or score > best_so_far:
            front.append(trial_id)
            best_so_far = score
    return front
