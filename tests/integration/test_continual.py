"""A model continued from a training artifact on new data: its labels extended (the old
rows of its head kept), some of the parent's rows replayed, the parent's outputs distilled
over its own labels, forgetting measured on the parent's own test split, and the promotion
gate's verdict in the manifest."""

import numpy as np
import pytest

from fulcrum.artifacts import open_artifact

pytestmark = pytest.mark.integration


def write_new_intents(path):
    """`tax` again, in the same words, and a new intent, `sport`, in its own."""
    import random

    rng = random.Random(1)
    words = {"tax": ["tax", "invoice", "bill"], "sport": ["goal", "match", "team"]}
    filler = ["the", "a", "my", "is", "was", "today", "please", "very", "new", "old"]
    lines = ["text,label"]
    for label, keys in words.items():
        for _ in range(40):
            tokens = rng.sample(filler, 3) + [rng.choice(keys), rng.choice(keys)]
            rng.shuffle(tokens)
            lines.append(f"{' '.join(tokens)},{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def continued(pipeline, tiny_recipe_factory, tmp_path_factory):
    from fulcrum.train.stage import train

    _, parent_dir, _ = pipeline
    folder = tmp_path_factory.mktemp("continual")
    recipe = tiny_recipe_factory(
        folder,
        name="tiny-next",
        data={"path": str(write_new_intents(folder / "new.csv"))},
        model={"base": None},
        continual={"parent": str(parent_dir), "replay": 0.5, "distill": 0.3},
        train={"epochs": 2, "checkpoint_every_steps": None, "workers": 1},
    )
    return open_artifact(parent_dir, kind="train"), recipe, open_artifact(train(recipe))


def test_new_labels_follow_the_parents_and_the_lineage_names_it(continued):
    parent, _, child = continued
    assert child.labels == [*parent.labels, "sport"]
    assert child.manifest.parent.path == str(parent.path)
    report = child.metrics["continual"]
    assert report["new_labels"] == ["sport"]
    assert report["parent"] == str(parent.path) and report["distill"] == 0.3


def test_the_parents_rows_are_replayed_and_its_test_split_measured(continued):
    from fulcrum.data import load_splits, recipe_splits
    from fulcrum.recipe import validate_recipe

    parent, recipe, child = continued
    old = recipe_splits(validate_recipe(parent.manifest.settled_recipe))
    report = child.metrics["continual"]
    counts = np.bincount(old.train.column("label").to_numpy())
    assert report["replayed_rows"] == sum(max(1, round(0.5 * c)) for c in counts)
    new = load_splits(validate_recipe({**recipe.to_dict(), "continual": None}).data, recipe.seed)
    assert child.manifest.split_sizes["train"] == new.train.num_rows + report["replayed_rows"]
    assert report["old_test"]["rows"] == old.test.num_rows
    assert child.metrics["old_test"]["accuracy"] == pytest.approx(
        report["old_test"]["continued"]["accuracy"]
    )
    assert {row["label"] for row in report["old_test"]["per_label"]} <= set(parent.labels)
    # The parent knew none of the new test split's sport rows: it cannot be right on them.
    assert report["new_test"]["parent"]["accuracy"] < 0.7
    verdict = report["gate"]
    assert verdict["passed"] == (not verdict["reasons"])
    assert verdict["metric"] == child.metrics["metric"]


def test_the_continued_base_holds_the_parents_head_rows_and_new_ones(continued):
    from safetensors.torch import load_file

    from fulcrum.continual import continued_base
    from fulcrum.models.classifier import CARRIED_HEAD
    from fulcrum.train.merge import MERGED_DIR

    parent, _, child = continued
    folder = continued_base(parent, child.labels)
    carried = load_file(str(folder / CARRIED_HEAD))
    merged = load_file(str(parent.path / MERGED_DIR / "model.safetensors"))
    (weight,) = [name for name, t in carried.items() if t.dim() == 2 and t.shape[0] == 4]
    assert np.array_equal(carried[weight][:3].numpy(), merged[weight].numpy())
    assert weight not in load_file(str(folder / "model.safetensors"))
