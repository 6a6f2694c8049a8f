"""A canary rollout under load: the served model (FPB, fp32 ONNX) gets its dynamic INT8
variant beside it as a canary, then the canary is promoted, while clients send one text per
request throughout. Counts every request answered and failed (the target is none) and which
version answered, second by second (benchmarks/results/rollout.png).

Phases: the fp32 model alone; `fulcrum serve`'s deploy with `--canary INT8 --canary-share
0.25` (Serve updates the application in place); the INT8 variant deployed as the model
(promoted); each held for `--phase-s` seconds once its deploy returns.

    python benchmarks/rollout.py [--phase-s 20] [--clients 8]

The models are benchmarks/serve_load.py's (built there, or here, if missing).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from common import REPOSITORY, RESULTS, splice_block, table, write_results
from serve_load import model_artifacts, validation_texts

from fulcrum.runtime import unclaimed_port

RESULTS_NAME = "rollout"
DOCS = REPOSITORY / "docs" / "serving.md"
SHARE = 0.25


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phase-s", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--report", action="store_true", help="only rewrite the docs table")
    args = parser.parse_args()
    if not args.report:
        results = run(args.phase_s, args.clients)
        results["command"] = " ".join(["python benchmarks/rollout.py", *sys.argv[1:]])
        write_results(RESULTS_NAME, results)
    else:
        import json

        results = json.loads((RESULTS / f"{RESULTS_NAME}.json").read_text())
    plot(results, RESULTS / f"{RESULTS_NAME}.png")
    print(report(results), flush=True)
    DOCS.write_text(splice_block(DOCS.read_text(), "rollout table", report(results), DOCS))


def run(phase_s: float, clients: int) -> dict[str, Any]:
    import httpx

    from fulcrum.artifacts import artifact_dir, open_artifact
    from fulcrum.compress.export import export
    from fulcrum.recipe import ServeSection, validate_recipe
    from fulcrum.serve import launch
    from fulcrum.serve.config import CanaryArgs

    train_dir, int8 = model_artifacts()
    recipe = validate_recipe(open_artifact(train_dir, kind="train").manifest.recipe)
    stable = artifact_dir(recipe, "export")
    if not (stable / "manifest.json").is_file():
        stable = export(recipe, train_dir)
    texts = validation_texts(train_dir)
    section = ServeSection(port=unclaimed_port(), num_cpus=1, max_batch_size=8)
    base_url = launch.start({"fpb": stable}, section)
    started = time.time()
    answers: list[tuple[float, int, str]] = []
    stop = threading.Event()

    def load(offset: int) -> None:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            index = offset
            while not stop.is_set():
                index += clients
                try:
                    response = client.post(
                        "/v1/models/fpb/predict", json={"texts": [texts[index % len(texts)]]}
                    )
                    version = response.json().get("version", "") if response.is_success else ""
                    answers.append((time.time() - started, response.status_code, version))
                except httpx.HTTPError as error:
                    answers.append((time.time() - started, 0, type(error).__name__))

    workers = [threading.Thread(target=load, args=(k,), daemon=True) for k in range(clients)]
    for worker in workers:
        worker.start()
    events = []
    try:
        time.sleep(phase_s)
        events.append(("canary deploy", time.time() - started))
        # The rollout is measured, not the variant: a variant its parity gate refused is
        # still rolled out (forced), and the report says whether it was deployable.
        canary = {"fpb": CanaryArgs(artifact=str(int8), share=SHARE, force=True)}
        launch.start({"fpb": stable}, section, canaries=canary)
        events.append(("canary serving", time.time() - started))
        time.sleep(phase_s)
        live = httpx.get(f"{base_url}/v1/models/fpb", timeout=30).json()
        events.append(("promote deploy", time.time() - started))
        launch.start({"fpb": int8}, section, force=True)
        events.append(("promoted", time.time() - started))
        time.sleep(phase_s)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=60)
        launch.stop(section)
    versions = {
        open_artifact(folder, kind="export").manifest.version: name
        for name, folder in (("fp32", stable), ("INT8", int8))
    }
    refusal = open_artifact(int8, kind="export").manifest.refusal
    return {**summarise(answers, events, versions, live), "canary_refusal": refusal}


def summarise(answers, events, versions: dict[str, str], live: dict[str, Any]) -> dict[str, Any]:
    failed = [answer for answer in answers if answer[1] != 200]
    canary_start = dict(events)["canary serving"]
    promote_start = dict(events)["promote deploy"]
    during = Counter(
        versions.get(version, version)
        for at, status, version in answers
        if status == 200 and canary_start <= at < promote_start
    )
    per_second: dict[int, Counter] = {}
    for at, status, version in answers:
        key = versions.get(version, version) if status == 200 else "failed"
        per_second.setdefault(int(at), Counter())[key] += 1
    answered_at = sorted(at for at, status, _ in answers if status == 200)
    gaps = [later - earlier for earlier, later in zip(answered_at, answered_at[1:])]
    return {
        "requests": len(answers),
        "longest_gap_s": max(gaps, default=0.0),
        "answered": len(answers) - len(failed),
        "failed": len(failed),
        "failures": [list(answer) for answer in failed[:10]],
        "share": SHARE,
        "canary_share_seen": during["INT8"] / max(1, sum(during.values())),
        "events": events,
        "per_second": {str(k): dict(v) for k, v in sorted(per_second.items())},
        "live": {
            versions.get(version, version): figures for version, figures in live["live"].items()
        },
    }


def report(results: dict[str, Any]) -> str:
    events = ", ".join(f"{name} at {at:.0f} s" for name, at in results["events"])
    live = [{"version": name, **figures} for name, figures in results["live"].items()]
    return (
        f"Command: `{results['command']}`. {results['requests']:,} requests one text each, "
        f"{results['answered']:,} answered, **{results['failed']} failed**; {events}. The "
        f"canary ({100 * results['share']:g}% share) answered "
        f"{100 * results['canary_share_seen']:.1f}% of the requests while it ran beside the "
        f"model. No request failed, but none was answered for {results.get('longest_gap_s', 0):.1f} s "
        "at the longest, during a deploy: with one replica, Serve swaps it, and the requests "
        "wait for the new one. The gateway's live comparison when the canary had run its "
        "phase:\n\n"
        + table(
            live,
            [
                ("version", "version"),
                ("requests", "requests"),
                ("errors", "5xx"),
                ("mean_latency_ms", "mean latency ms"),
            ],
        )
        + "\n\nWhich version answered, second by second: benchmarks/results/rollout.png."
        + (
            f" The INT8 canary was forced: its parity gate refused it on this run "
            f"({results['canary_refusal']}); the rollout is what is measured."
            if results.get("canary_refusal")
            else ""
        )
    )


def plot(results: dict[str, Any], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds = sorted(int(k) for k in results["per_second"])
    figure, axis = plt.subplots(figsize=(9, 3.6))
    bottom = [0] * len(seconds)
    for name, colour in (("fp32", "#4c72b0"), ("INT8", "#dd8452"), ("failed", "#c44e52")):
        counts = [results["per_second"][str(s)].get(name, 0) for s in seconds]
        axis.bar(seconds, counts, bottom=bottom, width=1.0, color=colour, label=name)
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    for index, (name, at) in enumerate(results["events"]):
        axis.axvline(at, color="#333", linestyle="--", linewidth=0.8)
        height = max(bottom) * (0.95 if index % 2 else 0.82)
        axis.text(at + 0.3, height, name, fontsize=7, ha="left", va="top")
    axis.set_xlabel("seconds")
    axis.set_ylabel("requests answered per second")
    axis.set_title(
        f"Canary rollout under load: {results['answered']:,} answered, {results['failed']} failed"
    )
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(target, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    main()
