"""Scoring one file: S3 in, chunks through the model, multipart upload out.

Reading and parsing, building features, predicting, and encoding with
uploading run at the same time (``stages``), so a file takes about as long as
its slowest stage. Memory stays flat whatever the file size: readers hold a
few small blocks (or one Parquet row group), each hand-off holds one chunk
of about ``batch_rows`` rows, and the output leaves in parts. The output
object appears only when the last row is written; any error aborts the upload.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from pipeline import naming
from pipeline.errors import BadValue, EmptyFile, FileTooLarge
from pipeline.messages import OutputRef, ScoreRequest
from pipeline.options import InForce
from pipeline.quality import Location, QualityRef
from pipeline.scoring import features, formats, outputs, reports
from pipeline.scoring.bad_rows import ERRORS_SUFFIX, BadRows, Cell, errors_csv
from pipeline.scoring.codec import Chunk
from pipeline.scoring.engine.cache import ModelCache
from pipeline.scoring.model import LoadedModel
from pipeline.scoring.quality import QualityCounter
from pipeline.scoring.shadow import Shadowing, write_report
from pipeline.scoring.stages import staged
from pipeline.shadow import ShadowRef
from pipeline.stores.storage import S3Object
from pipeline.stores.uploads import MultipartWriter

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from pipeline.settings import Settings

T = TypeVar("T")
_SNIFF_BYTES = 4096
Scores = tuple[Chunk, list[pa.Array]]
#: A chunk, its features, and the shadow's where it reads other features.
Featurized = tuple[Chunk, npt.NDArray[np.float64], npt.NDArray[np.float64] | None]
#: A chunk's scores, and what the shadow compares them with.
Predicted = tuple[
    Scores, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64] | None, npt.NDArray[np.float64]]
]


@dataclass
class Timings:
    """Seconds each stage was busy on one file (they overlap: the sum exceeds the wall time)."""

    read: float = 0.0
    features: float = 0.0
    predict: float = 0.0
    write: float = 0.0
    #: CPU seconds counting the quality report (inside the features and predict stages,
    #: whose threads share the cores: their wall time would count the waits too), and
    #: the seconds writing it.
    quality: float = 0.0
    #: The shadow version's own features and predictions (inside those stages).
    shadow: float = 0.0

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.write += time.perf_counter() - started

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        """CPU seconds of this thread, as ``quality`` counts them."""
        started = time.thread_time()
        try:
            yield
        finally:
            self.quality += time.thread_time() - started

    def as_metrics(self) -> dict[str, float]:
        return {
            "ReadSeconds": round(self.read, 4),
            "FeatureSeconds": round(self.features, 4),
            "PredictSeconds": round(self.predict, 4),
            "WriteSeconds": round(self.write, 4),
            "QualitySeconds": round(self.quality, 4),
            "ShadowSeconds": round(self.shadow, 4),
        }


def _timed(items: Iterable[T], timings: Timings) -> Iterator[T]:
    """``items``, adding the time each takes to arrive to ``timings.read``."""
    iterator = iter(items)
    while True:
        started = time.perf_counter()
        try:
            item = next(iterator)
        except StopIteration:
            return
        finally:
            timings.read += time.perf_counter() - started
        yield item


def score_object(
    request: ScoreRequest,
    s3: S3Client,
    models: ModelCache,
    settings: Settings,
    *,
    timings: Timings | None = None,
    progress: Callable[[int, int], None] | None = None,
    body: bytes | None = None,
) -> Answer:
    """Score the request's file and write the result and its quality report; say where.

    ``body``: the file's bytes, if the caller has them (a small file, read
    while the ledger was asked whether it was answered already).
    ``QualityFailed`` if the model's quality policy fails the file: its report
    is written, its output is not.
    """
    obj = request.input
    where = f"s3://{obj.bucket}/{obj.key}"
    if obj.size > settings.max_input_bytes:
        raise FileTooLarge(
            f"{where} is {obj.size:,} bytes; the limit is {settings.max_input_bytes:,} bytes"
        )
    if obj.size == 0:
        raise EmptyFile(f"{where} is empty (0 bytes)")
    source = S3Object(s3, obj, body)
    fmt = file_format(source)
    key = fmt.output_key(obj.key, request.job_id)
    model = models.get(request.model)
    shadow = shadowing(request, model, models)
    settled: list[QualityRef] = []
    compared: list[ShadowRef] = []
    errors: list[Location] = []
    writing: list[Future[object]] = []

    def judge(scored: Scored) -> None:
        """Before the output completes: the policy, and the report written beside it."""
        where = Location(bucket=settings.output_bucket, key=key)
        if scored.bad.cells:
            errors.append(write_errors(s3, where, request.job_id, scored.bad.cells))
        started = time.perf_counter()
        judged = reports.judge(scored.quality, model, request.job_id, where)
        writing.extend(reports.write(s3, judged))
        if timings is not None:
            timings.quality += time.perf_counter() - started
        if judged.broken:
            for put in writing:  # a failed file's report is there before it is answered
                put.result()
        reports.enforce(judged, model)
        settled.append(judged.ref)
        if shadow is not None:
            ref, report = shadow.settle(
                request.job_id, request.model, request.options.threshold, where
            )
            writing.append(reports.writers.submit(write_report, s3, ref, report))
            compared.append(ref)

    with MultipartWriter(s3, settings.output_bucket, key, fmt.content_type) as sink:
        scored = score_source(
            source,
            fmt,
            model,
            settings,
            request.options,
            sink=sink,
            timings=timings,
            progress=progress,
            before_complete=judge,
            shadow=shadow,
        )
    for put in writing:
        put.result()
    output = OutputRef(
        bucket=settings.output_bucket,
        key=key,
        rows=scored.rows,
        format=fmt.name,
        engine=model.engine,
        options=request.options,
        bad_rows=scored.bad.rows,
        errors=errors[0] if errors else None,
    )
    return Answer(output, settled[0], compared[0] if compared else None)


def shadowing(request: ScoreRequest, model: LoadedModel, models: ModelCache) -> Shadowing | None:
    """The request's shadow, loaded (or why it could not be), if the model has one."""
    ref = request.shadow
    if ref is None:
        return None
    return Shadowing.of(model, ref, lambda: models.get(ref))


@dataclass(frozen=True)
class Answer:
    """A scored file: its output, its quality report, and its shadow's comparison."""

    output: OutputRef
    quality: QualityRef
    shadow: ShadowRef | None = None

    @property
    def rows(self) -> int:
        return self.output.rows


def write_errors(s3: S3Client, output: Location, job_id: str, cells: list[Cell]) -> Location:
    """The rows set aside, as ``<job>.errors.csv`` beside the output."""
    key = naming.companion_key(output.key, job_id, ERRORS_SUFFIX)
    s3.put_object(Bucket=output.bucket, Key=key, Body=errors_csv(cells), ContentType="text/csv")
    return Location(bucket=output.bucket, key=key)


def file_format(source: S3Object) -> formats.Format:
    key = source.ref.key
    return formats.by_extension(key) or formats.detect(key, source.head(_SNIFF_BYTES))


@dataclass(frozen=True)
class Scored:
    rows: int
    #: The bytes written to the output object.
    size: int
    quality: QualityCounter
    bad: BadRows


class OutputSink(Protocol):
    """Where scored bytes go: a file's own upload, or a shard's share of one."""

    bytes_written: int

    def write(self, data: bytes, /) -> int: ...

    def complete(self) -> object: ...


def _stages(
    featurize: Callable[[Chunk], Featurized],
    predict: Callable[[Featurized], Predicted],
    shadow: Shadowing | None,
    threads: int,
) -> list[Callable[[Any], Any]]:
    """The stages a chunk passes; the shadow's own, where there is one, predicts a chunk
    while the primary predicts the next."""

    if shadow is None:
        return [featurize, lambda item: predict(item)[0]]
    comparing = shadow

    def compare(item: Predicted) -> Scores:
        scores, (matrix, own, predictions) = item
        comparing.predict(scores[0], matrix, own, predictions, threads)
        return scores

    return [featurize, predict, compare]


def _threads(setting: int, shadow: Shadowing | None) -> int:
    """Prediction threads per model: with a shadow, the two stages share the cores (each
    on all of them, they would contend for every core instead)."""
    if setting or shadow is None:
        return setting
    return max(1, (os.cpu_count() or 2) // 2)


def _numbers(model: LoadedModel, shadow: Shadowing | None) -> list[str]:
    """The columns every model reading the file takes as numbers (not as categories)."""
    categorical = set()
    if shadow is not None and shadow.model is not None:
        categorical = {f.name for f in shadow.model.features if f.categories is not None}
    return [f.name for f in model.features if f.categories is None and f.name not in categorical]


def _read(model: LoadedModel, shadow: Shadowing | None) -> set[str]:
    """The columns some model reading the file takes; the rest only pass through."""
    read = set(model.feature_names)
    if shadow is not None and shadow.model is not None:
        read.update(shadow.model.feature_names)
    return read


def score_source(
    source: S3Object,
    fmt: formats.Format,
    model: LoadedModel,
    settings: Settings,
    options: InForce,
    *,
    sink: OutputSink,
    header: bool = True,
    timings: Timings | None = None,
    progress: Callable[[int, int], None] | None = None,
    before_complete: Callable[[Scored], None] | None = None,
    shadow: Shadowing | None = None,
) -> Scored:
    """Score what ``source`` holds (a file, or one shard of it) into ``sink``, and complete it.

    ``before_complete`` sees the quality counts and the rows set aside once
    every row is written and before the output exists; an exception there
    leaves no output. ``shadow`` predicts every row too, for comparison only.
    """
    obj = source.ref
    where = f"s3://{obj.bucket}/{obj.key}"
    reader = fmt.open(
        source,
        where,
        settings.batch_rows,
        settings.max_line_bytes,
        numbers=_numbers(model, shadow),
        features=_read(model, shadow),
    )
    features.check_columns(reader.columns, model.feature_names, where)
    out = outputs.plan(options, model, reader.columns, where)
    if shadow is not None:
        shadow.check_columns(reader.columns)
    writer = fmt.writer(sink, reader, out.selection, out.schema, header=header)

    spent = timings or Timings()
    threads = _threads(settings.predict_threads, shadow)
    counter = QualityCounter(model.features, model.baseline)
    bad = BadRows(options.max_bad_rows, where)

    def featurize(chunk: Chunk) -> Featurized:
        started = time.perf_counter()
        features.check_no_outputs(chunk.batch, out.names, out.selection, chunk.first_row, where)
        try:
            matrix = features.feature_matrix(chunk.batch, model.features, chunk.first_row, where)
        except BadValue:
            if not options.max_bad_rows:
                raise
            chunk, matrix = bad.set_aside(chunk, model.features)
        spent.features += time.perf_counter() - started
        with spent.counting():
            counter.add_features(chunk.batch, matrix)
        own = shadow.features(chunk, where) if shadow is not None else None
        return chunk, matrix, own

    def predict(item: Featurized) -> Predicted:
        started = time.perf_counter()
        chunk, matrix, own = item
        added, predictions = outputs.compute(out, model, matrix, threads)
        spent.predict += time.perf_counter() - started
        with spent.counting():
            counter.add_predictions(predictions)
        return (chunk, added), (matrix, own, predictions)

    rows = consumed = 0
    stages = _stages(featurize, predict, shadow, threads)
    for chunk, added in staged(_timed(reader, spent), stages, obj.size):
        with spent.writing():
            writer.write(chunk, added)
        rows += chunk.num_rows
        consumed += chunk.source_bytes
        if progress is not None:
            # Compressed files: what the parser consumed is in other units; S3's
            # count is the bound (ahead by the reader's read-ahead).
            done = source.bytes_read if fmt.compression else consumed
            progress(rows, min(done, source.bytes_read))
    with spent.writing():
        writer.close()
    spent.shadow = shadow.seconds if shadow is not None else 0.0
    scored = Scored(rows=rows, size=sink.bytes_written, quality=counter, bad=bad)
    if before_complete is not None:
        before_complete(scored)
    with spent.writing():
        sink.complete()
    return replace(scored, size=sink.bytes_written)
