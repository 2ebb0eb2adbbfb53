"""Finishing a split file: joining the shards' outputs, or failing it, once.

The shard whose result completes the set joins what the shards held back into
the parts between theirs and completes the upload, or fails the file with the
first error located from the file's start, or, when a CSV split turns out to
begin inside a quoted field, runs the file again whole. Then it announces the
one outcome and removes the temporary objects.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from pipeline.errors import BadValue, QualityFailed, located
from pipeline.messages import (
    ErrorInfo,
    Notification,
    OutputRef,
    ScoreRequest,
    failed,
    succeeded,
)
from pipeline.quality import Location, QualityRef
from pipeline.records import ShardPlan, ShardResult
from pipeline.scoring import formats, reports
from pipeline.scoring.bad_rows import BadRows, Cell
from pipeline.scoring.codec import CannotJoin
from pipeline.scoring.quality import QualityCounter
from pipeline.scoring.run import shadowing, write_errors
from pipeline.scoring.shadow import write_report
from pipeline.shadow import ShadowRef
from pipeline.stores.aws import error_code, translated
from pipeline.stores.notify import announce
from pipeline.stores.uploads import LAST_PART, Part, Upload
from pipeline.worker.sharding.rules import conclude

if TYPE_CHECKING:
    from pipeline.worker.runtime import WorkerRuntime

from pipeline.worker.sharding.plan import abort, send

log = logging.getLogger(__name__)
#: Held-back bytes fetched and joined parts uploaded at once by the finisher.
_JOINERS = 8


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
    clean_up(runtime, job, results.values())
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
        abort(runtime, plan)
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
        try:
            errors = runtime.retrying(lambda: _set_aside(request, plan, runtime, ordered, where))
            quality = runtime.retrying(lambda: _settle(request, plan, runtime, ordered))
            shadow = runtime.retrying(lambda: _compare(request, plan, runtime, ordered))
        except (QualityFailed, BadValue) as exc:
            abort(runtime, plan)
            found = getattr(exc, "quality", None)
            return failed(
                job_id=job,
                input=request.input,
                model=request.model,
                error=ErrorInfo(code=exc.code, message=located(exc, where)),
                received_at=request.received_at,
                started_at=plan.created_at,
                run=request.run,
                quality=found if isinstance(found, QualityRef) else None,
            )
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
            options=request.options,
            bad_rows=sum(result.bad_rows for result in ordered),
            errors=errors,
        )
        notification = succeeded(request, output, plan.created_at, quality, shadow)
    topic = runtime.settings.notification_topic_arn
    return runtime.retrying(lambda: announce(ledger, runtime.sns, topic, notification))


def _set_aside(
    request: ScoreRequest,
    plan: ShardPlan,
    runtime: WorkerRuntime,
    ordered: list[ShardResult],
    where: str,
) -> Location | None:
    """The shards' set-aside rows, counted from the file's start, as one errors CSV;
    ``BadValue`` if together they pass the limit."""
    cells: list[Cell] = []
    before = 0
    for result in ordered:
        cells += [
            (before + row, column, value, reason) for row, column, value, reason in result.bad_cells
        ]
        before += result.rows + result.bad_rows
    if not cells:
        return None
    total = sum(result.bad_rows for result in ordered)
    if total > request.options.max_bad_rows:
        raise BadRows(request.options.max_bad_rows, where).too_many(total, cells)
    output = Location(bucket=runtime.settings.output_bucket, key=plan.output_key)
    return write_errors(runtime.s3, output, request.job_id, cells)


def _settle(
    request: ScoreRequest, plan: ShardPlan, runtime: WorkerRuntime, ordered: list[ShardResult]
) -> QualityRef:
    """The shards' quality counts merged into the file's report, judged by the policy."""
    model = runtime.models.get(request.model)
    counter = QualityCounter(model.features, model.baseline)
    for result in ordered:
        if result.quality is not None:
            counter.merge(result.quality)
    where = Location(bucket=runtime.settings.output_bucket, key=plan.output_key)
    return reports.settle(counter, model, request.job_id, runtime.s3, where)


def _compare(
    request: ScoreRequest, plan: ShardPlan, runtime: WorkerRuntime, ordered: list[ShardResult]
) -> ShadowRef | None:
    """The shards' shadow predictions joined into the file's comparison, its report written."""
    if request.shadow is None:
        return None
    primary = runtime.models.get(request.model)
    shadow = shadowing(request, primary, runtime.models)
    assert shadow is not None  # noqa: S101
    before = 0
    for result in ordered:
        if result.shadow_error is not None:
            shadow.counter.fail(result.shadow_error)
        elif result.shadow and shadow.active:
            shadow.counter.extend(_held(runtime, result, "shadow"), before)
        before += result.rows + result.bad_rows
    where = Location(bucket=runtime.settings.output_bucket, key=plan.output_key)
    ref, report = shadow.settle(request.job_id, request.model, request.options.threshold, where)
    write_report(runtime.s3, ref, report)
    return ref


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
    runtime.ledger.release_run(request.job_id)
    send(runtime, request, None)
    abort(runtime, plan)
    clean_up(runtime, request.job_id, results.values())


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
    joiner = formats.BY_NAME[plan.format].codec.shards.joiner()
    position = 0
    for result, first, last in zip(results, heads, tails, strict=True):
        try:
            head, tail = joiner.take(result.index, first, last, bool(result.parts), position)
        except CannotJoin as exc:
            raise Resplit(str(exc)) from exc
        pending += head
        position += len(head)
        if result.parts:
            runs.append((result.parts[0][0] - 1, bytes(pending)))
            pending = bytearray()
            parts += [Part(number, etag, crc32) for number, etag, _, crc32 in result.parts]
            position += sum(size for _, _, size, _ in result.parts)
        pending += tail
        position += len(tail)
    end = joiner.end()
    pending += end
    position += len(end)
    runs.append((LAST_PART, bytes(pending)))
    runs = [(number, data) for number, data in runs if data]

    upload = Upload(s3, bucket, plan.output_key, plan.upload_id)
    with ThreadPoolExecutor(_JOINERS, thread_name_prefix="join") as pool:
        parts += list(pool.map(lambda run: upload.part(*run), runs))
    with translated(f"completing s3://{bucket}/{plan.output_key}"):
        try:
            upload.complete(parts)
        except ClientError as exc:
            if error_code(exc) in {"InvalidPart", "InvalidPartOrder", "EntityTooSmall"}:
                # A duplicate's part replaced a recorded one with other bytes.
                raise Resplit(f"the shards' parts cannot be joined ({error_code(exc)})") from exc
            raise
    return position


def _size_of(runtime: WorkerRuntime, key: str) -> int | None:
    """The output's size if it exists (its key names the job: only this file writes it)."""
    with translated(f"looking for s3://{runtime.settings.output_bucket}/{key}"):
        try:
            head = runtime.s3.head_object(Bucket=runtime.settings.output_bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise
    return int(head["ContentLength"])


def _held(runtime: WorkerRuntime, result: ShardResult, which: str) -> bytes:
    """What a shard kept beside its parts: its ``head``, ``tail`` or ``shadow`` bytes."""
    if not getattr(result, which):
        return b""
    got = runtime.s3.get_object(Bucket=runtime.settings.output_bucket, Key=f"{result.key}-{which}")
    data: bytes = got["Body"].read()
    return data


def clean_up(runtime: WorkerRuntime, job_id: str, results: Iterable[ShardResult]) -> None:
    remove(runtime, results)
    runtime.ledger.forget_shards(job_id)


def remove(runtime: WorkerRuntime, results: Iterable[ShardResult]) -> None:
    for result in results:
        for which, size in (
            ("head", result.head),
            ("tail", result.tail),
            ("shadow", result.shadow),
        ):
            if size:
                with contextlib.suppress(ClientError, BotoCoreError):
                    runtime.s3.delete_object(
                        Bucket=runtime.settings.output_bucket, Key=f"{result.key}-{which}"
                    )
