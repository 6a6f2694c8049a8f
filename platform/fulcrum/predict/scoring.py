"""The actors that score a corpus: each holds one ONNX Runtime session and turns a block of
read rows into the same rows with the model's answer, rows it cannot score marked with why.

A row is scored when its text decodes as UTF-8 and holds more than white space; the others
(and the rows the reader already rejected) keep their reason in REJECT and get no answer.
The text itself is decoded here, not by the reader, so that one undecodable byte costs its
row and not the block around it.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fulcrum.inference.predictor import OnnxClassifier
from fulcrum.metrics import softmax
from fulcrum.predict.corpus import INTERNAL, REJECT, TEXT

# What the scorer adds to every row; the reader refuses an input with a column so named.
LABEL = "predicted_label"
SCORE = "predicted_score"
PROBABILITIES = "probabilities"
ENTITIES = "entities"
OUT_OF_SCOPE = "out_of_scope"
IN_SCOPE_SCORE = "in_scope_score"
ANSWER_COLUMNS = (LABEL, SCORE, PROBABILITIES, ENTITIES, OUT_OF_SCOPE, IN_SCOPE_SCORE)

ENTITY_TYPE = pa.struct(
    [
        ("entity", pa.string()),
        ("start", pa.int32()),
        ("end", pa.int32()),
        ("text", pa.string()),
        ("score", pa.float32()),
    ]
)


def answer_schema(task: str, labels: list[str], out_of_scope: bool = False) -> list[pa.Field]:
    """The columns a model of this task adds, in order."""
    if task == "token_classification":
        return [pa.field(ENTITIES, pa.list_(ENTITY_TYPE))]
    probabilities = pa.struct([(label, pa.float32()) for label in labels])
    fields = [
        pa.field(LABEL, pa.string()),
        pa.field(SCORE, pa.float32()),
        pa.field(PROBABILITIES, probabilities),
    ]
    if out_of_scope:
        fields += [pa.field(OUT_OF_SCOPE, pa.bool_()), pa.field(IN_SCOPE_SCORE, pa.float32())]
    return fields


def decode_texts(texts: pa.ChunkedArray | pa.Array) -> tuple[list[str | None], list[str | None]]:
    """Each row's text and, where it cannot be scored, its reason instead."""
    values: list[str | None]
    try:
        values = texts.cast(pa.string()).to_pylist()  # the common case: all of it UTF-8
    except pa.ArrowInvalid:
        raws = texts.to_pylist()
        values = [None if raw is None else _decoded_or_none(raw) for raw in raws]
    else:
        raws = None
    reasons: list[str | None] = []
    for index, text in enumerate(values):
        if text is None:
            raw = None if raws is None else raws[index]
            reasons.append("no text" if raw is None else _undecodable(raw))
        elif not text.strip():
            reasons.append("empty text")
        else:
            reasons.append(None)
    return values, reasons


def _decoded_or_none(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _undecodable(raw: bytes) -> str:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        bad = raw[error.start : error.start + 1].hex()
        return f"bytes that are not valid UTF-8 (0x{bad} at byte {error.start})"
    return "no text"


class Scorer:
    """One ONNX Runtime session, for `Dataset.map_batches(Scorer, ...)` on an actor pool."""

    def __init__(
        self,
        artifact_dir: str,
        text_column: str,
        threads: int = 1,
        text_pair_column: str | None = None,
    ) -> None:
        # The tokenizer's own thread pool (Rust's rayon, one thread per core by default) would
        # contend with the other actors for the cores; set before it first tokenises.
        os.environ.setdefault("RAYON_NUM_THREADS", str(threads))

        # One thread per actor and no spinning: the pool's actors fill the cores, and a
        # spinning thread would burn the core a reader or another actor needs.
        self.model = OnnxClassifier(artifact_dir, threads=threads, verify=False, spin=False)
        self.text_column = text_column
        self.text_pair_column = text_pair_column  # a text-pair model's second text
        self.fields = answer_schema(
            self.model.task, self.model.labels, self.model.out_of_scope is not None
        )

    def __call__(self, batch: pa.Table) -> pa.Table:
        texts, reasons = decode_texts(batch.column(TEXT))
        earlier = batch.column(REJECT).to_pylist()
        reasons = [before or now for before, now in zip(earlier, reasons, strict=True)]
        inputs: list = texts
        if self.text_pair_column is not None:
            inputs, reasons = self._pairs(batch, texts, reasons)
        good = [index for index, reason in enumerate(reasons) if reason is None]
        answers = self._answers([inputs[index] for index in good], good, batch.num_rows)
        shown = texts if None not in texts else _as_written(batch.column(TEXT))
        carried = [name for name in batch.column_names if name not in (*INTERNAL, self.text_column)]
        columns = {name: batch.column(name) for name in carried}
        columns[self.text_column] = pa.array(shown, pa.string())
        columns.update(answers)
        for name in INTERNAL:
            if name not in (TEXT, REJECT):
                columns[name] = batch.column(name)
        columns[REJECT] = pa.array(reasons, pa.string())
        return pa.table(columns)

    def _pairs(self, batch: pa.Table, texts: list, reasons: list) -> tuple[list, list]:
        """(text, text_pair) per row, and the reasons with rows whose second text is
        missing or empty added."""
        column = self.text_pair_column  # the reader made sure the file has it
        seconds = batch.column(column).cast(pa.string()).to_pylist()
        pairs, checked = [], []
        for text, second, reason in zip(texts, seconds, reasons, strict=True):
            if reason is None and second is None:
                reason = f"no {column}"
            elif reason is None and not second.strip():
                reason = f"empty {column}"
            pairs.append((text, second))
            checked.append(reason)
        return pairs, checked

    def _answers(self, texts: list, rows: list[int], total: int) -> dict[str, pa.Array]:
        if self.model.task == "token_classification":
            found = self.model.tag(texts) if texts else []
            entities: list[list[dict] | None] = [None] * total
            for row, answer in zip(rows, found, strict=True):
                entities[row] = answer["entities"]
            return {ENTITIES: pa.array(entities, self.fields[0].type)}
        probabilities = np.full((total, len(self.model.labels)), np.nan, dtype=np.float32)
        outside = np.zeros(total, dtype=bool)
        in_scope = np.full(total, np.nan, dtype=np.float32)
        if texts:
            logits = self.model.logits(texts)
            probabilities[rows] = softmax(logits)
            if self.model.out_of_scope is not None:
                outside[rows], in_scope[rows] = self.model.out_of_scope.decide(
                    logits, self.model.labels
                )
        valid = np.zeros(total, dtype=bool)
        valid[rows] = True
        mask = pa.array(~valid)
        best = np.nan_to_num(probabilities).argmax(axis=1)
        labels = pa.array(np.asarray(self.model.labels, dtype=object)[best], pa.string())
        struct = pa.StructArray.from_arrays(
            [pa.array(probabilities[:, index]) for index in range(len(self.model.labels))],
            fields=list(self.fields[2].type),
            mask=mask,
        )
        answers = {
            LABEL: pc.if_else(valid, labels, pa.nulls(total, pa.string())),
            SCORE: pc.if_else(
                valid, pa.array(probabilities.max(axis=1)), pa.nulls(total, pa.float32())
            ),
            PROBABILITIES: struct,
        }
        if self.model.out_of_scope is not None:
            answers[OUT_OF_SCOPE] = pc.if_else(
                valid, pa.array(outside), pa.nulls(total, pa.bool_())
            )
            answers[IN_SCOPE_SCORE] = pc.if_else(
                valid, pa.array(in_scope), pa.nulls(total, pa.float32())
            )
        return answers


def _as_written(texts: pa.ChunkedArray) -> list[str | None]:
    """Each text as a person can read it in the rejects file, bad bytes replaced."""
    return [None if raw is None else raw.decode("utf-8", "replace") for raw in texts.to_pylist()]
