"""The catalogue of an output directory, read from manifests alone."""

from fulcrum.artifacts import write_manifest
from fulcrum.catalog import find_artifacts, lineage

from .manifests import KIND_FIELDS


def _artifact(folder, kind, metrics, parent=None, **extra):
    folder.mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"x")
    write_manifest(
        folder,
        kind=kind,
        recipe={"name": "news"},
        recipe_hash="ab" * 32,
        labels=["neg", "pos"],
        metrics=metrics,
        parent=parent,
        data_fingerprint="cd" * 32,
        extra=KIND_FIELDS[kind] | extra,
    )
    return folder


def test_runs_lists_every_artifact_with_its_headline_and_skips_working_state(tmp_path):
    test = {"accuracy": 0.91, "macro_f1": 0.9}
    train = _artifact(tmp_path / "news" / "train", "train", {"validation": test, "test": test})
    _artifact(tmp_path / "news" / "train" / "_ray" / "x", "train", {})  # checkpoint state
    export = _artifact(tmp_path / "news" / "export", "export", {"validation": test}, train)
    variant = _artifact(
        tmp_path / "news" / "compress" / "variants" / "int8",
        "export",
        {"gate": {"test": {"metrics": {"macro_f1": 0.85}}}},
        train,
        deployable=False,
    )
    found = {item["path"]: item for item in find_artifacts(tmp_path)}
    assert set(found) == {str(train), str(export), str(variant)}
    assert found[str(train)]["headline"] == "validation macro_f1 0.9000, test macro_f1 0.9000"
    assert found[str(variant)]["headline"] == "test macro_f1 0.8500, NOT deployable"
    assert found[str(export)]["parent"] == str(train)
    assert find_artifacts(tmp_path / "missing") == []

    chain = lineage(variant)
    assert [step["kind"] for step in chain] == ["export", "train"]
    assert chain[1]["test"] == test and chain[1]["recipe_hash"] == "ab" * 6
