"""Start the classifier application on Ray Serve from a recipe's serve section, wait until it
answers, and stop it again. Used by `fulcrum serve` and `fulcrum run`."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from fulcrum.artifacts import open_artifact
from fulcrum.errors import ArtifactError
from fulcrum.recipe import ServeSection
from fulcrum.runtime import init_ray
from serve.app import AppArgs, build_app

# Replicas import this package by name when they unpickle the deployment class; Ray ships
# it to them, so serving works from any working directory and on remote nodes.
SERVE_PACKAGE = Path(__file__).resolve().parent


def app_args(export_dir: str | Path, section: ServeSection) -> AppArgs:
    return AppArgs(
        artifact=str(Path(export_dir).resolve()),
        max_batch_size=section.max_batch_size,
        batch_wait_timeout_s=section.batch_wait_timeout_s,
        max_texts_per_request=section.max_texts_per_request,
        max_chars_per_text=section.max_chars_per_text,
        max_ongoing_requests=section.max_ongoing_requests,
        num_cpus=section.num_cpus,
        min_replicas=section.autoscaling.min_replicas,
        max_replicas=section.autoscaling.max_replicas,
        target_ongoing_requests=section.autoscaling.target_ongoing_requests,
    )


def start(export_dir: str | Path, section: ServeSection, force: bool = False) -> str:
    """Deploy and return the base URL once the application answers /healthz. A compressed
    variant that failed its parity gate is refused unless `force`."""
    # Check the artifact here, where the error reaches the user as one line, rather than
    # in a replica, where it would surface as a failed deployment after retries.
    artifact = open_artifact(export_dir, kind="export")
    if artifact.manifest.get("deployable") is False and not force:
        reasons = "; ".join(artifact.manifest.get("not_deployable_because") or ["no reason given"])
        raise ArtifactError(
            f"{export_dir}: not deployable: {reasons}. Serve another variant, raise "
            "compress.max_metric_drop and compress again, or force it (fulcrum serve --force)"
        )
    init_ray(py_modules=[str(SERVE_PACKAGE)])
    from ray import serve

    # Serve logs every request and replica event at INFO; a demo or a CLI session wants
    # warnings and errors only (the replicas' log files keep the rest).
    quiet = {"log_level": "WARNING", "enable_access_log": False}
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    serve.start(http_options={"host": section.host, "port": section.port}, logging_config=quiet)
    serve.run(
        build_app(app_args(export_dir, section)),
        name=section.app_name,
        route_prefix=section.route_prefix,
        logging_config=quiet,
    )
    base_url = f"http://{section.host}:{section.port}{section.route_prefix.rstrip('/')}"
    wait_until_healthy(base_url)
    return base_url


def stop(section: ServeSection) -> None:
    from ray import serve

    serve.delete(section.app_name)
    serve.shutdown()


def wait_until_healthy(base_url: str, timeout_s: float = 120.0) -> None:
    deadline = time.time() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.time() > deadline:
            raise TimeoutError(f"{base_url}/healthz did not answer within {timeout_s:.0f}s")
        time.sleep(0.5)


def predict(base_url: str, texts: list[str], timeout_s: float = 30.0) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{base_url}/predict",
        data=json.dumps({"texts": texts}).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.loads(response.read())
