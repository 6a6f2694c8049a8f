"""`fulcrum monitor` end to end on the pipeline's tiny model: a dated stream with a surge of
"negative" texts (here the model's `tax` label) about one company, the aggregates, the alert
with its examples and explanations, the pictures, the webhook, and a rerun on a folder that
gained a file."""

import json
import random
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer

import pandas as pd
import pytest

from fulcrum.cli import main
from fulcrum.recipe import validate_recipe

pytestmark = pytest.mark.integration

WORDS = {"apple": ["apple", "pear", "fruit"], "tax": ["tax", "invoice", "bill"]}
SURGE_DAY = 30


def _stream(path, first_day: int, days: int, rng: random.Random) -> None:
    """20 posts a day for each of $AAA and $BBB, 10% `tax`; on SURGE_DAY, 75% for $AAA."""
    lines = ["created_at,text,lang"]
    start = datetime(2015, 1, 1, tzinfo=timezone.utc)
    for day in range(first_day, first_day + days):
        for company in ("AAA", "BBB"):
            share = 0.75 if (company, day) == ("AAA", SURGE_DAY) else 0.1
            for post in range(20):
                label = "tax" if rng.random() < share else "apple"
                words = rng.sample(WORDS[label], 2)
                when = start + timedelta(days=day, minutes=37 * post)
                lines.append(f"{when:%Y-%m-%dT%H:%M:%SZ},my {words[0]} {words[1]} ${company},en")
        lines.append(f"{(start + timedelta(days=day)):%Y-%m-%dT%H:%M:%SZ},une pomme $AAA,fr")
    path.write_text("\n".join(lines) + "\n")


class _Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers["content-length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Hook.received = []
    yield f"http://127.0.0.1:{server.server_port}/alerts", _Hook.received
    server.shutdown()


def test_a_surge_alerts_with_its_texts_and_a_rerun_scores_only_the_new_file(
    pipeline, tmp_path, webhook, capsys
):
    recipe, _, export_dir = pipeline
    url, received = webhook
    stream = tmp_path / "stream"
    stream.mkdir()
    rng = random.Random(5)
    _stream(stream / "part1.csv", 0, 25, rng)
    _stream(stream / "part2.csv", 25, 15, rng)
    output = tmp_path / "monitor"
    raw = recipe.to_dict() | {
        "monitor": {
            "inputs": [str(stream)],
            "output": str(output),
            "model": str(export_dir),
            "negative_label": "tax",
            "where": {"lang": ["en"]},
            "examples": 3,
            "timelines": 2,
            "webhook": url,
        }
    }
    recipe_file = tmp_path / "monitor.yaml"
    recipe_file.write_text(json.dumps(raw))
    validate_recipe(raw)

    assert main(["monitor", str(recipe_file)]) == 0
    printed = capsys.readouterr().out
    assert "| AAA | 800 |" in printed and "| BBB | 800 |" in printed  # the French posts left out
    alerts = [json.loads(line) for line in (output / "alerts.jsonl").read_text().splitlines()]
    surge = [a for a in alerts if a["rule"] == "negative_share"]
    assert [(a["entity"], a["window_start"][:10]) for a in surge] == [("AAA", "2015-01-31")]
    (alert,) = surge
    assert alert["value"] >= 0.5 and alert["baseline"] < 0.25 and alert["count"] == 20
    assert len(alert["examples"]) == 3
    assert all(example["label"] == "tax" for example in alert["examples"])
    assert all(example["negative_words"] for example in alert["examples"])
    assert [a["entity"] for a in received] == [a["entity"] for a in alerts]  # each POSTed

    table = pd.read_parquet(output / "aggregates.parquet")
    aaa = table[table.entity == "AAA"]
    assert len(aaa) == 40 and aaa["count"].sum() == 800
    assert {"share_tax", "share_apple", "mean_p_tax"} <= set(table.columns)
    assert sorted(p.name for p in (output / "timelines").glob("*.png")) == ["AAA.png", "BBB.png"]
    assert "AAA, window from 2015-01-31" in (output / "report.html").read_text()

    # A new day's file: only it is scored; the aggregates extend; nothing is sent twice.
    _stream(stream / "part3.csv", 40, 1, rng)
    received.clear()
    assert main(["monitor", str(recipe_file)]) == 0
    printed = capsys.readouterr().out
    assert "3 input file(s), 2 of them scored by an earlier run" in printed, printed
    table = pd.read_parquet(output / "aggregates.parquet")
    assert len(table[table.entity == "AAA"]) == 41
    assert [a["window_start"][:10] for a in received if a["rule"] == "negative_share"] == []
