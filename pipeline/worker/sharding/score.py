"""Scoring one shard: its records straight into the file's upload, as parts of its own.

A worker scores its shard's records into the upload (``uploads.ShardWriter``)
and records the result. A shard that fails transiently is retried alone, like
a file; a worker killed mid-shard loses that shard's work only; a duplicate
delivery finds the result recorded. The shard whose result completes the set
finishes the file (``join``).
"""

from __future__ import annotations

import io
import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO

from pipeline.errors import ConfigurationError, InputError, JobTimeout, PipelineError
from pipeline.messages import (
    ErrorInfo,
    Notification,
    ScoreRequest,
)
from pipeline.records import ShardPlan, ShardResult
from pipeline.scoring import formats
from pipeline.scoring.codec import ShardFormat
from pipeline.scoring.run import Scored, Timings, score_source, shadowing
from pipeline.scoring.shadow import Shadowing
from pipeline.scoring.streams import Prefixed, RecordRange
from pipeline.stores.storage import S3Object
from pipeline.stores.uploads import MIN_PART_BYTES, ShardOutput, ShardWriter

if TYPE_CHECKING:
    from pipeline.worker.runtime import WorkerRuntime

from pipeline.worker.sharding.join import finish, remove

log = logging.getLogger(__name__)
#: Shards' outputs until the file is joined, in the output bucket (a lifecycle rule
#: removes any left by a file that never finished).
TEMP_PREFIX = "_shards/"
#: How far past its range a shard first reads, for its last record's end.
_RECORD_SLACK = 1024 * 1024
#: Called with the rows scored and the bytes read so far.
OnProgress = Callable[[int, int], None]


class Stopped(Exception):
    """The shard need not finish: its file is answered, or an earlier shard failed."""


class ShardSource(S3Object):
    """One shard of the input: its records (after the CSV header), or its row groups."""

    def __init__(self, runtime: WorkerRuntime, request: ScoreRequest, plan: ShardPlan) -> None:
        super().__init__(runtime.s3, request.input)
        assert request.shard is not None  # noqa: S101
        self._plan, self._index = plan, request.shard
        self.records: RecordRange | None = None
        if plan.row_groups:
            self.row_groups = tuple(plan.row_groups[self._index])

    def stream(self, start: int = 0, end: int | None = None) -> BinaryIO:
        """The CSV header, then the shard's records (counted as they pass)."""
        self.records = self.record_range()
        return Prefixed(self._plan.header.encode(), self.records)  # type: ignore[return-value]

    def record_range(self) -> RecordRange:
        begin, end = self._plan.ranges[self._index]
        return RecordRange(_Beyond(self, max(begin - 1, 0), end), begin, end)


class _Beyond(io.RawIOBase):
    """A shard's bytes: one GET up to a little past its range, where its last record almost
    surely ends, and a second from there to the end of the file only if it does not."""

    def __init__(self, source: ShardSource, start: int, end: int) -> None:
        super().__init__()
        self._source = source
        self._cut = min(end + _RECORD_SLACK, source.ref.size)
        self._stream: BinaryIO = S3Object.stream(source, start, self._cut)
        self._rest = self._cut < source.ref.size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._stream.read(len(buffer))
        if not data and self._rest:
            self._rest = False
            self._stream = S3Object.stream(self._source, self._cut)
            data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def score_shard(
    request: ScoreRequest,
    plan: ShardPlan,
    runtime: WorkerRuntime,
    timings: Timings,
    progress: OnProgress,
) -> Notification | None:
    """Score the request's shard unless it has a result, then finish the file if it is last."""
    assert request.shard is not None  # noqa: S101
    ledger = runtime.ledger
    if not runtime.retrying(lambda: ledger.has_shard_result(request.job_id, request.shard or 0)):
        if failed_before(runtime, request):
            result = ShardResult(index=request.shard, status="stopped")
        else:
            started = time.monotonic()
            result = _score(request, plan, runtime, timings, progress)
            log.info(
                "shard %d of %d %s: %d rows in %.2f s",
                request.shard + 1,
                plan.count,
                result.status,
                result.rows,
                time.monotonic() - started,
            )
        if not runtime.retrying(lambda: ledger.put_shard_result(request.job_id, result)):
            log.info("shard %d had a result already: this duplicate's is dropped", request.shard)
            remove(runtime, [result])
    return finish(request, plan, runtime)


def _score(
    request: ScoreRequest,
    plan: ShardPlan,
    runtime: WorkerRuntime,
    timings: Timings,
    progress: OnProgress,
) -> ShardResult:
    assert request.shard is not None  # noqa: S101
    index = request.shard
    source = ShardSource(runtime, request, plan)
    fmt = formats.BY_NAME[plan.format]
    key = f"{TEMP_PREFIX}{request.job_id}/{index:05d}-{uuid.uuid4().hex[:8]}"
    stop = _stop_check(request, runtime)

    def report(rows: int, read: int) -> None:
        progress(rows, read)
        stop()

    shards = fmt.codec.shards

    def attempt() -> tuple[Scored, ShardOutput, Shadowing | None]:
        sink = ShardWriter(
            runtime.s3,
            runtime.settings.output_bucket,
            plan.output_key,
            upload_id=plan.upload_id,
            first_part=index * plan.stride + 2,
            max_parts=plan.stride - 1,
            temp=key,
            skip=shards.skip if index else 0,
            hold=shards.hold,
            part_bytes=MIN_PART_BYTES,
        )
        shadow = shadowing(request, model, runtime.models)
        with sink:
            scored = score_source(
                source,
                fmt,
                model,
                runtime.settings,
                request.options,
                sink=sink,
                header=index == 0,
                timings=timings,
                progress=report,
                shadow=shadow,
            )
        assert sink.output is not None  # noqa: S101 - completed by score_source
        return scored, sink.output, shadow

    try:
        model = runtime.models.get(request.model)
        scored, output, shadow = runtime.retrying(attempt)
        compared = runtime.retrying(lambda: _keep_shadow(runtime, key, shadow))
    except Stopped as exc:
        log.info("shard %d stopped: %s", index, exc)
        return ShardResult(index=index, status="stopped")
    except (InputError, JobTimeout, ConfigurationError) as exc:
        counted = _counted(source) if plan.header else None
        return ShardResult(
            index=index,
            status="failed",
            error=ErrorInfo(code=exc.code, message=str(exc)),
            lines=counted.lines if counted else 0,
            quotes=counted.quotes if counted else 0,
            **_error_place(exc, source, plan, shards),
        )
    records = source.records
    return ShardResult(
        index=index,
        status="scored",
        key=key,
        parts=output.parts,
        head=output.head,
        tail=output.tail,
        rows=scored.rows,
        lines=records.lines if records else 0,
        quotes=records.quotes if records else 0,
        engine=model.engine,
        quality=scored.quality.state(),
        bad_rows=scored.bad.rows,
        bad_cells=scored.bad.cells,
        shadow=compared,
        shadow_error=shadow.counter.error if shadow is not None else None,
    )


def _keep_shadow(runtime: WorkerRuntime, key: str, shadow: Shadowing | None) -> int:
    """The shadow's predictions of the shard, kept for the finisher; their size."""
    if shadow is None or not shadow.active:
        return 0
    data = shadow.counter.to_bytes()
    runtime.s3.put_object(Bucket=runtime.settings.output_bucket, Key=f"{key}-shadow", Body=data)
    return len(data)


def _counted(source: ShardSource) -> RecordRange:
    """The shard's records read to their end, counted: a failed CSV shard's boundary check
    needs its quotes (an error may come from a split inside a quoted field)."""
    records = source.record_range()
    while records.read(1 << 20):
        pass
    return records


def _stop_check(request: ScoreRequest, runtime: WorkerRuntime) -> Callable[[], None]:
    """Raises ``Stopped`` once the file is answered or an earlier shard failed (looked up
    every ``progress_seconds``)."""
    every = runtime.settings.progress_seconds
    last = time.monotonic()

    def check() -> None:
        nonlocal last
        if time.monotonic() - last < every:
            return
        last = time.monotonic()
        if runtime.ledger.outcome(request.job_id) is not None:
            raise Stopped("the file is answered")
        if failed_before(runtime, request):
            raise Stopped("an earlier shard failed, and fails the file")

    return check


def failed_before(runtime: WorkerRuntime, request: ScoreRequest) -> bool:
    """Whether a shard before this one failed, which fails the file: one listing."""
    return any(
        index < (request.shard or 0) for index in runtime.ledger.failed_shards(request.job_id)
    )


def _error_place(
    exc: PipelineError, source: ShardSource, plan: ShardPlan, shards: ShardFormat
) -> dict[str, int]:
    """Where in the shard the error is, as ``ShardResult`` fields (counted from its records)."""
    if not isinstance(exc, InputError) or not plan.ranges:
        return {"error_row": exc.row} if isinstance(exc, InputError) and exc.row else {}
    if exc.row is not None:
        line = shards.line_of_row(source.record_range(), exc.row)
        return {"error_row": exc.row, "error_line": line}
    if exc.line is not None:
        # A CSV shard's stream starts with the header: its line 1.
        return {"error_line": exc.line - (1 if plan.header else 0)}
    return {}
