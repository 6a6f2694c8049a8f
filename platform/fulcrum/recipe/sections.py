"""The recipe's sections, one pydantic model each: every field has a type, a default,
bounds and a description (docs/recipe.md is written from them). Unknown keys are errors."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fulcrum.defaults import describe_rules
from fulcrum.serve_settings import GatewaySettings, ReplicaSettings
from fulcrum.storage import credentials_problem

SETTLED = describe_rules()  # how each field left null is settled from the method and data


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
    text_pair_column: str = Field(
        "text_pair",
        min_length=1,
        description="Text-pair classification: column holding the second text of each pair "
        "(the candidate, the other question, the hypothesis).",
    )
    label_column: str = Field("label", min_length=1, description="Column holding the label.")
    group_column: str | None = Field(
        None,
        min_length=1,
        description="Text-pair classification: column naming each pair's ranking group (a "
        "user, a query); candidates of one group are ranked against each other (AUC per "
        "group, MRR, nDCG@5 and @10), and a file Fulcrum splits keeps each group in one split.",
    )
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
    tag_scheme: Literal["bio", "iob1", "bmes", "bioes"] = Field(
        "bio",
        description="Tag scheme of the files, converted to BIO on read: IOB1 (CoNLL-2003), "
        "BMES and BIOES (Chinese NER sets; a `.bmes` file is read as BMES).",
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
    base: str | None = Field(
        None,
        description=(
            "`builtin:minilm` (English), `builtin:multilingual` (Chinese and about a hundred "
            "other languages; see docs/models.md), a local Hugging Face model directory, or a "
            "hub id (see docs/models.md); " + SETTLED["model.base"] + "."
        ),
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


# Two-label pairs with data.group_column are also measured as rankings (fulcrum.ranking);
# AUC needs no groups.
RANKING_METRICS = ("auc", "group_auc", "mrr", "ndcg_5", "ndcg_10")
GROUP_METRICS = RANKING_METRICS[1:]
TASK_METRICS = {
    "sequence_classification": ("macro_f1", "accuracy"),
    "text_pair_classification": (
        "macro_f1",
        "accuracy",
        *RANKING_METRICS,
    ),
    "token_classification": ("f1", "precision", "recall", "token_accuracy"),
}


class TaskSection(Section):
    type: Literal["sequence_classification", "text_pair_classification", "token_classification"] = (
        Field(
            "sequence_classification",
            description="One label per text; one label per pair of texts (data.text_column and "
            "data.text_pair_column: question matching, a user's history and a candidate item); "
            "or one BIO tag per word (named entities).",
        )
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
        "head; `peft-default`: where the method's paper puts it, by the model family's layer "
        "names (LoRA: query and value; IA3: keys, values and the feed-forward output; "
        "docs/models.md), else PEFT's default for the architecture; "
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
    metric: Literal[
        "auto",
        "macro_f1",
        "accuracy",
        "f1",
        "precision",
        "recall",
        "auc",
        "group_auc",
        "mrr",
        "ndcg_5",
        "ndcg_10",
    ] = Field(
        "auto",
        description="Validation metric that picks the best checkpoint (auto: macro_f1 for "
        "sequences and pairs, ndcg_10 for pairs with data.group_column, entity f1 for "
        "tokens). The ranking metrics (auc, and per group group_auc, mrr, ndcg_5, ndcg_10) "
        "are for two-label pairs; the second label is the positive one.",
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
        return without_password(location)

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
    # Not yet: whether an edit keeps a pair's label depends on which side it touches.
    "text_pair_classification": (),
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


class ContinualSection(Section):
    """Continue from a training artifact on new data, without forgetting what it knew."""

    parent: str = Field(
        ...,
        description="The training artifact (its `train` folder, or a URI) to continue from: "
        "its weights, its labels (new labels in the data extend them) and its training data "
        "(replayed).",
    )
    replay: float = Field(
        0.25,
        ge=0,
        le=1,
        description="Share of the parent's training rows mixed into this run's training "
        "split (drawn per label, seeded): rehearsal against forgetting. 0: none.",
    )
    distill: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Weight of a distillation term against the parent's own outputs, over "
        "its labels, on every training row (learning without forgetting; temperature 2); "
        "the labels' loss gets the rest. 0: none.",
    )
    max_old_drop: float = Field(
        2.0,
        ge=0,
        description="Promotion gate: points (of train.metric x 100) the model may lose on the "
        "parent's own test split, against the parent there. Beyond it, or with no gain on "
        "the new test split, the model is not exported or served unless forced.",
    )


class OutOfScopeSection(Section):
    """Present: the model says when a text is none of its labels (fulcrum.out_of_scope)."""

    label: str = Field(
        "oos",
        min_length=1,
        description="The label of out-of-scope rows: trained as a class when the training "
        "data has it. Validation and test rows with a label training never saw count as "
        "out of scope too.",
    )
    score: Literal["auto", "max_probability", "energy"] = Field(
        "auto",
        description="In-scope confidence the threshold applies to; auto: the one with the "
        "higher validation AUROC (max_probability when validation has no out-of-scope rows).",
    )
    in_scope_recall: float = Field(
        0.95,
        gt=0,
        le=1,
        description="The share of in-scope validation texts kept above the threshold (the "
        "rest go to the fallback); 1: the trained class alone decides.",
    )
    target_precision: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Instead, with out-of-scope rows in validation: the threshold with the "
        "highest out-of-scope recall at this precision on validation (which holds only where "
        "traffic has out-of-scope texts as often as validation does).",
    )


class AssistantSection(Section):
    """Present: the served model also answers `POST /v1/assistants/{name}/reply`."""

    answers: str | None = Field(
        None,
        description="Answer templates per intent: a YAML/JSON mapping, or CSV/JSONL with "
        "columns intent, answer; `{slot}` names are filled from the request.",
    )
    knowledge_base: str | None = Field(
        None,
        description="CSV/TSV/JSONL of question/answer pairs (or answer-only passages) "
        "searched for what no template answers.",
    )
    embedder: str | None = Field(
        None,
        description="Sentence-embedding model for the knowledge base; null: builtin:minilm, "
        "or builtin:multilingual when the model trained is multilingual.",
    )
    top_k: int = Field(3, ge=1, le=50, description="Passages returned with a reply.")
    similarity_floor: float | None = Field(
        None,
        ge=-1,
        le=1,
        description="Cosine similarity below which no passage is good enough: hand over; "
        "null: the embedder's own (0.5 for builtin:minilm, 0.9 for builtin:multilingual, "
        "whose unrelated texts score about 0.85).",
    )
    handover: str = Field(
        "I can't answer that myself; let me pass you to a colleague who can.",
        min_length=1,
        description="What is said when nothing answers.",
    )
    max_length: int = Field(
        128, ge=8, le=512, description="Tokens of a question or passage the embedder reads."
    )

    @model_validator(mode="after")
    def _something_to_say(self) -> AssistantSection:
        if self.answers is None and self.knowledge_base is None:
            raise ValueError("name answers, knowledge_base, or both")
        return self


class MonitorRules(Section):
    """When a window alerts (fulcrum.monitor.alerts)."""

    baseline_windows: int = Field(
        28, ge=2, description="Previous windows an entity is compared with (its own history)."
    )
    min_baseline: int = Field(
        7, ge=1, description="Judged windows the baseline needs before anything alerts."
    )
    min_count: int = Field(10, ge=1, description="Texts a window needs to be judged at all.")
    z: float = Field(
        3.0, gt=0, description="Negative share's z-score (binomial noise included) to alert."
    )
    min_rise: float = Field(
        0.1, ge=0, le=1, description="And its rise over the baseline, absolute (0.1: 10 points)."
    )
    volume_z: float | None = Field(
        4.0, gt=0, description="z-score of log(1 + count) for a volume alert; null: none."
    )


class MonitorSection(Section):
    """`fulcrum monitor`: dated texts scored, counted per entity and window, alerts."""

    inputs: list[str] = Field(
        ..., min_length=1, description="Files, folders, globs or URIs of dated texts."
    )
    output: str | None = Field(
        None, description="Output folder; null: OUTPUT_DIR/NAME/monitor (a local folder)."
    )
    model: str | None = Field(
        None, description="Export artifact that scores the texts; null: this recipe's export."
    )
    text_column: str = Field("text", min_length=1, description="Column holding the text.")
    time_column: str = Field(
        "created_at", min_length=1, description="Column holding each text's time (ISO 8601)."
    )
    window: Literal["hour", "day", "week"] = Field(
        "day", description="Calendar window in UTC that texts are counted in."
    )
    entity_column: str | None = Field(
        None, description="Column naming each text's entity (several: comma-separated)."
    )
    cashtags: bool = Field(True, description="Count $TICKER mentions in the text as entities.")
    min_cashtag_letters: int = Field(
        2, ge=1, le=6, description="Shorter cashtags ($T, $D) are too ambiguous to count."
    )
    names: str | None = Field(
        None, description="CSV with columns entity, alias: names that count for an entity."
    )
    entities: list[str] | None = Field(
        None, description="Only these entities are counted; null: every one found."
    )
    where: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Keep rows whose column's value is one of these ({lang: [en]}).",
    )
    negative_label: str | None = Field(
        None, description="The model's label for negative opinion; null: the one named so."
    )
    rules: MonitorRules = Field(default_factory=MonitorRules)
    examples: int = Field(
        5, ge=0, le=50, description="Texts written with each alert, with their explanations."
    )
    webhook: str | None = Field(
        None, description="URL that each new alert is POSTed to as JSON; null: none."
    )
    timelines: int = Field(
        6, ge=0, le=50, description="Entities (the most mentioned) drawn as timeline PNGs."
    )


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


def without_password(location: str | None) -> str | None:
    problem = credentials_problem(location) if location else None
    if problem:
        raise ValueError(f"the URI {problem}")
    return location
