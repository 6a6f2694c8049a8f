"""`fulcrum predict ARTIFACT INPUT... --output OUT`: a corpus scored by an export artifact on
Ray Data, as a stream: readers parse files block by block, a pool of ONNX Runtime actors
scores the blocks, and this process writes each input file's part as its rows come back, so
memory holds a few blocks whatever the corpus's size.

Rows come back in input order (`preserve_order`): when the first row of the next file
arrives, the previous file is complete, its part is moved into place and the manifest
rewritten. That is what makes an interrupted run resumable file by file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from fulcrum.artifacts import open_artifact
from fulcrum.errors import ArtifactError, DataError, FulcrumError
from fulcrum.log import VERBOSE, stage_log, verbosity
from fulcrum.predict.corpus import INTERNAL, PROGRESS, REJECT, ROW, SOURCE
from fulcrum.predict.output import REJECTS, Output, PartWriter
from fulcrum.predict.reading import CorpusDatasource
from fulcrum.predict.sources import SourceFile, Sources, resolve_inputs
from fulcrum.storage import is_uri
from fulcrum.train.progress import format_seconds

log = stage_log("predict")

# Rows per call of an actor's session: enough for ONNX Runtime to group texts of similar
# length (fulcrum.inference.buckets) and to amortise the actor call; small enough that a
# block in flight per actor stays a few MB.
CPU_BATCH_ROWS = 256
GPU_BATCH_ROWS = 1024
PROGRESS_SECONDS = 10.0


@dataclass
class Summary:
    output: str
    files: int
    skipped: int
    rows: int
    rejects: int
    seconds: float  # the whole run, Ray's start and the actors' model loading included
    rejects_file: str


def predict(
    artifact_path: str,
    inputs: list[str],
    output: str,
    text_column: str = "text",
    actors: int | None = None,
    batch_size: int | None = None,
    threads: int = 1,
    text_pair_column: str = "text_pair",
) -> Summary:
    """Score `inputs` with the export artifact into `output`. A text-pair model reads its
    second text from `text_pair_column`, carried into the output like any other column."""
    started = time.monotonic()
    for option, value in (
        ("--actors", actors),
        ("--batch-size", batch_size),
        ("--threads", threads),
    ):
        if value is not None and value < 1:
            raise DataError(f"{option}: must be at least 1 (got {value})")
    artifact = _export_artifact(artifact_path)
    pairs = artifact.manifest.task == "text_pair_classification"
    sources = resolve_inputs(inputs)
    # What the actors open: a URI stays one (each node fetches the artifact from it); a
    # local folder must be on every node's disk at the same path (shared storage).
    where = artifact_path if is_uri(artifact_path) else str(artifact.path.resolve())
    model = {
        "path": where,
        "name": artifact.manifest.name,
        "task": artifact.manifest.task,
        "labels": artifact.labels,
        "sha256": artifact.manifest.files["model.onnx"],
        "created_at": artifact.manifest.created_at,
        "out_of_scope": artifact.manifest.out_of_scope,
        "text_pair_column": text_pair_column if pairs else None,
    }
    out = Output.open(output, model, text_column, list(inputs))
    todo = [file for file in sources.files if not out.done(sources, file)]
    skipped = len(sources.files) - len(todo)
    if skipped:
        log.info(f"{skipped} of {len(sources.files)} file(s) already scored in {out.location}")
    if todo:
        _score(model, sources, todo, out, text_column, actors, batch_size, threads)
    out.complete(sources)
    written = [out.scored[sources.display(file)] for file in todo]
    return Summary(
        output=out.location,
        files=len(sources.files),
        skipped=skipped,
        rows=sum(entry.rows for entry in written),
        rejects=sum(entry.rejects for entry in written),
        seconds=time.monotonic() - started,
        rejects_file=out.where(REJECTS),
    )


def _export_artifact(path: str):
    artifact = open_artifact(path)
    if artifact.manifest.kind != "export":
        raise ArtifactError(
            f"{path}: a {artifact.manifest.kind} artifact; score with an export artifact "
            "(`fulcrum export RECIPE`, or one of `fulcrum compress`'s variants)"
        )
    return artifact


def _score(
    model: dict, sources: Sources, todo, out: Output, text_column, actors, batch_size, threads
):
    import ray
    import ray.data

    from fulcrum.runtime import init_ray, quiet_ray_data

    init_ray()
    quiet_ray_data()
    gpus = int(ray.cluster_resources().get("GPU", 0))
    cpus = int(ray.cluster_resources().get("CPU", 1))
    pool = actors or (gpus if gpus else max(1, cpus // threads))
    rows = batch_size or (GPU_BATCH_ROWS if gpus else CPU_BATCH_ROWS)
    if not gpus and pool * threads > cpus:
        log.warning(
            f"{pool} actor(s) x {threads} thread(s) want {pool * threads} CPUs and the "
            f"cluster has {cpus}: the rest wait until it grows"
        )
    total_bytes = sum(file.size for file in todo)
    log.info(
        f"scoring {len(todo)} file(s), {total_bytes / 1e6:.1f} MB, with {pool} actor(s) "
        f"on {'GPU' if gpus else 'CPU'}, {rows} rows per batch"
    )
    context = ray.data.DataContext.get_current()
    in_order = context.execution_options.preserve_order
    context.execution_options.preserve_order = True  # this run's, given back at its end
    dataset = _dataset(model, sources, todo, text_column, pool, rows, threads, gpus > 0)
    tracker = _Progress(todo, total_bytes)
    files = {file.path: file for file in todo}
    pending = iter(todo)
    current: tuple[SourceFile, PartWriter] | None = None
    try:
        for block in _blocks(dataset):
            for path, piece in _runs(block):
                while current is None or current[0].path != path:
                    if current is not None:
                        tracker.finished(current[0], out.finish(current[1]))
                    file = next(pending, None)
                    if file is None or path not in files:
                        raise FulcrumError(f"internal: rows of {path} arrived out of order")
                    current = (file, out.writer(sources, file))
                _write(current[1], piece, sources.display(current[0]))
                tracker.advance(current[0], piece)
        if current is not None:
            tracker.finished(current[0], out.finish(current[1]))
        for file in pending:  # files with no rows at all: an empty part each
            tracker.finished(file, out.finish(out.writer(sources, file)))
    except BaseException:
        if current is not None:
            current[1].abandon()
        raise
    finally:
        context.execution_options.preserve_order = in_order


def _dataset(model: dict, sources, todo, text_column, pool, rows, threads, gpu: bool):
    import ray.data

    from fulcrum.predict.scoring import Scorer, answer_schema

    datasource = CorpusDatasource(
        todo,
        filesystem=sources.filesystem,
        text_column=text_column,
        block_rows=rows,
        text_pair_column=model["text_pair_column"],
        reserved=tuple(
            field.name
            for field in answer_schema(
                model["task"], model["labels"], model["out_of_scope"] is not None
            )
        ),
    )
    # Readers parse text, far cheaper than scoring it: no CPU claimed, so that the actors can
    # have every core, and two at a time so that they cannot run ahead of the actors.
    dataset = ray.data.read_datasource(datasource, num_cpus=0, concurrency=2)
    return dataset.map_batches(
        Scorer,
        fn_constructor_kwargs={
            "artifact_dir": model["path"],
            "text_column": text_column,
            "threads": threads,
            "text_pair_column": model["text_pair_column"],
        },
        batch_size=None,  # the reader's blocks, each `rows` long at most
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=pool),
        num_cpus=threads,
        num_gpus=1 if gpu else None,
    )


def _blocks(dataset) -> Iterator[pa.Table]:
    """The scored blocks in input order; a FulcrumError raised in a reader is raised here as
    itself, not wrapped in Ray's task errors. (One raised in an actor's map_batches call
    reaches the driver as text only, so every check on the input is made by the reader.)"""
    # Ray Data logs a failed task's traceback before raising it; the error the user sees is
    # the one raised here (all of Ray Data's lines are in its log files, and shown under -v).
    ray_data = logging.getLogger("ray.data")
    level = ray_data.level
    if verbosity() < VERBOSE:
        ray_data.setLevel(logging.CRITICAL)
    try:
        yield from dataset.iter_batches(batch_size=None, batch_format="pyarrow")
    except Exception as error:
        cause = _fulcrum_cause(error)
        if cause is None:
            raise
        raise cause from None
    finally:
        ray_data.setLevel(level)


def _fulcrum_cause(error: BaseException) -> FulcrumError | None:
    """The FulcrumError a task raised. Ray re-raises it as a RayTaskError that is also an
    instance of the error's class, with the task's whole traceback for its message."""
    from ray.exceptions import RayTaskError

    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, FulcrumError) and not isinstance(error, RayTaskError):
            return error
        seen.add(id(error))
        error = getattr(error, "cause", None) or error.__cause__ or error.__context__
    return None


def _runs(block: pa.Table) -> Iterator[tuple[str, pa.Table]]:
    """The block cut where its rows pass from one file to the next (a batch may span two)."""
    if block.num_rows == 0:
        return
    values = block.column(SOURCE).to_pylist()
    start = 0
    for index in range(1, len(values) + 1):
        if index == len(values) or values[index] != values[start]:
            yield values[start], block.slice(start, index - start)
            start = index


def _write(writer: PartWriter, piece: pa.Table, display: str) -> None:
    rejected = piece.column(REJECT).is_valid()
    if pc.any(rejected).as_py():
        text_column = writer.output.text_column
        bad = piece.filter(rejected)
        writer.reject(
            [
                {"file": display, "row": row, "reason": reason, "text": text}
                for row, reason, text in zip(
                    bad.column(ROW).to_pylist(),
                    bad.column(REJECT).to_pylist(),
                    bad.column(text_column).to_pylist(),
                    strict=True,
                )
            ]
        )
        piece = piece.filter(pc.invert(rejected))
    writer.write(piece.drop_columns([name for name in INTERNAL if name in piece.column_names]))


class _Progress:
    """A line every PROGRESS_SECONDS: rows/s, and an ETA from the share of input bytes read."""

    def __init__(self, todo: list[SourceFile], total_bytes: int) -> None:
        self.total_bytes = max(1, total_bytes)
        self.done_bytes = 0
        self.current_bytes = 0.0
        self.rows = 0
        self.files_done = 0
        self.files = len(todo)
        self.started = time.monotonic()
        self.last = self.started

    def advance(self, file: SourceFile, piece: pa.Table) -> None:
        self.rows += piece.num_rows
        self.current_bytes = file.size * float(piece.column(PROGRESS)[-1].as_py())
        now = time.monotonic()
        if now - self.last >= PROGRESS_SECONDS:
            self.last = now
            self._line(now)

    def finished(self, file: SourceFile, scored) -> None:
        self.done_bytes += file.size
        self.current_bytes = 0.0
        self.files_done += 1
        rejects = f", {scored.rejects} rejected" if scored.rejects else ""
        log.info(f"{file.name}: {scored.rows} rows scored{rejects}")

    def _line(self, now: float) -> None:
        elapsed = now - self.started
        fraction = min(1.0, (self.done_bytes + self.current_bytes) / self.total_bytes)
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else float("inf")
        log.info(
            f"{self.rows} rows, {self.rows / max(elapsed, 1e-9):.0f} rows/s, "
            f"{fraction:.0%} of the input, file {self.files_done + 1} of {self.files}, "
            f"ETA {format_seconds(eta)}"
        )


def summary_lines(summary: Summary) -> list[str]:
    rate = summary.rows / max(summary.seconds, 1e-9)
    lines = [
        f"scored {summary.rows} rows from {summary.files - summary.skipped} file(s) in "
        f"{format_seconds(summary.seconds)} ({rate:.0f} rows/s, start-up included)"
    ]
    if summary.skipped:
        lines.append(f"skipped {summary.skipped} file(s) scored by an earlier run")
    if summary.rejects:
        lines.append(
            f"{summary.rejects} row(s) not scored: their reasons are in {summary.rejects_file}"
        )
    lines.append(f"wrote {summary.output}")
    return lines
