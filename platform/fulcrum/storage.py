"""Artifacts on a pyarrow filesystem URI (s3://, gs://, file://).

Stages build artifacts on local disk, because what reads and writes them (PyTorch, ONNX
Runtime, DeepSpeed, tokenizers) wants local files. An `output_dir` that is a URI therefore
gets a local mirror folder, and the URI stays the truth:

- publishing uploads a finished artifact file by file, having first removed the old manifest
  and ending with the new one. An object store has no rename, so this ordering is what makes
  a publish safe: whoever finds a manifest finds every file it lists, and while a publish runs
  (or after one failed) readers see no artifact rather than half of one;
- opening an artifact inside a mirror first compares the local manifest with the remote one,
  and downloads the artifact when they differ; a local copy whose remote manifest is gone (a
  publish that failed, an artifact deleted remotely) is dropped;
- folders whose name starts with `.` (an artifact being staged) or `_` (a stage's working
  state: a campaign's trials under `_tune`) are never uploaded;
- a URI given where an artifact path is expected (`fulcrum serve s3://...`, a teacher) is
  opened through the mirror of its parent folder, so each node downloads it once.

The mirror of a URI lives under $FULCRUM_CACHE (default ~/.cache/fulcrum)/remote/, named after
the URI's hash, with a marker file that holds the URI.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import uuid
from functools import lru_cache
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit, urlunsplit

from fulcrum.errors import ArtifactError

MANIFEST = "manifest.json"
MARKER = ".fulcrum-remote"
_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_uri(location: str | Path) -> bool:
    return isinstance(location, str) and bool(_URI.match(location))


def credentials_problem(location: str) -> str | None:
    """Why a URI must not be used as written: a password in it would be copied into
    manifests, logs and progress lines. Credentials belong in the environment."""
    if is_uri(location) and urlsplit(location).password:
        return (
            "has a password in it; give credentials through the environment "
            "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, GOOGLE_APPLICATION_CREDENTIALS), "
            "since this location is written into manifests and logs"
        )
    return None


def cache_root() -> Path:
    return Path(os.environ.get("FULCRUM_CACHE", "~/.cache/fulcrum")).expanduser()


def output_root(location: str | Path) -> Path:
    """The local folder artifacts under `location` are built in: the folder itself, or the
    mirror of a URI."""
    if not is_uri(location):
        return Path(location)
    uri = str(location).rstrip("/")
    mirror = _mirror_of(uri)
    marker = mirror / MARKER
    if not marker.is_file():
        mirror.mkdir(parents=True, exist_ok=True)
        temp = mirror / f".{MARKER}.{uuid.uuid4().hex[:8]}"
        temp.write_text(uri + "\n")
        os.replace(temp, marker)
    return mirror


def local_path(location: str | Path) -> Path:
    """Where an artifact given as a path or a URI is read from on this machine: inside the
    mirror of the nearest folder above it that has one (the output_dir it was written
    under), else in a new mirror of its parent folder."""
    if not is_uri(location):
        return Path(location)
    parts = urlsplit(str(location).rstrip("/"))
    path = PurePosixPath(parts.path)
    for above in path.parents:
        mirror = _mirror_of(urlunsplit(parts._replace(path=str(above).rstrip("/"))))
        if (mirror / MARKER).is_file():
            return mirror / path.relative_to(above)
    return output_root(urlunsplit(parts._replace(path=str(path.parent)))) / path.name


def _mirror_of(uri: str) -> Path:
    return cache_root() / "remote" / hashlib.sha256(uri.encode()).hexdigest()[:16]


def remote_of(local: str | Path) -> str | None:
    """The URI a local folder mirrors, or None when it lies in no mirror."""
    local = Path(local).absolute()
    for folder in (local, *local.parents):
        marker = folder / MARKER
        if marker.is_file():
            relative = local.relative_to(folder)
            if any(part[:1] in ("_", ".") for part in relative.parts):
                return None  # staging folders, and a stage's working state (_tune), stay local
            return join(marker.read_text().strip(), relative.as_posix())
    return None


def join(uri: str, relative: str) -> str:
    """`relative` appended to the URI's path, leaving any query (endpoint_override=...) after it."""
    if relative in ("", "."):
        return uri
    parts = urlsplit(uri)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/" + relative))


def parent(uri: str, levels: int = 1) -> str:
    """The folder `levels` above a URI's path, its query kept."""
    parts = urlsplit(uri.rstrip("/"))
    return urlunsplit(parts._replace(path=str(PurePosixPath(parts.path).parents[levels - 1])))


def publish(local_dir: Path, uri: str) -> None:
    """Upload a finished artifact: old manifest removed first, new manifest written last."""
    filesystem, root = filesystem_and_path(uri)
    try:
        _delete_if_present(filesystem, f"{root}/{MANIFEST}")
        _delete_tree(filesystem, root)
        files = sorted(p for p in local_dir.rglob("*") if p.is_file() and p.name != MANIFEST)
        for path in [*files, local_dir / MANIFEST]:
            upload_file(filesystem, path, f"{root}/{path.relative_to(local_dir).as_posix()}")
    except OSError as error:
        raise ArtifactError(
            f"{uri}: could not upload the artifact ({error}); nothing was published, and no "
            "artifact is there now (its manifest goes first): run the stage again"
        ) from error


def refresh(local_dir: Path) -> None:
    """Bring a mirrored artifact in line with its URI (a no-op outside a mirror)."""
    uri = remote_of(local_dir)
    if uri is None:
        return
    filesystem, root = filesystem_and_path(uri)
    try:
        remote_manifest = _read(filesystem, f"{root}/{MANIFEST}")
    except OSError as error:
        raise ArtifactError(f"{uri}: cannot read the artifact's manifest ({error})") from None
    local_manifest = local_dir / MANIFEST
    if remote_manifest is None:
        if local_dir.exists():
            shutil.rmtree(local_dir)  # never published, or deleted at the source
        return
    if local_manifest.is_file() and local_manifest.read_bytes() == remote_manifest:
        return
    # Replicas starting together on one node fetch it once: the others wait, then find it.
    local_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(local_dir.parent / f".{local_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if local_manifest.is_file() and local_manifest.read_bytes() == remote_manifest:
            return
        _download(filesystem, root, remote_manifest, local_dir, uri)


def _download(filesystem, root: str, manifest: bytes, local_dir: Path, uri: str) -> None:
    listed = json.loads(manifest).get("files", {})
    staging = local_dir.parent / f".{local_dir.name}.download-{uuid.uuid4().hex[:8]}"
    try:
        for relative in listed:
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with filesystem.open_input_stream(f"{root}/{relative}") as source:
                    with open(target, "wb") as sink:
                        shutil.copyfileobj(source, sink, 1 << 20)
            except FileNotFoundError:
                raise ArtifactError(
                    f"{join(uri, relative)}: listed in the manifest but missing"
                ) from None
            except OSError as error:
                raise ArtifactError(f"{join(uri, relative)}: cannot download ({error})") from None
        (staging / MANIFEST).write_bytes(manifest)
        if local_dir.exists():
            shutil.rmtree(local_dir)
        os.replace(staging, local_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@lru_cache(maxsize=32)
def _filesystem_of(base: str):
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(base)


def filesystem_and_path(uri: str):
    """(pyarrow filesystem, path in it). Filesystems are cached per scheme and host, with the
    query (endpoint, region) that configures them: opening an S3 client is not free."""
    problem = credentials_problem(uri)
    if problem:
        raise ArtifactError(f"{urlsplit(uri).scheme}://...: the storage location {problem}")
    parts = urlsplit(uri)
    if parts.scheme == "file":
        filesystem, _ = _filesystem_of("file:///")
        return filesystem, parts.path.rstrip("/")
    base = urlunsplit(parts._replace(path="/"))
    try:
        filesystem, prefix = _filesystem_of(base)
    except (OSError, ValueError) as error:
        raise ArtifactError(f"{uri}: cannot open this storage location ({error})") from None
    path = (prefix.rstrip("/") + parts.path).strip("/") if prefix else parts.path.strip("/")
    return filesystem, path


def _read(filesystem, path: str) -> bytes | None:
    try:
        with filesystem.open_input_stream(path) as stream:
            return stream.read()
    except FileNotFoundError:
        return None


def upload_file(filesystem, source: Path, path: str) -> None:
    filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with open(source, "rb") as handle, filesystem.open_output_stream(path) as sink:
        shutil.copyfileobj(handle, sink, 1 << 20)


def _delete_if_present(filesystem, path: str) -> None:
    try:
        filesystem.delete_file(path)
    except FileNotFoundError:
        pass


def _delete_tree(filesystem, path: str) -> None:
    import pyarrow.fs

    if filesystem.get_file_info(path).type == pyarrow.fs.FileType.Directory:
        filesystem.delete_dir_contents(path)


def read_manifest_bytes(location: str | Path) -> bytes | None:
    """An artifact's manifest.json from a local folder or a URI, without fetching the rest."""
    if not is_uri(location):
        manifest = Path(location) / MANIFEST
        return manifest.read_bytes() if manifest.is_file() else None
    filesystem, root = filesystem_and_path(str(location))
    try:
        return _read(filesystem, f"{root}/{MANIFEST}")
    except OSError as error:
        raise ArtifactError(f"{location}: cannot read the artifact's manifest ({error})") from None


def artifact_uris(uri: str, skipped: set[str], max_depth: int) -> list[str]:
    """The artifacts (folders holding a manifest) under a URI, by listing it once."""
    import pyarrow.fs

    filesystem, root = filesystem_and_path(uri)
    try:
        listing = filesystem.get_file_info(pyarrow.fs.FileSelector(root, recursive=True))
    except FileNotFoundError:
        return []
    except OSError as error:
        raise ArtifactError(f"{uri}: cannot list it ({error})") from None
    found = []
    for info in listing:
        if info.base_name != MANIFEST or info.type != pyarrow.fs.FileType.File:
            continue
        relative = PurePosixPath(info.path).parent.relative_to(PurePosixPath(root))
        parts = relative.parts
        if len(parts) > max_depth or any(p in skipped or p.startswith(".") for p in parts):
            continue
        found.append(join(uri, relative.as_posix()))
    return found
