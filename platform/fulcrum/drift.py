"""Drift: whether served traffic still looks like what the model was measured on.

A served classifier's answers are summarised per window (`Window`: how many texts, how
often each label was predicted, how confident the model was, how many were out of scope),
and compared with the same summary of the model's answers on its own test split (the
reference, `reference_window`). Two signals, each with a threshold a retrain is due at:

- **the label mix**: the population stability index (PSI) of the predicted labels,
  sum((p - q) * ln(p / q)) over labels; by the usual reading below 0.1 is stable, 0.1 to
  0.25 a moderate shift, above 0.25 a shift worth retraining for;
- **confidence**: the share of answers whose top probability is below LOW_CONFIDENCE, where
  new intents and new phrasing can show as unsure answers; a share RISE_AT points above the
  reference's is flagged (and out-of-scope answers, where the model has a detector,
  likewise).

A window with fewer than MIN_TEXTS texts is reported but not judged: its shares are noise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

PSI_DUE = 0.25
LOW_CONFIDENCE = 0.5
RISE_AT = 0.10  # share of answers, 0 to 1
MIN_TEXTS = 200
SMOOTHING = 0.5  # added to every label's count, so an unseen label has a finite PSI


@dataclass
class Window:
    """The answers of one window of traffic (or of a reference split), additive: two
    replicas' windows for the same period add up with `+`."""

    start: float = 0.0  # seconds since the epoch; 0 for a reference
    end: float = 0.0
    texts: int = 0
    labels: dict[str, int] = field(default_factory=dict)
    low_confidence: int = 0
    confidence_sum: float = 0.0
    out_of_scope: int = 0

    def record(self, answers: Iterable[dict[str, Any]]) -> None:
        """Count /predict answers (label, score, and out_of_scope where present)."""
        for answer in answers:
            self.texts += 1
            self.labels[answer["label"]] = self.labels.get(answer["label"], 0) + 1
            self.confidence_sum += answer["score"]
            self.low_confidence += answer["score"] < LOW_CONFIDENCE
            self.out_of_scope += bool(answer.get("out_of_scope"))

    def __add__(self, other: Window) -> Window:
        labels = dict(self.labels)
        for label, count in other.labels.items():
            labels[label] = labels.get(label, 0) + count
        starts = [w.start for w in (self, other) if w.texts]
        return Window(
            start=min(starts, default=self.start),
            end=max(self.end, other.end),
            texts=self.texts + other.texts,
            labels=labels,
            low_confidence=self.low_confidence + other.low_confidence,
            confidence_sum=self.confidence_sum + other.confidence_sum,
            out_of_scope=self.out_of_scope + other.out_of_scope,
        )

    def share(self, count: float) -> float:
        return count / self.texts if self.texts else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Window:
        return cls(**{key: raw[key] for key in cls.__dataclass_fields__ if key in raw})


def psi(reference: dict[str, int], observed: dict[str, int]) -> float:
    """Population stability index of two label counts, each smoothed by SMOOTHING."""
    labels = sorted(set(reference) | set(observed))
    ref_total = sum(reference.values()) + SMOOTHING * len(labels)
    obs_total = sum(observed.values()) + SMOOTHING * len(labels)
    total = 0.0
    for label in labels:
        p = (observed.get(label, 0) + SMOOTHING) / obs_total
        q = (reference.get(label, 0) + SMOOTHING) / ref_total
        total += (p - q) * math.log(p / q)
    return total


def compare(reference: Window, window: Window) -> dict[str, Any]:
    """The window against the reference: the signals, and the reasons a retrain is due
    (empty: none; `judged` False: too few texts to say)."""
    index = psi(reference.labels, window.labels)
    low = window.share(window.low_confidence) - reference.share(reference.low_confidence)
    outside = window.share(window.out_of_scope) - reference.share(reference.out_of_scope)
    judged = window.texts >= MIN_TEXTS
    reasons = []
    if judged and index > PSI_DUE:
        moved = _moved_most(reference, window)
        reasons.append(f"the label mix moved (PSI {index:.2f} > {PSI_DUE}; most: {moved})")
    if judged and low > RISE_AT:
        reasons.append(
            f"{100 * window.share(window.low_confidence):.0f}% of answers are unsure (top "
            f"probability < {LOW_CONFIDENCE}), against {100 * reference.share(reference.low_confidence):.0f}% on the test split"
        )
    if judged and outside > RISE_AT:
        reasons.append(
            f"{100 * window.share(window.out_of_scope):.0f}% of texts are out of scope, "
            f"against {100 * reference.share(reference.out_of_scope):.0f}% on the test split"
        )
    return {
        "start": window.start,
        "end": window.end,
        "texts": window.texts,
        "psi": round(index, 4),
        "mean_confidence": round(window.share(window.confidence_sum), 4),
        "low_confidence_share": round(window.share(window.low_confidence), 4),
        "out_of_scope_share": round(window.share(window.out_of_scope), 4),
        "judged": judged,
        "retrain_due": bool(reasons),
        "reasons": reasons,
    }


def _moved_most(reference: Window, window: Window, shown: int = 3) -> str:
    labels = set(reference.labels) | set(window.labels)
    change = {
        label: window.share(window.labels.get(label, 0))
        - reference.share(reference.labels.get(label, 0))
        for label in labels
    }
    ordered = sorted(change, key=lambda label: -abs(change[label]))[:shown]
    return ", ".join(f"{label} {100 * change[label]:+.0f} points" for label in ordered)


def reference_window(export_dir) -> Window:
    """The served model's answers on its own test split (read again through the settled
    recipe of the training artifact it was exported from): what traffic is compared with."""
    from fulcrum.artifacts import open_artifact
    from fulcrum.data import recipe_splits, texts_of
    from fulcrum.errors import ArtifactError
    from fulcrum.inference import OnnxClassifier
    from fulcrum.recipe import validate_recipe

    exported = open_artifact(export_dir, kind="export")
    check_task(exported.manifest.task, export_dir)
    if exported.manifest.parent is None:
        raise ArtifactError(f"{export_dir}: names no training artifact to take a reference from")
    trained = open_artifact(exported.manifest.parent.path, kind="train", verify=False)
    test = recipe_splits(validate_recipe(trained.manifest.settled_recipe)).test
    window = Window()
    window.record(OnnxClassifier(exported.path).predict(texts_of(test, test.num_rows)))
    return window


def check_task(task: str, where) -> None:
    from fulcrum.errors import ArtifactError

    if task == "token_classification":
        raise ArtifactError(
            f"{where}: drift is read from a classifier's labels and confidence; a tagger's "
            "entities are not summarised yet"
        )


def is_traffic_log(path: str) -> bool:
    """A served model's window log (Serve writes one per replica), rather than a corpus."""
    import json
    from pathlib import Path

    target = Path(path)
    if target.is_dir():
        return any(target.glob("*.jsonl"))
    if target.suffix != ".jsonl" or not target.is_file():
        return False
    with open(target, encoding="utf-8") as handle:
        first = handle.readline()
    try:
        record = json.loads(first)
    except ValueError:
        return False
    return isinstance(record, dict) and {"texts", "labels", "start"} <= set(record)


def log_windows(path: str, every: float) -> list[Window]:
    """The windows of a traffic log (a file, or a folder of the replicas' files), summed
    per period of `every` seconds by their start: the replicas' windows of an hour make
    that hour's."""
    import json
    from pathlib import Path

    from fulcrum.errors import DataError

    target = Path(path)
    files = sorted(target.glob("*.jsonl")) if target.is_dir() else [target]
    periods: dict[int, Window] = {}
    for file in files:
        with open(file, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    window = Window.from_dict(json.loads(line))
                except (ValueError, TypeError) as error:
                    raise DataError(
                        f"{file}, line {number}: not a traffic window ({error})"
                    ) from None
                key = int(window.start // every)
                periods[key] = periods[key] + window if key in periods else window
    return [periods[key] for key in sorted(periods)]


def corpus_windows(path: str, export_dir, text_column: str, size: int) -> list[Window]:
    """A corpus of texts (csv, tsv, jsonl, parquet) scored by the export artifact, in
    windows of `size` texts in file order; unreadable rows are skipped."""
    from fulcrum.inference import OnnxClassifier
    from fulcrum.predict.corpus import REJECT, TEXT, read_blocks
    from fulcrum.predict.sources import resolve_inputs

    model = OnnxClassifier(export_dir)
    sources = resolve_inputs([path])
    windows, texts = [], []

    def flush() -> None:
        window = Window()
        window.record(model.predict(texts))
        windows.append(window)
        texts.clear()

    for file in sources.files:
        with sources.filesystem.open_input_file(file.path) as handle:
            for block in read_blocks(handle, file.path, file.format, file.size, text_column, 4096):
                rejects = block.column(REJECT).to_pylist()
                for raw, reject in zip(block.column(TEXT).to_pylist(), rejects, strict=True):
                    if reject is None and raw:
                        texts.append(raw.decode("utf-8", errors="replace"))
                    if len(texts) == size:
                        flush()
    if texts:
        flush()
    return windows
