"""Fulcrum's output: `[stage] text` lines on stderr at the level asked for, the libraries'
loggers held back unless -v, and the level handed on to Ray's worker processes."""

import logging

import pytest

from fulcrum import log


@pytest.fixture
def restore_output(monkeypatch):
    monkeypatch.delenv(log.VERBOSITY_ENV, raising=False)
    yield
    log.configure(log.DEFAULT)


def test_lines_name_their_stage_and_severity(restore_output, capsys):
    log.configure(log.DEFAULT)
    log.stage_log("train").info("step 1/10")
    log.stage_log("compress").warning("dynamic-int8 failed its gate")
    captured = capsys.readouterr()
    assert captured.out == ""  # stdout is for results
    assert captured.err.splitlines() == [
        "[train] step 1/10",
        "[compress] warning: dynamic-int8 failed its gate",
    ]


def test_quiet_keeps_warnings_and_verbose_lets_the_libraries_speak(restore_output, capsys):
    log.configure(log.QUIET)
    log.stage_log("train").info("step 1/10")
    log.stage_log("train").warning("the model has not learned")
    assert capsys.readouterr().err.splitlines() == ["[train] warning: the model has not learned"]
    assert logging.getLogger("ray").getEffectiveLevel() == logging.ERROR
    assert not log.forward_worker_output()

    log.configure(log.VERBOSE)
    assert logging.getLogger("ray").getEffectiveLevel() == logging.INFO
    assert logging.getLogger("fulcrum").getEffectiveLevel() == logging.DEBUG
    assert log.forward_worker_output()


def test_worker_processes_take_the_level_from_the_environment(restore_output, monkeypatch):
    log.configure(log.QUIET)
    monkeypatch.setenv(log.VERBOSITY_ENV, str(log.VERBOSE))  # what a Ray worker inherits
    log.configure()
    assert logging.getLogger("fulcrum").getEffectiveLevel() == logging.DEBUG
    log.configure(log.DEFAULT)
    handlers = [h for h in logging.getLogger("fulcrum").handlers if isinstance(h, log._Stderr)]
    assert len(handlers) == 1  # configuring again adds no second handler


def test_native_stderr_goes_to_a_file_and_fulcrums_lines_stay(tmp_path):
    """What C++ writes to file descriptor 2 (Ray's core, ONNX Runtime) leaves the terminal;
    Python's stderr, and so Fulcrum's lines, stay on it."""
    import subprocess
    import sys

    script = (
        "import os, sys\n"
        "from fulcrum import log\n"
        "log.configure(log.DEFAULT)\n"
        "path = log.divert_native_stderr()\n"
        "os.write(2, b'core_worker.cc: native noise\\n')\n"
        "log.stage_log('train').info('step 1/2')\n"
        "print('where', path, file=sys.stderr)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "[train] step 1/2" in result.stderr
    assert "native noise" not in result.stderr
    (path,) = [
        line.split(" ", 1)[1] for line in result.stderr.splitlines() if line.startswith("where")
    ]
    assert "native noise" in open(path).read()
