"""What an artifact's manifest.json holds, one model per kind of artifact.

Every stage writes its manifest through these models and every reader gets them back, so a
field is spelled once, a stage cannot forget one that a later stage or Serve reads, and an
artifact from another version of fulcrum is refused with the field that does not fit rather
than with a KeyError deep inside whichever reader met it first. `metrics` stays a plain
mapping: each stage measures different things, and they are reported, not branched on.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from fulcrum.errors import ArtifactError

FORMAT_VERSION = 1


class ParentEntry(BaseModel):
    """The artifact this one was made from: where it is (a URI reads the same on every node)
    and its manifest's sha256, so a retrained parent makes its children stale."""

    model_config = ConfigDict(frozen=True)

    path: str
    manifest_sha256: str


class Manifest(BaseModel):
    """What every artifact records: what made it, from what, what it holds, what it measured."""

    # Fields a newer fulcrum adds are ignored, not refused: an older reader still serves
    # what it understands.
    model_config = ConfigDict(frozen=True, extra="ignore")

    format_version: int = FORMAT_VERSION
    kind: str
    created_at: str
    recipe: dict[str, Any]
    recipe_hash: str
    parent: ParentEntry | None = None
    data_fingerprint: str | None = None
    labels: list[str]
    metrics: dict[str, Any] = {}
    packages: dict[str, str] = {}
    files: dict[str, str] = {}

    @property
    def name(self) -> str:
        """The recipe's name: what the artifact is served and listed under."""
        return self.recipe["name"]


class TrainManifest(Manifest):
    kind: Literal["train"] = "train"
    task: str
    base_model: str
    method: str
    # The recipe with every value concrete (what the run settled from the data included);
    # `recipe` is the recipe as written.
    settled_recipe: dict[str, Any]
    settled: list[dict[str, Any]] = []
    # Findings about whether the model learned (fulcrum.diagnosis), each with `blocking`.
    warnings: list[dict[str, Any]] = []
    model_overrides: dict[str, Any] = {}
    # fulcrum.out_of_scope.Detector.to_dict(), calibrated on this model; None: off.
    out_of_scope: dict[str, Any] | None = None
    split_sizes: dict[str, int]
    deepspeed: dict[str, Any]


class ExportManifest(Manifest):
    """An ONNX model Serve loads: the export stage's fp32 model or a compressed variant."""

    kind: Literal["export"] = "export"
    task: str
    max_length: int
    vocab_size: int
    # The model it is a fine-tune of (builtin:minilm, a directory): None in artifacts older
    # than the field.
    base_model: str | None = None
    onnx: dict[str, Any]
    deployable: bool
    not_deployable_because: list[str] = []
    # Training's findings travel with the model it made.
    warnings: list[dict[str, Any]] = []
    # A compressed variant's settings (its name goes into the name it is served under).
    variant: dict[str, Any] | None = None
    # Out-of-scope detection calibrated on this model's own validation scores; None: off.
    out_of_scope: dict[str, Any] | None = None

    @property
    def version(self) -> str:
        """What the API reports as the model's version: its weights' sha256, shortened."""
        return self.files["model.onnx"][:12]

    @property
    def variant_name(self) -> str | None:
        return (self.variant or {}).get("name")

    @property
    def refusal(self) -> str | None:
        """Why this model may take no traffic unless forced (None: it may)."""
        if self.deployable:
            return None
        return "; ".join(self.not_deployable_because) or "no reason given"


class CompressManifest(Manifest):
    kind: Literal["compress"] = "compress"
    variants: list[str]


class AssistantManifest(Manifest):
    """Templates, a knowledge base and its embedder (fulcrum.assistant.build)."""

    kind: Literal["assistant"] = "assistant"
    embedder: str
    embedder_prefix: str = ""
    dimension: int
    settings: dict[str, Any]


class TuneManifest(Manifest):
    kind: Literal["tune"] = "tune"
    best_recipe: str
    search_space: list[str]
    searched: dict[str, Any]


AnyManifest = Annotated[
    TrainManifest | ExportManifest | CompressManifest | TuneManifest | AssistantManifest,
    Field(discriminator="kind"),
]
KINDS: dict[str, type[Manifest]] = {
    "train": TrainManifest,
    "export": ExportManifest,
    "compress": CompressManifest,
    "tune": TuneManifest,
    "assistant": AssistantManifest,
}
_ANY = TypeAdapter(AnyManifest)


def parse_manifest(raw: dict[str, Any] | bytes | str, where: str) -> AnyManifest:
    """The manifest of the kind it says it is; `where` names the file in the error."""
    try:
        if isinstance(raw, dict):
            return _ANY.validate_python(raw)
        return _ANY.validate_json(raw)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"][1:] or first["loc"])
        problem = "missing" if first["type"] == "missing" else first["msg"]
        if first["type"] in ("json_invalid", "model_type", "model_attributes_type"):
            raise ArtifactError(f"{where}: unreadable manifest ({first['msg']})") from None
        if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
            raise ArtifactError(
                f"{where}: not an artifact fulcrum knows (kind {_kind_of(raw)!r}; "
                f"one of {', '.join(KINDS)})"
            ) from None
        raise ArtifactError(
            f"{where}: field {field!r} of this {_kind_of(raw)} manifest is {problem}; it was "
            "written by another version of fulcrum: run the stage again to rewrite it"
        ) from None


def new_manifest(kind: str, **fields: Any) -> Manifest:
    """A manifest a stage is about to write, checked as a reader will check it."""
    try:
        return KINDS[kind].model_validate({"kind": kind, **fields})
    except ValidationError as error:  # a stage that forgot a field: our bug, said plainly
        raise ArtifactError(f"the {kind} stage wrote an incomplete manifest: {error}") from None


def _kind_of(raw: dict[str, Any] | bytes | str) -> Any:
    if isinstance(raw, dict):
        return raw.get("kind")
    try:
        return json.loads(raw).get("kind")
    except (ValueError, AttributeError):
        return None
