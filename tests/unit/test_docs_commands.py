"""Every `fulcrum` command in README.md and docs/ is one the CLI accepts as written: in a
code block, the whole line (placeholders such as RECIPE stand for a real value) and the
example files it names; in the prose, the command and every flag it mentions."""

import re
import shlex

import pytest

from fulcrum.cli import _parser, serve_config_parser

from ..conftest import REPOSITORY

DOCS = [REPOSITORY / "README.md", *sorted((REPOSITORY / "docs").glob("*.md"))]
PLACEHOLDERS = {
    "RECIPE|ARTIFACT": "examples/demo.yaml",
    "RECIPE": "examples/demo.yaml",
    "ARTIFACT...": "artifacts/demo/export",
    "ARTIFACT": "artifacts/demo/export",
    "TEXT...": "a text",
    "TEXT": "a text",
    "[DIR]": "artifacts",
    "URL": "http://127.0.0.1:8265",
    "FILE": "out.html",
}


def _commands() -> list[tuple[str, str]]:
    """(where, command) for each `fulcrum ...` line in a fenced block, continuations joined."""
    found = []
    for path in DOCS:
        in_block, pending = False, ""
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.lstrip().startswith("```"):
                in_block, pending = not in_block, ""
                continue
            if not in_block:
                continue
            line = pending + line.strip().removeprefix("$ ")
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            pending = ""
            if line.startswith("fulcrum "):
                found.append((f"{path.relative_to(REPOSITORY)}:{number}", line))
    return found


def _argv(command: str) -> list[str]:
    command = re.sub(r"\s+#(\s.*)?$", "", command)  # a trailing comment
    words = shlex.split(command, comments=False)[1:]
    return [PLACEHOLDERS.get(word, word) for word in words]


COMMANDS = _commands()


def test_the_docs_hold_the_commands_a_user_types():
    assert len(COMMANDS) > 30
    assert {argv[0] for _, command in COMMANDS for argv in [_argv(command)]} >= {
        "run", "train", "tune", "export", "compress", "serve", "explain", "submit", "runs",
    }  # fmt: skip


@pytest.mark.parametrize(("where", "command"), COMMANDS, ids=[where for where, _ in COMMANDS])
def test_each_documented_command_parses(where, command, capsys):
    argv = _argv(command)
    config = argv[:2] == ["serve", "config"]  # its own parser, as cli.main dispatches it
    try:
        (serve_config_parser() if config else _parser()).parse_args(argv[2:] if config else argv)
    except SystemExit:
        pytest.fail(f"{where}: `{command}`: {capsys.readouterr().err.strip().splitlines()[-1]}")
    for word in argv:
        if word.startswith("examples/"):
            assert (REPOSITORY / word).exists(), f"{where}: {word} does not exist"


def _mentions() -> list[tuple[str, str]]:
    """(where, command) for each `fulcrum ...` code span in the prose."""
    found = []
    for path in DOCS:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            for span in re.findall(r"`(fulcrum [^`]+)`", line):
                found.append((f"{path.relative_to(REPOSITORY)}:{number}", span))
    return found


def _subcommands() -> dict[str, set[str]]:
    """Each command's flags, from the CLI's own parser."""
    commands = next(
        action for action in _parser()._actions if action.__class__.__name__ == "_SubParsersAction"
    )
    return {
        name: {flag for action in sub._actions for flag in action.option_strings}
        for name, sub in commands.choices.items()
    }


def test_each_command_and_flag_the_prose_mentions_exists():
    flags = _subcommands()
    flags["serve config"] = {
        flag for action in serve_config_parser()._actions for flag in action.option_strings
    }
    unknown = []
    for where, span in _mentions():
        words = span.split()[1:]
        command = "serve config" if words[:2] == ["serve", "config"] else words[0]
        if command not in flags:
            unknown.append(f"{where}: `{span}`: no command {command!r}")
            continue
        for word in words:
            if word.startswith("-") and word.split("=")[0] not in flags[command]:
                unknown.append(f"{where}: `{span}`: {command} has no {word}")
    assert unknown == []
