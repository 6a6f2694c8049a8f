"""The monitor's logic: which entities a text is about, windows, aggregates, alert rules."""

import numpy as np
import pandas as pd
import pytest

from fulcrum.errors import DataError
from fulcrum.monitor.aggregate import aggregate, parse_times, window_starts
from fulcrum.monitor.alerts import Rules, find_alerts
from fulcrum.monitor.entities import Attribution, read_names

LABELS = ["negative", "neutral", "positive"]


def test_entities_come_from_a_column_cashtags_and_names_each_once(tmp_path):
    names = tmp_path / "names.csv"
    names.write_text("entity,alias\nAAPL,Apple\nAAPL,iPhone\nMSFT,Microsoft\n")
    attribution = Attribution(names=read_names(names))
    text = "$aapl and $MSFT up; my iPhone broke, Apple again. $T $5 US$3 $GOOG."
    assert attribution.entities(text) == ["AAPL", "MSFT", "GOOG"]  # $T: one letter
    assert attribution.entities("pineapple pie") == []  # whole words only
    assert Attribution(cashtags=False).entities("$AAPL", "fb, goog") == ["FB", "GOOG"]
    only = Attribution(only=frozenset({"MSFT"}))
    assert only.entities("$AAPL $MSFT") == ["MSFT"]


def test_a_names_file_that_contradicts_itself_names_the_row(tmp_path):
    names = tmp_path / "names.csv"
    names.write_text("entity,alias\nAAPL,Apple\nAPLE,apple\n")
    with pytest.raises(DataError, match=r"names.csv, row 3: alias 'apple' names both"):
        read_names(names)


def test_windows_are_calendar_windows_in_utc():
    times = parse_times(
        pd.Series(["2015-03-04T23:59:59Z", "2015-03-05T00:00:00+02:00", "2015-03-08T12:00"]),
        "created_at",
    )
    assert [str(t) for t in window_starts(times, "day")] == [
        "2015-03-04 00:00:00+00:00",
        "2015-03-04 00:00:00+00:00",  # 22:00 UTC on the 4th
        "2015-03-08 00:00:00+00:00",
    ]
    weeks = window_starts(times, "week")
    assert {t.weekday() for t in weeks} == {0} and str(weeks.iloc[2].date()) == "2015-03-02"
    with pytest.raises(DataError, match=r"time_column 'created_at': 1 value\(s\) are not times"):
        parse_times(pd.Series(["2015-03-04", "yesterday"]), "created_at")


def _scored(rows):
    """rows: (time, entities, label)."""
    frame = pd.DataFrame(rows, columns=["time", "entities", "label"])
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    for label in LABELS:
        frame[f"p_{label}"] = (frame["label"] == label).astype(float) * 0.8 + 0.1
    return frame


def test_aggregates_count_each_entity_per_window_with_empty_windows_kept():
    scored = _scored(
        [
            ("2015-01-01T10:00Z", ["AAPL"], "negative"),
            ("2015-01-01T11:00Z", ["AAPL", "MSFT"], "positive"),
            ("2015-01-03T09:00Z", ["AAPL"], "negative"),
            ("2015-01-03T09:30Z", [], "neutral"),  # about nobody: counted for nobody
        ]
    )
    table = aggregate(scored, LABELS, "day")
    aapl = table[table.entity == "AAPL"].reset_index(drop=True)
    assert aapl["count"].tolist() == [2, 0, 1]  # the 2nd had no posts, and is still there
    assert aapl["share_negative"].iloc[0] == 0.5 and aapl["share_negative"].iloc[2] == 1.0
    assert np.isnan(aapl["share_negative"].iloc[1])
    assert aapl["mean_p_positive"].iloc[0] == pytest.approx(0.5)
    assert table[table.entity == "MSFT"]["count"].tolist() == [1]


def _daily(entity, shares, counts):
    return pd.DataFrame(
        {
            "entity": entity,
            "window_start": pd.date_range("2015-01-01", periods=len(shares), freq="D", tz="UTC"),
            "count": counts,
            "share_negative": shares,
        }
    )


def test_a_surge_in_negative_share_alerts_once_and_noise_does_not():
    rng = np.random.default_rng(0)
    days = 60
    shares = np.clip(0.2 + rng.normal(0, 0.03, days), 0, 1)
    shares[45] = 0.6
    alerts = find_alerts(_daily("AAPL", shares, [200] * days), "negative", Rules(volume_z=None))
    assert [(a["window_start"][:10], a["rule"]) for a in alerts] == [
        ("2015-02-15", "negative_share")
    ]
    (alert,) = alerts
    assert alert["baseline"] == pytest.approx(0.2, abs=0.02) and alert["z"] > 3
    assert alert["count"] == 200 and alert["rise"] == pytest.approx(0.4, abs=0.02)


def test_small_windows_need_a_bigger_jump_and_too_small_ones_are_not_judged():
    shares = [0.2] * 30 + [0.45]
    # 12 posts: 0.25 above a 0.2 baseline is within the binomial noise of 12 texts (sd 0.115).
    assert find_alerts(_daily("X", shares, [12] * 31), "negative", Rules(volume_z=None)) == []
    # 1,200 posts: the same rise is far outside it.
    assert len(find_alerts(_daily("X", shares, [1200] * 31), "negative", Rules(volume_z=None))) == 1
    # Below min_count nothing is judged, however extreme.
    few = find_alerts(_daily("X", [0.2] * 30 + [1.0], [5] * 31), "negative", Rules(volume_z=None))
    assert few == []


def test_a_volume_surge_alerts_with_the_windows_negative_share():
    counts = [20] * 40 + [400]
    alerts = find_alerts(_daily("FB", [0.2] * 41, counts), "negative", Rules())
    assert [(a["rule"], a["count"]) for a in alerts] == [("volume", 400)]
    assert alerts[0]["negative_share"] == 0.2 and alerts[0]["baseline"] == pytest.approx(20)


def test_a_few_texts_after_silence_are_not_a_volume_surge():
    counts = [0] * 40 + [4]
    assert find_alerts(_daily("TINY", [np.nan] * 40 + [0.5], counts), "negative", Rules()) == []
