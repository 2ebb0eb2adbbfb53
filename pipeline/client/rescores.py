"""Scoring files already in the input bucket again: ``pipeline rescore``.

Each object under the prefix goes through the intake as its upload did
(``intake.decide``), pinned to the version asked for (default: what an upload
would get now). Its job is the one an upload of it scored by that version
has, so an object already answered for that version is counted, not run
again: running the same rescore twice starts nothing new. A failed job that
was retried counts by its last run.

A job this rescore starts is marked in the ledger (``queued.json``) once its
task is sent: a rescore that was interrupted and is run again waits for those
instead of sending them again (one interrupted between the two sends it
twice; the ledger still keeps one outcome). The listing is read a page at a
time, and at most ``in_flight`` jobs wait for their outcome at once: a
million files never flood the queue, nor this process's memory.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Literal

from pipeline import events, naming
from pipeline.functions.intake import IntakeRuntime, Refusal, decide, dispatch, refuse
from pipeline.messages import Notification, ObjectRef, ScoreRequest
from pipeline.stores.aws import translated
from pipeline.stores.ledger import Ledger
from pipeline.stores.model_store import Pin

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

#: Objects decided at once (each is a few requests: metadata, versions, ledger, send).
_DECIDERS = 8
#: A job waited for is looked up in the ledger this often too (its notification
#: may have gone out before this rescore listened).
_LEDGER_SECONDS = 10.0

#: Notifications that arrived within about that many seconds.
Answers = Callable[[float], Iterable[Notification]]


@dataclass
class RescoreTally:
    """What a rescore came to, so far."""

    prefix: str
    #: Objects listed under the prefix.
    listed: int = 0
    #: Jobs this rescore started (tasks sent), and those refused at once by the intake.
    started: int = 0
    refused: int = 0
    #: Outcomes of the jobs it waited for (started now, or by an earlier rescore), by status.
    answered: Counter[str] = field(default_factory=Counter)
    #: Objects already answered for their version before it, by status.
    already: Counter[str] = field(default_factory=Counter)
    #: Jobs sent (now or by an earlier rescore) that had no outcome when it returned.
    pending: int = 0

    @property
    def done(self) -> int:
        """Objects with an outcome."""
        return sum(self.answered.values()) + sum(self.already.values())

    @property
    def all_succeeded(self) -> bool:
        statuses = set(self.answered) | set(self.already)
        return not self.pending and statuses <= {"succeeded"}

    def summary(self) -> str:
        def by_status(counts: Counter[str]) -> str:
            return ", ".join(f"{n:,} {status}" for status, n in sorted(counts.items())) or "none"

        text = (
            f"{self.listed:,} file(s) under {self.prefix}: {self.started:,} started now"
            f" ({self.refused:,} refused at intake); answered: {by_status(self.answered)}; "
            f"already answered: {by_status(self.already)}"
        )
        return text + (f"; {self.pending:,} still running" if self.pending else "")


@dataclass(frozen=True)
class Step:
    """What one object came to: its job started, already running, or already answered."""

    job_id: str
    kind: Literal["started", "running", "answered", "refused"]
    status: str | None = None


def rescore(
    runtime: IntakeRuntime,
    bucket: str,
    prefix: str,
    pin: Pin,
    answers: Answers,
    *,
    wait: bool = False,
    in_flight: int = 100,
    on_change: Callable[[RescoreTally], None] | None = None,
) -> RescoreTally:
    """Send every object under ``prefix`` through the intake again (see the module docstring).

    ``answers`` gives the notifications that arrive (a client's own queue);
    ``wait``: return once every job has its outcome, else once the last is sent.
    """
    tally = RescoreTally(prefix=f"s3://{bucket}/{prefix}")
    pending: dict[str, float] = {}  # job id -> when the ledger was last asked
    report = on_change or (lambda _: None)

    def absorb(seconds: float) -> None:
        for notification in answers(seconds):
            if notification.status != "running" and notification.job_id in pending:
                del pending[notification.job_id]
                tally.answered[notification.status] += 1
        now = time.monotonic()
        stale = [job for job, asked in pending.items() if now - asked >= _LEDGER_SECONDS]
        for job, outcome in zip(stale, pool.map(runtime.ledger.outcome, stale), strict=True):
            if job not in pending:  # its notification came meanwhile
                continue
            pending[job] = now
            if outcome is not None:
                del pending[job]
                tally.answered[outcome.status] += 1
        report(tally)

    with ThreadPoolExecutor(_DECIDERS, thread_name_prefix="rescore") as pool:
        listing = objects(runtime.s3, bucket, prefix)
        while batch := list(islice(listing, _DECIDERS * 4)):
            while len(pending) >= in_flight:
                absorb(1.0)
            tally.listed += len(batch)
            for taken in pool.map(lambda created: step(created, runtime, pin), batch):
                if taken.kind in ("started", "running"):
                    pending[taken.job_id] = 0.0 if taken.kind == "running" else time.monotonic()
                    tally.started += taken.kind == "started"
                elif taken.kind == "refused":
                    tally.started += 1
                    tally.refused += 1
                    tally.answered["failed"] += 1
                else:
                    tally.already[taken.status or "failed"] += 1
            report(tally)
        while wait and pending:
            absorb(1.0)
    tally.pending = len(pending)
    report(tally)
    return tally


def objects(s3: S3Client, bucket: str, prefix: str) -> Iterator[events.ObjectCreated]:
    """The objects under ``prefix``, a page at a time, as the events their uploads sent."""
    paginator = s3.get_paginator("list_objects_v2")
    with translated(f"listing s3://{bucket}/{prefix}"):
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                if item["Key"].endswith("/"):  # a console's folder marker, not a file
                    continue
                obj = ObjectRef(
                    bucket=bucket,
                    key=item["Key"],
                    etag=item["ETag"].strip('"'),
                    size=item["Size"],
                )
                yield events.ObjectCreated(
                    event_name="ObjectCreated:Rescore", event_time=item["LastModified"], object=obj
                )


def step(created: events.ObjectCreated, runtime: IntakeRuntime, pin: Pin) -> Step:
    """Start the object's job, unless it is answered or running already."""
    decision = decide(created, runtime, 0, pin)
    ledger = runtime.ledger
    if isinstance(decision, Refusal):
        job = decision.notification.job_id
        settled = ledger.outcome(job)
        if settled is not None:
            return Step(job, "answered", settled.status)
        refuse(decision, runtime)
        return Step(job, "refused", "failed")
    outcome, job = last_run(ledger, decision)
    if outcome is not None:
        return Step(job, "answered", outcome.status)
    if job != decision.job_id or ledger.was_queued(job):
        return Step(job, "running")
    dispatch(decision, runtime)
    ledger.mark_queued(job)
    return Step(job, "started")


def last_run(ledger: Ledger, request: ScoreRequest) -> tuple[Notification | None, str]:
    """The outcome of the job's last run (a failed job may have been retried) and its id."""
    job, run = request.job_id, 0
    while True:
        outcome = ledger.outcome(job)
        if outcome is None or outcome.status != "failed" or not ledger.was_retried(job):
            return outcome, job
        run += 1
        job = naming.job_id(request.input, request.model, run)


def parse_target(target: str, input_bucket: str, *, pinned: bool = False) -> tuple[str, str]:
    """``s3://BUCKET/PREFIX`` as (bucket, prefix); only the stack's input bucket is scored.

    ``pinned`` (a version or an alias asked for): the prefix must lie in one model's files.
    """
    if not target.startswith("s3://"):
        raise ValueError(f"{target!r}: give the files as s3://BUCKET/PREFIX")
    bucket, _, prefix = target.removeprefix("s3://").partition("/")
    if bucket != input_bucket:
        raise ValueError(
            f"{target}: the stack scores files in its input bucket, s3://{input_bucket}/ "
            "(its workers read nothing else)"
        )
    head = prefix.split("/", 1)[0]
    if head and "/" not in prefix and naming.MODEL_NAME.match(head):
        prefix = f"{head}/"  # a model's name alone: its files, not another model's too
    if pinned and not (naming.MODEL_NAME.match(head) and "/" in prefix):
        raise ValueError(
            f"{target}: a version or alias belongs to one model; give a prefix inside one "
            "model's files (s3://BUCKET/MODEL/...)"
        )
    return bucket, prefix
