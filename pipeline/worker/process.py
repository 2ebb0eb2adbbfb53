"""The worker process: one file at a time, from task message to notification.

``process`` is the one function the Celery task calls. What happens to a file:

* already answered (a redelivery after a crash that came after the answer,
  or a duplicate of a file too large to read at once): the settled
  notification is published again, nothing is scored. A small file's
  duplicate is scored again, and the settled notification is what it
  publishes (``PREFETCH_BYTES``);
* larger than ``shard_bytes``: split into shards, each a task of its own
  (``sharding``); the shard that completes the set announces the file;
* scored: a ``succeeded`` notification;
* an input error (the user's file is wrong) or the job time limit: a
  ``failed`` notification at once, never retried;
* anything else (S3 or SNS failing beyond the in-process retries, a bug):
  the error is noted in the ledger and the delivery fails. The message is not
  acked; it comes back after a backoff, and after the queue's
  ``maxReceiveCount`` deliveries it goes to the dead-letter queue, where the
  dead-letter handler answers for it (code ``exhausted``).

The Celery app that calls it is in ``main``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from concurrent.futures import Future
from datetime import datetime
from typing import TYPE_CHECKING

from pipeline import logs, metrics
from pipeline.errors import (
    ConfigurationError,
    InputError,
    JobTimeout,
    PipelineError,
    QualityFailed,
    located,
)
from pipeline.messages import (
    CompileRequest,
    ErrorInfo,
    Notification,
    Progress,
    ScoreRequest,
    failed,
    succeeded,
    utc_now,
)
from pipeline.scoring.run import Timings, score_object
from pipeline.stores.ledger import AttemptError
from pipeline.stores.notify import announce, publish
from pipeline.stores.storage import open_object
from pipeline.worker.delivery import Delivery, Heartbeat, redelivery_delay
from pipeline.worker.runtime import WorkerRuntime
from pipeline.worker.sharding import plan as planning
from pipeline.worker.sharding import score as shard_scoring
from pipeline.worker.watchdog import Watchdog

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


def process(
    request: ScoreRequest, runtime: WorkerRuntime, delivery: Delivery | None = None
) -> Notification | None:
    """The file's notification; None while a split file's shards are still at work."""
    model = f"{request.model.name}@{request.model.version}"
    count = delivery.receive_count if delivery else 1
    with logs.job_context(
        job_id=request.job_id,
        key=request.input.key,
        model=model,
        delivery=count,
        shard=request.shard,
    ):
        return _process(request, runtime, delivery)


def _process(
    request: ScoreRequest, runtime: WorkerRuntime, delivery: Delivery | None
) -> Notification | None:
    """Score one file and announce its outcome (see the module docstring).

    Everything that can fail, from the ledger lookup to the final announce,
    fails the same way: the error is noted for the dead-letter handler and the
    delivery is paced by the redelivery backoff.
    """
    timings = Timings()
    try:
        answer = _answer(request, runtime, delivery, timings)
    except Exception as exc:
        code = exc.code if isinstance(exc, PipelineError) else "internal"
        where = f"s3://{request.input.bucket}/{request.input.key}"
        message = located(f"{type(exc).__name__}: {exc}", where)
        count = delivery.receive_count if delivery else 1
        log.exception("delivery %d failed", count)
        runtime.ledger.note_error(
            request.job_id, AttemptError(code=code, message=message, delivery=count)
        )
        if delivery is not None:
            delivery.set_visibility(
                runtime.sqs, redelivery_delay(count, runtime.settings.redelivery_base_seconds)
            )
        raise
    if answer is not None:
        _report(request, answer, timings)
    return answer


def _report(request: ScoreRequest, answer: Notification, timings: Timings) -> None:
    """The file's answer as a log line that is also its metrics (EMF)."""
    seconds = 0.0
    if answer.started_at is not None:
        seconds = (answer.finished_at - answer.started_at).total_seconds()
    rows = answer.output.rows if answer.output else 0
    values = {"Files": 1, "Rows": rows, "InputBytes": request.input.size, "Seconds": seconds}
    if answer.output is not None:
        values |= timings.as_metrics()
        values["RowsPerSecond"] = round(rows / seconds, 1) if seconds > 0 else 0.0
    if answer.quality is not None:
        if answer.quality.max_psi is not None:
            values["MaxPsi"] = round(answer.quality.max_psi, 6)
        values["MissingShare"] = round(answer.quality.max_missing_share, 6)
        values["UnseenCount"] = answer.quality.unseen
    shadow = answer.shadow
    if shadow is not None and shadow.max_abs_diff is not None:
        values["ShadowMaxAbsDiff"] = round(shadow.max_abs_diff, 9)
        if shadow.flips is not None:
            values["ShadowFlips"] = shadow.flips
    code = answer.error.code if answer.error else None
    document = metrics.document(
        "scoring",
        answer.status,
        request.model.name,
        error_code=code,
        values=values,
        properties={"engine": answer.output.engine if answer.output else None},
    )
    log.info("answered: %s%s", answer.status, f" ({code})" if code else "", extra=document)


def _answer(
    request: ScoreRequest, runtime: WorkerRuntime, delivery: Delivery | None, timings: Timings
) -> Notification | None:
    settings = runtime.settings
    topic = settings.notification_topic_arn
    prefetch = _prefetch(request, runtime, delivery)
    claim = _claim(request, runtime, delivery)  # beside the outcome lookup: one round trip
    settled = None
    if prefetch is None:  # see ``_prefetch``: a small file's first delivery is not looked up
        settled = runtime.retrying(lambda: runtime.ledger.outcome(request.job_id))
    if settled is not None:
        if request.shard is not None:
            log.info(
                "the file is answered already (%s): nothing left for this shard", settled.status
            )
            return None
        log.info("answered already (%s); announcing that again", settled.status)
        runtime.retrying(lambda: publish(runtime.sns, topic, settled))
        return settled
    plan = None
    holder = claim.result() if claim is not None else None
    if holder is not None:
        log.info("running already (%s): this duplicate delivery is acknowledged", holder)
        return None
    if request.shard is None:
        plan = runtime.retrying(lambda: planning.plan_for(request, runtime))
        if plan is not None:
            planning.split(request, plan, runtime)
            return None
    else:
        plan = runtime.retrying(lambda: planning.plan_of(request, runtime))

    where = f"s3://{request.input.bucket}/{request.input.key}"
    started = utc_now()
    log.info("scoring %s (%d bytes)", where, request.input.size)
    size = request.input.size if plan is None else planning.share(plan, request)
    reporter = ProgressReporter(request, runtime, started, size)
    try:
        with (
            reporter,
            runtime.protection.busy(request.job_id),
            Heartbeat(runtime.sqs, delivery, settings.task_visibility_seconds),
            Watchdog(settings.job_timeout_seconds, where),
        ):
            if plan is not None:
                return shard_scoring.score_shard(request, plan, runtime, timings, reporter.update)
            body = _prefetched(prefetch)
            answer = runtime.retrying(
                lambda: score_object(
                    request,
                    runtime.s3,
                    runtime.models,
                    settings,
                    timings=timings,
                    progress=reporter.update,
                    body=body,
                )
            )
        notification = succeeded(request, answer.output, started, answer.quality, answer.shadow)
    except (InputError, JobTimeout, ConfigurationError) as exc:
        # Final: retrying cannot help; the file is answered now.
        log.info("%s: %s", exc.code, exc)
        notification = _failed(request, exc.code, located(exc, where), started)
        if isinstance(exc, QualityFailed):
            notification = notification.model_copy(update={"quality": exc.quality})
    return runtime.retrying(lambda: announce(runtime.ledger, runtime.sns, topic, notification))


def _claim(
    request: ScoreRequest, runtime: WorkerRuntime, delivery: Delivery | None
) -> Future[str | None] | None:
    """The file's run claimed for this task message, in the background (``claim_run``).

    Files up to ``PREFETCH_BYTES`` are not claimed: one upload of such a file
    sends one event, a duplicate delivery of it is rare and costs little work
    (the ledger still keeps one outcome), and on the emulator, which serves
    one request at a time, the claim would cost every small file a round trip.
    """
    if request.shard is not None or delivery is None or not delivery.message_id:
        return None
    if request.input.size <= PREFETCH_BYTES:
        return None
    settings = runtime.settings
    limit = settings.job_timeout_seconds or 86_400.0  # 0: no limit; a day is stale anyway
    stale = limit + settings.task_visibility_seconds
    message = delivery.message_id
    return runtime.beside.submit(
        lambda: runtime.retrying(lambda: runtime.ledger.claim_run(request.job_id, message, stale))
    )


#: Files up to this size (that run whole, not split) are read as soon as their
#: first delivery arrives, and the ledger is not asked whether they were answered.
#: The question costs every small file a round trip (and on the emulator, a
#: not-found answer, its dearest), to spare a rare duplicate a little work:
#: such a file is scored again and its output written again, the same bytes,
#: and the ledger still keeps one outcome (``announce`` publishes the first
#: again). A redelivery, which follows a crash, is looked up as before.
#: The early read is tried once: when it fails, the scoring path reads with
#: the usual retries, so a failing store is asked once more, not twice as often.
PREFETCH_BYTES = 8 * 1024 * 1024


def _prefetch(
    request: ScoreRequest, runtime: WorkerRuntime, delivery: Delivery | None
) -> Future[bytes] | None:
    s3 = runtime.prefetch_s3
    first = delivery is None or delivery.receive_count <= 1
    if s3 is None or not first or request.shard is not None:
        return None
    if not 0 < request.input.size <= min(PREFETCH_BYTES, runtime.settings.shard_bytes):
        return None  # empty, or large enough to be read in parts (or split) anyway
    return runtime.prefetcher.submit(lambda: open_object(s3, request.input).read())


def _prefetched(prefetch: Future[bytes] | None) -> bytes | None:
    """The bytes, or None: a failed read is made again, and reported, by the scoring path."""
    if prefetch is None:
        return None
    try:
        return prefetch.result()
    except Exception:  # scoring reads again, and says what went wrong
        return None


class ProgressReporter:
    """Records how far a file has got, every ``progress_seconds``, where any client reads it.

    Only a file still running after ``progress_seconds`` is recorded: most
    files are small, and their answer comes before anyone would look, so they
    pay no request for it. From then on its job is listed as running in the
    ledger; when it ends, a last record says how far it got. With
    ``progress_notify_seconds`` set, a ``running`` notification goes out that
    often too (never settled: it is not an outcome).
    """

    def __init__(
        self, request: ScoreRequest, runtime: WorkerRuntime, started: datetime, size: int
    ) -> None:
        self._request, self._runtime, self._started = request, runtime, started
        self._recorded = self._notified = time.monotonic()
        self._rows = self._bytes = 0
        self._listed = False
        #: What this task reads: the file, or a shard's share of it (the ledger sums shards).
        self._size = size

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if not self._listed:
            return
        if kind is None:  # done: all of the input is scored, however much was fetched
            self._bytes = self._size
        self._record()
        if self._request.shard is None:  # a split file is listed until its last shard ends
            self._runtime.ledger.mark_running(self._request.job_id, running=False)

    def update(self, rows: int, input_bytes: int) -> None:
        self._rows, self._bytes = rows, input_bytes
        settings, now = self._runtime.settings, time.monotonic()
        if now - self._recorded >= settings.progress_seconds:
            self._recorded = now
            if not self._listed:
                self._listed = True
                if self._request.shard is None:
                    self._runtime.ledger.mark_running(self._request.job_id, running=True)
            self._record()
        every = settings.progress_notify_seconds
        if every and now - self._notified >= every:
            self._notified = now
            self._notify()

    def _progress(self) -> Progress:
        obj = self._request.input
        return Progress(
            key=obj.key,
            etag=obj.etag,
            rows=self._rows,
            input_bytes=min(self._bytes, self._size),
            input_size=self._size,
            started_at=self._started,
            updated_at=utc_now(),
        )

    def _record(self) -> None:
        request = self._request
        self._runtime.ledger.record_progress(request.job_id, self._progress(), request.shard)

    def _notify(self) -> None:
        request = self._request
        note = Notification(
            job_id=request.job_id,
            status="running",
            input=request.input,
            model=request.model,
            received_at=request.received_at,
            started_at=self._started,
            finished_at=utc_now(),
            run=request.run,
            progress=self._progress(),
        )
        with contextlib.suppress(PipelineError):  # progress never fails a file
            publish(self._runtime.sns, self._runtime.settings.notification_topic_arn, note)


def reject_poison(runtime: WorkerRuntime, delivery: Delivery | None, reason: str) -> None:
    """A task message that can never run: hand it back at once, to reach the dead-letter queue.

    The queue's redrive policy moves it after ``maxReceiveCount`` receives; the
    dead-letter handler then announces it.
    """
    log.error("poison task message (%s); it goes to the dead-letter queue", reason)
    if delivery is not None:
        delivery.set_visibility(runtime.sqs, 0)


def _failed(request: ScoreRequest, code: str, message: str, started: datetime) -> Notification:
    return failed(
        job_id=request.job_id,
        input=request.input,
        model=request.model,
        error=ErrorInfo(code=code, message=message),
        received_at=request.received_at,
        started_at=started,
        run=request.run,
    )


def compile_model(request: CompileRequest, runtime: WorkerRuntime) -> str:
    """Start the version's compile beside this worker and return at once (see ``compile_jobs``)."""
    from pipeline.scoring.engine import compile_jobs  # noqa: PLC0415 - llvmlite only for compile jobs

    started: str = runtime.retrying(
        lambda: compile_jobs.start_compile(
            request.model, runtime.store, runtime.settings.compile_timeout_seconds
        )
    )
    log.info("compile of %s v%d: %s", request.model.name, request.model.version, started)
    return started
