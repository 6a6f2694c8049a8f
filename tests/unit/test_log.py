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
