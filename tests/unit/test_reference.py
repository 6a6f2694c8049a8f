"""docs/recipe.md is the recipe's models written out: current, and every key described."""

from fulcrum.recipe import Recipe
from fulcrum.reference import _sections, recipe_reference

from ..conftest import REPOSITORY


def test_docs_recipe_md_is_current():
    written = (REPOSITORY / "docs" / "recipe.md").read_text()
    assert written == recipe_reference(), (
        "docs/recipe.md is stale: python -m fulcrum.reference > docs/recipe.md"
    )


def test_every_key_of_every_section_is_described():
    sections = [("", Recipe), *_sections(Recipe, "")]
    undescribed = [
        f"{path}.{name}".lstrip(".")
        for path, model in sections
        for name, field in model.model_fields.items()
        if not field.description and not _is_section(model, name)
    ]
    assert undescribed == []
    paths = [path for path, _ in sections]
    for expected in (
        "augment",
        "distill",
        "tune.space.NAME",
        "compress.variants[]",
        "serve.autoscaling",
    ):
        assert expected in paths


def _is_section(model, name) -> bool:
    """A field holding a section is described by its own table."""
    from fulcrum.reference import _models_in

    return bool(_models_in(model.model_fields[name].annotation))
