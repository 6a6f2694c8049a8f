"""Stage skipping: a stage's artifact is reused only when the recipe sections it reads, its
parent artifact and its data are exactly what made it; the reason it runs is said."""

import pytest

from fulcrum.artifacts import staged_artifact, write_manifest
from fulcrum.pipeline import STAGE_SECTIONS, stale_reason
from fulcrum.recipe import validate_recipe

from .manifests import KIND_FIELDS

TRAIN = STAGE_SECTIONS["train"]
EXPORT = STAGE_SECTIONS["export"]


@pytest.fixture
def recipe_with(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("text,label\na,x\nb,y\n")

    def make(**sections):
        raw = {"name": "skip", "data": {"path": str(data)}, "train": {"epochs": 2}}
        for section, values in sections.items():
            raw[section] = (
                {**raw.get(section, {}), **values} if isinstance(values, dict) else values
            )
        return validate_recipe(raw)

    return make


def publish(target, recipe, kind="train", parent=None, fingerprint="fp-1"):
    with staged_artifact(target) as staging:
        (staging / "weights.bin").write_bytes(b"\x00" * 16)
        write_manifest(
            staging,
            kind=kind,
            recipe=recipe.to_dict(),
            recipe_hash=recipe.hash,
            labels=["x", "y"],
            metrics={},
            parent=parent,
            data_fingerprint=fingerprint,
            extra=KIND_FIELDS[kind],
        )
    return target


def test_the_same_inputs_skip_and_settings_the_stage_does_not_read_do_not_count(
    tmp_path, recipe_with
):
    train_dir = publish(tmp_path / "train", recipe_with())
    assert stale_reason(train_dir, "train", recipe_with(), TRAIN, data_fingerprint="fp-1") is None
    other_serving = recipe_with(serve={"max_batch_size": 4}, export={"opset": 17})
    assert stale_reason(train_dir, "train", other_serving, TRAIN, data_fingerprint="fp-1") is None


def test_each_changed_input_is_named(tmp_path, recipe_with):
    train_dir = publish(tmp_path / "train", recipe_with())
    changed = recipe_with(train={"lr": 1e-3}, peft={"r": 4})
    assert stale_reason(train_dir, "train", changed, TRAIN) == "recipe changed: peft, train"
    assert stale_reason(train_dir, "train", recipe_with(), TRAIN, data_fingerprint="fp-2") == (
        "the data changed"
    )
    assert stale_reason(tmp_path / "nothing", "train", recipe_with(), TRAIN) == "no artifact yet"


def test_a_remade_parent_makes_its_children_stale(tmp_path, recipe_with):
    recipe = recipe_with()
    train_dir = publish(tmp_path / "train", recipe)
    export_dir = publish(tmp_path / "export", recipe, kind="export", parent=train_dir)
    assert stale_reason(export_dir, "export", recipe, EXPORT, parent=train_dir) is None
    publish(train_dir, recipe_with(seed=1))
    reason = stale_reason(export_dir, "export", recipe, EXPORT, parent=train_dir)
    assert reason == f"its parent {train_dir} was remade"


def test_a_damaged_or_wrong_kind_artifact_is_remade_not_trusted(tmp_path, recipe_with):
    recipe = recipe_with()
    train_dir = publish(tmp_path / "train", recipe)
    (train_dir / "weights.bin").write_bytes(b"\x01" * 16)
    reason = stale_reason(train_dir, "train", recipe, TRAIN)
    assert reason.startswith("the artifact there is unusable") and "weights.bin" in reason
    export_dir = publish(tmp_path / "export", recipe, kind="export")
    assert "unusable" in stale_reason(export_dir, "train", recipe, TRAIN)
