"""What a Fulcrum Serve application is given: the models it serves, each with its replica
settings, and the gateway's limits (fulcrum.serve_settings, shared with the recipe's `serve:`
section). Pydantic models, so Serve validates a config file's `args:` before deploying.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, Field, model_validator

from fulcrum.serve_settings import Autoscaling, GatewaySettings, ReplicaSettings

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"


class CanaryArgs(BaseModel):
    """A new version served beside a model under its name, taking a share of its traffic."""

    model_config = {"extra": "forbid", "frozen": True}

    artifact: str = Field(..., description="The new version's export artifact.")
    share: float = Field(
        0.1, gt=0, lt=1, description="The share of the model's requests the canary answers."
    )
    force: bool = Field(False, description="Serve it even if its parity gate failed.")


class ModelArgs(ReplicaSettings):
    """One served model: its URL name, its artifact, and how its replicas run."""

    name: str = Field(..., pattern=NAME_PATTERN, description="The {name} in /v1/models/{name}.")
    artifact: str = Field(..., description="Path of an export artifact (model.onnx + manifest).")
    force: bool = Field(False, description="Serve it even if its parity gate failed.")
    assistant: str | None = Field(
        None, description="An assistant artifact: /v1/assistants/{name}/reply answers with it."
    )
    canary: CanaryArgs | None = Field(
        None,
        description="A new version beside this one, answering `share` of its requests "
        "(each answer's `version` says which answered); promote by serving it as `artifact`, "
        "roll back by removing it.",
    )

    def canary_model(self) -> ModelArgs:
        """The canary as a model of its own: this one's name and replica settings, its
        artifact (and no assistant: replies stay with the stable version)."""
        assert self.canary is not None
        return self.model_copy(
            update={
                "artifact": self.canary.artifact,
                "force": self.canary.force,
                "assistant": None,
                "canary": None,
            }
        )


class AppArgs(GatewaySettings):
    """The `args:` of this application in a Serve config file, validated by Serve."""

    models: list[ModelArgs] = Field(..., min_length=1)
    gateway_num_cpus: float = Field(
        0.0, ge=0, description="CPUs reserved for the gateway (routing and validation only)."
    )
    gateway_max_ongoing_requests: int = Field(256, ge=1)

    @model_validator(mode="after")
    def _distinct_names(self) -> AppArgs:
        names = [model.name for model in self.models]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"models: the name {repeated[0]!r} is given twice")
        if self.colocate and len(self.models) != 1:
            raise ValueError(
                f"colocate: runs one model inside the gateway, and {len(self.models)} are "
                "served; serve them as separate deployments (colocate: false)"
            )
        return self

    @classmethod
    def serving(
        cls,
        models: Mapping[str, str | Path],
        settings: BaseModel,
        force: bool = False,
        assistants: Mapping[str, str | Path] | None = None,
        canaries: Mapping[str, CanaryArgs] | None = None,
    ) -> AppArgs:
        """One application serving `models` (URL name -> export artifact) with `settings`
        (a recipe's serve section: ReplicaSettings and GatewaySettings at once) for each
        model's replicas and for the gateway; `assistants`: URL name -> assistant artifact;
        `canaries`: URL name -> the new version served beside it."""
        replicas = settings.model_dump(include=set(ReplicaSettings.model_fields))
        assistants, canaries = assistants or {}, canaries or {}
        unknown = sorted(set(canaries) - set(models))
        if unknown:
            from fulcrum.errors import FulcrumError

            raise FulcrumError(f"--canary: {unknown[0]!r} is not the name of a served model")
        return cls(
            models=[
                ModelArgs(
                    name=name,
                    artifact=str(path),
                    force=force,
                    assistant=str(assistants[name]) if name in assistants else None,
                    canary=canaries.get(name),
                    **replicas,
                )
                for name, path in models.items()
            ],
            **settings.model_dump(include=set(GatewaySettings.model_fields)),
        )

    @property
    def colocated(self) -> bool:
        return self.colocate if self.colocate is not None else len(self.models) == 1


__all__ = [
    "AppArgs",
    "Autoscaling",
    "CanaryArgs",
    "GatewaySettings",
    "ModelArgs",
    "ReplicaSettings",
]
