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
from fulcrum.diagnosis import blocking
from fulcrum.errors import ArtifactError, FulcrumError
from fulcrum.recipe import ServeSection
from fulcrum.runtime import init_ray
from fulcrum.serve.app import build_app
from fulcrum.serve.config import AppArgs, CanaryArgs
from fulcrum.serve.gateway import read_token
from fulcrum.storage import is_uri

IMPORT_PATH = "fulcrum.serve.app:build_app"  # what a Serve config names


def check_deployable(args: AppArgs) -> None:
    """Refuse here, where the error reaches the user as one line, rather than in a replica,
    where it would surface as a failed deployment after retries: a missing or corrupted
    artifact, a model that has not learned or a compressed variant that failed its parity
    gate (unless forced), and a bearer token that is configured but absent."""
    for model in args.models:
        artifact = open_artifact(model.artifact, kind="export")
        not_learned = blocking(artifact.manifest.warnings)
        if not_learned and not model.force:
            raise ArtifactError(
                f"{model.artifact}: not served: {not_learned[0]['text']}. Retrain (see the "
                "training output for what to try), or force it (--force)"
            )
        if artifact.manifest.refusal and not model.force:
            raise ArtifactError(
                f"{model.artifact}: not deployable: {artifact.manifest.refusal}. Serve another variant, raise "
                "compress.max_metric_drop and compress again, or force it (fulcrum serve --force)"
            )
        if model.assistant:
            open_artifact(model.assistant, kind="assistant")
        if model.canary is not None:
            check_deployable(args.model_copy(update={"models": [model.canary_model()]}))
    try:
        read_token(args)
    except RuntimeError as error:
        raise FulcrumError(f"serve.{error}") from None


def start(
    models: dict[str, str | Path] | str | Path,
    section: ServeSection,
    force: bool = False,
    assistants: dict[str, str | Path] | None = None,
    canaries: dict[str, CanaryArgs] | None = None,
) -> str:
    """Deploy and return the base URL once every model is ready (/readyz). `models`: URL
    name -> export artifact, or one artifact, served under its recipe's name;
    `assistants`: URL name -> the assistant artifact that model replies with; `canaries`:
    URL name -> a new version answering a share of its requests. Deploying again while the
    application runs updates it in place: Serve starts the new replicas, then drains the
    old ones, so a canary comes, is promoted or goes with no request refused."""
    if not isinstance(models, dict):
        models = {served_name(models): models}
    # Replicas run in another working directory (and maybe on another node); a URI stays
    # one, and each replica's node fetches the artifact from it.
    args = AppArgs.serving(
        {name: _absolute(path) for name, path in models.items()},
        section,
        force,
        {name: _absolute(path) for name, path in (assistants or {}).items()},
        {
            name: canary.model_copy(update={"artifact": str(_absolute(canary.artifact))})
            for name, canary in (canaries or {}).items()
        },
    )
    check_deployable(args)
    init_ray()
    from ray import serve

    # Serve logs every request and replica event at INFO; a demo or a CLI session wants
    # warnings and errors only (the replicas' log files keep the rest).
    quiet = {"log_level": "WARNING", "enable_access_log": False}
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    serve.start(http_options={"host": section.host, "port": section.port}, logging_config=quiet)
    serve.run(
        build_app(args),
        name=section.app_name,
        route_prefix=section.route_prefix,
        logging_config=quiet,
    )
    base_url = f"http://{section.host}:{section.port}{section.route_prefix.rstrip('/')}"
    wait_until_ready(base_url)
    return base_url


def _absolute(path: str | Path) -> str | Path:
    return path if is_uri(path) else Path(path).resolve()


def served_name(export_dir: str | Path) -> str:
    """The URL name an artifact is served under by default: its recipe's name, with the
    variant's for a compressed variant (`demo`, `demo-dynamic-int8`)."""
    manifest = open_artifact(export_dir, kind="export", verify=False).manifest
    variant = manifest.variant_name
    return f"{manifest.name}-{variant}" if variant else manifest.name


def serve_config(
    models: dict[str, str | Path],
    section: ServeSection,
    force: bool = False,
    assistants: dict[str, str | Path] | None = None,
    canaries: dict[str, CanaryArgs] | None = None,
) -> dict[str, Any]:
    """A Serve config file (what `serve deploy` reads) for `models`, checked against
    Ray's own schema before anyone deploys it. Paths stay as given: a relative one resolves
    against the working directory `serve run` or `ray start` was started in."""
    from ray.serve.schema import ServeDeploySchema

    args = AppArgs.serving(models, section, force, assistants, canaries)
    check_deployable(args)
    config = {
        "proxy_location": "EveryNode",
        "http_options": {"host": section.host, "port": section.port},
        "logging_config": {"log_level": "WARNING", "enable_access_log": False},
        "applications": [
            {
                "name": section.app_name,
                "route_prefix": section.route_prefix,
                "import_path": IMPORT_PATH,
                "args": _readable(args.model_dump(mode="json", exclude_none=True)),
            }
        ],
    }
    ServeDeploySchema.model_validate(config)
    return config


def _readable(args: dict[str, Any]) -> dict[str, Any]:
    """Each model's name and artifact first: what a person looks for in the file."""
    first = ("name", "artifact")
    return {
        **args,
        "models": [
            {key: model[key] for key in first} | {k: v for k, v in model.items() if k not in first}
            for model in args["models"]
        ],
    }


def stop(section: ServeSection) -> None:
    """Delete this application. Serve itself is left to the cluster: a local one started
    by this process goes, Serve with it, when the process ends, and on a shared cluster
    Serve stays up for the next deployment (`serve shutdown` stops it). Shutting Serve down
    from here would kill its controller mid-call, which Ray reports on this terminal as a
    failed task to be retried."""
    from ray import serve
    from ray.serve.context import _connect

    if _connect(raise_if_no_controller_running=False) is None:
        return  # Serve is already down
    serve.delete(section.app_name)


def wait_until_ready(base_url: str, timeout_s: float = 120.0) -> None:
    deadline = time.time() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{base_url}/readyz", timeout=10) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.time() > deadline:
            raise TimeoutError(f"{base_url}/readyz did not say ready within {timeout_s:.0f}s")
        time.sleep(0.5)


def predict(base_url: str, name: str, texts: list, timeout_s: float = 30.0) -> dict[str, Any]:
    """The answers to `texts`, or to (text, text_pair) tuples for a text-pair model."""
    body = {"pairs": texts} if texts and isinstance(texts[0], tuple | list) else {"texts": texts}
    return _post(f"{base_url}/v1/models/{name}/predict", body, timeout_s)


def reply(base_url: str, name: str, text: str, timeout_s: float = 30.0) -> dict[str, Any]:
    return _post(f"{base_url}/v1/assistants/{name}/reply", {"text": text}, timeout_s)


def _post(url: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.loads(response.read())
