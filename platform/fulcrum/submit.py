"""`fulcrum submit RECIPE --address http://HEAD:8265`: the pipeline as a Ray job on a
remote cluster, with the Ray Jobs SDK. The job's working directory holds only the recipe,
resolved here (overrides applied, data paths absolute), so it may live anywhere on the
submitting machine; the job runs `python -m fulcrum run recipe.yaml --no-serve` with the
fulcrum installed on the cluster. The job's logs stream back until it ends.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from fulcrum.errors import FulcrumError
from fulcrum.log import stage_log
from fulcrum.recipe import Recipe

log = stage_log("submit")
RECIPE_FILE = "recipe.yaml"
# What the job needs from the index when the cluster's image does not have it (--pip).
PINNED = ("torch", "ray", "transformers", "peft", "deepspeed", "onnxruntime", "captum")


def runtime_env(recipe: Recipe, pip: bool, working_dir: Path) -> dict[str, Any]:
    """The recipe goes into `working_dir`, which Ray uploads as the job's own."""
    (working_dir / RECIPE_FILE).write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
    env: dict[str, Any] = {"working_dir": str(working_dir), "env_vars": {"HF_HUB_OFFLINE": "1"}}
    if pip:
        env["pip"] = pinned_requirements()
    return env


def pinned_requirements() -> list[str]:
    """The versions installed here, so the cluster runs what was tested here."""
    pins = []
    for name in PINNED:
        try:
            pins.append(f"{name}=={metadata.version(name).split('+')[0]}")
        except metadata.PackageNotFoundError:
            continue
    return pins


def submit(
    recipe: Recipe,
    address: str,
    output_dir: str | None = None,
    pip: bool = False,
    follow: bool = True,
) -> tuple[str, str]:
    """(job id, final status; "SUBMITTED" when not following)."""
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    # Ray 2.60 clusters authenticate with a token; the SDK sends it only when asked.
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    _check_reachable(address)
    entrypoint = f"python -m fulcrum run {RECIPE_FILE} --no-serve"
    if output_dir:
        entrypoint += f" --output-dir {shlex.quote(str(output_dir))}"
    try:
        client = JobSubmissionClient(address)
        with tempfile.TemporaryDirectory(prefix="fulcrum-submit-") as working_dir:
            job_id = client.submit_job(
                entrypoint=entrypoint,
                runtime_env=runtime_env(recipe, pip, Path(working_dir)),
                metadata={"fulcrum_recipe": recipe.name, "recipe_hash": recipe.hash[:12]},
            )
    except AuthenticationError as error:
        refused = str(error).splitlines()[0]
        raise FulcrumError(
            f"--address {address}: the job server refused this machine's token ({refused}); "
            "set RAY_AUTH_TOKEN, or RAY_AUTH_TOKEN_PATH to a file holding it, to the "
            "cluster's token"
        ) from None
    except OSError as error:  # the SDK's ConnectionError, or requests' own (an OSError)
        raise FulcrumError(
            f"--address {address}: cannot reach the Ray job server ({error})"
        ) from None
    log.info(f"job {job_id} on {address}: {entrypoint}")
    if not follow:
        return job_id, "SUBMITTED"

    async def tail() -> None:
        async for lines in client.tail_job_logs(job_id):
            sys.stdout.write(lines)
            sys.stdout.flush()

    asyncio.run(tail())
    status = str(client.get_job_status(job_id).value)
    log.info(f"job {job_id}: {status}")
    return job_id, status


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """One quick request first: the SDK retries an unreachable head for minutes."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{address.rstrip('/')}/api/version", timeout=timeout_s):
            return
    except urllib.error.HTTPError:
        return  # it answers (perhaps asking for the token): the SDK takes it from here
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise FulcrumError(
            f"--address {address}: cannot reach the Ray job server ({reason})"
        ) from None
