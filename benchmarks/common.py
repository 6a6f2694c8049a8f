"""Shared by the benchmark scripts: where the real data lives, tables, result files."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FULCRUM_SHARED_DATA", REPOSITORY.parent / "shared" / "data"))
RESULTS = REPOSITORY / "benchmarks" / "results"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(REPOSITORY / "platform"))

from fulcrum.log import configure as configure_output  # noqa: E402  (after the path above)

configure_output()  # Fulcrum's [stage] lines beside the benchmark's own, as the CLI shows them


def data_file(*parts: str) -> str:
    path = SHARED_DATA.joinpath(*parts)
    if not path.is_file():
        raise SystemExit(f"{path}: not found; set FULCRUM_SHARED_DATA to the shared data folder")
    return str(path)


def phrasebank_data(subset: str = "AllAgree") -> dict[str, Any]:
    """Financial PhraseBank as a recipe's data section: seeded 80/10/10 stratified split.
    50/66/75Agree are ISO-8859-1; AllAgree is UTF-8 in this copy."""
    return {
        "path": data_file("financial_phrasebank", f"Sentences_{subset}.txt"),
        "format": "lines",
        "encoding": "utf-8" if subset == "AllAgree" else "latin-1",
        "validation_fraction": 0.1,
        "test_fraction": 0.1,
    }


def write_labelled_jsonl(target: Path, rows) -> str:
    """(text, label) rows as JSONL under artifacts/ (never committed), written aside and
    renamed into place; the path, for a recipe's data section."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_suffix(".partial")
    with open(staging, "w") as handle:
        for text, label in rows:
            handle.write(json.dumps({"text": text, "label": label}) + "\n")
    staging.replace(target)
    return str(target)


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    """A Markdown table: columns are (key, header); floats get 3 significant decimals."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3f}" if abs(value) < 100 else f"{value:,.0f}"
        return str(value)

    lines = ["| " + " | ".join(header for _, header in columns) + " |", "|" + "---|" * len(columns)]
    lines += [
        "| " + " | ".join(cell(row.get(key, "")) for key, _ in columns) + " |" for row in rows
    ]
    return "\n".join(lines)


def splice_block(body: str, name: str, text: str, where: Path) -> str:
    """`body` with what lies between `<!-- {name}: begin -->` and `<!-- {name}: end -->`
    replaced by `text`: a generated table inside hand-written docs."""
    start, end = f"<!-- {name}: begin -->", f"<!-- {name}: end -->"
    if start not in body or end not in body:
        raise SystemExit(f"{where}: no `{start}` ... `{end}` block to write the {name} into")
    head, tail = body[: body.index(start)], body[body.index(end) + len(end) :]
    return f"{head}{start}\n{text}\n{end}{tail}"


def machine() -> dict[str, Any]:
    import torch

    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def write_results(name: str, content: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = RESULTS / f"{name}.json"
    staging = target.with_suffix(".json.partial")
    staging.write_text(json.dumps({"machine": machine(), **content}, indent=2) + "\n")
    staging.replace(target)  # a benchmark killed mid-write leaves the previous file whole
    return target


def steps_csv_rates(artifact_dir: Path, skip_first: int = 1) -> dict[str, float]:
    """Steady-state throughput from a training artifact's step log (first windows skipped:
    they include engine start-up and the first allocations)."""
    import csv

    with open(Path(artifact_dir) / "logs" / "steps.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))[skip_first:]
    samples = [float(row["samples_per_s"]) for row in rows]
    tokens = [float(row["tokens_per_s"]) for row in rows]
    memory = max(float(v) for row in rows for k, v in row.items() if k.startswith("peak_rss_mb"))
    return {
        "samples_per_s": sum(samples) / len(samples),
        "tokens_per_s": sum(tokens) / len(tokens),
        "peak_rss_mb": memory,
    }


def settled_values(artifact) -> dict[str, Any]:
    """What a training artifact's run settled by itself (key -> value), for a results row."""
    return {item["key"]: item["value"] for item in artifact.manifest.settled}


def train_or_reuse(raw: dict[str, Any]):
    """(recipe, training artifact): a finished artifact trained from the same recipe is read
    back rather than trained again; an interrupted run resumes from its last checkpoint."""
    from fulcrum.artifacts import artifact_dir, open_artifact
    from fulcrum.recipe import validate_recipe
    from fulcrum.train.stage import train

    recipe = validate_recipe(raw)
    finished = artifact_dir(recipe, "train")
    if (finished / "manifest.json").is_file():
        artifact = open_artifact(finished, kind="train")
        if artifact.manifest.recipe_hash == recipe.hash:
            print(f"[benchmark] {recipe.name}: reusing {finished} (same recipe)", flush=True)
            return recipe, artifact
    return recipe, open_artifact(train(recipe), kind="train")


def subsampled_splits(section: dict[str, Any], target: Path, train_rows: int) -> dict[str, str]:
    """The dataset's seeded splits written as JSONL under `target` (artifacts/, never
    committed), the training split cut (stratified) to `train_rows`: the low-data regime,
    or a benchmark that must fit in minutes. Validation and test stay whole. Returns the
    recipe's data section."""
    from fulcrum.data import load_splits
    from fulcrum.data.splits import stratified_split
    from fulcrum.recipe import DataSection

    splits_names = ("train", "validation", "test")
    if not (target / "test.jsonl").is_file():
        splits = load_splits(DataSection(**section), seed=13)
        labels = splits.train.column("label").to_numpy()
        share = min(1.0, train_rows / len(labels))
        keep = (
            stratified_split(labels, 1 - share, 0.0, seed=13)[0]
            if share < 1
            else range(len(labels))
        )
        target.mkdir(parents=True, exist_ok=True)
        names = splits.label_names
        for split, rows in zip(
            splits_names, (splits.train.take(list(keep)), splits.validation, splits.test)
        ):
            with open(target / f"{split}.jsonl", "w") as handle:
                for text, label in zip(
                    rows.column("text").to_pylist(), rows.column("label").to_pylist(), strict=True
                ):
                    handle.write(json.dumps({"text": text, "label": names[label]}) + "\n")
    return {split: str((target / f"{split}.jsonl").resolve()) for split in splits_names}
