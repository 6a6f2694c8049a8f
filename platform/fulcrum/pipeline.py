"""`fulcrum run`: the stages in order, each skipped when its artifact was made from exactly
the inputs it would read now.

A stage's inputs are the recipe sections it reads, the artifact it starts from (by the
sha256 of that artifact's manifest, so a retrained parent makes its children stale) and,
for training, the data's fingerprint. Everything else (serve settings, the tune section of
a recipe run without tuning, a renamed probe) leaves the artifacts alone. A stage that was
interrupted is not skipped: its artifact was never published, and training resumes from
the checkpoints its Ray run left (the run is named after the recipe).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from fulcrum.artifacts import MANIFEST, artifact_dir, open_artifact, recipe_hash_of, sha256_file
from fulcrum.diagnosis import blocking
from fulcrum.errors import ArtifactError, TrainingError
from fulcrum.log import stage_log
from fulcrum.recipe import Recipe
from fulcrum.storage import refresh

log = stage_log("run")

# The recipe sections each stage reads; these are also the stages `--rerun` may force. Tune
# skips itself (its artifact carries the whole recipe's hash), so it is not listed.
STAGE_SECTIONS = {
    "train": (
        "seed",
        "data",
        "model",
        "task",
        "peft",
        "train",
        "augment",
        "distill",
        "continual",
        "out_of_scope",
    ),
    "export": ("export",),
    "compress": ("compress",),
    "assistant": ("assistant",),
}


@dataclass
class PipelineRun:
    """What a run made or found: artifact paths by stage, and what each stage did."""

    artifacts: dict[str, Path] = field(default_factory=dict)
    actions: dict[str, str] = field(default_factory=dict)  # stage -> "ran" | "skipped"
    served: Path | None = None
    assistant: Path | None = None  # the assistant artifact served beside the model
    rerun: tuple[str, ...] = ()  # stages to run even when up to date

    def stage(self, name: str, target: Path, reason: str | None, make) -> Path:
        """Run `make` unless the stage is up to date (`reason` None) and not asked to
        rerun; say which, and record the artifact."""
        if reason is None and name not in self.rerun:
            log.info(f"{name}: up to date, skipped ({_described(target)})")
            self.actions[name] = "skipped"
        else:
            log.info(f"{name}: runs ({reason or 'asked to rerun'})")
            started = time.time()
            target = make()
            self.actions[name] = "ran"
            log.info(f"{name}: done in {time.time() - started:.0f}s -> {target}")
        self.artifacts[name] = target
        return target


def stale_reason(
    artifact_dir: Path,
    kind: str,
    recipe: Recipe,
    sections: tuple[str, ...],
    parent: Path | None = None,
    data_fingerprint: str | None = None,
) -> str | None:
    """None when the artifact at `artifact_dir` was made from these inputs; otherwise why
    the stage has to run, in words a person running the pipeline understands."""
    try:
        artifact = open_artifact(artifact_dir, kind=kind)  # under a URI, fetched from it first
    except ArtifactError as error:
        if not (artifact_dir / MANIFEST).is_file():
            return "no artifact yet"
        return f"the artifact there is unusable ({error})"
    try:
        made_with = Recipe.model_validate(artifact.manifest.recipe)
    except Exception:  # noqa: BLE001 - any recipe this version cannot read means: remake
        return "its recipe is from an incompatible version"
    changed = [
        name for name in sections if made_with.section_hash(name) != recipe.section_hash(name)
    ]
    if changed:
        return "recipe changed: " + ", ".join(changed)
    if parent is not None:
        entry = artifact.manifest.parent
        if entry is None or entry.manifest_sha256 != sha256_file(parent / MANIFEST):
            return f"its parent {parent} was remade"
    if data_fingerprint is not None and artifact.manifest.data_fingerprint != data_fingerprint:
        return "the data changed"
    return None


def run_stages(
    recipe: Recipe,
    output_dir: str | Path | None = None,
    rerun: tuple[str, ...] = (),
    force: bool = False,
) -> PipelineRun:
    """Tune (when the recipe has a tune section), train, export and compress, skipping what
    is up to date; `rerun` names stages to run regardless. A model that has not learned
    (its training artifact says so) stops the run before export unless `force`. Returns
    the artifact to serve."""
    from fulcrum.compress.export import export
    from fulcrum.compress.stage import compress, variant_dir

    run = PipelineRun(rerun=tuple(rerun))
    train_dir = _trained(run, recipe, output_dir)
    _check_learned(train_dir, force)

    def after_train(name: str, target: Path, kind: str) -> str | None:
        return stale_reason(target, kind, recipe, STAGE_SECTIONS[name], parent=train_dir)

    target = artifact_dir(recipe, "export", output_dir)
    run.served = run.stage(
        "export",
        target,
        after_train("export", target, "export"),
        lambda: export(recipe, train_dir, output_dir),
    )
    if recipe.compress is not None:
        target = artifact_dir(recipe, "compress", output_dir)
        report = run.stage(
            "compress",
            target,
            after_train("compress", target, "compress"),
            lambda: compress(recipe, train_dir, output_dir),
        )
        recommended = open_artifact(report, kind="compress").metrics["recommended"]
        if recommended is None:
            log.info("compress: no variant passed its gate; serving the fp32 export")
        else:
            log.info(f"compress: serving {recommended}, the fastest variant that passed")
            run.served = variant_dir(report, recommended)
    if recipe.assistant is not None:
        run.assistant = _assistant(run, recipe, train_dir, output_dir)
    return run


def _assistant(run: PipelineRun, recipe: Recipe, train_dir: Path, output_dir) -> Path:
    from fulcrum.assistant.build import build_assistant, files_fingerprint

    trained = open_artifact(train_dir, kind="train", verify=False)
    target = artifact_dir(recipe, "assistant", output_dir)
    reason = stale_reason(
        target,
        "assistant",
        recipe,
        STAGE_SECTIONS["assistant"],
        parent=train_dir,
        data_fingerprint=files_fingerprint(recipe),
    )
    return run.stage(
        "assistant",
        target,
        reason,
        lambda: build_assistant(
            recipe, trained.labels, trained.manifest.base_model, train_dir, output_dir
        ),
    )


def _trained(run: PipelineRun, recipe: Recipe, output_dir) -> Path:
    """The training artifact to export: the campaign's best trial when the recipe has a
    tune section (the campaign skips itself when finished), else the recipe's own."""
    if recipe.tune is None:
        from fulcrum.data import recipe_splits
        from fulcrum.train.stage import train

        target = artifact_dir(recipe, "train", output_dir)
        splits = recipe_splits(recipe)
        # The artifact training reads besides the data: the teacher, or the model it
        # continues (retrained, it makes this run stale).
        teacher = Path(recipe.distill.teacher) if recipe.distill else None
        if recipe.continual is not None:
            teacher = Path(recipe.continual.parent)
        reason = stale_reason(
            target, "train", recipe, STAGE_SECTIONS["train"], teacher, splits.fingerprint
        )
        return run.stage("train", target, reason, lambda: train(recipe, output_dir))
    from fulcrum.tune.campaign import tune

    target = artifact_dir(recipe, "tune", output_dir)
    refresh(target)
    finished = recipe_hash_of(target) == recipe.hash
    campaign = open_artifact(tune(recipe, output_dir), kind="tune")  # skips a finished one
    run.artifacts["tune"] = campaign.path
    run.actions["tune"] = "skipped" if finished else "ran"
    best = (campaign.metrics.get("best") or {}).get("artifact")
    if not best:
        raise ArtifactError(f"{campaign.path}: no trial finished, so there is nothing to export")
    train_dir = campaign.path / best
    log.info(f"train: the campaign's best trial, {train_dir}")
    run.artifacts["train"], run.actions["train"] = train_dir, "skipped"
    return train_dir


def _check_learned(train_dir: Path, force: bool) -> None:
    """A model that has not learned goes no further unless forced."""
    not_learned = blocking(open_artifact(train_dir, kind="train", verify=False).manifest.warnings)
    if not_learned and not force:
        tips = "; ".join(not_learned[0].get("try") or [])
        raise TrainingError(
            f"{train_dir}: not exported or served: {not_learned[0]['text']}"
            + (f". Try: {tips}" if tips else "")
            + ". To go on with this model anyway: fulcrum run --force"
        )


def _described(artifact_dir: Path) -> str:
    from fulcrum.catalog import headline

    manifest = open_artifact(artifact_dir, verify=False).manifest
    return f"{artifact_dir}, made {manifest.created_at}; {headline(manifest)}"
