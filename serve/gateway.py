"""The HTTP edge of a Fulcrum application: authentication, limits, validation, routing.

Everything a client can get wrong is caught here and answered with a 4xx JSON body that
names the field (`{"error": ..., "field": ...}`); nothing malformed reaches a model
replica, and no input makes the server answer 500. Request bodies are read by hand rather
than by FastAPI's model binding, so the size limit holds before a body is parsed and every
parse error has our wording.
"""

import asyncio
import hmac
import json
import os
import random
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError
from ray import serve
from ray.serve import metrics
from starlette.exceptions import HTTPException

from fulcrum.serve.config import AppArgs
from fulcrum.serve.limits import InFlight
from fulcrum.serve.models import LATENCY_BOUNDARIES_MS, InProcess, Model

READY_TIMEOUT_S = 5.0


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    texts: list[StrictStr] = Field(..., min_length=1, description="Texts to classify or tag.")


class PairsRequest(BaseModel):
    """What a text-pair model's /predict takes."""

    model_config = ConfigDict(extra="forbid")

    pairs: list[tuple[StrictStr, StrictStr]] = Field(
        ..., min_length=1, description="[text, text_pair] pairs to classify."
    )


class Candidate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: StrictStr = Field(..., min_length=1, description="The client's name for the candidate.")
    text: StrictStr


class RankRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: StrictStr = Field(..., description="The text candidates are matched with (a user).")
    candidates: list[Candidate] = Field(..., min_length=1)
    top_k: int | None = Field(None, ge=1, description="Answer only the best k (default: all).")


class Ranked(BaseModel):
    id: str
    score: float = Field(..., description="The probability of the model's positive label.")


class RankResponse(BaseModel):
    model: str
    version: str
    ranking: list[Ranked] = Field(..., description="Best first.")
    scored: int = Field(
        ...,
        description="Candidates the pair model scored: all of them, or the rank_prefilter "
        "nearest the query (the others are not in the ranking).",
    )


class Prediction(BaseModel):
    label: str
    score: float
    probabilities: dict[str, float]
    out_of_scope: bool | None = Field(
        None, description="None of the labels fits (models with out-of-scope detection)."
    )
    in_scope_score: float | None = Field(
        None, description="The score compared with the model's out-of-scope threshold."
    )


class Entity(BaseModel):
    entity: str = Field(..., description="Entity type, e.g. PER.")
    start: int = Field(..., description="Offset of its first character in the text.")
    end: int = Field(..., description="Offset just past its last character.")
    text: str
    score: float


class Tagging(BaseModel):
    entities: list[Entity]


class PredictResponse(BaseModel):
    model: str
    version: str
    predictions: list[Prediction | Tagging]


class WordAttribution(BaseModel):
    word: str
    start: int
    end: int
    score: float = Field(..., description="Fall in the target's probability without the word.")
    side: int = Field(0, description="A text pair's side the word is in: 0 text, 1 text_pair.")


class ExplanationBody(BaseModel):
    target: str = Field(..., description="The label explained, or the entity ('PER 'Ann'').")
    probability: float
    method: str
    words: list[WordAttribution]
    span: tuple[int, int] | None = Field(None, description="The entity's offsets (NER).")
    text_pair: str | None = Field(None, description="A text-pair model's second text.")


class ExplainResponse(BaseModel):
    model: str
    version: str
    explanations: list[list[ExplanationBody]] = Field(
        ..., description="Per text: one explanation, or one per predicted entity."
    )


class ReplyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: StrictStr = Field(..., description="The customer's message.")
    slots: dict[str, StrictStr] = Field(
        default_factory=dict, description="Values for the answer template's {slots}."
    )


class Passage(BaseModel):
    question: str | None
    answer: str
    row: int = Field(..., description="Its row in the knowledge-base file.")
    score: float = Field(..., description="Cosine similarity to the message.")


class ReplyResponse(BaseModel):
    assistant: str
    version: str
    intent: str | None = Field(..., description="The intent; null when out of scope.")
    predicted_intent: str = Field(
        ..., description="The classifier's label, even when out of scope."
    )
    confidence: float
    out_of_scope: bool
    in_scope_score: float | None
    answer: str
    chosen_by: str = Field(..., description="template, knowledge_base or handover.")
    reason: str
    missing_slots: list[str]
    passages: list[Passage]


class ErrorResponse(BaseModel):
    error: str
    field: str | None


RETRY_AFTER_S = 1  # what a 503 tells the client to wait before retrying
ERRORS = {status: {"model": ErrorResponse} for status in (400, 401, 404, 413, 415, 422, 503)}


def body_schema(*models: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of a route that reads its body by hand (one of `models`)."""
    schemas = [model.model_json_schema() for model in models]
    schema = schemas[0] if len(schemas) == 1 else {"oneOf": schemas}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


api = FastAPI(
    title="Fulcrum",
    version="1",
    description="Text classifiers and taggers exported by Fulcrum, on Ray Serve.",
)


def error(status: int, field: str | None, message: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        status_code=status, content={"error": message, "field": field}, headers=headers or None
    )


def unavailable(name: str, exc: BaseException) -> JSONResponse:
    """A model replica died or timed out under this request: retryable, and said so, since
    Serve replaces the replica within seconds."""
    message = f"model {name!r} is unavailable, retry ({type(exc).__name__})"
    return error(503, None, message, **{"Retry-After": str(RETRY_AFTER_S)})


@api.exception_handler(HTTPException)
async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    path = request.url.path[:200]
    return error(exc.status_code, None, f"{request.method} {path}: {exc.detail}")


@api.exception_handler(RequestValidationError)
async def _invalid_parameters(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0]
    field = field_path(first.get("loc", ()))
    return error(422, field, f"{field}: {first.get('msg', 'invalid')}")


def field_path(location) -> str:
    """`texts[3]` from pydantic's ('body', 'texts', 3)."""
    parts = [part for part in location if part not in ("body", "path", "query", "header")]
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in parts)
    return path.lstrip(".") or "body"


def describe_problem(problem: dict[str, Any], expected: str = "'texts'") -> str:
    field = field_path(problem.get("loc", ()))
    kind = problem.get("type")
    if kind == "missing":
        return f"{field}: required"
    if kind == "extra_forbidden":
        return f"{field}: unknown field (expected only {expected})"
    return f"{field}: {problem.get('msg', 'invalid')}"


def read_token(args: AppArgs) -> str | None:
    """The bearer token the gateway requires, or None when auth is off. A configured but
    missing token stops the replica from starting: serving open by accident is worse."""
    if args.auth_token_env:
        token = os.environ.get(args.auth_token_env, "").strip()
        if not token:
            raise RuntimeError(
                f"auth_token_env: environment variable {args.auth_token_env} is not set "
                "(or empty) in the Serve replica"
            )
        return token
    if args.auth_token_file:
        path = Path(args.auth_token_file)
        if not path.is_file():
            raise RuntimeError(f"auth_token_file: {path} does not exist")
        token = path.read_text().strip()
        if not token:
            raise RuntimeError(f"auth_token_file: {path} is empty")
        return token
    return None


@serve.deployment
@serve.ingress(api)
class Gateway:
    def __init__(
        self, args: AppArgs, models: dict[str, Any], canaries: dict[str, Any] | None = None
    ) -> None:
        self.args = args
        # name -> DeploymentHandle of its ModelServer, or the model in this process; a
        # canary beside it answers its share of the name's requests.
        self.models = models or {model.name: InProcess(Model(model)) for model in args.models}
        self.canaries = canaries or (
            {}
            if models
            else {
                model.name: InProcess(Model(model.canary_model()))
                for model in args.models
                if model.canary is not None
            }
        )
        self.shares = {
            model.name: model.canary.share for model in args.models if model.canary is not None
        }
        # name -> version -> what this gateway replica saw it answer: the live comparison
        self.live: dict[str, dict[str, dict[str, float]]] = {}
        self.token = read_token(args)
        self.info: dict[str, dict[str, Any]] = {}
        self.explaining = InFlight(args.max_explain_in_flight)
        self.requests = metrics.Counter(
            "fulcrum_requests",
            description="Requests per model and HTTP status.",
            tag_keys=("model", "route", "status", "version"),
        )
        self.latency = metrics.Histogram(
            "fulcrum_request_latency_ms",
            description="Milliseconds from request to response at the gateway.",
            boundaries=LATENCY_BOUNDARIES_MS,
            tag_keys=("model", "route", "version"),
        )

    @api.post(
        "/v1/models/{name}/predict",
        responses={200: {"model": PredictResponse}, **ERRORS},
        openapi_extra=body_schema(PredictRequest, PairsRequest),
    )
    async def predict(self, name: str, request: Request) -> JSONResponse:
        return await self._measured("predict", name, request, self._predict(name, request))

    async def _predict(self, name: str, request: Request) -> JSONResponse:
        texts = await self._texts(name, request, self.args.max_texts_per_request)
        if isinstance(texts, JSONResponse):
            return texts
        model, which = self._route(name, request)
        try:
            predictions = await model.predict.remote(texts)
        except Exception as exc:  # a replica died or timed out: the client gets an answer
            return unavailable(name, exc)
        version = (await self._info(name, which))["version"]
        return JSONResponse({"model": name, "version": version, "predictions": predictions})

    @api.post(
        "/v1/models/{name}/rank",
        responses={200: {"model": RankResponse}, **ERRORS},
        openapi_extra=body_schema(RankRequest),
    )
    async def rank(self, name: str, request: Request) -> JSONResponse:
        """The candidates ordered by how well each matches the query, as a two-label
        text-pair model scores the pair (query, candidate): the probability of its second
        label. At most `max_candidates_per_request` candidates; their pairs are batched.
        With the model's `rank_prefilter`, only that many (the nearest the query by a
        sentence embedder's cosine) are scored and ranked."""
        return await self._measured("rank", name, request, self._rank(name, request))

    async def _rank(self, name: str, request: Request) -> JSONResponse:
        asked = await self._parsed(name, request, RankRequest, "'query', 'candidates', 'top_k'")
        if isinstance(asked, JSONResponse):
            return asked
        info = await self._info(name)
        if info["task"] != "text_pair_classification" or len(info["labels"]) != 2:
            return error(
                422,
                "name",
                f"model {name!r} does not rank: it is {info['task']} with "
                f"{len(info['labels'])} labels (ranking takes a two-label text-pair model)",
            )
        limit = self.args.max_candidates_per_request
        if len(asked.candidates) > limit:
            return error(
                422,
                "candidates",
                f"candidates: at most {limit} per request (got {len(asked.candidates)})",
            )
        texts = {"query": asked.query} | {
            f"candidates[{index}].text": item.text for index, item in enumerate(asked.candidates)
        }
        for field, text in texts.items():
            problem = self._text_problem(field, text)
            if problem:
                return error(422, field, problem)
        model, which = self._route(name, request)
        try:
            ranked = await model.rank.remote(asked.query, [item.text for item in asked.candidates])
        except Exception as exc:
            return unavailable(name, exc)
        ranking = [{"id": asked.candidates[i].id, "score": score} for i, score in ranked]
        return JSONResponse(
            {
                "model": name,
                "version": (await self._info(name, which))["version"],
                "ranking": ranking[: asked.top_k],
                "scored": len(ranking),
            }
        )

    @api.post(
        "/v1/assistants/{name}/reply",
        responses={200: {"model": ReplyResponse}, **ERRORS},
        openapi_extra=body_schema(ReplyRequest),
    )
    async def reply(self, name: str, request: Request) -> JSONResponse:
        """The intent's answer template, else the nearest knowledge-base entry, else the
        hand-over; with what chose it."""
        return await self._measured("reply", name, request, self._reply(name, request))

    async def _reply(self, name: str, request: Request) -> JSONResponse:
        refused = self._authorize(request) or self._known(name)
        if refused:
            return refused
        if not (await self._info(name)).get("assistant"):
            return error(404, "name", f"model {name!r} is served without an assistant")
        asked = await self._parsed(name, request, ReplyRequest, "'text' and 'slots'")
        if isinstance(asked, JSONResponse):
            return asked
        problem = self._text_problem("text", asked.text)
        if problem:
            return error(422, "text", problem)
        try:
            answer = await self.models[name].reply.remote(asked.text, asked.slots)
        except Exception as exc:
            return unavailable(name, exc)
        version = (await self._info(name))["version"]
        return JSONResponse({"assistant": name, "version": version, **answer})

    @api.post(
        "/v1/models/{name}/explain",
        responses={200: {"model": ExplainResponse}, 429: {"model": ErrorResponse}, **ERRORS},
        openapi_extra=body_schema(PredictRequest, PairsRequest),
    )
    async def explain(self, name: str, request: Request) -> JSONResponse:
        """Word attributions by occlusion on the served model (one forward pass per word).
        Bounded: at most `max_explain_texts` texts per request of at most
        `max_explain_words` words each, and `max_explain_in_flight` explanations at once
        per gateway replica (more get 429)."""
        return await self._measured("explain", name, request, self._explain(name, request))

    async def _measured(self, route: str, name: str, request: Request, answering) -> JSONResponse:
        """Await the answer, counting it by model, route, status and the version that
        answered, and timing it. Names of models not served count as one, so a scanner
        cannot grow the metric's series."""
        started = time.perf_counter()
        response = await answering
        elapsed_ms = 1000 * (time.perf_counter() - started)
        which = getattr(request.state, "answered_by", None)
        version = await self._version(name, which) if which else ""
        tags = {"model": name if name in self.models else "(unknown)", "route": route}
        tags["version"] = version
        self.requests.inc(tags={**tags, "status": str(response.status_code)})
        self.latency.observe(elapsed_ms, tags=tags)
        if version:
            seen = self.live.setdefault(name, {}).setdefault(
                version, {"requests": 0, "errors": 0, "latency_ms_total": 0.0}
            )
            seen["requests"] += 1
            seen["errors"] += response.status_code >= 500
            seen["latency_ms_total"] += elapsed_ms
        return response

    async def _version(self, name: str, which: str) -> str:
        """The version that answered, for the counts; a version whose replicas do not
        answer is counted under its role, its errors being what matters."""
        try:
            return (await self._info(name, which))["version"]
        except Exception:
            return which

    def _route(self, name: str, request: Request) -> tuple[Any, str]:
        """The model that answers this request: the canary for its share, else the stable
        version; remembered on the request for its metrics."""
        which = "stable"
        if name in self.canaries and random.random() < self.shares[name]:
            which = "canary"
        request.state.answered_by = which
        return (self.canaries[name] if which == "canary" else self.models[name]), which

    async def _explain(self, name: str, request: Request) -> JSONResponse:
        texts = await self._texts(name, request, self.args.max_explain_texts)
        if isinstance(texts, JSONResponse):
            return texts
        if not self.explaining.try_enter():
            return error(
                429,
                None,
                f"{self.explaining.limit} explanation(s) already running; retry shortly",
                **{"Retry-After": "1"},
            )
        model, which = self._route(name, request)
        try:
            answer = await model.explain.remote(texts, self.args.max_explain_words)
        except Exception as exc:
            return unavailable(name, exc)
        finally:
            self.explaining.leave()
        if "refused" in answer:
            return error(422, answer["field"], answer["refused"])
        version = (await self._info(name, which))["version"]
        return JSONResponse(
            {"model": name, "version": version, "explanations": answer["explanations"]}
        )

    async def _parsed(self, name: str, request: Request, schema: type[BaseModel], expected: str):
        """The request's body as `schema`, or the 4xx response that refuses it (`expected`
        names the fields an unknown one is told of)."""
        refused = self._authorize(request) or self._known(name)
        if refused:
            return refused
        body = await self._json_body(request)
        if isinstance(body, JSONResponse):
            return body
        try:
            return schema.model_validate(body)
        except ValidationError as exc:
            problems = exc.errors()
            field = field_path(problems[0].get("loc", ()))
            described = (describe_problem(p, expected) for p in problems[:3])
            return error(422, field, "; ".join(described))

    async def _texts(self, name: str, request: Request, max_texts: int):
        """The request's texts, or for a text-pair model its (text, text_pair) pairs, or
        the 4xx response that refuses it."""
        refused = self._authorize(request) or self._known(name)
        if refused:
            return refused
        if (await self._info(name))["task"] != "text_pair_classification":
            asked = await self._parsed(name, request, PredictRequest, "'texts'")
            if isinstance(asked, JSONResponse):
                return asked
            return self._check_texts(asked.texts, max_texts) or asked.texts
        asked = await self._parsed(name, request, PairsRequest, "'pairs' ([text, text_pair] each)")
        if isinstance(asked, JSONResponse):
            return asked
        return self._check_pairs(asked.pairs, max_texts) or asked.pairs

    @api.get("/v1/models", responses={401: {"model": ErrorResponse}})
    async def list_models(self, request: Request) -> Any:
        refused = self._authorize(request)
        if refused:
            return refused
        names = list(self.models)
        return {"models": await asyncio.gather(*(self._described(name) for name in names))}

    @api.get(
        "/v1/models/{name}",
        responses={401: {"model": ErrorResponse}, 404: {"model": ErrorResponse}},
    )
    async def get_model(self, name: str, request: Request) -> Any:
        refused = self._authorize(request) or self._known(name)
        return refused or await self._described(name)

    async def _described(self, name: str) -> dict[str, Any]:
        """The model, and with a canary beside it, the canary (its version and share); and
        what this gateway replica saw each version answer: requests, 5xx errors, mean
        latency."""
        info = dict(await self._info(name))
        if name in self.canaries:
            canary = await self._info(name, "canary")
            info["canary"] = {**canary, "share": self.shares[name]}
        info["live"] = {
            version: {
                "requests": seen["requests"],
                "errors": seen["errors"],
                "mean_latency_ms": seen["latency_ms_total"] / max(1, seen["requests"]),
            }
            for version, seen in self.live.get(name, {}).items()
        }
        return info

    @api.get("/healthz")
    async def healthz(self) -> dict[str, str]:
        """The gateway answers: the process is alive (models may still be starting)."""
        return {"status": "ok"}

    @api.get("/readyz", responses={503: {"description": "a model is not ready"}})
    async def readyz(self) -> JSONResponse:
        """Every model has a replica that answers: the application can take traffic."""
        served = {
            **self.models,
            **{f"{name} (canary)": model for name, model in self.canaries.items()},
        }
        names = list(served)
        results = await asyncio.gather(
            *(asyncio.wait_for(served[name].ready.remote(), READY_TIMEOUT_S) for name in names),
            return_exceptions=True,
        )
        states = {
            name: "ready" if result is True else f"not ready ({type(result).__name__})"
            for name, result in zip(names, results, strict=True)
        }
        ready = all(state == "ready" for state in states.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "models": states},
            status_code=200 if ready else 503,
        )

    async def _info(self, name: str, which: str = "stable") -> dict[str, Any]:
        key = (name, which)
        if key not in self.info:
            model = self.canaries[name] if which == "canary" else self.models[name]
            self.info[key] = await model.info.remote()
        return self.info[key]

    def _authorize(self, request: Request) -> JSONResponse | None:
        if self.token is None:
            return None
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), self.token.encode()
        ):
            return None
        return error(
            401, "authorization", "missing or wrong bearer token", **{"WWW-Authenticate": "Bearer"}
        )

    def _known(self, name: str) -> JSONResponse | None:
        if name in self.models:
            return None
        served = ", ".join(sorted(self.models))
        return error(404, "name", f"no model named {name[:100]!r} is served (served: {served})")

    async def _json_body(self, request: Request) -> Any:
        content_type = request.headers.get("content-type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            return error(
                415,
                "content-type",
                f"content-type must be application/json (got {content_type[:100] or 'none'})",
            )
        limit = self.args.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return error(413, "body", f"body: {declared} bytes, over the limit of {limit}")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return error(413, "body", f"body: over the limit of {limit} bytes")
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return error(400, "body", f"body is not valid JSON ({str(exc)[:200]})")
        except RecursionError:
            return error(400, "body", "body is nested too deeply")

    def _check_texts(self, texts: list[str], max_texts: int) -> JSONResponse | None:
        if len(texts) > max_texts:
            return error(422, "texts", f"texts: at most {max_texts} per request (got {len(texts)})")
        for index, text in enumerate(texts):
            problem = self._text_problem(f"texts[{index}]", text)
            if problem:
                return error(422, f"texts[{index}]", problem)
        return None

    def _check_pairs(self, pairs: list[tuple[str, str]], max_pairs: int) -> JSONResponse | None:
        if len(pairs) > max_pairs:
            return error(422, "pairs", f"pairs: at most {max_pairs} per request (got {len(pairs)})")
        for index, pair in enumerate(pairs):
            for side, text in enumerate(pair):
                problem = self._text_problem(f"pairs[{index}][{side}]", text)
                if problem:
                    return error(422, f"pairs[{index}][{side}]", problem)
        return None

    def _text_problem(self, field: str, text: str) -> str | None:
        if not text.strip():
            return f"{field}: empty text"
        limit = self.args.max_chars_per_text
        if len(text) > limit:
            return f"{field}: longer than {limit} characters ({len(text)})"
        return None
