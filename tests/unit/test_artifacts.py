"""Artifacts: published whole or not at all, and refused when altered."""

import json
from pathlib import Path

import pytest

from fulcrum.artifacts import open_artifact, staged_artifact, write_manifest
from fulcrum.catalog import find_artifacts
from fulcrum.errors import ArtifactError
from fulcrum.manifest import ExportManifest

from .manifests import KIND_FIELDS


def publish(target, files: dict[str, str], kind="train", parent=None):
    with staged_artifact(target) as staging:
        for name, content in files.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_text(content)
        write_manifest(
            staging,
            kind=kind,
            recipe={"name": "t"},
            recipe_hash="h",
            labels=["a", "b"],
            metrics={"accuracy": 0.5},
            parent=parent,
            data_fingerprint="fp",
            extra=KIND_FIELDS[kind],
        )
    return target


def test_manifest_lists_every_file_with_sha256(tmp_path):
    target = publish(tmp_path / "art", {"a.txt": "hello", "sub/b.txt": "world"})
    manifest = json.loads((target / "manifest.json").read_text())
    assert set(manifest["files"]) == {"a.txt", "sub/b.txt"}
    assert (
        manifest["files"]["a.txt"]
        == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    )
    assert manifest["packages"]["python"]
    assert manifest["recipe_hash"] == "h" and manifest["data_fingerprint"] == "fp"
    artifact = open_artifact(target, kind="train")
    assert artifact.labels == ["a", "b"] and artifact.metrics == {"accuracy": 0.5}


def test_failure_inside_the_block_leaves_nothing_behind(tmp_path):
    with pytest.raises(RuntimeError):
        with staged_artifact(tmp_path / "art") as staging:
            (staging / "half.bin").write_text("half")
            raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []


def test_failed_rewrite_keeps_the_previous_artifact(tmp_path):
    target = publish(tmp_path / "art", {"a.txt": "v1"})
    with pytest.raises(RuntimeError):
        with staged_artifact(target) as staging:
            (staging / "a.txt").write_text("v2")
            raise RuntimeError("crash")
    assert (target / "a.txt").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]


def test_rewrite_replaces_the_previous_artifact(tmp_path):
    target = publish(tmp_path / "art", {"a.txt": "v1", "old.txt": "x"})
    publish(target, {"a.txt": "v2"})
    assert sorted(p.name for p in target.iterdir()) == ["a.txt", "manifest.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]


def test_block_without_manifest_is_not_published(tmp_path):
    with pytest.raises(ArtifactError, match="has no manifest.json"):
        with staged_artifact(tmp_path / "art") as staging:
            (staging / "a.txt").write_text("x")
    assert not (tmp_path / "art").exists()


def test_corrupted_and_missing_files_are_refused(tmp_path):
    target = publish(tmp_path / "art", {"a.txt": "hello", "b.txt": "world"})
    (target / "a.txt").write_text("hellO")
    with pytest.raises(ArtifactError, match=r"a.txt: sha256 does not match the manifest"):
        open_artifact(target)
    (target / "a.txt").write_text("hello")
    (target / "b.txt").unlink()
    with pytest.raises(ArtifactError, match=r"b.txt: listed in the manifest but missing"):
        open_artifact(target)


def test_wrong_kind_and_not_an_artifact(tmp_path):
    target = publish(tmp_path / "art", {"a.txt": "x"}, kind="export")
    with pytest.raises(ArtifactError, match="expected a train artifact, found a 'export' artifact"):
        open_artifact(target, kind="train")
    with pytest.raises(ArtifactError, match="not an artifact"):
        open_artifact(tmp_path)


def test_parent_is_recorded_with_its_manifest_hash(tmp_path):
    parent = publish(tmp_path / "parent", {"a.txt": "x"})
    child = publish(tmp_path / "child", {"b.txt": "y"}, kind="export", parent=parent)
    entry = open_artifact(child).manifest.parent
    assert entry.path == str(parent.resolve()) and len(entry.manifest_sha256) == 64


def test_a_manifest_is_read_back_as_its_kind_and_one_from_another_version_names_its_field(
    tmp_path,
):
    export = open_artifact(publish(tmp_path / "export", {"m.onnx": "x"}, kind="export"))
    assert isinstance(export.manifest, ExportManifest) and export.manifest.refusal is None
    written = json.loads((tmp_path / "export" / "manifest.json").read_text())

    def rewrite(**changes):
        (tmp_path / "export" / "manifest.json").write_text(json.dumps(written | changes))

    rewrite(added_by_a_newer_fulcrum={"x": 1})  # unknown fields are ignored
    assert open_artifact(tmp_path / "export").manifest == export.manifest
    rewrite(max_length="long")
    with pytest.raises(ArtifactError, match=r"manifest.json: field 'max_length' of this export"):
        open_artifact(tmp_path / "export")
    del written["deployable"]
    rewrite()
    with pytest.raises(
        ArtifactError, match=r"field 'deployable' of this export manifest is missing"
    ):
        open_artifact(tmp_path / "export")
    rewrite(kind="notebook")
    with pytest.raises(ArtifactError, match=r"not an artifact fulcrum knows \(kind 'notebook'"):
        open_artifact(tmp_path / "export")
    # `fulcrum runs` lists it with why, and the others as usual.
    publish(tmp_path / "train", {"w.bin": "x"})
    found = {Path(item["path"]).name: item["headline"] for item in find_artifacts(tmp_path)}
    assert found["export"].startswith("unreadable: ") and "accuracy" not in found["export"]
    assert found["train"] == ""


def test_unwritable_location_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")  # works as root too, unlike chmod
    with pytest.raises(ArtifactError, match="a-file/art: cannot create the artifact here"):
        with staged_artifact(blocker / "art"):
            pass


def test_a_write_the_disk_refuses_is_one_clear_error_and_publishes_nothing(tmp_path):
    import errno

    good = publish(tmp_path / "art", {"a.txt": "good"})
    with pytest.raises(ArtifactError) as raised:
        with staged_artifact(good) as staging:
            (staging / "a.txt").write_text("half")
            # Libraries wrap the OSError; the cause is found along the chain.
            try:
                raise OSError(errno.ENOSPC, "No space left on device", str(staging / "b"))
            except OSError as error:
                raise RuntimeError("serialisation failed") from error
    assert str(raised.value).startswith(f"{good}: could not write the artifact (No space left")
    assert str(raised.value).endswith("nothing was published; the previous artifact is unchanged")
    assert open_artifact(good).file("a.txt").read_text() == "good"
    assert [path.name for path in tmp_path.iterdir()] == ["art"]
    with pytest.raises(ValueError, match="a bug, not the disk"):
        with staged_artifact(tmp_path / "other"):
            raise ValueError("a bug, not the disk")
