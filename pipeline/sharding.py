"""One big file on many workers: planning it, scoring one shard, finishing the file.

The rules (where a shard begins and ends, how its result counts, what the
file's verdict is) are in ``shards``; this is the worker's side of them.

* ``split``: the worker that takes a big file's task writes the plan (once:
  a conditional put) with the output's multipart upload, sends one task per
  shard to the task queue and is done. Autoscaling sees the shards as
  backlog, like files.
* ``score_shard``: a worker scores its shard's records straight into the
  upload, as parts of its own (``storage.ShardWriter``), and records the
  result. A shard that fails transiently is retried alone, like a file; a
  worker killed mid-shard loses that shard's work only; a duplicate delivery
  finds the result recorded.
* the shard whose result completes the set finishes the file: it joins what
  the shards held back into the parts between theirs and completes the
  upload, or fails the file with the first error located from the file's
  start, or, when a CSV split turns out to begin inside a quoted field, runs
  the file again whole. Then it announces the one outcome and removes the
  temporary objects.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, BinaryIO

from botocore.exceptions import BotoCoreError, ClientError

from pipeline import jobs, task_messages
from pipeline.aws import error_code, raise_transient
from pipeline.errors import ConfigurationError, InputError, JobTimeout, PipelineError
from pipeline.messages import (
    ErrorInfo,
    Notification,
    OutputRef,
    ScoreRequest,
    failed,
    succeeded,
    utc_now,
)
from pipeline.notify import announce
from pipeline.scoring import csv_files, formats, parquet_footer
from pipeline.scoring.run import Scored, Timings, file_format, score_source
from pipeline.scoring.streams import Prefixed, RecordRange
from pipeline.shards import (
    LAST_PART,
    MAX_SHARDS,
    MIN_PART_BYTES,
    ShardPlan,
    ShardResult,
    byte_ranges,
    conclude,
    group_row_groups,
)
from pipeline.storage import (
    Part,
    RangeReader,
    S3Object,
    ShardOutput,
    ShardWriter,
    Upload,
)

if TYPE_CHECKING:
    from pipeline.worker import WorkerRuntime

log = logging.getLogger(__name__)

#: Shards' outputs until the file is joined, in the output bucket (a lifecycle rule
#: removes any left by a file that never finished).
TEMP_PREFIX = "_shards/"
_HEADER_PEEK = 64 * 1024
_TAIL_PEEK = 64 * 1024
#: How far past its range a shard first reads, for its last record's end.
_RECORD_SLACK = 1024 * 1024
#: A Parquet shard holds back at least this much, where its footer is written (a
#: bigger footer, from thousands of columns, makes the file run whole).
_FOOTER_ROOM = 2 * 1024 * 1024
#: Held-back bytes fetched and joined parts uploaded at once by the finisher.
_JOINERS = 8

Progress = Callable[[int, int], None]


class Stopped(Exception):
    """The shard need not finish: its file is answered, or an earlier shard failed."""


# ---- splitting --------------------------------------------------------------------


def plan_for(request: ScoreRequest, runtime: WorkerRuntime) -> ShardPlan | None:
    """The file's plan if it is to run as shards, else None (it runs whole)."""
    settings, ledger, obj = runtime.settings, runtime.ledger, request.input
    if obj.size <= settings.shard_bytes or obj.size > settings.max_input_bytes:
        return None
    if ledger.is_unsplit(request.job_id):
        return None
    existing = ledger.plan(request.job_id)
    if existing is not None:
        return existing
    try:
        plan = _new_plan(request, runtime)
    except InputError as exc:
        log.info("not split (%s): it runs whole, which reports the error", exc)
        return None
    if plan is None or plan.count < 2:
        return None
    bucket, fmt = runtime.settings.output_bucket, formats.BY_NAME[plan.format]
    upload = Upload.start(runtime.s3, bucket, plan.output_key, fmt.content_type)
    plan = plan.model_copy(
        update={"upload_id": upload.upload_id, "stride": (LAST_PART - 1) // plan.count}
    )
    counted = ledger.put_plan(request.job_id, plan)
    if counted.upload_id != plan.upload_id:  # another worker planned it first
        _abort(runtime, plan)
    return counted


def _new_plan(request: ScoreRequest, runtime: WorkerRuntime) -> ShardPlan | None:
    obj = request.input
    shard_bytes = max(runtime.settings.shard_bytes, -(-obj.size // MAX_SHARDS))
    source = S3Object(runtime.s3, obj)
    fmt = file_format(source)
    if fmt.compression:
        log.info("not split: a %s stream cannot be entered in the middle", fmt.compression)
        return None
    output_key = jobs.output_key(fmt.stem(obj.key), request.job_id, fmt.output_suffix(obj.key))
    common = {
        "format": fmt.name,
        "output_key": output_key,
        "size": obj.size,
        "created_at": utc_now(),
    }
    if fmt.kind == "parquet":
        import pyarrow.parquet as pq  # noqa: PLC0415

        metadata = pq.ParquetFile(source.random_access(), pre_buffer=False).metadata
        sizes = [
            sum(g.column(c).total_compressed_size for c in range(g.num_columns))
            for g in map(metadata.row_group, range(metadata.num_row_groups))
        ]
        return ShardPlan(**common, row_groups=group_row_groups(sizes, shard_bytes))
    header = b""
    if fmt.kind == "csv":
        head = csv_files.peek_first_line(
            RangeReader(runtime.s3, obj, block_bytes=_HEADER_PEEK),
            f"s3://{obj.bucket}/{obj.key}",
            runtime.settings.max_line_bytes,
        )
        line, newline, _ = head.partition(b"\n")
        header = line + newline
    return ShardPlan(
        **common,
        ranges=byte_ranges(len(header), obj.size, shard_bytes),
        header=header.decode("utf-8", errors="strict"),
    )


def split(request: ScoreRequest, plan: ShardPlan, runtime: WorkerRuntime) -> None:
    """Send the task of every shard that has no result yet (all of them, the first time)."""
    done = runtime.retrying(lambda: runtime.ledger.shard_results(request.job_id))
    runtime.ledger.mark_running(request.job_id, running=True)

    for index in range(plan.count):
        if index not in done:
            runtime.retrying(functools.partial(_send, runtime, request, index))
    log.info("split into %d shards (%s)", plan.count, plan.format)


def _send(runtime: WorkerRuntime, request: ScoreRequest, shard: int | None) -> None:
    """Put the file's task on the queue again: for one shard, or (None) for the whole file."""
    task = request.model_copy(update={"shard": shard})
    task_messages.send(
        runtime.sqs,
        runtime.settings.task_queue_url,
        task_messages.SCORE_TASK,
        task.model_dump(mode="json"),
    )


# ---- one shard ----------------------------------------------------------------------


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


def plan_of(request: ScoreRequest, runtime: WorkerRuntime) -> ShardPlan:
    """The plan a shard's task belongs to (written before any shard's task was sent)."""
    plan = runtime.ledger.plan(request.job_id)
    if plan is None:
        raise RuntimeError(f"shard {request.shard} of job {request.job_id} has no plan")
    return plan


def share(plan: ShardPlan, request: ScoreRequest) -> int:
    """About how many bytes of the input a shard reads: its progress's whole."""
    assert request.shard is not None  # noqa: S101
    if plan.ranges:
        begin, end = plan.ranges[request.shard]
        return end - begin
    return plan.size // plan.count


def score_shard(
    request: ScoreRequest,
    plan: ShardPlan,
    runtime: WorkerRuntime,
    timings: Timings,
    progress: Progress,
) -> Notification | None:
    """Score the request's shard unless it has a result, then finish the file if it is last."""
    assert request.shard is not None  # noqa: S101
    ledger = runtime.ledger
    if not runtime.retrying(lambda: ledger.has_shard_result(request.job_id, request.shard or 0)):
        if _failed_before(runtime, request):
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
            _remove(runtime, [result])
    return finish(request, plan, runtime)


def _score(
    request: ScoreRequest,
    plan: ShardPlan,
    runtime: WorkerRuntime,
    timings: Timings,
    progress: Progress,
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

    parquet = bool(plan.row_groups)

    def attempt() -> tuple[Scored, ShardOutput]:
        sink = ShardWriter(
            runtime.s3,
            runtime.settings.output_bucket,
            plan.output_key,
            upload_id=plan.upload_id,
            first_part=index * plan.stride + 2,
            max_parts=plan.stride - 1,
            temp=key,
            skip=len(parquet_footer.MAGIC) if parquet and index else 0,
            hold=_FOOTER_ROOM if parquet else 0,
            part_bytes=MIN_PART_BYTES,
        )
        with sink:
            scored = score_source(
                source,
                fmt,
                model,
                runtime.settings,
                sink=sink,
                header=index == 0,
                timings=timings,
                progress=report,
            )
        assert sink.output is not None  # noqa: S101 - completed by score_source
        return scored, sink.output

    try:
        model = runtime.models.get(request.model)
        scored, output = runtime.retrying(attempt)
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
            **_error_place(exc, source, plan),
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
    )


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
        if _failed_before(runtime, request):
            raise Stopped("an earlier shard failed, and fails the file")

    return check


def _failed_before(runtime: WorkerRuntime, request: ScoreRequest) -> bool:
    """Whether a shard before this one failed, which fails the file: one listing."""
    return any(
        index < (request.shard or 0) for index in runtime.ledger.failed_shards(request.job_id)
    )


def _error_place(exc: PipelineError, source: ShardSource, plan: ShardPlan) -> dict[str, int]:
    """Where in the shard the error is, as ``ShardResult`` fields (counted from its records)."""
    if not isinstance(exc, InputError) or plan.row_groups:
        return {"error_row": exc.row} if isinstance(exc, InputError) and exc.row else {}
    if exc.row is not None:
        return {"error_row": exc.row, "error_line": _line_of_row(source, plan, exc.row)}
    if exc.line is not None:
        # A CSV shard's stream starts with the header: its line 1.
        return {"error_line": exc.line - (1 if plan.header else 0)}
    return {}


def _line_of_row(source: ShardSource, plan: ShardPlan, row: int) -> int:
    """The line, counted in the shard's records, where its data row ``row`` begins.

    Read again, only on this error path: a quoted CSV field may hold line ends.
    """
    text = io.TextIOWrapper(io.BufferedReader(source.record_range()), encoding="utf-8", newline="")
    if plan.header:
        reader = csv.reader(text)
        for _ in range(row - 1):
            next(reader, None)
        return reader.line_num + 1
    line = seen = 0
    for raw in text:
        line += 1
        seen += bool(raw.strip())
        if seen == row:
            return line
    return line


# ---- finishing the file ----------------------------------------------------------------


def finish(request: ScoreRequest, plan: ShardPlan, runtime: WorkerRuntime) -> Notification | None:
    """The file's outcome, if this shard completes the set and may finish it; else None."""
    ledger, job = runtime.ledger, request.job_id
    results = runtime.retrying(lambda: ledger.shard_results(job))
    if len(results) < plan.count or not runtime.retrying(
        lambda: ledger.claim_finish(job, request.shard or 0)
    ):
        return None
    where = f"s3://{request.input.bucket}/{request.input.key}"
    notification = runtime.retrying(lambda: ledger.outcome(job))
    if notification is None:
        notification = _conclude(request, plan, runtime, results, where)
    if notification is None:
        return None  # runs again whole
    _clean_up(runtime, job, results.values())
    ledger.mark_running(job, running=False)
    return notification


def _conclude(
    request: ScoreRequest,
    plan: ShardPlan,
    runtime: WorkerRuntime,
    results: dict[int, ShardResult],
    where: str,
) -> Notification | None:
    """Announce the verdict of a file all of whose shards are done; None if it runs again whole."""
    ledger, job = runtime.ledger, request.job_id
    verdict = conclude(plan, results, where)
    if verdict.kind == "resplit":
        _run_whole(request, plan, runtime, results, verdict.reason)
        return None
    if verdict.kind == "failed":
        _abort(runtime, plan)
        assert verdict.error is not None  # noqa: S101
        notification = failed(
            job_id=job,
            input=request.input,
            model=request.model,
            error=verdict.error,
            received_at=request.received_at,
            started_at=plan.created_at,
            run=request.run,
        )
    else:
        ordered = [results[i] for i in range(plan.count)]
        started = time.monotonic()
        try:
            size = runtime.retrying(lambda: _complete(runtime, plan, ordered))
        except Resplit as exc:
            _run_whole(request, plan, runtime, results, str(exc))
            return None
        log.info(
            "joined %d shards: %d bytes in %.2f s", plan.count, size, time.monotonic() - started
        )
        output = OutputRef(
            bucket=runtime.settings.output_bucket,
            key=plan.output_key,
            rows=verdict.rows,
            format=plan.format,
            engine=ordered[0].engine,
        )
        notification = succeeded(request, output, plan.created_at)
    topic = runtime.settings.notification_topic_arn
    return runtime.retrying(lambda: announce(ledger, runtime.sns, topic, notification))


class Resplit(Exception):
    """The shards' outputs cannot be joined: the file runs again whole."""


def _run_whole(
    request: ScoreRequest,
    plan: ShardPlan,
    runtime: WorkerRuntime,
    results: dict[int, ShardResult],
    reason: str,
) -> None:
    log.warning("s3://%s/%s: %s", request.input.bucket, request.input.key, reason)
    runtime.ledger.mark_unsplit(request.job_id)
    _send(runtime, request, None)
    _abort(runtime, plan)
    _clean_up(runtime, request.job_id, results.values())


def _complete(runtime: WorkerRuntime, plan: ShardPlan, results: list[ShardResult]) -> int:
    """Join what the shards held back into parts between theirs, and complete the upload.

    The bytes before a shard's first part (the tail of the shards before,
    its own head) become the part numbered just before it, which holds at
    least its 5 MiB head; the bytes after the last part, with a Parquet file's
    merged footer, become part 10000. Returns the output's size.
    """
    s3, bucket = runtime.s3, runtime.settings.output_bucket
    done = _size_of(runtime, plan.output_key)
    if done is not None:  # completed by an earlier delivery that died before announcing
        return done
    with ThreadPoolExecutor(_JOINERS, thread_name_prefix="join") as pool:
        heads = list(pool.map(lambda r: _held(runtime, r, "head"), results))
        tails = list(pool.map(lambda r: _held(runtime, r, "tail"), results))
    runs: list[tuple[int, bytes]] = []  # (part number, bytes)
    pending = bytearray()
    parts: list[Part] = []
    footers: list[bytes] = []
    starts: list[int] = []
    position = 0
    for result, first, last in zip(results, heads, tails, strict=True):
        head, tail = first, last
        if plan.row_groups:
            # The footer ends the shard's output: in its tail, or (no parts) in head and tail.
            if not result.parts:
                head, tail = b"", head + tail
            length = parquet_footer.footer_length(tail)
            if length > len(tail):
                raise Resplit(f"shard {result.index + 1}'s Parquet footer is larger than expected")
            footers.append(tail[-length:-8])
            tail = tail[:-length]
            starts.append(position + (len(parquet_footer.MAGIC) if not result.index else 0))
        pending += head
        position += len(head)
        if result.parts:
            runs.append((result.parts[0][0] - 1, bytes(pending)))
            pending = bytearray()
            parts += [Part(number, etag, crc32) for number, etag, _, crc32 in result.parts]
            position += sum(size for _, _, size, _ in result.parts)
        pending += tail
        position += len(tail)
    if footers:
        footer = parquet_footer.merged_footer(footers, starts)
        pending += footer
        position += len(footer)
    runs.append((LAST_PART, bytes(pending)))
    runs = [(number, data) for number, data in runs if data]

    upload = Upload(s3, bucket, plan.output_key, plan.upload_id)
    with ThreadPoolExecutor(_JOINERS, thread_name_prefix="join") as pool:
        parts += list(pool.map(lambda run: upload.part(*run), runs))
    try:
        upload.complete(parts)
    except ClientError as exc:
        if error_code(exc) in {"InvalidPart", "InvalidPartOrder", "EntityTooSmall"}:
            # A duplicate's part replaced a recorded one with other bytes.
            raise Resplit(f"the shards' parts cannot be joined ({error_code(exc)})") from exc
        raise_transient(exc, f"completing s3://{bucket}/{plan.output_key}")
        raise
    return position


def _size_of(runtime: WorkerRuntime, key: str) -> int | None:
    """The output's size if it exists (its key names the job: only this file writes it)."""
    try:
        head = runtime.s3.head_object(Bucket=runtime.settings.output_bucket, Key=key)
    except ClientError as exc:
        if error_code(exc) in {"404", "NoSuchKey", "NotFound"}:
            return None
        raise_transient(exc, f"looking for s3://{runtime.settings.output_bucket}/{key}")
        raise
    return int(head["ContentLength"])


def _held(runtime: WorkerRuntime, result: ShardResult, which: str) -> bytes:
    if not (result.head if which == "head" else result.tail):
        return b""
    got = runtime.s3.get_object(Bucket=runtime.settings.output_bucket, Key=f"{result.key}-{which}")
    data: bytes = got["Body"].read()
    return data


def _abort(runtime: WorkerRuntime, plan: ShardPlan) -> None:
    Upload(runtime.s3, runtime.settings.output_bucket, plan.output_key, plan.upload_id).abort()


def _clean_up(runtime: WorkerRuntime, job_id: str, results: Iterable[ShardResult]) -> None:
    _remove(runtime, results)
    runtime.ledger.forget_shards(job_id)


def _remove(runtime: WorkerRuntime, results: Iterable[ShardResult]) -> None:
    for result in results:
        for which, size in (("head", result.head), ("tail", result.tail)):
            if size:
                with contextlib.suppress(ClientError, BotoCoreError):
                    runtime.s3.delete_object(
                        Bucket=runtime.settings.output_bucket, Key=f"{result.key}-{which}"
                    )
