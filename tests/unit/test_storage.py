"""Artifacts under a URI output_dir: built in a local mirror, uploaded with the manifest last,
and read back through the mirror with the URI as the truth. file:// URIs go through the same
pyarrow filesystem calls as s3:// (tests/integration/test_storage_s3.py runs them on S3)."""

import json

import pytest

from fulcrum import storage
from fulcrum.artifacts import open_artifact
from fulcrum.catalog import find_artifacts, lineage
from fulcrum.errors import ArtifactError
from tests.unit.test_artifacts import publish


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FULCRUM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def bucket(tmp_path):
    (tmp_path / "bucket").mkdir()
    return tmp_path / "bucket"


def test_uri_paths_keep_their_query():
    assert storage.is_uri("s3://b/x") and storage.is_uri("file:///tmp/x")
    assert not storage.is_uri("artifacts") and not storage.is_uri("/abs/path")
    assert (
        storage.join("s3://b/runs?endpoint_override=h:9000&scheme=http", "demo/train")
        == "s3://b/runs/demo/train?endpoint_override=h:9000&scheme=http"
    )
    assert storage.parent("s3://b/runs/demo/train?region=x", 2) == "s3://b/runs?region=x"


def test_mirror_maps_back_to_its_uri(bucket):
    uri = f"file://{bucket}/runs"
    mirror = storage.output_root(uri)
    assert storage.output_root(uri + "/") == mirror  # one mirror per location
    assert storage.remote_of(mirror / "demo" / "train") == f"{uri}/demo/train"
    assert storage.remote_of(mirror / "demo" / "_tune" / "t1" / "train") is None
    assert storage.remote_of(mirror / "demo" / ".export.staging-1234") is None
    assert storage.remote_of(bucket) is None
    assert storage.local_path(f"{uri}/demo/train") == mirror / "demo" / "train"


def test_an_artifact_under_a_uri_is_uploaded_and_read_back(bucket, cache):
    uri = f"file://{bucket}/runs"
    local = publish(
        storage.output_root(uri) / "demo" / "train", {"w.bin": "weights", "sub/t.json": "{}"}
    )
    remote = bucket / "runs" / "demo" / "train"
    assert sorted(p.name for p in remote.rglob("*") if p.is_file()) == [
        "manifest.json",
        "t.json",
        "w.bin",
    ]
    assert (remote / "manifest.json").read_bytes() == (local / "manifest.json").read_bytes()

    # Another machine: an empty cache, the URI given directly.
    import shutil

    shutil.rmtree(cache)
    artifact = open_artifact(f"{uri}/demo/train", kind="train")
    assert artifact.path == storage.local_path(f"{uri}/demo/train")
    assert artifact.file("w.bin").read_text() == "weights"


def test_a_child_records_its_parent_by_uri_and_lineage_follows_it(bucket):
    uri = f"file://{bucket}/runs"
    root = storage.output_root(uri)
    parent = publish(root / "demo" / "train", {"w.bin": "weights"})
    publish(root / "demo" / "export", {"m.onnx": "onnx"}, kind="export", parent=parent)
    manifest = json.loads((bucket / "runs/demo/export/manifest.json").read_text())
    assert manifest["parent"]["path"] == f"{uri}/demo/train"

    found = find_artifacts(uri)
    assert {(item["kind"], item["path"]) for item in found} == {
        ("train", f"{uri}/demo/train"),
        ("export", f"{uri}/demo/export"),
    }
    chain = lineage(f"{uri}/demo/export")
    assert [step["kind"] for step in chain] == ["export", "train"]
    assert chain[1]["path"] == f"{uri}/demo/train"


def test_fulcrum_runs_and_show_read_a_uri(bucket, capsys):
    from fulcrum.cli import main

    uri = f"file://{bucket}/runs"
    root = storage.output_root(uri)
    parent = publish(root / "demo" / "train", {"w.bin": "weights"})
    publish(root / "demo" / "export", {"m.onnx": "onnx"}, kind="export", parent=parent)
    assert main(["runs", uri]) == 0
    listed = capsys.readouterr().out
    assert f"{uri}/demo/train" in listed and f"{uri}/demo/export" in listed
    assert main(["show", "demo/export", "--output-dir", uri]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[0] == f"export artifact {uri}/demo/export"
    assert shown[2].strip().startswith(f"<- train    {uri}/demo/train")
    assert shown[-1] == f"1 files, sha256 in {uri}/demo/export/manifest.json"


def test_a_failed_upload_publishes_nothing_and_the_local_copy_is_dropped(bucket, monkeypatch):
    uri = f"file://{bucket}/runs"
    target = storage.output_root(uri) / "demo" / "train"
    publish(target, {"a.bin": "one"})
    uploads = []
    real_upload = storage.upload_file

    def failing_upload(filesystem, source, path):
        if uploads:
            raise OSError(28, "No space left on device")
        uploads.append(path)
        real_upload(filesystem, source, path)

    monkeypatch.setattr(storage, "upload_file", failing_upload)
    with pytest.raises(
        ArtifactError, match="could not upload the artifact .*nothing was published"
    ):
        publish(target, {"a.bin": "two", "b.bin": "two"})
    # The old manifest went first, and the new one was never written: no artifact remotely.
    assert not (bucket / "runs/demo/train/manifest.json").exists()
    monkeypatch.undo()
    with pytest.raises(ArtifactError, match="not an artifact"):
        open_artifact(target)
    assert not target.exists()


def test_remote_changes_win_and_remote_damage_is_refused(bucket):
    uri = f"file://{bucket}/runs"
    target = storage.output_root(uri) / "demo" / "train"
    publish(target, {"a.bin": "one"})
    # Someone else publishes a newer artifact there.
    other = bucket / "elsewhere"
    other_local = publish(storage.output_root(f"file://{other}") / "train", {"a.bin": "newer"})
    for name in ("a.bin", "manifest.json"):
        (bucket / "runs/demo/train" / name).write_bytes((other_local / name).read_bytes())
    assert open_artifact(target).file("a.bin").read_text() == "newer"

    (bucket / "runs/demo/train/a.bin").write_text("tampered")
    (bucket / "runs/demo/train/manifest.json").touch()  # same manifest bytes: cache still valid
    assert open_artifact(target).file("a.bin").read_text() == "newer"
    import shutil

    shutil.rmtree(target)  # a fresh node downloads the damaged file and refuses it
    with pytest.raises(ArtifactError, match="sha256 does not match the manifest"):
        open_artifact(f"{uri}/demo/train")


def test_an_unreachable_location_is_named():
    with pytest.raises(
        ArtifactError,
        match="nosuchscheme://x/y/train: cannot open this storage location .Unrecognized",
    ):
        open_artifact("nosuchscheme://x/y/train")


def test_a_password_in_a_uri_is_refused_before_it_reaches_a_manifest():
    from fulcrum.errors import RecipeError
    from fulcrum.recipe import validate_recipe

    raw = {"name": "r", "data": {"path": "d.csv"}, "output_dir": "s3://key:secret@bucket/runs"}
    with pytest.raises(RecipeError, match="output_dir: the URI has a password in it; give cred"):
        validate_recipe(raw)
    raw = {**raw, "output_dir": "s3://bucket/runs", "train": {"storage_path": "s3://k:s@b/x"}}
    with pytest.raises(RecipeError, match="train.storage_path: the URI has a password"):
        validate_recipe(raw)
    with pytest.raises(ArtifactError, match="s3://...: the storage location has a password"):
        open_artifact("s3://key:secret@bucket/runs/demo/train")
