"""The `tune:` section: what a campaign searches, how, and within what budget."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from fulcrum.recipe.sections import Section

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
