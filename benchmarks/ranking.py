"""Text pairs and ranking on real data: MovieLens as per-user rankings, TALLRec's few-shot
like/dislike prompts, and DataCLUE AFQMC's Chinese question pairs.

- `movielens`: the pairs of examples/data/write_movielens.py (a user's earlier likes beside a
  movie they rated later; each user a ranking group, split by user). The minimal pair recipe
  with LoRA and with full fine-tuning, against three baselines scored on the same test groups:
  popularity (the movie's like rate among the training users' ratings, smoothed), genre
  overlap (the candidate's genres against the user's favourite ones), and the untuned
  sentence-embedding cosine of the two texts (all-MiniLM-L6-v2). Each fine-tuned model is
  exported and compressed to dynamic INT8 (the gate's drop and the latency ratio), and the
  LoRA model is served: /rank latency for 100 candidates a request, one request at a time,
  beside OnnxClassifier.rank in this process.
- `two_stage`: the MovieLens LoRA model behind a bi-encoder prefilter (serve.rank_prefilter:
  the candidates nearest the user text by MiniLM's cosine are the only ones the pair model
  scores; the others rank below them, by cosine). Test-group metrics and the share of pairs
  scored for each kept count, beside scoring every candidate; /rank latency for 100
  candidates with the prefilter keeping 20, beside the same requests without it, same run.
- `tallrec`: AUC with 16, 64 and 256 training pairs drawn (seeded) from valid.json, 200 more
  for validation, test.json whole (examples/data/write_tallrec.py).
- `afqmc`: examples/dataclue_afqmc.yaml as written; test_public macro-F1.

Results go to benchmarks/results/ranking.json part by part (a rerun skips finished parts);
`--report` rewrites the table in docs/ranking.md.

    python benchmarks/ranking.py [--parts movielens two_stage tallrec afqmc] [--methods lora full]
        [--train-pairs N --epochs E] [--report]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from common import (
    REPOSITORY,
    RESULTS,
    SHARED_DATA,
    settled_values,
    splice_block,
    table,
    train_or_reuse,
    write_results,
)

OUTPUT = REPOSITORY / "artifacts" / "benchmarks" / "ranking"
RESULTS_NAME = "ranking"
DOCS = REPOSITORY / "docs" / "ranking.md"
COMMAND = "python benchmarks/ranking.py"
RANKING = ("auc", "group_auc", "mrr", "ndcg_5", "ndcg_10")
SERVED_CANDIDATES, SERVED_REQUESTS = 100, 30
PREFILTER_KEEPS, SERVED_KEEP = (5, 10, 20), 20


def write_data(script: str, dataset: str) -> None:
    """The example's own data writer, so the benchmark measures what a user would build."""
    source = str(SHARED_DATA / dataset)
    writer = str(REPOSITORY / "examples" / "data" / script)
    subprocess.run([sys.executable, writer, "--source", source], check=True)


# --------------------------------------------------------------------------- MovieLens


def movielens_recipe(method: str, train_pairs: int | None, epochs: int | None) -> dict[str, Any]:
    """examples/movielens_ranker.yaml's recipe; with `train_pairs`, trained on about that
    many of its training pairs (whole users, seeded), validated and tested on the same users
    as the whole recipe: what a 2-core CPU trains in minutes."""
    data = {
        "path": str(REPOSITORY / "artifacts" / "data" / "movielens" / "pairs.jsonl"),
        "text_column": "history",
        "text_pair_column": "candidate",
        "group_column": "user",
    }
    raw: dict[str, Any] = {
        "name": f"movielens-{method}" + (f"-{train_pairs}" if train_pairs else ""),
        "output_dir": str(OUTPUT / "runs"),
        "task": {"type": "text_pair_classification"},
        "data": data if train_pairs is None else fewer_training_users(data, train_pairs),
        "compress": {"variants": ["dynamic_int8"]},
    }
    if method != "lora":
        raw["peft"] = {"method": method}
    if epochs is not None:
        raw["train"] = {"epochs": epochs}
    return raw


def fewer_training_users(data: dict[str, Any], pairs: int) -> dict[str, Any]:
    """The recipe's own splits written out, the training split cut to about `pairs` pairs
    of whole users (seeded); the data section that reads them."""
    import numpy as np

    from fulcrum.data import load_splits
    from fulcrum.recipe import DataSection

    splits = load_splits(DataSection(**data), seed=0, task="text_pair_classification")
    users = splits.train["group"].to_pylist()
    kept, total = set(), 0
    for user in np.random.default_rng(0).permutation(sorted(set(users))):
        if total >= pairs:
            break
        kept.add(user)
        total += users.count(user)
    tables = {
        "train": splits.train.filter([user in kept for user in users]),
        "validation": splits.validation,
        "test": splits.test,
    }
    folder = OUTPUT / "data" / f"movielens-{pairs}"
    folder.mkdir(parents=True, exist_ok=True)
    section = {"group_column": "user", "text_column": "history", "text_pair_column": "candidate"}
    for split, part in tables.items():
        rows = [
            {
                "history": row["text"],
                "candidate": row["text_pair"],
                "user": row["group"],
                "label": splits.label_names[row["label"]],
            }
            for row in part.to_pylist()
        ]
        target = folder / f"{split}.jsonl"
        target.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
        section[split] = str(target)
    return section


def test_groups(settled) -> dict[str, Any]:
    """The test split as the model sees it: texts, gold answers (like = positive), groups."""
    from fulcrum.data import recipe_splits

    splits = recipe_splits(settled)
    test = splits.test
    return {
        "history": test.column("text").to_pylist(),
        "candidate": test.column("text_pair").to_pylist(),
        "positive": [
            label == splits.label_names.index("like") for label in test.column("label").to_pylist()
        ],
        "group": test.column("group").to_pylist(),
        "train_users": set(splits.train.column("group").to_pylist()),
    }


def scored(scores, groups: dict[str, Any]) -> dict[str, float]:
    import numpy as np

    from fulcrum.ranking import ranking_counts, ranking_metrics

    counts = ranking_counts(np.asarray(scores), np.asarray(groups["positive"]), groups["group"])
    return {key: value for key, value in ranking_metrics(counts).items() if key in RANKING}


def baselines(groups: dict[str, Any]) -> list[dict[str, Any]]:
    import csv

    from fulcrum.inference.embedder import cached_embedder

    with open(
        SHARED_DATA / "movielens_small" / "movies.csv", newline="", encoding="utf-8"
    ) as handle:
        rows = list(csv.DictReader(handle))
    movies = {row["title"]: row["genres"].split("|") for row in rows}
    by_title = {row["title"]: row["movieId"] for row in rows}
    likes, ratings = defaultdict(int), defaultdict(int)
    with open(
        SHARED_DATA / "movielens_small" / "ratings.csv", newline="", encoding="utf-8"
    ) as handle:
        for row in csv.DictReader(handle):
            if row["userId"] in groups["train_users"]:
                ratings[row["movieId"]] += 1
                likes[row["movieId"]] += float(row["rating"]) >= 4.0
    titles = [candidate.split(". Genres: ")[0] for candidate in groups["candidate"]]
    prior = sum(likes.values()) / max(sum(ratings.values()), 1)
    popularity = [(likes[by_title[t]] + 10 * prior) / (ratings[by_title[t]] + 10) for t in titles]
    favourites = [
        history.rpartition("Likes most: ")[2].split(", ") for history in groups["history"]
    ]
    overlap = [
        len(set(movies.get(title, [])) & set(liked)) / max(len(set(movies.get(title, []))), 1)
        for title, liked in zip(titles, favourites)
    ]
    embedder = cached_embedder("builtin:minilm", max_length=256)
    cosine = (embedder.embed(groups["history"]) * embedder.embed(groups["candidate"])).sum(-1)
    return [
        {"model": "popularity (training users' like rate)", **scored(popularity, groups)},
        {"model": "genre overlap", **scored(overlap, groups)},
        {"model": "sentence-embedding cosine, untuned (MiniLM)", **scored(cosine, groups)},
    ]


def fine_tuned(
    method: str, groups: dict[str, Any] | None, train_pairs: int | None, epochs: int | None
) -> tuple[dict[str, Any], Any]:
    from fulcrum.compress.export import export
    from fulcrum.compress.stage import compress, variant_dir
    from fulcrum.inference import OnnxClassifier
    from fulcrum.recipe import validate_recipe

    written, trained = train_or_reuse(movielens_recipe(method, train_pairs, epochs))
    settled = validate_recipe(trained.manifest.settled_recipe)
    groups = groups or test_groups(settled)
    exported = export(written, trained.path)
    compressed = compress(written, trained.path)
    rows = {}
    for name, folder in (("fp32", exported), ("int8", variant_dir(compressed, "dynamic-int8"))):
        model = OnnxClassifier(folder)
        started = time.perf_counter()
        scores = model.predict(list(zip(groups["history"], groups["candidate"])))
        seconds = time.perf_counter() - started
        rows[name] = {
            **scored([answer["probabilities"]["like"] for answer in scores], groups),
            "pairs_per_s": len(scores) / seconds,
        }
    return (
        {
            "model": f"fine-tuned pair model, {method}"
            + (f", {trained.metrics['training_rows']:,} pairs" if train_pairs else "")
            + f", {settled.train.epochs} epochs",
            **rows["fp32"],
            "int8": rows["int8"],
            "settled": settled_values(trained),
            "train_s": trained.metrics["train_seconds"],
            "validation": trained.metrics["validation"],
        },
        (written, exported, groups),
    )


def rank_requests(groups: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """SERVED_REQUESTS (user text, SERVED_CANDIDATES movies) requests from the test split."""
    users = sorted(set(groups["group"]))[:SERVED_REQUESTS]
    pool = groups["candidate"]
    return [
        (
            groups["history"][groups["group"].index(user)],
            [pool[(i * 7 + k) % len(pool)] for k in range(SERVED_CANDIDATES)],
        )
        for i, user in enumerate(users)
    ]


def served_milliseconds(written, exported: Path, requests, prefilter: int | None = None):
    """Each request's /rank time through Serve, one at a time, timed whatever the model
    learned (a run that training flagged is served all the same)."""
    import httpx

    from fulcrum.recipe import validate_recipe
    from fulcrum.serve import launch

    raw = written.to_dict()
    section = validate_recipe({**raw, "serve": {**raw["serve"], "rank_prefilter": prefilter}}).serve
    base_url = launch.start({"movielens": exported}, section, force=True)
    try:
        client = httpx.Client(base_url=base_url, timeout=60)
        served = []
        for query, candidates in requests:
            body = {
                "query": query,
                "candidates": [{"id": str(k), "text": t} for k, t in enumerate(candidates)],
            }
            started = time.perf_counter()
            response = client.post("/v1/models/movielens/rank", json=body)
            served.append(1000 * (time.perf_counter() - started))
            response.raise_for_status()
    finally:
        launch.stop(section)
    return served


def served_latency(written, exported: Path, groups: dict[str, Any]) -> dict[str, Any]:
    """/rank with SERVED_CANDIDATES candidates a request, one at a time, beside
    OnnxClassifier.rank on the same requests in this process (the baseline)."""
    import numpy as np

    from fulcrum.inference import OnnxClassifier

    requests = rank_requests(groups)
    model = OnnxClassifier(exported, threads=1)
    local = []
    for query, candidates in requests:
        started = time.perf_counter()
        model.rank(query, candidates)
        local.append(1000 * (time.perf_counter() - started))
    served = served_milliseconds(written, exported, requests)
    return {
        "candidates": SERVED_CANDIDATES,
        "requests": len(requests),
        "served_p50_ms": float(np.percentile(served, 50)),
        "served_p95_ms": float(np.percentile(served, 95)),
        "in_process_p50_ms": float(np.percentile(local, 50)),
        "ratio_p50": float(np.percentile(local, 50) / np.percentile(served, 50)),
    }


def run_movielens(
    methods: list[str], train_pairs: int | None, epochs: int | None
) -> dict[str, Any]:
    write_data("write_movielens.py", "movielens_small")
    rows, groups, latency = [], None, None
    for method in methods:
        row, (written, exported, groups) = fine_tuned(method, groups, train_pairs, epochs)
        rows.append(row)
        if latency is None:
            latency = served_latency(written, exported, groups)
    return {
        "rows": baselines(groups) + rows,
        "serving": latency,
        "test_groups": len(set(groups["group"])),
    }


def run_two_stage(train_pairs: int | None, epochs: int | None) -> dict[str, Any]:
    import numpy as np

    from fulcrum.artifacts import artifact_dir
    from fulcrum.inference import OnnxClassifier
    from fulcrum.inference.embedder import cached_embedder, nearest
    from fulcrum.recipe import validate_recipe

    write_data("write_movielens.py", "movielens_small")
    written, trained = train_or_reuse(movielens_recipe("lora", train_pairs, epochs))
    exported = artifact_dir(written, "export")
    if not (exported / "manifest.json").is_file():
        from fulcrum.compress.export import export

        exported = export(written, trained.path)
    groups = test_groups(validate_recipe(trained.manifest.settled_recipe))
    model = OnnxClassifier(exported)
    positive = model.labels[1]
    pair_scores = np.array(
        [
            answer["probabilities"][positive]
            for answer in model.predict(list(zip(groups["history"], groups["candidate"])))
        ]
    )
    embedder = cached_embedder("builtin:minilm", model.max_length)
    history, candidate = embedder.embed(groups["history"]), embedder.embed(groups["candidate"])
    cosine = (history * candidate).sum(-1)
    members = defaultdict(list)
    for index, group in enumerate(groups["group"]):
        members[group].append(index)
    rows = [{"keep": "all", "pairs_scored": 1.0, **scored(pair_scores, groups)}]
    for keep in PREFILTER_KEEPS:
        # Kept candidates rank by the pair model; the rest below them (scores under 0), by
        # cosine: what /rank's ranking and its left-out candidates amount to.
        two_stage, kept_pairs = cosine - 3.0, 0
        for indices in members.values():
            query = history[indices[0]]
            kept = [indices[i] for i in nearest(query, candidate[indices], keep)]
            two_stage[kept] = pair_scores[kept]
            kept_pairs += len(kept)
        rows.append(
            {
                "keep": keep,
                "pairs_scored": kept_pairs / len(pair_scores),
                **scored(two_stage, groups),
            }
        )
    requests = rank_requests(groups)
    every = served_milliseconds(written, exported, requests)
    filtered = served_milliseconds(written, exported, requests, prefilter=SERVED_KEEP)
    return {
        "rows": rows,
        "test_groups": len(members),
        "serving": {
            "candidates": SERVED_CANDIDATES,
            "requests": len(requests),
            "keep": SERVED_KEEP,
            "distinct_candidates": len({text for _, candidates in requests for text in candidates}),
            "every_p50_ms": float(np.percentile(every, 50)),
            "every_p95_ms": float(np.percentile(every, 95)),
            "prefilter_p50_ms": float(np.percentile(filtered, 50)),
            "prefilter_p95_ms": float(np.percentile(filtered, 95)),
            "speedup_p50": float(np.percentile(every, 50) / np.percentile(filtered, 50)),
        },
    }


# --------------------------------------------------------------------------- TALLRec, AFQMC


def run_tallrec() -> dict[str, Any]:
    write_data("write_tallrec.py", "tallrec_movie")
    rows = []
    for shots in (16, 64, 256):
        folder = REPOSITORY / "artifacts" / "data" / "tallrec" / str(shots)
        raw = {
            "name": f"tallrec-{shots}",
            "output_dir": str(OUTPUT / "runs"),
            "task": {"type": "text_pair_classification"},
            "data": {
                "train": str(folder / "train.jsonl"),
                "validation": str(folder / "validation.jsonl"),
                "test": str(folder / "test.jsonl"),
                "text_column": "user",
                "text_pair_column": "movie",
            },
            "train": {"metric": "auc"},
        }
        _, trained = train_or_reuse(raw)
        test = trained.metrics["test"]
        rows.append(
            {
                "shots": shots,
                "auc": test["auc"],
                "accuracy": test["accuracy"],
                "train_s": trained.metrics["train_seconds"],
            }
        )
    return {"rows": rows}


def run_afqmc() -> dict[str, Any]:
    from fulcrum.recipe import load_recipe

    recipe = load_recipe(REPOSITORY / "examples" / "dataclue_afqmc.yaml")
    raw = {**recipe.to_dict(), "output_dir": str(OUTPUT / "runs")}
    _, trained = train_or_reuse(raw)
    return {
        "test": trained.metrics["test"],
        "settled": settled_values(trained),
        "train_s": trained.metrics["train_seconds"],
    }


# --------------------------------------------------------------------------- results


def load_results() -> dict[str, Any]:
    path = RESULTS / f"{RESULTS_NAME}.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def report(results: dict[str, Any]) -> str:
    commands = sorted(
        {
            part.get("command", COMMAND)
            for part in results.values()
            if isinstance(part, dict) and "wall_s" in part
        }
    )
    shown = ", ".join(f"`{command}`" for command in commands) or f"`{COMMAND}`"
    parts = [f"Command: {shown}. Test splits; ranking metrics per user group."]
    movielens = results.get("movielens")
    if movielens:
        rows = [
            {**row, **{f"int8_{k}": v for k, v in row.get("int8", {}).items()}}
            for row in movielens["rows"]
        ]
        parts.append(
            f"MovieLens ({movielens['test_groups']} test users):\n\n"
            + table(
                rows,
                [
                    ("model", "model"),
                    *[(k, k) for k in RANKING],
                    ("int8_ndcg_10", "INT8 ndcg_10"),
                    ("pairs_per_s", "pairs/s fp32"),
                    ("int8_pairs_per_s", "pairs/s INT8"),
                    ("train_s", "train s"),
                ],
            )
        )
        serving = movielens.get("serving")
        if serving:
            parts.append(
                f"/rank, {serving['candidates']} candidates a request, {serving['requests']} requests one at a time: "
                f"p50 {serving['served_p50_ms']:.0f} ms, p95 {serving['served_p95_ms']:.0f} ms through Serve; "
                f"OnnxClassifier.rank in-process p50 {serving['in_process_p50_ms']:.0f} ms "
                f"(in-process / served: {serving['ratio_p50']:.2f}x)."
            )
    two_stage = results.get("two_stage")
    if two_stage:
        serving = two_stage["serving"]
        parts.append(
            f"Two stages on MovieLens ({two_stage['test_groups']} test users): the LoRA pair "
            "model scores only the candidates a MiniLM prefilter keeps per user (the rest "
            "rank below, by cosine):\n\n"
            + table(
                two_stage["rows"],
                [
                    ("keep", "kept per user"),
                    ("pairs_scored", "pairs scored"),
                    *[(k, k) for k in RANKING],
                ],
            )
            + f"\n\n/rank, {serving['candidates']} candidates a request, {serving['requests']} requests one at a time: "
            f"p50 {serving['every_p50_ms']:.0f} ms (p95 {serving['every_p95_ms']:.0f}) scoring every candidate, "
            f"{serving['prefilter_p50_ms']:.0f} ms (p95 {serving['prefilter_p95_ms']:.0f}) with rank_prefilter {serving['keep']}: "
            f"{serving['speedup_p50']:.1f}x. The requests hold {serving.get('distinct_candidates', '?')} distinct movies, as a "
            "catalogue's items recur; the replica embeds each once (its cache)."
        )
    tallrec = results.get("tallrec")
    if tallrec:
        parts.append(
            "TALLRec movie, test AUC (published, LLaMA-7B + LoRA: 67.24 / 67.48 / 71.98 at 16 / 64 / 256 shots; baselines 48-54):\n\n"
            + table(
                tallrec["rows"],
                [
                    ("shots", "training pairs"),
                    ("auc", "AUC"),
                    ("accuracy", "accuracy"),
                    ("train_s", "train s"),
                ],
            )
        )
    afqmc = results.get("afqmc")
    if afqmc:
        test = afqmc["test"]
        parts.append(
            f"DataCLUE AFQMC test_public (examples/dataclue_afqmc.yaml as written): accuracy {100 * test['accuracy']:.1f}, "
            f"macro-F1 {100 * test['macro_f1']:.1f} (published: 59.04 for a 3-layer RoBERTa-wwm; human 81); "
            f"trained in {afqmc['train_s']:.0f} s."
        )
    return "\n\n".join(parts)


def write_report(results: dict[str, Any]) -> None:
    body = DOCS.read_text()
    DOCS.write_text(splice_block(body, "ranking table", report(results), DOCS))
    print(f"[benchmark] wrote the table into {DOCS}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--parts", nargs="+", default=["movielens", "two_stage", "tallrec", "afqmc"]
    )
    parser.add_argument("--methods", nargs="+", default=["lora", "full"])
    parser.add_argument(
        "--train-pairs", type=int, help="MovieLens: train on about this many pairs (whole users)"
    )
    parser.add_argument("--epochs", type=int, help="MovieLens: train.epochs (default: settled)")
    parser.add_argument("--report", action="store_true", help="only rewrite the docs table")
    args = parser.parse_args()
    results = load_results()
    if not args.report:
        runs = {
            "movielens": lambda: run_movielens(args.methods, args.train_pairs, args.epochs),
            "two_stage": lambda: run_two_stage(args.train_pairs, args.epochs),
            "tallrec": run_tallrec,
            "afqmc": run_afqmc,
        }
        for part in args.parts:
            if part in results:
                print(f"[benchmark] {part}: in {RESULTS_NAME}.json already (delete it to rerun)")
                continue
            started = time.time()
            command = " ".join(["python benchmarks/ranking.py", *sys.argv[1:]])
            results[part] = {
                **runs[part](),
                "command": command,
                "wall_s": round(time.time() - started, 1),
            }
            write_results(RESULTS_NAME, {key: v for key, v in results.items() if key != "machine"})
            print(report(results), flush=True)
    write_report(results)


if __name__ == "__main__":
    main()
