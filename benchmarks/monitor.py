"""`fulcrum monitor` on the shared StockNet stream: the alerts it raises, what it costs beside
`fulcrum predict` alone, and how fast it finds surges injected at known times.

    python benchmarks/monitor.py [--parts stream surges throughput] [--model EXPORT_DIR]

The model: the Financial PhraseBank sentiment model benchmarks/predict.py trains (its
dynamic-INT8 variant), unless --model names another export artifact.

stream: examples/stocknet_monitor.yaml's monitor section over the six parts (originals in
English, per ticker and day): the most mentioned tickers, and every alert of the five most
mentioned with its top example texts, to be read against what happened on those dates.

surges: a copy of the stream with bursts of negative posts added: for 12 tickers with at
least 3 posts a day on average over more than 90 days, on a random day after their first
60, posts from Financial PhraseBank's negative sentences with the ticker's cashtag, as many
as the ticker's median day and at least 20. Detection delay (days from the burst to the first alert on it; a burst is missed
when no alert comes within 2 days) and false alarms per month (alerts on other days, over all
tickers), at the default rules.

throughput: on a quiet machine, a monitoring run's texts/s end to end against the scoring
inside it (`fulcrum predict`) on the same texts: what counting, alerting, explaining and
drawing add.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import time
from pathlib import Path
from typing import Any

from common import REPOSITORY, RESULTS, data_file, phrasebank_data, table, write_results

WORK = REPOSITORY / "artifacts" / "bench-monitor"
RESULTS_NAME = "monitor"
COMMAND = "python benchmarks/monitor.py"
MODEL = REPOSITORY / "artifacts" / "benchmarks" / "compress-fpb" / "compress" / "variants"
BURSTS = 12


def monitor_recipe(inputs: list[str], output: Path, model: str, **monitor: Any):
    from fulcrum.recipe import load_recipe, validate_recipe

    example = load_recipe(REPOSITORY / "examples" / "stocknet_monitor.yaml").to_dict()
    section = example["monitor"] | {"inputs": inputs, "output": str(output), "model": model}
    return validate_recipe(example | {"monitor": section | monitor})


def stream_parts() -> list[str]:
    return [data_file("stocknet_tweets", f"stocknet_tweets_part0{i}.csv") for i in range(1, 7)]


def run_stream(model: str) -> dict[str, Any]:
    from fulcrum.monitor.run import monitor

    output = WORK / "stream"  # kept: a rerun scores nothing again, only counts and alerts
    outcome = monitor(monitor_recipe(stream_parts(), output, model))
    alerts = outcome.alerts
    top = [row["entity"] for row in outcome.summary[:5]]
    return {
        "texts": outcome.texts,
        "entities": outcome.entities,
        "alerts": len(alerts),
        "alerts_by_rule": {
            rule: sum(a["rule"] == rule for a in alerts) for rule in ("negative_share", "volume")
        },
        "summary": outcome.summary,
        "top_alerts": [
            {
                key: alert[key]
                for key in ("window_start", "entity", "rule", "value", "baseline", "z", "count")
            }
            | {"examples": [e["text"][:200] for e in alert["examples"][:3]]}
            for alert in alerts
            if alert["entity"] in top
        ],
        "seconds": round(outcome.seconds, 1),
        "predict_seconds": round(outcome.predict_seconds, 1),
    }


def run_surges(model: str, seed: int = 0) -> dict[str, Any]:
    """Bursts of negative FPB sentences, each with a ticker, added to a copy of the stream."""
    import pandas as pd

    from fulcrum.data import load_splits
    from fulcrum.monitor.run import monitor
    from fulcrum.recipe import DataSection

    rng = random.Random(seed)
    frames = [pd.read_csv(path, dtype=str, keep_default_na=False) for path in stream_parts()]
    stream = pd.concat(frames, ignore_index=True)
    kept = stream[(stream.is_retweet == "0") & (stream.lang == "en")].copy()
    kept["day"] = kept.created_at_utc.str[:10]
    daily = kept.groupby(["ticker", "day"]).size()
    per_ticker = daily.groupby(level=0)
    busy = [t for t, days in per_ticker if days.mean() >= 3 and len(days) > 90]
    splits = load_splits(DataSection(**phrasebank_data("AllAgree")), seed=0)
    negative = splits.label_names.index("negative")
    sentences = [row["text"] for row in splits.train.to_pylist() if row["label"] == negative]
    injected, rows = [], []
    for ticker in rng.sample(sorted(busy), min(BURSTS, len(busy))):
        days = sorted(daily[ticker].index)
        day = rng.choice(days[60:])
        size = max(20, int(daily[ticker].median()))
        for index in range(size):
            text = f"${ticker} {rng.choice(sentences)}"
            rows.append(
                {
                    "created_at_utc": f"{day}T{10 + index % 10:02d}:{index % 60:02d}:00Z",
                    "ticker": ticker,
                    "tweet_id": f"injected-{ticker}-{index}",
                    "is_retweet": "0",
                    "user_id": "0",
                    "lang": "en",
                    "text": text,
                }
            )
        injected.append({"ticker": ticker, "day": day, "posts": size})
    folder = WORK / "surges-input"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for path in stream_parts():
        shutil.copy(path, folder / Path(path).name)
    pd.DataFrame(rows).to_csv(folder / "injected.csv", index=False)
    output = WORK / "surges"
    shutil.rmtree(output, ignore_errors=True)
    outcome = monitor(monitor_recipe([str(folder / "*.csv")], output, model))
    return {"injected": injected, **score_detection(outcome.alerts, injected, kept)}


def score_detection(alerts: list[dict], injected: list[dict], kept) -> dict[str, Any]:
    import pandas as pd

    found, delays = [], []
    claimed = set()
    for burst in injected:
        day = pd.Timestamp(burst["day"], tz="UTC")
        hits = [
            a
            for a in alerts
            if a["entity"] == burst["ticker"]
            and a["rule"] == "negative_share"
            and 0 <= (pd.Timestamp(a["window_start"]) - day).days <= 2
        ]
        if hits:
            first = min(hits, key=lambda a: a["window_start"])
            delays.append((pd.Timestamp(first["window_start"]) - day).days)
            claimed.update(id(a) for a in hits)
        found.append(bool(hits))
    months = kept.created_at_utc.str[:7].nunique()
    false = [a for a in alerts if id(a) not in claimed and a["rule"] == "negative_share"]
    return {
        "detected": sum(found),
        "bursts": len(injected),
        "delays_days": delays,
        "false_alarms": len(false),
        "months": months,
        "false_alarms_per_month": round(len(false) / months, 2),
    }


def run_throughput(model: str) -> dict[str, Any]:
    from fulcrum.monitor.run import monitor

    output = WORK / "throughput"
    shutil.rmtree(output, ignore_errors=True)
    started = time.monotonic()
    outcome = monitor(monitor_recipe(stream_parts(), output, model))
    total = time.monotonic() - started
    rows = sum(1 for path in stream_parts() for _ in open(path, encoding="utf-8")) - 6
    return {
        "rows_scored": rows,
        "seconds": round(total, 1),
        "predict_seconds": round(outcome.predict_seconds, 1),
        "texts_per_s": round(rows / total, 1),
        "predict_texts_per_s": round(rows / outcome.predict_seconds, 1),
        "ratio": round(outcome.predict_seconds / total, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", default=["stream", "surges", "throughput"])
    parser.add_argument("--model", default=None, help="export artifact (default: FPB INT8)")
    args = parser.parse_args()
    model = args.model or str(next(MODEL.iterdir()))
    path = RESULTS / f"{RESULTS_NAME}.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    for part, run in (
        ("stream", run_stream),
        ("surges", run_surges),
        ("throughput", run_throughput),
    ):
        if part in args.parts:
            results[part] = run(model) | {"model": model}
            write_results(RESULTS_NAME, {"command": COMMAND} | results)
            print(f"[benchmark] {part}: {json.dumps(results[part])[:1500]}", flush=True)
    if "stream" in results:
        print(
            table(
                results["stream"]["summary"],
                [
                    ("entity", "ticker"),
                    ("texts", "texts"),
                    ("negative", "negative share"),
                    ("alerts", "alerts"),
                ],
            )
        )


if __name__ == "__main__":
    main()
