import logging

import pytest

from fulcrum.log import StageFormatter
from fulcrum.train.progress import ProgressPrinter, ProgressSink, format_seconds


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(StageFormatter().format(record))


@pytest.fixture
def said():
    """The lines the printer logs, as the CLI writes them."""
    handler, logger = _Lines(), logging.getLogger("fulcrum.train")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.lines
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_lines_carry_rates_and_eta_from_engine_start(said):
    printer = ProgressPrinter(total_steps=100)
    printer.handle(
        {"type": "message", "text": "engines ready", "time": 1000.0, "clock_start": True}
    )
    printer.handle(
        {
            "type": "step",
            "time": 1010.0,
            "epoch": 1,
            "step": 25,
            "loss": 0.5,
            "lr": 1e-3,
            "samples_per_s": 80.0,
            "tokens_per_s": 900.0,
        }
    )
    printer.handle(
        {
            "type": "epoch",
            "epoch": 1,
            "epochs": 4,
            "metrics": {"val_accuracy": 0.875, "val_entities": 12},
        }
    )
    lines = said
    assert lines[0] == "[train] engines ready"
    assert lines[1] == (
        "[train] step 25/100 (25%) epoch 1 loss 0.5000 lr 1.00e-03 80.0 samples/s 900 tokens/s ETA 30s"
    )
    assert lines[2] == "[train] epoch 1/4: val_accuracy 0.8750, val_entities 12"


def test_sink_without_queue_and_with_broken_queue_never_raises():
    ProgressSink(None).emit(type="step")

    class Broken:
        def put_nowait(self, item):
            raise RuntimeError("queue actor died")

    ProgressSink(Broken()).emit(type="step")


def test_format_seconds():
    assert format_seconds(5.2) == "5s"
    assert format_seconds(125) == "2m05s"
    assert format_seconds(float("nan")) == "?"


def test_resumed_run_counts_its_rate_from_where_it_resumed(said):
    printer = ProgressPrinter(total_steps=100)
    printer.handle(
        {"type": "message", "text": "ready", "time": 0.0, "clock_start": True, "start_step": 60}
    )
    printer.handle(
        {
            "type": "step",
            "time": 10.0,
            "epoch": 3,
            "step": 80,
            "loss": 0.1,
            "lr": 1e-4,
            "samples_per_s": 1.0,
            "tokens_per_s": 1.0,
        }
    )
    assert said[-1].endswith("ETA 10s")  # 20 steps in 10 s, 20 to go
