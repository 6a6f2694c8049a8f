"""Ray Serve application: an export artifact behind `POST /predict`.

One deployment with a FastAPI ingress. Texts from concurrent requests are pooled by
`@serve.batch` into one ONNX Runtime call (up to `max_batch_size` texts), which is where a
CPU replica gets its throughput. Requests are validated at the edge: a malformed one gets a
4xx JSON error naming the field, and never reaches the model.

    serve run serve.app:build_app artifact=artifacts/demo/export   # or cluster/serve.yaml
"""

# No `from __future__ import annotations`: Serve reads build_app's type hint at run time
# to validate `args:`, and a string annotation would hand it a plain dict.

import asyncio
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from ray import serve
from ray.serve import Application


class AppArgs(BaseModel):
    """The `args:` of this application in a Serve config file, validated by Serve."""

    model_config = ConfigDict(extra="forbid")

    artifact: str = Field(..., description="Path of an export artifact (model.onnx + manifest).")
    max_batch_size: int = Field(16, ge=1, description="Texts pooled into one ONNX Runtime call.")
    batch_wait_timeout_s: float = Field(0.01, ge=0, description="How long a batch waits to fill.")
    max_texts_per_request: int = Field(64, ge=1)
    max_chars_per_text: int = Field(2000, ge=1)
    max_ongoing_requests: int = Field(
        32,
        ge=1,
        description="Requests a replica holds at once; at least max_batch_size to fill batches.",
    )
    num_cpus: float = Field(1.0, gt=0, description="CPUs per replica; ONNX Runtime threads follow.")
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(2, ge=1)
    target_ongoing_requests: float = Field(8.0, gt=0)


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    texts: list[StrictStr] = Field(..., min_length=1, description="Texts to classify.")


class Prediction(BaseModel):
    label: str
    score: float
    probabilities: dict[str, float]


class PredictResponse(BaseModel):
    model: str
    predictions: list[Prediction]


api = FastAPI(title="Fulcrum classifier", version="1")


def _error(status: int, field: str | None, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message, "field": field})


@api.exception_handler(RequestValidationError)
async def _invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
    content_type = request.headers.get("content-type", "")
    if "json" not in content_type:
        return _error(
            415, None, f"content-type must be application/json (got {content_type or 'none'})"
        )
    first = error.errors()[0]
    location = [part for part in first.get("loc", ()) if part != "body"]
    if first.get("type") == "json_invalid":
        return _error(
            400,
            None,
            f"body is not valid JSON ({first.get('ctx', {}).get('error', 'parse error')})",
        )
    field = "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in location
    ).lstrip(".")
    kind = first.get("type")
    if kind == "missing":
        message = f"{field or 'body'}: required"
    elif kind == "extra_forbidden":
        message = f"{field}: unknown field"
    else:
        message = f"{field or 'body'}: {first.get('msg', 'invalid')}"
    return _error(422, field or None, message)


@serve.deployment
@serve.ingress(api)
class Classifier:
    def __init__(self, args: AppArgs) -> None:
        from fulcrum.inference import OnnxClassifier

        self.args = args
        self.predictor = OnnxClassifier(args.artifact, threads=max(1, int(args.num_cpus)))
        self.name = self.predictor.artifact.manifest["recipe"]["name"]
        self.predict_texts.set_max_batch_size(args.max_batch_size)
        self.predict_texts.set_batch_wait_timeout_s(args.batch_wait_timeout_s)
        # First ONNX Runtime call allocates and plans; pay for it before taking traffic.
        self.predictor.predict(["warm-up"] * min(4, args.max_batch_size))

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.01)
    async def predict_texts(self, texts: list[str]) -> list[dict[str, Any]]:
        return self.predictor.predict(texts)

    @api.post("/predict", response_model=PredictResponse)
    async def predict(self, request: PredictRequest) -> Any:
        limits = self.args
        if len(request.texts) > limits.max_texts_per_request:
            return _error(
                422,
                "texts",
                f"texts: at most {limits.max_texts_per_request} per request (got {len(request.texts)})",
            )
        for index, text in enumerate(request.texts):
            if not text.strip():
                return _error(422, f"texts[{index}]", f"texts[{index}]: empty text")
            if len(text) > limits.max_chars_per_text:
                return _error(
                    422,
                    f"texts[{index}]",
                    f"texts[{index}]: longer than {limits.max_chars_per_text} characters ({len(text)})",
                )
        predictions = await asyncio.gather(*(self.predict_texts(text) for text in request.texts))
        return {"model": self.name, "predictions": predictions}

    @api.get("/model")
    async def model(self) -> dict[str, Any]:
        manifest = self.predictor.artifact.manifest
        return {
            "name": self.name,
            "labels": self.predictor.labels,
            "metrics": manifest.get("metrics", {}),
            "parent": manifest.get("parent"),
            "recipe_hash": manifest.get("recipe_hash"),
        }

    @api.get("/healthz")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}


def deployment_options(args: AppArgs) -> dict[str, Any]:
    return {
        "ray_actor_options": {"num_cpus": args.num_cpus},
        "max_ongoing_requests": args.max_ongoing_requests,
        "autoscaling_config": {
            "min_replicas": args.min_replicas,
            "initial_replicas": max(1, args.min_replicas),
            "max_replicas": args.max_replicas,
            "target_ongoing_requests": args.target_ongoing_requests,
        },
    }


def build_app(args: AppArgs) -> Application:
    """Typed builder: `serve run`/`serve deploy` validate the config's `args:` against AppArgs."""
    return Classifier.options(**deployment_options(args)).bind(args)
