"""Ray Serve application: several export artifacts behind one versioned HTTP API.

    POST /v1/models/{name}/predict   a batch of texts -> labels, or entity spans (NER)
    GET  /v1/models                  what is served: version, labels, metrics, lineage
    GET  /v1/models/{name}           one of them
    GET  /healthz  /readyz           liveness (the gateway) and readiness (every model)
    GET  /openapi.json  /docs        the schema

A gateway deployment (FastAPI) checks every request at the edge and routes it to one
deployment per model (serve/models.py), each with its own replicas, autoscaling and
`@serve.batch`. Splitting them lets a busy model scale without copying the others, and keeps
the model processes free of HTTP work. An application of one model runs it inside the
gateway instead (`colocate`, unset or true): one deployment, and one Ray process per request
instead of two, which is what one-text requests on a few cores are limited by.

    serve run fulcrum.serve.app:build_app   # with args; or `serve run cluster/serve.yaml`
"""

# No `from __future__ import annotations`: Serve reads build_app's type hint at run time
# to validate `args:`, and a string annotation would hand it a plain dict.

import re
from typing import Any

from ray.serve import Application

from fulcrum.serve.config import AppArgs, Autoscaling, ModelArgs
from fulcrum.serve.gateway import Gateway
from fulcrum.serve.models import ModelServer


def deployment_options(model: ModelArgs, suffix: str = "") -> dict[str, Any]:
    scaling = model.autoscaling
    return {
        "name": deployment_name(model.name) + suffix,
        "ray_actor_options": {"num_cpus": model.num_cpus},
        "max_ongoing_requests": model.max_ongoing_requests,
        "autoscaling_config": {
            "min_replicas": scaling.min_replicas,
            "initial_replicas": max(1, scaling.min_replicas),
            "max_replicas": scaling.max_replicas,
            "target_ongoing_requests": scaling.target_ongoing_requests,
            "upscale_delay_s": scaling.upscale_delay_s,
            "downscale_delay_s": scaling.downscale_delay_s,
            "look_back_period_s": scaling.look_back_period_s,
            # Replicas report their load at least twice per look-back window; with fewer
            # reports the window can hold none, read as idle, and scale down under load.
            "metrics_interval_s": min(10.0, scaling.look_back_period_s / 2),
        },
    }


CANARY_SUFFIX = "-canary"


def deployment_name(model_name: str) -> str:
    """The Serve deployment behind /v1/models/{model_name}, as `serve status` lists it
    (colocated, the gateway's own)."""
    return "model-" + re.sub(r"[^a-z0-9-]", "-", model_name)


def build_app(args: AppArgs) -> Application:
    """Typed builder: `serve run`/`serve deploy` validate the config's `args:` against AppArgs."""
    if args.colocated:
        # One deployment, named as the model's would be: the gateway loads the model and
        # scales as the model would.
        (model,) = args.models
        return Gateway.options(**deployment_options(model)).bind(args, {}, {})
    models = {
        model.name: ModelServer.options(**deployment_options(model)).bind(model)
        for model in args.models
    }
    # A canary is a deployment of its own (`model-NAME-canary`): it scales, and goes,
    # without touching the stable version's replicas.
    canaries = {
        model.name: ModelServer.options(**deployment_options(model, CANARY_SUFFIX)).bind(
            model.canary_model()
        )
        for model in args.models
        if model.canary is not None
    }
    gateway = Gateway.options(
        ray_actor_options={"num_cpus": args.gateway_num_cpus},
        max_ongoing_requests=args.gateway_max_ongoing_requests,
    )
    return gateway.bind(args, models, canaries)


__all__ = ["AppArgs", "Autoscaling", "ModelArgs", "build_app", "deployment_name"]
