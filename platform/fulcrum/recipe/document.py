"""The whole recipe: its sections together, the checks that span them, and its hash."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from fulcrum.recipe.keys import schema_problem, set_key_path
from fulcrum.recipe.messages import format_error, show
from fulcrum.recipe.search import UNSEARCHABLE, TuneSection
from fulcrum.recipe.sections import (
    AUGMENT_OPERATIONS,
    GROUP_METRICS,
    TASK_METRICS,
    AssistantSection,
    AugmentSection,
    CompressSection,
    ContinualSection,
    DataSection,
    DistillSection,
    ExportSection,
    ModelSection,
    MonitorSection,
    OutOfScopeSection,
    PeftSection,
    Section,
    ServeSection,
    TaskSection,
    TrainSection,
    without_password,
)

# Sections named in the design that later versions fill in. Naming one today is an error that
# says so, rather than "unknown key", so a recipe written for a newer Fulcrum fails clearly.
PLANNED_SECTIONS = ("explain",)


TAG_SCHEME_SUFFIXES = ("bmes", "bioes")


class Recipe(Section):
    name: str = Field(
        ..., pattern=r"^[a-z0-9][a-z0-9_-]*$", description="Job name; names the artifact folder."
    )
    seed: int = Field(0, ge=0, description="Seed for splits, initialisation and data order.")
    output_dir: str = Field(
        "artifacts",
        description="Where artifacts are written: a folder (relative to the working "
        "directory) or a pyarrow filesystem URI (s3://bucket/prefix, gs://...).",
    )
    data: DataSection
    model: ModelSection = Field(default_factory=ModelSection)
    task: TaskSection = Field(default_factory=TaskSection)
    peft: PeftSection = Field(default_factory=PeftSection)
    train: TrainSection = Field(default_factory=TrainSection)
    augment: AugmentSection | None = Field(
        None, description="Data augmentation of the training split; absent: none."
    )
    distill: DistillSection | None = Field(
        None, description="Knowledge distillation from a trained teacher; absent: none."
    )
    continual: ContinualSection | None = Field(
        None,
        description="Continue from a training artifact (its weights and labels) on new "
        "data, replaying some of its own; absent: start from model.base.",
    )
    out_of_scope: OutOfScopeSection | None = Field(
        None,
        description="Out-of-scope detection (sequence classification): answers say when a "
        "text is none of the labels; absent: none.",
    )
    assistant: AssistantSection | None = Field(
        None,
        description="Replies from the served intent model: templates, knowledge-base "
        "search, hand-over; absent: none.",
    )
    monitor: MonitorSection | None = Field(
        None,
        description="Opinion monitoring over dated texts (fulcrum monitor); absent: none.",
    )
    export: ExportSection = Field(default_factory=ExportSection)
    serve: ServeSection = Field(default_factory=ServeSection)
    tune: TuneSection | None = Field(
        None, description="A hyperparameter campaign over this recipe (fulcrum tune)."
    )
    compress: CompressSection | None = Field(
        None,
        description="Compressed variants of the trained model (fulcrum compress); absent: "
        "fp32 and dynamic INT8.",
    )

    @field_validator("output_dir")
    @classmethod
    def _no_password(cls, location: str) -> str:
        return without_password(location)

    @model_validator(mode="before")
    @classmethod
    def _planned_sections(cls, raw: Any) -> Any:
        if isinstance(raw, dict):
            for name in PLANNED_SECTIONS:
                if name in raw:
                    raise ValueError(
                        f"{name}: this section is planned but not supported by this version"
                    )
        return raw

    @model_validator(mode="before")
    @classmethod
    def _inferred_from_data(cls, raw: Any) -> Any:
        """CoNLL-style files hold one tag per word: a recipe that reads a `.conll` file (or
        `format: conll`) and names no task is token classification; a `.bmes` or `.bioes`
        file is one too, in that tag scheme unless data.tag_scheme says otherwise. Decided
        from the recipe alone, so the hash is the same whether written or inferred."""
        if not isinstance(raw, dict) or not isinstance(raw.get("data"), dict):
            return raw
        data = raw["data"]
        first = data.get("path") or data.get("train")
        suffix = first.lower().rpartition(".")[2] if isinstance(first, str) else ""
        auto = data.get("format", "auto") == "auto"
        if auto and suffix in TAG_SCHEME_SUFFIXES and "tag_scheme" not in data:
            data = {**data, "tag_scheme": suffix}
            raw = {**raw, "data": data}
        task = raw.get("task")
        if task is not None and (not isinstance(task, dict) or "type" in task):
            return raw
        tagged = data.get("format") == "conll" or (
            auto and (suffix == "conll" or suffix in TAG_SCHEME_SUFFIXES)
        )
        if tagged:
            raw = {**raw, "task": {**(task or {}), "type": "token_classification"}}
        return raw

    @model_validator(mode="after")
    def _sections_agree(self) -> Recipe:
        allowed = TASK_METRICS[self.task.type]
        if self.train.metric != "auto" and self.train.metric not in allowed:
            raise ValueError(
                f"train.metric: {self.train.metric} is not measured for {self.task.type} "
                f"(use one of {', '.join(allowed)})"
            )
        if self.train.metric in GROUP_METRICS and not self.data.group_column:
            raise ValueError(
                f"train.metric: {self.train.metric} ranks each group's candidates; set "
                "data.group_column to the column naming the groups"
            )
        if self.data.group_column and self.task.type != "text_pair_classification":
            raise ValueError(
                "data.group_column: ranking groups are for task.type text_pair_classification"
            )
        if self.peft.method == "adalora" and self.train.zero_stage == 3:
            raise ValueError(
                "peft.method: adalora prunes ranks by masking weights in place, which ZeRO-3's "
                "partitioned parameters do not allow; use train.zero_stage 0-2"
            )
        if self.augment is not None and not AUGMENT_OPERATIONS[self.task.type]:
            raise ValueError(f"augment: not available for {self.task.type} yet")
        if self.augment is not None and self.augment.operations:
            allowed = AUGMENT_OPERATIONS[self.task.type]
            refused = [name for name in self.augment.operations if name not in allowed]
            if refused:
                raise ValueError(
                    f"augment.operations: {', '.join(refused)} not label-preserving for "
                    f"{self.task.type} (use {', '.join(allowed)})"
                )
        if self.out_of_scope is not None and self.task.type != "sequence_classification":
            raise ValueError(
                f"out_of_scope: detects texts outside a classifier's labels; not available for "
                f"{self.task.type}"
            )
        if self.serve.rank_prefilter and self.task.type != "text_pair_classification":
            raise ValueError(
                "serve.rank_prefilter: filters the candidates of a text-pair model's /rank; "
                "not for " + self.task.type
            )
        if self.assistant is not None and self.task.type != "sequence_classification":
            raise ValueError(
                "assistant: replies to an intent classifier; not for " + self.task.type
            )
        if self.tune is not None:
            self._check_tune_space()
        return self

    def _check_tune_space(self) -> None:
        """Every searched key exists and every value it can take is valid on its own, so a
        typo fails here rather than in every trial. Combinations that cannot work together
        are left to the trials, which record the error and let the campaign go on."""
        allowed = TASK_METRICS[self.task.type]
        if self.tune.metric != "auto" and self.tune.metric not in allowed:
            raise ValueError(
                f"tune.metric: {self.tune.metric} is not measured for {self.task.type} "
                f"(use one of {', '.join(allowed)})"
            )
        base = self.to_dict()
        base.pop("tune")
        for key_path, dimension in self.tune.space.items():
            where = f"tune.space.{key_path}"
            if key_path.split(".")[0] in UNSEARCHABLE:
                raise ValueError(f"{where}: {key_path.split('.')[0]} cannot be searched")
            problem = schema_problem(Recipe, key_path.split("."))
            if problem:
                raise ValueError(f"{where}: {problem}")
            for value in dimension.extremes:
                raw = set_key_path(copy.deepcopy(base), key_path, value)
                try:
                    Recipe.model_validate(raw)
                except ValidationError as error:
                    reason = "; ".join(format_error(item, raw, Recipe) for item in error.errors())
                    raise ValueError(f"{where}: {show(value)} does not work: {reason}") from None

    @property
    def tune_metric(self) -> str:
        """The validation metric a campaign optimises."""
        if self.tune is None or self.tune.metric == "auto":
            return self.metric
        return self.tune.metric

    @property
    def augment_operations(self) -> tuple[str, ...]:
        """The augmentation operations in force; empty when augmentation is off."""
        if self.augment is None or self.augment.multiplier == 1:
            return ()
        return tuple(self.augment.operations or AUGMENT_OPERATIONS[self.task.type])

    @property
    def metric(self) -> str:
        """The validation metric that selects checkpoints."""
        if self.train.metric != "auto":
            return self.train.metric
        if self.task.type == "text_pair_classification" and self.data.group_column:
            return "ndcg_10"
        return TASK_METRICS[self.task.type][0]

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def section_hash(self, *sections: str) -> str:
        """Hash of the named sections, defaults included, for stage skipping: a changed
        default reruns the stages it affects. With no sections, the recipe's own hash,
        which names its runs and artifacts: it covers only what differs from the defaults,
        so a key added later, or one written out at its default, leaves it as it was."""
        if sections:
            content = self.to_dict()
            return _stable_hash({name: content[name] for name in sections})
        return _stable_hash(self.model_dump(mode="json", exclude_defaults=True))

    @property
    def hash(self) -> str:
        return self.section_hash()


def _stable_hash(content: Any) -> str:
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
