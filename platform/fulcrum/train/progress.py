"""Training progress on the driver: rank 0 sends small events through a Ray queue, the
driver renders them as a bar (terminal) or as per-step lines with rates and ETA (logs, CI,
`ray job submit`), through the `fulcrum.train` logger. Worker stdout is not used for this:
Ray prefixes and sometimes repeats it, cannot draw a bar, and is not forwarded at all
unless the user asks for it (-v)."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from fulcrum.log import stage_log

log = stage_log("train")


class ProgressSink:
    """Worker side. Never blocks training: a full or dead queue drops the event."""

    def __init__(self, queue) -> None:
        self._queue = queue

    def emit(self, **event: Any) -> None:
        if self._queue is None:
            return
        try:
            self._queue.put_nowait({"time": time.time(), **event})
        except Exception:  # a progress line is never worth failing a training step
            pass


class ProgressPrinter:
    """Driver side: turns events into a bar or lines."""

    def __init__(self, total_steps: int) -> None:
        self.total_steps = total_steps
        # Rates and ETA count from when the engines are ready, not from when Ray started.
        self.clock_start = time.time()
        self.start_step = 0  # a resumed run's rate counts only the steps it did itself
        self._bar = None
        if sys.stderr.isatty() and log.isEnabledFor(logging.INFO):
            from tqdm import tqdm

            self._bar = tqdm(total=total_steps, unit="step", file=sys.stderr, dynamic_ncols=True)

    def handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "step":
            self._step(event)
        elif kind == "epoch":
            metrics = ", ".join(
                f"{key} {value}" if isinstance(value, int) else f"{key} {value:.4f}"
                for key, value in event["metrics"].items()
            )
            at = f" step {event['step']}" if "step" in event else ""
            self._line(f"epoch {event['epoch']}/{event['epochs']}{at}: {metrics}")
        elif kind == "warning":
            self._line(event["text"], logging.WARNING)
        elif kind == "message":
            if event.get("clock_start"):
                self.clock_start = event["time"]
                self.start_step = event.get("start_step", 0)
            self._line(event["text"])

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def _step(self, event: dict[str, Any]) -> None:
        step = event["step"]
        elapsed = event["time"] - self.clock_start
        rate = (step - self.start_step) / elapsed if elapsed > 0 else 0.0
        eta = (self.total_steps - step) / rate if rate else float("nan")
        if self._bar is not None:
            self._bar.n = step
            self._bar.set_postfix(
                epoch=event["epoch"],
                loss=f"{event['loss']:.3f}",
                samples_s=f"{event['samples_per_s']:.0f}",
            )
            self._bar.refresh()
            return
        self._line(
            f"step {step}/{self.total_steps} ({100 * step / self.total_steps:.0f}%) "
            f"epoch {event['epoch']} loss {event['loss']:.4f} lr {event['lr']:.2e} "
            f"{event['samples_per_s']:.1f} samples/s {event['tokens_per_s']:.0f} tokens/s "
            f"ETA {format_seconds(eta)}"
        )

    def _line(self, text: str, level: int = logging.INFO) -> None:
        if self._bar is not None:
            self._bar.clear()
            log.log(level, text)
            self._bar.refresh()
        else:
            log.log(level, text)


def run_with_progress(work: Callable[[], Any], queue, printer: ProgressPrinter) -> Any:
    """Run `work` (which blocks, e.g. trainer.fit) while handing the queue's items to
    `printer.handle`: progress events here, a trial's reports to Tune in tune/trial.py."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = work()
        except BaseException as error:  # re-raised on the calling thread below
            outcome["error"] = error

    thread = threading.Thread(target=target, name="fulcrum-train", daemon=True)
    thread.start()
    try:
        while thread.is_alive() or not queue.empty():
            for event in _drain(queue, timeout=0.5):
                printer.handle(event)
    finally:
        printer.close()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _drain(queue, timeout: float) -> list[dict[str, Any]]:
    from ray.util.queue import Empty

    try:
        first = queue.get(timeout=timeout)
    except Empty:
        return []
    events = [first]
    while not queue.empty():
        try:
            events.append(queue.get_nowait())
        except Empty:
            break
    return events


def format_seconds(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
