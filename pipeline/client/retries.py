"""Running a failed file again once its cause is fixed: ``pipeline retry``.

A job's first outcome is final, so a file that failed (an outage that
exhausted its deliveries, a timeout, a model published after the upload)
would replay its failure for ever. A retry is a new run instead: the same
object, pinned to the same ETag, goes through intake again, so the model is
resolved anew, and the run number joins the job id. Each run has exactly one
announced outcome, and a failed job is retried once (a conditional put in
the ledger), so two people retrying at once start one run, not two.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from pipeline.errors import NotRetryable
from pipeline.events import ObjectCreated
from pipeline.functions.intake import IntakeRuntime, accept
from pipeline.messages import ScoreRequest
from pipeline.stores.ledger import Ledger


def retry(job_id: str, runtime: IntakeRuntime) -> ScoreRequest | None:
    """Start the next run of a failed job; None if intake refused it (and announced why)."""
    outcome = runtime.ledger.outcome(job_id)
    if outcome is None:
        raise NotRetryable(f"job {job_id} has no outcome: it is unknown, or still running")
    if outcome.status != "failed":
        raise NotRetryable(f"job {job_id} succeeded: there is nothing to retry")
    if outcome.input is None:
        raise NotRetryable(f"job {job_id} is a task message that names no file")
    if not runtime.ledger.claim_retry(job_id):
        raise NotRetryable(f"job {job_id} was retried already")
    created = ObjectCreated(
        event_name="ObjectCreated:Retry", event_time=outcome.received_at, object=outcome.input
    )
    return accept(created, runtime, run=outcome.run + 1)


def failed_since(ledger: Ledger, cutoff: datetime) -> Iterator[str]:
    """Job ids of failures announced since ``cutoff`` and not retried yet, newest first."""
    for outcome in ledger.latest():
        if outcome.finished_at < cutoff:
            return
        retryable = outcome.status == "failed" and outcome.input is not None
        if retryable and not ledger.was_retried(outcome.job_id):
            yield outcome.job_id
