"""Fulcrum's own lines, `[stage] text`, through stdlib logging, and the libraries' kept out
of the terminal unless asked for.

Each stage logs to `fulcrum.<stage>` (`stage_log("train")`); the prefix is the stage's name.
The library configures nothing: an application that embeds it sees the records through its
own handlers. The `fulcrum` command (and the Tune trials it starts on Ray)
call `configure`, which writes the lines to stderr, results staying on stdout, and sets
what reaches the terminal:

- quiet (-q): Fulcrum's warnings and errors only;
- default: Fulcrum's progress and results; Ray, DeepSpeed, ONNX Runtime, Optuna and
  transformers only at ERROR, and Ray's worker output (its C++ core-worker lines, the
  libraries' deprecation notices inside training workers) not forwarded to the driver;
- verbose (-v): everything, including every process's output as Ray forwards it.

The level travels to Ray's worker processes in FULCRUM_VERBOSITY, set before Ray starts.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

VERBOSITY_ENV = "FULCRUM_VERBOSITY"
QUIET, DEFAULT, VERBOSE = -1, 0, 1
# Loggers of the libraries Fulcrum drives, which log routine steps at INFO or WARNING.
LIBRARIES = (
    "ray",
    "DeepSpeed",
    "deepspeed",
    "torch.distributed",
    "onnxruntime",
    "onnx",
    "optuna",
    "transformers",
    "filelock",
    "urllib3",
)


def stage_log(stage: str) -> logging.Logger:
    return logging.getLogger(f"fulcrum.{stage}")


class StageFormatter(logging.Formatter):
    """`[train] text`, `[train] warning: text`: the logger's last part names the stage."""

    def format(self, record: logging.LogRecord) -> str:
        stage = record.name.rpartition(".")[2] if record.name != "fulcrum" else "fulcrum"
        severity = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        text = f"[{stage}] {severity}{record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (a test's capture, a tqdm redirect)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr  # not setStream: it flushes the old one, maybe closed
        super().emit(record)


def verbosity() -> int:
    try:
        return int(os.environ.get(VERBOSITY_ENV, DEFAULT))
    except ValueError:
        return DEFAULT


def configure(level: int | None = None) -> None:
    """Set up output for this process at `level` (QUIET, DEFAULT, VERBOSE; default: what
    FULCRUM_VERBOSITY says, so Ray workers follow the command that started them).
    Idempotent."""
    level = verbosity() if level is None else level
    os.environ[VERBOSITY_ENV] = str(level)
    fulcrum = logging.getLogger("fulcrum")
    if not any(isinstance(handler, _Stderr) for handler in fulcrum.handlers):
        handler = _Stderr()
        handler.setFormatter(StageFormatter())
        fulcrum.addHandler(handler)
    fulcrum.propagate = False  # the root logger's handlers, if any, would print it twice
    fulcrum.setLevel({QUIET: logging.WARNING, DEFAULT: logging.INFO}.get(level, logging.DEBUG))
    quiet_libraries()


def quiet_libraries() -> None:
    """The libraries' loggers at ERROR (INFO under -v), and their deprecation notices off.
    Again after `import ray`, which sets its own logger's level when first imported."""
    verbose = verbosity() >= VERBOSE
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.ERROR)
    # Some log through the root logger itself (ONNX Runtime's quantiser does).
    logging.getLogger().setLevel(logging.WARNING if verbose else logging.ERROR)
    if not verbose:
        # Deprecation and future-change notices say nothing a user of Fulcrum can act on.
        for category in (FutureWarning, DeprecationWarning, UserWarning):
            warnings.filterwarnings("ignore", category=category)


def divert_native_stderr() -> Path | None:
    """Send what native code writes to this process's stderr (Ray's C++ core: "Task
    ServeController.graceful_shutdown failed ... will be retried" as Serve shuts down, ONNX
    Runtime's own warnings) to a file, keeping Python's sys.stderr, and so Fulcrum's lines,
    warnings and any traceback, on the terminal. Native code writes to file descriptor 2
    directly, where no logging level reaches it. Not under -v, and not where stderr is no
    real file (a test's capture). Returns the file, or None."""
    if verbosity() >= VERBOSE:
        return None
    try:
        descriptor = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    folder = Path(tempfile.gettempdir()) / "fulcrum-logs"
    folder.mkdir(exist_ok=True)
    path = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.stderr"
    terminal = os.fdopen(
        os.dup(descriptor), "w", buffering=1, encoding=sys.stderr.encoding, errors="replace"
    )
    with open(path, "ab", buffering=0) as sink:
        os.dup2(sink.fileno(), descriptor)
    sys.stderr = terminal
    atexit.register(_remove_if_empty, path)
    return path


def _remove_if_empty(path: Path) -> None:
    try:
        if path.stat().st_size == 0:
            path.unlink()
    except OSError:
        pass


def forward_worker_output() -> bool:
    """Whether Ray should copy every worker's stdout and stderr to the driver: only when
    asked (-v). Fulcrum's own lines reach the driver through its progress channels."""
    return verbosity() >= VERBOSE
