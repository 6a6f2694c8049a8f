"""One local Ray cluster for the whole test session (a head node with its dashboard, so
jobs can be submitted to it), and a tiny-model recipe factory."""

import os
import socket
import sys
from pathlib import Path

import pytest

from fulcrum.recipe import Recipe, validate_recipe

from ..conftest import REPOSITORY, write_keyword_csv

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def ray_cluster():
    import ray

    # Job entry points run `python`; make it this interpreter's, with fulcrum installed.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    dashboard_port = free_port()
    context = ray.init(
        num_cpus=4,  # 2 cores, but logical CPUs for 2 train workers + Serve replicas + job driver
        include_dashboard=True,
        dashboard_host="127.0.0.1",
        dashboard_port=dashboard_port,
        log_to_driver=True,
        # Replicas import serve/ by name, as they do under the CLI (see serve/launch.py).
        runtime_env={"py_modules": [str(REPOSITORY / "serve")]},
    )
    os.environ["RAY_ADDRESS"] = context.address_info["address"]
    yield {
        "address": context.address_info["address"],
        "dashboard": f"http://127.0.0.1:{dashboard_port}",
    }
    try:
        from ray import serve

        serve.shutdown()
    finally:
        ray.shutdown()
        os.environ.pop("RAY_ADDRESS", None)


@pytest.fixture(scope="session")
def serve_port() -> int:
    """Serve keeps its first HTTP port for the cluster's lifetime; every test uses this one."""
    return free_port()


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


@pytest.fixture(scope="session")
def pipeline(ray_cluster, tiny_recipe_factory, tmp_path_factory):
    """recipe -> training artifact -> export artifact on the tiny BERT, shared by the
    pipeline and Serve tests."""
    from fulcrum.compress.export import export
    from fulcrum.train.stage import train

    recipe = tiny_recipe_factory(tmp_path_factory.mktemp("artifacts"))
    train_dir = train(recipe)
    export_dir = export(recipe, train_dir)
    return recipe, train_dir, export_dir


COMPRESS_VARIANTS = ["fp32", "dynamic_int8", "static_int8", "fp16"]


@pytest.fixture(scope="session")
def compressed(pipeline):
    """Every kind of variant from the pipeline's training artifact, in one compress run."""
    from fulcrum.compress.stage import compress
    from fulcrum.recipe import validate_recipe

    recipe, train_dir, _ = pipeline
    recipe = validate_recipe(
        {**recipe.to_dict(), "compress": {"variants": COMPRESS_VARIANTS, "latency_texts": 16}}
    )
    return recipe, compress(recipe, train_dir)
