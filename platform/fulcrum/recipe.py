"""The recipe: one YAML file that describes a job from data to endpoint.

One pydantic model per section; every field has a type, a default, bounds and a description.
The CLI, jobs/, the docs and (later) Tune's search space all read these models, so there is no
second list of options anywhere. Unknown keys are errors, and every error names its key path.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fulcrum.defaults import describe_rules
from fulcrum.errors import RecipeError
from fulcrum.serve_settings import GatewaySettings, ReplicaSettings
from fulcrum.storage import credentials_problem

SETTLED = describe_rules()  # how each field left null is settled from the method and data

# Sections named in the design that later versions fill in. Naming one today is an error that
# says so, rather than "unknown key", so a recipe written for a newer Fulcrum fails clearly.
PLANNED_SECTIONS = ("explain",)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSection(Section):
    path: str | None = Field(
        None, description="One labelled file (csv, tsv, jsonl, parquet), split by Fulcrum."
    )
    train: str | None = Field(None, description="Training file, when the data comes pre-split.")
    validation: str | None = Field(
        None, description="Validation file; carved from `train` when absent."
    )
    test: str | None = Field(None, description="Test file; carved from `train` when absent.")
    format: Literal["auto", "csv", "tsv", "jsonl", "parquet", "lines", "conll"] = Field(
        "auto",
        description="File format; `auto` goes by the file extension. `lines`: one "
        "`text<separator>label` per line.",
    )
    separator: str = Field(
        "@",
        min_length=1,
        description="`lines` format: text and label split at its last occurrence.",
    )
    encoding: str = Field("utf-8", description="Text encoding of csv/tsv/conll files.")
    text_column: str = Field("text", min_length=1, description="Column holding the input text.")
    label_column: str = Field("label", min_length=1, description="Column holding the label.")
    tokens_column: str = Field(
        "tokens", min_length=1, description="Token classification, JSONL: list of tokens."
    )
    tags_column: str = Field(
        "tags", min_length=1, description="Token classification, JSONL: list of tags."
    )
    conll_token_field: int = Field(
        0, description="CoNLL: index of the token among a line's fields (negative from the end)."
    )
    conll_tag_field: int = Field(
        -1, description="CoNLL: index of the tag among a line's fields (negative from the end)."
    )
    tag_scheme: Literal["bio", "iob1"] = Field(
        "bio", description="Tag scheme of the files; IOB1 (CoNLL-2003) is converted to BIO."
    )
    labels: list[str] | None = Field(
        None,
        min_length=2,
        description="Declared label (or tag) set, in output order; any other is an error.",
    )
    validation_fraction: float = Field(
        0.15, gt=0, lt=0.5, description="Share of rows held out for validation when splitting."
    )
    test_fraction: float = Field(
        0.15, ge=0, lt=0.5, description="Share of rows held out for test when splitting."
    )

    @field_validator("labels")
    @classmethod
    def _labels_unique(cls, labels: list[str] | None) -> list[str] | None:
        if labels is not None:
            duplicates = sorted({name for name in labels if labels.count(name) > 1})
            if duplicates:
                raise ValueError(f"labels must be unique (repeated: {', '.join(duplicates)})")
        return labels

    @model_validator(mode="after")
    def _one_source(self) -> DataSection:
        if (self.path is None) == (self.train is None):
            raise ValueError("give exactly one of `path` (one file to split) or `train`")
        if self.path is not None and (self.validation or self.test):
            raise ValueError("`validation`/`test` files go with `train`, not with `path`")
        return self


class ModelSection(Section):
    base: str = Field(
        "builtin:minilm",
        description="`builtin:minilm`, or a local Hugging Face model directory.",
    )
    max_length: int | None = Field(
        None,
        ge=8,
        le=512,
        description="Tokens per text after truncation; " + SETTLED["model.max_length"] + ".",
    )
    num_layers: int | None = Field(
        None,
        ge=1,
        description="Keep only the first k encoder layers (a distillation student); "
        "null keeps all.",
    )
    hidden_dropout: float | None = Field(
        None, ge=0, lt=1, description="Dropout on hidden states; null keeps the model's own."
    )
    attention_dropout: float | None = Field(
        None, ge=0, lt=1, description="Dropout on attention probabilities; null keeps the model's."
    )
    classifier_dropout: float | None = Field(
        None, ge=0, lt=1, description="Dropout before the task head; null keeps the model's."
    )

    def architecture(self) -> dict[str, Any]:
        """The knobs that change the pretrained config (None = keep the model's own)."""
        return {
            "num_layers": self.num_layers,
            "hidden_dropout": self.hidden_dropout,
            "attention_dropout": self.attention_dropout,
            "classifier_dropout": self.classifier_dropout,
        }


TASK_METRICS = {
    "sequence_classification": ("macro_f1", "accuracy"),
    "token_classification": ("f1", "precision", "recall", "token_accuracy"),
}


class TaskSection(Section):
    type: Literal["sequence_classification", "token_classification"] = Field(
        "sequence_classification",
        description="One label per text, or one BIO tag per word (named entities).",
    )


class PeftSection(Section):
    method: Literal["lora", "adalora", "ia3", "prefix", "head_only", "full"] = Field(
        "lora",
        description="lora/adalora/ia3 (PEFT), prefix (key/value prefixes per layer), "
        "head_only (frozen encoder), or full fine-tuning.",
    )
    r: int = Field(16, ge=1, le=512, description="LoRA rank; AdaLoRA's average target rank.")
    alpha: float = Field(32.0, gt=0, description="LoRA scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA input.")
    target_modules: list[str] | Literal["all-linear", "peft-default"] | None = Field(
        None,
        description="Module names to adapt; `all-linear`: every linear layer but the task "
        "head; `peft-default`: PEFT's default for the architecture (BERT: query, value); "
        + SETTLED["peft.target_modules"]
        + ".",
    )
    adalora_init_r: int = Field(12, ge=1, description="AdaLoRA: rank each matrix starts with.")
    adalora_warmup: float = Field(
        0.1, ge=0, lt=1, description="AdaLoRA: share of steps before ranks are pruned (tinit)."
    )
    adalora_final: float = Field(
        0.2, ge=0, lt=1, description="AdaLoRA: share of final steps with ranks frozen (tfinal)."
    )
    adalora_interval: int = Field(
        10, ge=1, description="AdaLoRA: steps between rank budget updates (deltaT)."
    )
    num_virtual_tokens: int = Field(
        16, ge=1, le=256, description="prefix: learned key/value positions per layer."
    )

    @model_validator(mode="after")
    def _adalora_schedule(self) -> PeftSection:
        if self.adalora_warmup + self.adalora_final >= 1:
            raise ValueError(
                f"adalora_warmup + adalora_final must be < 1 "
                f"(got {self.adalora_warmup} + {self.adalora_final})"
            )
        return self


class AdversarialSection(Section):
    method: Literal["none", "fgm", "pgd"] = Field(
        "none",
        description="Perturb the embedding output along the loss gradient: fgm (one step) "
        "or pgd (`steps` projected steps); the adversarial loss is added to the clean one.",
    )
    epsilon: float = Field(
        0.25,
        gt=0,
        description="L2 radius of the perturbation, per example, in embedding units "
        "(all-MiniLM's token embeddings have norm ~1.1).",
    )
    steps: int = Field(3, ge=1, le=20, description="pgd: gradient ascent steps.")
    step_size: float = Field(0.1, gt=0, description="pgd: L2 length of each ascent step.")
    weight: float = Field(1.0, gt=0, description="Weight of the adversarial loss.")


class TrainSection(Section):
    workers: int = Field(2, ge=1, description="Ray Train workers (data-parallel ranks).")
    use_gpu: bool = Field(False, description="One GPU per worker; NCCL and bf16 when true.")
    cpus_per_worker: float = Field(1.0, gt=0, description="CPUs reserved for each worker.")
    epochs: int | None = Field(
        None, ge=1, description="Passes over the training split; " + SETTLED["train.epochs"] + "."
    )
    batch_size: int = Field(16, ge=1, description="Examples per worker per micro-batch.")
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="Micro-batches summed into one optimizer step."
    )
    lr: float | None = Field(
        None, gt=0, description="Peak learning rate; " + SETTLED["train.lr"] + "."
    )
    weight_decay: float = Field(0.0, ge=0, description="Decoupled (AdamW) weight decay.")
    l1: float = Field(
        0.0, ge=0, description="L1 penalty on the trainable parameters (sum of |w|, times this)."
    )
    label_smoothing: float = Field(
        0.0, ge=0, lt=1, description="Share of each target's probability spread over all labels."
    )
    class_weights: Literal["balanced", "none"] | dict[str, float] | None = Field(
        None,
        description="Weights of the labels (tags) in the loss: `balanced` weighs each by "
        "rows / (labels x its rows), so rare labels count as much as common ones; `none`: all "
        "weigh 1; a mapping from label to weight sets them (unnamed labels weigh 1); "
        + SETTLED["train.class_weights"]
        + ".",
    )
    early_stopping_patience: int | None = Field(
        None,
        ge=1,
        description="Stop after this many evaluations without improving the metric by "
        "early_stopping_min_delta; the best checkpoint is the one kept.",
    )
    early_stopping_min_delta: float = Field(
        0.0, ge=0, description="Smallest metric gain that counts as an improvement."
    )
    adversarial: AdversarialSection = Field(default_factory=AdversarialSection)
    scheduler: Literal["linear", "cosine"] = Field(
        "linear", description="Decay after warmup: linear or cosine, to zero."
    )
    warmup_ratio: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="Share of steps with linear warmup; " + SETTLED["train.warmup_ratio"] + ".",
    )
    grad_clip: float = Field(1.0, ge=0, description="Max gradient norm; 0 disables clipping.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 on GPU, fp32 on CPU."
    )
    zero_stage: int = Field(2, ge=0, le=3, description="DeepSpeed ZeRO stage.")
    offload_optimizer: bool = Field(
        False, description="ZeRO >= 1: keep optimizer state in CPU memory."
    )
    offload_params: bool = Field(False, description="ZeRO-3: keep parameters in CPU memory.")
    deepspeed_config: str | None = Field(
        None, description="DeepSpeed JSON whose keys override the generated config."
    )
    metric: Literal["auto", "macro_f1", "accuracy", "f1", "precision", "recall"] = Field(
        "auto",
        description="Validation metric that picks the best checkpoint "
        "(auto: macro_f1 for sequences, entity f1 for tokens).",
    )
    checkpoint_every_steps: int | None = Field(
        None, ge=1, description="Also checkpoint (and evaluate) every N optimizer steps."
    )
    keep_checkpoints: int = Field(2, ge=1, description="Best checkpoints kept by Ray Train.")
    max_failures: int = Field(
        0, ge=-1, description="Worker failures survived by restarting from the last checkpoint."
    )
    storage_path: str | None = Field(
        None,
        description="Ray Train checkpoint storage (shared by all nodes on a cluster; local "
        "path or URI); default: <output_dir>/<name>/_ray.",
    )
    log_every_steps: int = Field(10, ge=1, description="Progress line every N optimizer steps.")

    @field_validator("storage_path")
    @classmethod
    def _no_password(cls, location: str | None) -> str | None:
        return _without_password(location)

    @field_validator("class_weights")
    @classmethod
    def _positive_weights(cls, weights: Any) -> Any:
        if isinstance(weights, dict):
            for label, weight in weights.items():
                if not weight > 0 or weight == float("inf"):
                    raise ValueError(f"{label}: a weight must be a positive number (got {weight})")
        return weights

    @property
    def resolved_precision(self) -> str:
        if self.precision == "auto":
            return "bf16" if self.use_gpu else "fp32"
        return self.precision

    @model_validator(mode="after")
    def _consistent(self) -> TrainSection:
        if self.offload_params and self.zero_stage != 3:
            raise ValueError(f"offload_params needs zero_stage 3 (got {self.zero_stage})")
        if self.offload_optimizer and self.zero_stage == 0:
            raise ValueError("offload_optimizer needs zero_stage >= 1 (got 0)")
        if self.precision in ("bf16", "fp16") and not self.use_gpu:
            raise ValueError(f"precision {self.precision} needs use_gpu: true (CPUs train in fp32)")
        if self.zero_stage == 3 and self.l1 > 0:
            raise ValueError(
                "l1 needs the whole trainable parameters on every rank, which ZeRO-3 partitions; "
                "use zero_stage 0-2 (or weight_decay)"
            )
        if self.zero_stage == 3 and self.adversarial.method != "none":
            raise ValueError(
                "adversarial training takes extra gradients through the network outside "
                "DeepSpeed's backward, which ZeRO-3's parameter gathering does not allow; "
                "use zero_stage 0-2"
            )
        return self


AUGMENT_OPERATIONS = {
    "sequence_classification": ("synonym", "insert", "swap", "delete", "typo"),
    # Only operations that keep each word's tag valid.
    "token_classification": ("mention", "synonym", "typo"),
}


class AugmentSection(Section):
    multiplier: int = Field(
        2,
        ge=1,
        le=20,
        description="Training rows become this many times as many: each original row plus "
        "multiplier - 1 augmented copies (1 turns augmentation off).",
    )
    operations: list[Literal["synonym", "insert", "swap", "delete", "typo", "mention"]] | None = (
        Field(
            None,
            min_length=1,
            description="Operations each copy picks from at random; default: all the task allows "
            "(sequences: synonym, insert, swap, delete, typo; tokens: mention, synonym, typo).",
        )
    )
    rate: float = Field(
        0.1, gt=0, le=0.5, description="Share of a text's words each operation touches."
    )
    synonym_neighbours: int = Field(
        8, ge=1, le=50, description="synonym: candidates among nearest input embeddings."
    )
    synonym_min_similarity: float = Field(
        0.45, ge=0, lt=1, description="synonym: least cosine similarity of a replacement."
    )


class DistillSection(Section):
    teacher: str = Field(
        ..., description="A training artifact directory (its `train` folder) to learn from."
    )
    alpha: float = Field(
        0.5, ge=0, le=1, description="Weight of the hard-label loss; 1 - alpha weighs the teacher."
    )
    temperature: float = Field(2.0, gt=0, description="Softmax temperature of both models.")
    batch_size: int = Field(64, ge=1, description="Rows per teacher inference batch.")
    actors: int = Field(1, ge=1, description="Ray Data actors running the teacher.")


class ExportSection(Section):
    opset: int = Field(18, ge=14, le=23, description="ONNX opset version.")
    max_abs_logit_diff: float = Field(
        1e-3,
        gt=0,
        description="Largest |logit(ONNX) - logit(PyTorch)| allowed on validation or test.",
    )
    max_metric_drop: float = Field(
        1.0,
        ge=0,
        description="Largest drop of the task metric (points) on validation or test against "
        "the PyTorch parent; the same gate, and default, as compress.max_metric_drop.",
    )


COMPRESS_KINDS = ("fp32", "dynamic_int8", "static_int8", "fp16")


class CompressVariant(Section):
    """One compressed model to build, gate and report; each becomes its own artifact."""

    kind: Literal["fp32", "dynamic_int8", "static_int8", "fp16"] = Field(
        ...,
        description="fp32: the merged model as is; dynamic_int8: INT8 weights, activations "
        "quantised on the fly; static_int8: INT8 weights and activations, scales calibrated "
        "on training texts; fp16: half precision (for GPUs).",
    )
    name: str | None = Field(
        None, pattern=r"^[a-z0-9][a-z0-9_-]*$", description="Artifact folder; default: the kind."
    )
    optimize: bool = Field(
        True,
        description="ONNX Runtime's transformer fusions (Attention, EmbedLayerNormalization, "
        "BiasGelu where the graph allows) before quantising.",
    )
    per_channel: bool | None = Field(
        None,
        description="INT8: a scale per output channel; default: yes for static_int8 (its "
        "activation ranges are fixed, so one outlier weight must not coarsen every channel), "
        "no for dynamic_int8.",
    )
    weight_type: Literal["qint8", "quint8"] = Field(
        "qint8", description="INT8: signed or unsigned 8-bit weights."
    )
    calibration_rows: int = Field(
        256,
        ge=8,
        description="Training rows static_int8 takes its activation ranges from (and a "
        "retry its most sensitive layers).",
    )
    exclude_sensitive: int = Field(
        4,
        ge=0,
        description="INT8: when the variant fails its gate, build it once more with this many "
        "of its most outlier-prone MatMuls kept in float; 0: no retry.",
    )

    @property
    def artifact_name(self) -> str:
        return self.name or self.kind.replace("_", "-")

    @property
    def resolved_per_channel(self) -> bool:
        return self.kind == "static_int8" if self.per_channel is None else self.per_channel


class CompressSection(Section):
    variants: list[CompressVariant] = Field(
        default_factory=lambda: [
            CompressVariant(kind="fp32"),
            CompressVariant(kind="dynamic_int8"),
        ],
        min_length=1,
        description="Models to build; a kind alone (`dynamic_int8`) takes the defaults.",
    )
    max_metric_drop: float = Field(
        1.0,
        ge=0,
        description="Largest drop of the task metric (points) on validation or test against "
        "the PyTorch parent; a variant beyond it is kept but marked not deployable.",
    )
    max_abs_logit_diff: float = Field(
        1e-3, gt=0, description="fp32 only: largest |logit(ONNX) - logit(PyTorch)| allowed."
    )
    latency_texts: int = Field(
        64, ge=8, description="Validation texts timed one at a time (and in batches of 32)."
    )
    threads: int | None = Field(
        None, ge=1, description="Threads for PyTorch and ONNX Runtime when timing; default: all."
    )

    @field_validator("variants", mode="before")
    @classmethod
    def _kind_alone(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"kind": item} if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _distinct_names(self) -> CompressSection:
        names = [variant.artifact_name for variant in self.variants]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(
                f"variants: two variants would both be written to {repeated[0]}/ (give each a name)"
            )
        return self


class ServeSection(Section, ReplicaSettings, GatewaySettings):
    """Where Serve listens, and the model's replica and gateway settings, declared once in
    fulcrum.serve_settings so a recipe and a Serve config file take the same keys."""

    host: str = Field("127.0.0.1", description="HTTP bind address of the Serve proxy.")
    port: int = Field(8000, ge=1, le=65535, description="HTTP port of the Serve proxy.")
    route_prefix: str = Field("/", pattern=r"^/", description="URL prefix of the application.")
    app_name: str = Field("fulcrum", min_length=1, description="Ray Serve application name.")


SEARCH_KINDS = ("choice", "grid", "uniform", "loguniform", "quniform", "integer")
# Keys a campaign may not search: they name the campaign's own trials and outputs.
UNSEARCHABLE = ("name", "output_dir", "tune")
# Keys PBT may change in the middle of a run: they enter the loss, the optimizer or dropout,
# never the shapes of the weights or the step plan, so a trial can continue from another
# trial's checkpoint with new values. Other searched keys are drawn once per trial and
# travel with the weights when a trial clones another.
PBT_MUTABLE = (
    "train.lr",
    "train.weight_decay",
    "train.l1",
    "train.label_smoothing",
    "train.adversarial.epsilon",
    "train.adversarial.step_size",
    "train.adversarial.weight",
    "peft.dropout",
    "model.hidden_dropout",
    "model.attention_dropout",
    "model.classifier_dropout",
    "distill.alpha",
    "distill.temperature",
)


class SearchDimension(Section):
    """One searched key: exactly one of the kinds below."""

    choice: list[Any] | None = Field(
        None, min_length=1, description="Categorical: one of these values."
    )
    grid: list[Any] | None = Field(
        None,
        min_length=1,
        description="Every one of these values, each in its own trial (search: random or grid).",
    )
    uniform: tuple[float, float] | None = Field(None, description="[low, high], uniform.")
    loguniform: tuple[float, float] | None = Field(
        None, description="[low, high], uniform in log space (learning rates, epsilons)."
    )
    quniform: tuple[float, float, float] | None = Field(
        None, description="[low, high, step]: uniform, rounded to a multiple of step."
    )
    integer: tuple[int, int] | None = Field(
        None, description="[low, high]: an integer, both ends included."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> SearchDimension:
        given = [kind for kind in SEARCH_KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of {', '.join(SEARCH_KINDS)}"
                + (f" (got {', '.join(given)})" if given else "")
            )
        kind = given[0]
        if kind in ("uniform", "loguniform", "quniform", "integer"):
            low, high = getattr(self, kind)[:2]
            if not low < high:
                raise ValueError(f"{kind}: low ({low}) must be < high ({high})")
            if kind == "loguniform" and low <= 0:
                raise ValueError(f"loguniform: low must be > 0 (got {low})")
            if kind == "quniform" and self.quniform[2] <= 0:
                raise ValueError(f"quniform: step must be > 0 (got {self.quniform[2]})")
        return self

    @property
    def kind(self) -> str:
        return next(kind for kind in SEARCH_KINDS if getattr(self, kind) is not None)

    @property
    def extremes(self) -> list[Any]:
        """Values that stand for the whole dimension when checking it against the recipe:
        every listed value, or both ends of a range."""
        if self.kind in ("choice", "grid"):
            return list(getattr(self, self.kind))
        low, high = getattr(self, self.kind)[:2]
        return [low, high]


class TuneSection(Section):
    auto: bool = Field(
        False,
        description="Search Fulcrum's built-in space for the recipe's method and task (keys "
        "in `space` add to it or replace its dimensions) with ASHA, as many trials as "
        "time_budget_s and the cluster allow, the settled defaults tried first.",
    )
    space: dict[str, SearchDimension] = Field(
        default_factory=dict,
        description="What to search: dotted recipe keys (`train.lr`, `peft.r`, "
        "`train.adversarial.epsilon`) mapped to a dimension (required unless auto).",
    )
    metric: str = Field(
        "auto", description="Validation metric to maximise; auto: the task's (train.metric)."
    )
    mode: Literal["max", "min"] = Field("max", description="Maximise or minimise the metric.")
    num_samples: int = Field(
        16,
        ge=1,
        le=10_000,
        description="Trial budget: configurations tried at most; under pbt, the population, "
        "which must fit the cluster at once.",
    )
    time_budget_s: float | None = Field(
        None, gt=0, description="Wall-clock budget; running trials stop when it is spent."
    )
    max_concurrent_trials: int | None = Field(
        None,
        ge=1,
        description="Trials at once; default: as many as the cluster's CPUs (GPUs) fit, each "
        "trial taking train.workers x train.cpus_per_worker.",
    )
    search: Literal["auto", "optuna", "random", "grid"] = Field(
        "auto",
        description="optuna: TPE, learns from finished trials; random: independent samples; "
        "grid: every `grid` value crossed, the rest sampled (repeated num_samples times); "
        "auto: optuna, or random under pbt (which picks later values itself).",
    )
    scheduler: Literal["asha", "pbt", "none"] = Field(
        "asha",
        description="asha: stop trials that trail their peers at the same epoch; pbt: "
        "population-based training, where a trailing trial continues from a leading trial's "
        "checkpoint with perturbed values; none: every trial runs all its epochs.",
    )
    grace_period: int = Field(1, ge=1, description="asha: epochs before a trial may be stopped.")
    reduction_factor: float = Field(
        2.0, gt=1, description="asha: only the best 1/reduction_factor go on past each rung."
    )
    perturbation_interval: int = Field(
        1, ge=1, description="pbt: epochs between two looks at the population."
    )
    quantile_fraction: float = Field(
        0.25,
        gt=0,
        le=0.5,
        description="pbt: share of the population that clones (the bottom) and is cloned (the top).",
    )
    resample_probability: float = Field(
        0.25,
        ge=0,
        le=1,
        description="pbt: chance a cloned value is drawn afresh from its dimension rather than "
        "multiplied by 0.8 or 1.2 (a neighbouring value for choice and grid).",
    )
    cost: Literal["none", "latency", "size"] = Field(
        "none",
        description="Second objective, measured on each finished trial's dynamic-INT8 ONNX "
        "model: latency (ms per batch of cost_batch_size) or size (MB). The campaign then "
        "reports the Pareto front of metric against cost.",
    )
    cost_batch_size: int = Field(32, ge=1, description="cost: latency: texts per batch.")
    seed: int | None = Field(None, ge=0, description="Search seed; default: the recipe's seed.")
    keep_artifacts: Literal["best", "all"] = Field(
        "best",
        description="Trial training artifacts kept when the campaign ends: the best trial's "
        "(and, with a cost, the Pareto front's), or all.",
    )

    @model_validator(mode="after")
    def _search_fits_space(self) -> TuneSection:
        if self.auto:
            if self.time_budget_s is None:
                raise ValueError(
                    "auto needs time_budget_s: the campaign is sized to it "
                    "(fulcrum tune RECIPE --auto --budget 30m)"
                )
            if self.scheduler != "asha":
                raise ValueError(f"auto runs ASHA (got scheduler: {self.scheduler})")
        elif not self.space:
            raise ValueError("space: give the keys to search, or auto: true")
        grids = [key for key, dimension in self.space.items() if dimension.kind == "grid"]
        if grids and self.searcher == "optuna":
            raise ValueError(
                f"space.{grids[0]}: grid values need search: grid or random "
                "(optuna samples; use choice)"
            )
        if self.scheduler == "pbt":
            if self.search == "optuna":
                raise ValueError(
                    "search: optuna cannot drive pbt, which picks later values itself from "
                    "the best trials (use random or grid)"
                )
            if self.max_concurrent_trials is not None:
                raise ValueError(
                    "max_concurrent_trials: pbt runs the whole population (num_samples) at "
                    "once; leave it unset"
                )
            if not self.mutable_keys:
                raise ValueError(
                    "space: pbt needs a key it can change in the middle of a run "
                    f"({', '.join(PBT_MUTABLE)}); got {', '.join(self.space)}"
                )
        return self

    @property
    def searcher(self) -> str:
        if self.search != "auto":
            return self.search
        return "random" if self.scheduler == "pbt" else "optuna"

    @property
    def mutable_keys(self) -> list[str]:
        """The searched keys PBT perturbs when a trial clones another."""
        return [key for key in self.space if key in PBT_MUTABLE]


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
        return _without_password(location)

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
    def _task_from_data(cls, raw: Any) -> Any:
        """CoNLL files hold one tag per word: a recipe that reads them and names no task
        is token classification. Decided from the recipe alone, so the hash is the same
        whether the task was written or inferred."""
        if not isinstance(raw, dict) or not isinstance(raw.get("data"), dict):
            return raw
        task = raw.get("task")
        if task is not None and (not isinstance(task, dict) or "type" in task):
            return raw
        data = raw["data"]
        first = data.get("path") or data.get("train")
        conll = data.get("format") == "conll" or (
            data.get("format", "auto") == "auto"
            and isinstance(first, str)
            and first.lower().endswith(".conll")
        )
        if conll:
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
        if self.peft.method == "adalora" and self.train.zero_stage == 3:
            raise ValueError(
                "peft.method: adalora prunes ranks by masking weights in place, which ZeRO-3's "
                "partitioned parameters do not allow; use train.zero_stage 0-2"
            )
        if self.augment is not None and self.augment.operations:
            allowed = AUGMENT_OPERATIONS[self.task.type]
            refused = [name for name in self.augment.operations if name not in allowed]
            if refused:
                raise ValueError(
                    f"augment.operations: {', '.join(refused)} not label-preserving for "
                    f"{self.task.type} (use {', '.join(allowed)})"
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
            problem = _schema_problem(key_path.split("."))
            if problem:
                raise ValueError(f"{where}: {problem}")
            for value in dimension.extremes:
                raw = set_key_path(copy.deepcopy(base), key_path, value)
                try:
                    Recipe.model_validate(raw)
                except ValidationError as error:
                    reason = "; ".join(format_error(item, raw) for item in error.errors())
                    raise ValueError(f"{where}: {_show(value)} does not work: {reason}") from None

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
        if self.train.metric == "auto":
            return TASK_METRICS[self.task.type][0]
        return self.train.metric

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


# --------------------------------------------------------------------------- loading


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read, override (`train.epochs=1`) and validate a recipe; relative data paths are
    resolved against the recipe file's folder so a job runs the same from any directory."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"{path}: recipe file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise RecipeError(f"{path}: {where}not valid YAML ({problem})") from None
    except UnicodeDecodeError as error:
        raise RecipeError(f"{path}: not UTF-8 text ({error.reason})") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of sections (got {_type_name(raw)})")
    raw = apply_overrides(raw, overrides)
    _resolve_data_paths(raw, path.parent.resolve())
    return validate_recipe(raw, source=str(path))


def validate_recipe(raw: dict[str, Any], source: str = "recipe") -> Recipe:
    try:
        return Recipe.model_validate(raw)
    except ValidationError as error:
        lines = [format_error(item, raw) for item in error.errors()]
        raise RecipeError(
            f"{source}: invalid recipe\n" + "\n".join(f"  {ln}" for ln in lines)
        ) from None


def apply_overrides(raw: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """`key.path=value` assignments; the value is parsed as YAML (`train.lr=1e-4`)."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        key_path, sep, text = item.partition("=")
        if not sep or not key_path:
            raise RecipeError(f"override {item!r}: expected KEY.PATH=VALUE")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        try:
            set_key_path(raw, key_path, value)
        except ValueError as error:
            raise RecipeError(f"override {item!r}: {error}") from None
    return raw


def set_key_path(raw: dict[str, Any], key_path: str, value: Any) -> dict[str, Any]:
    """Set `a.b.c` in nested dicts (creating sections on the way); returns `raw`."""
    node = raw
    keys = key_path.split(".")
    for key in keys[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise ValueError(f"{key} is not a section")
        node = child
    node[keys[-1]] = value
    return raw


def _schema_problem(keys: list[str]) -> str | None:
    """Why a dotted key names no recipe field (None when it does)."""
    model: type[BaseModel] = Recipe
    for index, key in enumerate(keys):
        if key not in model.model_fields:
            return "unknown key" + _suggestion(keys[: index + 1])
        if index == len(keys) - 1:
            return None
        nested = _section_model(model.model_fields[key].annotation)
        if nested is None:
            return f"{'.'.join(keys[: index + 1])} is a value, not a section"
        model = nested
    return None


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The section model behind a field's annotation (`X`, or `X | None`)."""
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _without_password(location: str | None) -> str | None:
    problem = credentials_problem(location) if location else None
    if problem:
        raise ValueError(f"the URI {problem}")
    return location


def _resolve_data_paths(raw: dict[str, Any], base_dir: Path) -> None:
    """Paths that name the user's files resolve against the recipe's folder."""
    for section, keys in (
        ("data", ("path", "train", "validation", "test")),
        ("train", ("deepspeed_config",)),
        ("distill", ("teacher",)),
    ):
        values = raw.get(section)
        if not isinstance(values, dict):
            continue
        for key in keys:
            value = values.get(key)
            if isinstance(value, str) and "://" not in value and not Path(value).is_absolute():
                values[key] = os.path.normpath(base_dir / value)


# --------------------------------------------------------------------------- error messages

# Names users bring from Hugging Face Trainer, PEFT and Ray configs, pointed at ours.
FAMILIAR_NAMES = {
    "learning_rate": "lr",
    "num_epochs": "epochs",
    "num_train_epochs": "epochs",
    "per_device_train_batch_size": "batch_size",
    "num_workers": "workers",
    "lora_alpha": "alpha",
    "lora_dropout": "dropout",
    "lora_r": "r",
    "rank": "r",
    "model_name_or_path": "base",
    "max_seq_length": "max_length",
    "gradient_accumulation": "gradient_accumulation_steps",
    "lr_scheduler": "scheduler",
    "lr_scheduler_type": "scheduler",
    "mixed_precision": "precision",
    "stage": "zero_stage",
}


def format_error(item: dict[str, Any], raw: Any) -> str:
    """One pydantic error as `key.path: problem (got value)`."""
    loc = [part for part in item["loc"] if not str(part).startswith("function-")]
    key_path = _key_path(loc)
    kind, ctx, value = item["type"], item.get("ctx") or {}, item.get("input")
    got = f" (got {_show(value)})"
    bounds = {
        "greater_than": ">",
        "greater_than_equal": ">=",
        "less_than": "<",
        "less_than_equal": "<=",
    }
    if kind in bounds:
        bound = next(iter(ctx.values()))
        bound = int(bound) if isinstance(bound, float) and bound.is_integer() else bound
        problem = f"must be {bounds[kind]} {bound}{got}"
    elif kind == "missing":
        problem = "required"
    elif kind == "extra_forbidden":
        problem = "unknown key" + _suggestion(loc)
    elif kind == "literal_error":
        problem = f"must be one of {ctx.get('expected')}{got}"
    elif kind in ("int_parsing", "int_type", "int_from_float"):
        problem = f"must be an integer{got}"
    elif kind in ("float_parsing", "float_type"):
        problem = f"must be a number{got}"
    elif kind in ("bool_parsing", "bool_type"):
        problem = f"must be true or false{got}"
    elif kind in ("string_type",):
        problem = f"must be a string{got}"
    elif kind in ("model_type", "dict_type", "model_attributes_type"):
        problem = f"must be a mapping{got}"
    elif kind == "list_type":
        problem = f"must be a list{got}"
    elif kind == "too_short":
        problem = f"needs at least {ctx.get('min_length')} item(s){got}"
    elif kind == "string_pattern_mismatch":
        problem = f"must match {ctx.get('pattern')}{got}"
    elif kind == "value_error":
        problem = str(ctx.get("error", item["msg"]))
    else:
        problem = f"{item['msg']}{got}"
    return f"{key_path}: {problem}" if key_path else problem


def _key_path(loc: list[Any]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _suggestion(loc: list[Any]) -> str:
    model: type[BaseModel] = Recipe
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        nested = _section_model(field.annotation) if field else None
        if nested is None:
            return ""
        model = nested
    alias = FAMILIAR_NAMES.get(str(loc[-1]))
    if alias in model.model_fields:
        return f" (did you mean `{alias}`?)"
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1, cutoff=0.5)
    return (
        f" (did you mean `{close[0]}`?)" if close else f" (known: {', '.join(model.model_fields)})"
    )


def _show(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(value: Any) -> str:
    return {list: "a list", str: "a string", type(None): "an empty file"}.get(
        type(value), type(value).__name__
    )
