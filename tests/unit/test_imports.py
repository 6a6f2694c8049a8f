"""Imports run one way (DESIGN.md): no module of fulcrum imports one that imports it back,
even through a function-local import; the library never reaches into the Serve application
(only the CLI starts it); and the foundations import neither the stages nor Ray, so unit
tests and `fulcrum --help` stay fast."""

import ast
from pathlib import Path

from ..conftest import REPOSITORY

FOUNDATIONS = (
    "fulcrum.errors",
    "fulcrum.log",
    "fulcrum.storage",
    "fulcrum.manifest",
    "fulcrum.artifacts",
    "fulcrum.defaults",
    "fulcrum.serve_settings",
    "fulcrum.recipe",
    "fulcrum.metrics",
)
STAGES = ("fulcrum.train", "fulcrum.tune", "fulcrum.compress", "fulcrum.pipeline")


def _modules() -> dict[str, Path]:
    found = {}
    for path in (REPOSITORY / "platform" / "fulcrum").rglob("*.py"):
        parts = list(path.relative_to(REPOSITORY / "platform").with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    for path in (REPOSITORY / "serve").glob("*.py"):
        found["fulcrum.serve" + ("" if path.stem == "__init__" else f".{path.stem}")] = path
    return found


def _imports(path: Path, known) -> dict[str, bool]:
    """Module -> imported at module level (False: only inside a function)."""
    tree = ast.parse(path.read_text())
    top_level = {id(node) for node in tree.body}
    found: dict[str, bool] = {}
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [
                f"{node.module}.{alias.name}"
                if f"{node.module}.{alias.name}" in known
                else node.module
                for alias in node.names
            ]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            found[name] = found.get(name, False) or id(node) in top_level
    return found


def _graph():
    modules = _modules()
    graph = {
        name: {target for target in _imports(path, modules) if target in modules and target != name}
        for name, path in modules.items()
    }
    return modules, graph


def _in(name: str, packages) -> bool:
    return any(name == package or name.startswith(package + ".") for package in packages)


def test_no_module_imports_one_that_imports_it_back():
    _, graph = _graph()
    cycles = []
    for start in graph:
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for target in graph[node]:
                if target == start:
                    cycles.append(" -> ".join([*path, start]))
                elif target not in seen:
                    seen.add(target)
                    stack.append((target, [*path, target]))
    assert cycles == []


def test_only_the_cli_starts_the_serve_application():
    _, graph = _graph()
    reaching = sorted(
        name
        for name, targets in graph.items()
        if not _in(name, ["fulcrum.serve"]) and any(_in(t, ["fulcrum.serve"]) for t in targets)
    )
    assert reaching == ["fulcrum.cli"]


def test_foundations_import_no_stage_and_no_ray_at_import_time():
    modules, graph = _graph()
    for name in FOUNDATIONS:
        assert not [t for t in graph[name] if _in(t, STAGES)], name
        top_level = [t for t, at_top in _imports(modules[name], modules).items() if at_top]
        assert not [t for t in top_level if _in(t, ["ray"])], f"{name} imports ray at import time"
