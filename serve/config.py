"""What a Fulcrum Serve application is given: the models it serves and the limits it
enforces. Pydantic models, so Serve validates a config file's `args:` before deploying."""

from pydantic import BaseModel, ConfigDict, Field, model_validator

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"


class Autoscaling(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(2, ge=1)
    target_ongoing_requests: float = Field(
        8.0, gt=0, description="Requests in flight per replica that autoscaling aims at."
    )
    upscale_delay_s: float = Field(30.0, ge=0)
    downscale_delay_s: float = Field(600.0, ge=0)
    look_back_period_s: float = Field(
        30.0, gt=0, description="Window over which requests in flight are averaged."
    )

    @model_validator(mode="after")
    def _ordered(self) -> "Autoscaling":
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) must be >= min_replicas ({self.min_replicas})"
            )
        return self


class ModelArgs(BaseModel):
    """One served model: its URL name, its artifact, and how its replicas run."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., pattern=NAME_PATTERN, description="The {name} in /v1/models/{name}.")
    artifact: str = Field(..., description="Path of an export artifact (model.onnx + manifest).")
    num_cpus: float = Field(1.0, gt=0, description="CPUs per replica; ONNX Runtime threads follow.")
    max_batch_size: int = Field(16, ge=1, description="Texts pooled into one ONNX Runtime call.")
    batch_wait_timeout_s: float = Field(0.01, ge=0, description="How long a batch waits to fill.")
    max_ongoing_requests: int = Field(
        32,
        ge=1,
        description="Requests a replica holds at once; at least max_batch_size to fill batches.",
    )
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    force: bool = Field(False, description="Serve it even if its parity gate failed.")


class AppArgs(BaseModel):
    """The `args:` of this application in a Serve config file, validated by Serve."""

    model_config = ConfigDict(extra="forbid")

    models: list[ModelArgs] = Field(..., min_length=1)
    max_texts_per_request: int = Field(64, ge=1)
    max_chars_per_text: int = Field(2000, ge=1)
    max_explain_texts: int = Field(
        4, ge=1, description="Texts in one /explain request (a forward pass per word each)."
    )
    max_explain_in_flight: int = Field(
        2, ge=1, description="/explain requests one gateway replica runs at once; more get 429."
    )
    max_explain_words: int = Field(
        128, ge=1, description="Words in one explained text (a forward pass each); more get 422."
    )
    max_body_bytes: int = Field(1_000_000, ge=1)
    auth_token_env: str | None = Field(
        None, description="Require a bearer token on /v1, read from this environment variable."
    )
    auth_token_file: str | None = Field(None, description="As auth_token_env, from a file.")
    gateway_num_cpus: float = Field(
        0.0, ge=0, description="CPUs reserved for the gateway (routing and validation only)."
    )
    gateway_max_ongoing_requests: int = Field(256, ge=1)
    colocate: bool | None = Field(
        None,
        description="Run the (single) model inside the gateway's replicas: one deployment, "
        "scaled by the model's autoscaling settings; one Ray process per request instead of "
        "two. Unset: yes when one model is served.",
    )

    @model_validator(mode="after")
    def _distinct_names(self) -> "AppArgs":
        names = [model.name for model in self.models]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"models: the name {repeated[0]!r} is given twice")
        if self.auth_token_env and self.auth_token_file:
            raise ValueError("auth_token_env and auth_token_file: give one token source")
        if self.colocate and len(self.models) != 1:
            raise ValueError(
                f"colocate: runs one model inside the gateway, and {len(self.models)} are "
                "served; serve them as separate deployments (colocate: false)"
            )
        return self

    @property
    def colocated(self) -> bool:
        return self.colocate if self.colocate is not None else len(self.models) == 1
