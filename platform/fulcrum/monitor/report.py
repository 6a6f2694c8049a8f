"""What a person looks at: per entity, a timeline of volume and negative share with the
alerts marked (PNG), and one HTML page of the alerts with the texts that drove them and the
words that made them negative."""

from __future__ import annotations

import html
import os
from pathlib import Path

import pandas as pd

from fulcrum.monitor.aggregate import COUNT, ENTITY, START


def draw_timelines(
    table: pd.DataFrame, alerts: list[dict], negative: str, top: int, folder: Path
) -> list[str]:
    """PNGs of the `top` most mentioned entities; returns their file names. Each is written
    aside and renamed into place."""
    if not top or not len(table):
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    entities = table.groupby(ENTITY)[COUNT].sum().sort_values(ascending=False).head(top).index
    names = []
    for entity in entities:
        rows = table[table[ENTITY] == entity].sort_values(START)
        figure, volume = plt.subplots(figsize=(10, 3.2))
        volume.bar(rows[START], rows[COUNT], width=_bar_width(rows), color="#b0c4de", label="texts")
        volume.set_ylabel("texts per window")
        share = volume.twinx()
        share.plot(rows[START], rows[f"share_{negative}"], color="#c0392b", lw=1.2)
        share.set_ylabel(f"share {negative}", color="#c0392b")
        share.set_ylim(0, 1)
        for alert in alerts:
            if alert["entity"] == entity:
                when = pd.Timestamp(alert["window_start"])
                style = "-" if alert["rule"] == "negative_share" else ":"
                share.axvline(when, color="black", ls=style, lw=1)
        volume.set_title(
            f"{entity}: texts and {negative} share; alerts marked (solid: share, dotted: volume)"
        )
        figure.tight_layout()
        name = f"{_safe(entity)}.png"
        staging = folder / f".{name}.partial.png"
        figure.savefig(staging, dpi=100)
        plt.close(figure)
        os.replace(staging, folder / name)
        names.append(name)
    return names


def _bar_width(rows: pd.DataFrame):
    starts = rows[START]
    if len(starts) < 2:
        return 0.8
    return (starts.iloc[1] - starts.iloc[0]) * 0.9


def _safe(entity: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in entity)


def write_report(
    path: Path,
    name: str,
    table: pd.DataFrame,
    alerts: list[dict],
    timelines: list[str],
    negative: str,
    settings,
    shown: int = 50,
) -> None:
    """One self-contained page: the timelines, then the alerts, strongest first."""
    strongest = sorted(alerts, key=lambda alert: -alert["z"])[:shown]
    parts = [
        "<!doctype html><meta charset='utf-8'>",
        f"<title>{html.escape(name)}: opinion monitor</title>",
        "<style>body{font:14px sans-serif;max-width:70em;margin:2em auto}"
        "td,th{padding:2px 8px;text-align:left;vertical-align:top}"
        "mark{background:#f5b7b1}.alert{border-top:1px solid #ccc;margin-top:1em}</style>",
        f"<h1>{html.escape(name)}: {len(alerts)} alert(s)</h1>",
        f"<p>{int(table[COUNT].sum()) if len(table) else 0:,} attributed texts, "
        f"{table[ENTITY].nunique() if len(table) else 0} entities, windows of one "
        f"{settings.window} (UTC). Rules: negative share z &ge; {settings.rules.z:g} and a rise "
        f"of &ge; {settings.rules.min_rise:.0%} over the previous {settings.rules.baseline_windows} "
        f"windows (&ge; {settings.rules.min_count} texts each); volume z &ge; "
        f"{settings.rules.volume_z}.</p>",
    ]
    parts += [f"<img src='timelines/{html.escape(t)}' width='100%'>" for t in timelines]
    parts.append(f"<h2>Strongest alerts ({len(strongest)} of {len(alerts)})</h2>")
    for alert in strongest:
        value = alert["value"]
        figure = (
            f"{negative} share {value:.0%} against {alert['baseline']:.0%}"
            if alert["rule"] == "negative_share"
            else f"{int(value)} texts against about {alert['baseline']:.0f}"
        )
        parts.append(
            f"<div class='alert'><h3>{html.escape(alert['entity'])}, window from "
            f"{html.escape(alert['window_start'][:16])}: {alert['rule'].replace('_', ' ')}</h3>"
            f"<p>{figure} (z {alert['z']:.1f}, {alert['count']} texts)</p><table>"
        )
        for example in alert.get("examples", []):
            parts.append(
                f"<tr><td>{example[f'p_{negative}']:.2f}</td>"
                f"<td>{_marked(example['text'], example.get('negative_words', []))}</td></tr>"
            )
        parts.append("</table></div>")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.partial")
    staging.write_text("\n".join(parts) + "\n", encoding="utf-8")
    os.replace(staging, path)


def _marked(text: str, words: list[dict]) -> str:
    """The text, HTML-escaped, with the words that pushed it negative highlighted."""
    marked = html.escape(text)
    for word in words:
        escaped = html.escape(word["word"])
        if escaped.strip():
            marked = marked.replace(escaped, f"<mark>{escaped}</mark>", 1)
    return marked
