"""What `fulcrum predict INPUT...` names, resolved to a fixed list of files before anything
runs: the files are listed once, so the output's manifest can say which were scored, and a
rerun can tell which are already done.

An input is a file, a folder (every data file under it, at any depth), a glob (`*`, `?`,
`[...]`; `**` spans folders), or the same as a URI (s3://, gs://, file://). Names starting
with `.` or `_` are skipped inside folders, as Ray Data and Spark skip them (`_SUCCESS`,
`.part` files being written).
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import PurePosixPath
from urllib.parse import urlsplit, urlunsplit

from fulcrum.data.readers import EXTENSIONS
from fulcrum.errors import DataError
from fulcrum.storage import filesystem_and_path, is_uri

GLOB_CHARACTERS = set("*?[")


@dataclass(frozen=True)
class SourceFile:
    path: str  # in `Sources.filesystem`'s terms: a local path, or bucket/key for a URI
    size: int
    format: str  # csv, tsv, jsonl, parquet

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name


@dataclass(frozen=True)
class Sources:
    filesystem: object  # pyarrow.fs.FileSystem
    files: list[SourceFile]
    scheme: str  # "" for local paths, else the URIs' scheme and host: s3://bucket

    def display(self, file: SourceFile) -> str:
        """The file as the user would write it."""
        return f"{self.scheme.split('://')[0]}://{file.path}" if self.scheme else file.path


def resolve_inputs(inputs: list[str]) -> Sources:
    """Every data file the inputs name, in the order given (each folder's and glob's files
    sorted), each once. Raises DataError naming an input that matches nothing, a file whose
    format cannot be told, or inputs on two different storage systems."""
    if not inputs:
        raise DataError("no input given: name files, folders, globs or URIs to score")
    bases = {_base(item) for item in inputs}
    if len(bases) > 1:
        raise DataError(
            "inputs on different storage systems ("
            + ", ".join(sorted(base or "local files" for base in bases))
            + "): score each in its own run"
        )
    base = bases.pop()
    filesystem = _local_filesystem() if not base else filesystem_and_path(inputs[0])[0]
    files: dict[str, SourceFile] = {}
    for item in inputs:
        for file in _expand(item, filesystem):
            files.setdefault(file.path, file)
    return Sources(filesystem=filesystem, files=list(files.values()), scheme=base)


def _base(item: str) -> str:
    """The storage system an input lives on: "" for local paths, else scheme://host?query."""
    if not is_uri(item) or item.startswith("file://"):
        return ""
    parts = urlsplit(item)
    return urlunsplit(parts._replace(path="", fragment=""))


def _local_filesystem():
    import pyarrow.fs

    return pyarrow.fs.LocalFileSystem()


def _expand(item: str, filesystem) -> list[SourceFile]:
    import pyarrow.fs

    if is_uri(item):
        path = filesystem_and_path(_without_glob(item))[1]
        pattern = _glob_part(item)
    else:
        local = os.path.abspath(os.path.expanduser(item.removeprefix("file://")))
        path, pattern = (local, None) if not _is_glob(local) else (None, local)
    if pattern is not None and not is_uri(item):
        matches = sorted(glob.glob(pattern, recursive=True))
        found = [m for m in matches if os.path.isfile(m) and _format_of(m) is not None]
        return _checked(item, [_file(filesystem, m, _format_of(m)) for m in found])
    try:
        info = filesystem.get_file_info(path)
    except OSError as error:
        raise DataError(f"{item}: cannot be read ({error})") from None
    if info.type == pyarrow.fs.FileType.File and pattern is None:
        return [_file(filesystem, path, _explicit_format(item, path), info.size)]
    if info.type != pyarrow.fs.FileType.Directory:
        raise DataError(f"{item}: no such file or folder")
    listed = filesystem.get_file_info(pyarrow.fs.FileSelector(path, recursive=True))
    found = []
    for entry in sorted(listed, key=lambda entry: entry.path):
        relative = PurePosixPath(entry.path).relative_to(PurePosixPath(path))
        if entry.type != pyarrow.fs.FileType.File or _hidden(relative):
            continue
        if pattern is not None and not _matches(relative.as_posix(), pattern):
            continue
        kind = _format_of(entry.path)
        if kind is not None:
            found.append(_file(filesystem, entry.path, kind, entry.size))
    return _checked(item, found)


def _checked(item: str, found: list[SourceFile]) -> list[SourceFile]:
    if not found:
        known = ", ".join(sorted(EXTENSIONS))
        raise DataError(f"{item}: matches no data file (files ending in {known})")
    return found


def _file(filesystem, path: str, kind: str, size: int | None = None) -> SourceFile:
    if size is None:
        size = filesystem.get_file_info(path).size
    return SourceFile(path=path, size=int(size or 0), format=kind)


def _format_of(path: str) -> str | None:
    return EXTENSIONS.get(PurePosixPath(path).suffix.lower())


def _explicit_format(item: str, path: str) -> str:
    kind = _format_of(path)
    if kind is None:
        known = ", ".join(sorted(EXTENSIONS))
        suffix = PurePosixPath(path).suffix or "(none)"
        raise DataError(
            f"{item}: cannot tell the format from the extension {suffix!r}; use {known}"
        )
    return kind


def _hidden(relative: PurePosixPath) -> bool:
    return any(part.startswith((".", "_")) for part in relative.parts)


def _is_glob(text: str) -> bool:
    return any(character in GLOB_CHARACTERS for character in text)


def _without_glob(uri: str) -> str:
    """A URI cut back to the folder above its first glob character, its query kept."""
    parts = urlsplit(uri)
    kept = []
    for part in parts.path.split("/"):
        if _is_glob(part):
            break
        kept.append(part)
    return urlunsplit(parts._replace(path="/".join(kept) or "/"))


def _glob_part(uri: str) -> str | None:
    """The glob below `_without_glob(uri)`'s folder, or None when the URI has none."""
    path = urlsplit(uri).path
    parts = path.split("/")
    for index, part in enumerate(parts):
        if _is_glob(part):
            return "/".join(parts[index:])
    return None


def _matches(relative: str, pattern: str) -> bool:
    """A glob on the path below the listed folder; `**` matches any number of folders."""
    if "**" not in pattern:
        return relative.count("/") == pattern.count("/") and fnmatchcase(relative, pattern)
    # fnmatch's `*` already spans folders; `**/` may also stand for no folder at all.
    return fnmatchcase(relative, pattern) or fnmatchcase(relative, pattern.replace("**/", ""))
