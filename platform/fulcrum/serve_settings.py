"""How a served model's replicas run and what the HTTP gateway accepts: declared once, here,
for the two places that take them. A recipe's `serve:` section (fulcrum.recipe.ServeSection)
is these settings plus where Serve listens; a Serve config file's `args:` (serve/config.py)
are these settings plus the models served. A field added here is a recipe key, a Serve config
key and a checked value at once.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Autoscaling(Settings):
    min_replicas: int = Field(1, ge=0, description="Replicas kept when idle.")
    max_replicas: int = Field(2, ge=1, description="Replicas at most under load.")
    target_ongoing_requests: float = Field(
        8.0, gt=0, description="Requests in flight per replica that autoscaling aims at."
    )
    upscale_delay_s: float = Field(
        30.0, ge=0, description="How long load must stay above target before adding a replica."
    )
    downscale_delay_s: float = Field(
        600.0, ge=0, description="How long load must stay below target before removing one."
    )
    look_back_period_s: float = Field(
        30.0, gt=0, description="Window over which requests in flight are averaged."
    )

    @model_validator(mode="after")
    def _ordered(self) -> Autoscaling:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) must be >= min_replicas ({self.min_replicas})"
            )
        return self


class ReplicaSettings(Settings):
    """How one model's replicas run."""

    num_cpus: float = Field(1.0, gt=0, description="CPUs per replica (also ONNX Runtime threads).")
    max_batch_size: int = Field(16, ge=1, description="Texts batched into one ONNX call.")
    batch_wait_timeout_s: float = Field(
        0.0,
        ge=0,
        description="How long a text at an idle replica waits for others to batch with. "
        "Under load batches fill with what queued while the last one ran, with no wait.",
    )
    max_ongoing_requests: int = Field(
        32,
        ge=1,
        description="Requests one replica holds at once (>= max_batch_size fills batches).",
    )
    autoscaling: Autoscaling = Field(
        default_factory=Autoscaling, description="How the replica count follows the load."
    )
    traffic_log: str | None = Field(
        None,
        description="A folder each replica appends its traffic windows to (how many texts, "
        "the labels predicted, how many unsure or out of scope), one JSON line per window: "
        "what `fulcrum drift ARTIFACT --traffic FOLDER` reads. Unset: Prometheus only.",
    )
    traffic_window_s: float = Field(
        300.0, gt=0, description="Seconds of traffic one window of the traffic log sums up."
    )
    rank_prefilter: int | None = Field(
        None,
        ge=1,
        description="/rank of a text-pair model: keep this many candidates, the nearest to "
        "the query by a sentence embedder's cosine, for the pair model to score (the others "
        "are left out of the ranking). Unset: the pair model scores every candidate.",
    )
    rank_embedder: str | None = Field(
        None,
        description="The sentence model rank_prefilter embeds with (builtin:minilm, "
        "builtin:multilingual or a model directory). Unset: builtin:multilingual for a "
        "builtin:multilingual model, else builtin:minilm.",
    )


class GatewaySettings(Settings):
    """What the HTTP gateway accepts, and the application's shape."""

    max_texts_per_request: int = Field(64, ge=1, description="Texts accepted in one request.")
    max_chars_per_text: int = Field(2000, ge=1, description="Characters accepted per text.")
    max_candidates_per_request: int = Field(
        200, ge=1, description="Candidates one /rank request may ask to have ranked."
    )
    max_body_bytes: int = Field(1_000_000, ge=1, description="Largest request body accepted.")
    max_explain_texts: int = Field(
        4, ge=1, description="Texts in one /explain request (each costs a forward pass per word)."
    )
    max_explain_in_flight: int = Field(
        2, ge=1, description="/explain requests one gateway replica runs at once; more get 429."
    )
    max_explain_words: int = Field(
        128, ge=1, description="Words in one explained text (a forward pass each); more get 422."
    )
    auth_token_env: str | None = Field(
        None,
        description="Require `Authorization: Bearer <token>` on /v1, the token read from this "
        "environment variable of the Serve replicas.",
    )
    auth_token_file: str | None = Field(
        None, description="As auth_token_env, the token read from this file instead."
    )
    colocate: bool | None = Field(
        None,
        description="Run the model inside the HTTP gateway's replicas (one deployment) "
        "rather than in its own deployment: one Ray process per request instead of two. "
        "Unset: yes when one model is served.",
    )

    @model_validator(mode="after")
    def _one_token_source(self) -> GatewaySettings:
        if self.auth_token_env and self.auth_token_file:
            raise ValueError("auth_token_env and auth_token_file: give one token source")
        return self
