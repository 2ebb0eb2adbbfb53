"""Answering for task messages that exhausted their deliveries.

A task message lands in the dead-letter queue after ``maxReceiveCount``
failed deliveries (the worker kept failing on it, or died on it, or could not
read it at all). No file may end in silence, so the dead-letter handler
announces a ``failed`` notification with code ``exhausted`` and the last error
the worker noted, unless the job has an outcome already (a duplicate of a
finished job): then it announces that one. The raw message is kept beside the
job in the ledger for whoever investigates.

A message too broken to name a file (not a Celery message, not a
``ScoreRequest``) is announced with code ``poison_message``, without
``input``.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from pipeline import events, logs
from pipeline.functions.task_messages import task_argument
from pipeline.messages import (
    CompileRequest,
    ErrorInfo,
    Notification,
    ScoreRequest,
    failed,
    utc_now,
)
from pipeline.settings import Settings
from pipeline.stores import aws
from pipeline.stores.ledger import Ledger
from pipeline.stores.notify import announce

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient

log = logging.getLogger(__name__)
_Request = TypeVar("_Request", ScoreRequest, CompileRequest)


@dataclass
class DeadLetterRuntime:
    settings: Settings
    s3: S3Client
    sns: SNSClient
    ledger: Ledger

    @classmethod
    def create(cls, settings: Settings, session: boto3.Session | None = None) -> DeadLetterRuntime:
        """``session``: as that identity (the local stack playing the function's role)."""
        return cls.of(settings, aws.s3_client(session=session), aws.sns_client(session=session))

    @classmethod
    def of(cls, settings: Settings, s3: S3Client, sns: SNSClient) -> DeadLetterRuntime:
        return cls(settings, s3, sns, Ledger(s3, settings.output_bucket))


def handle_event(event: dict[str, Any], runtime: DeadLetterRuntime) -> dict[str, Any]:
    failures = []
    for record in events.parse_sqs_event(event).records:
        try:
            answer(record, runtime)
        except Exception:
            log.exception("dead letter %s will be delivered again", record.message_id)
            failures.append({"itemIdentifier": record.message_id})
    return {"batchItemFailures": failures}


def answer(record: events.SqsRecord, runtime: DeadLetterRuntime) -> Notification | None:
    if compile_request_in(record.body) is not None:
        # No file waits for a compile: its model stays on LightGBM, and the next
        # publish or a worker's recheck tries again. Nothing to announce.
        log.error("compile task %s exhausted its deliveries: %s", record.message_id, record.body)
        return None
    request = score_request_in(record.body)
    deliveries = int(record.attributes.get("ApproximateReceiveCount", "0"))
    if request is None:
        job_id = hashlib.sha256(record.body.encode()).hexdigest()[:32]
        notification = Notification(
            job_id=job_id,
            status="failed",
            input=None,
            error=ErrorInfo(
                code="poison_message",
                message=f"a task message that names no file reached the dead-letter queue "
                f"(SQS message {record.message_id}); it is kept at "
                f"{runtime.ledger.dead_letter_location(job_id)}",
            ),
            received_at=_sent_at(record),
            finished_at=utc_now(),
        )
    else:
        job_id = request.job_id
        settled = runtime.ledger.outcome(job_id)
        last = runtime.ledger.last_error(job_id)
        reason = f"; the last error was {last.code}: {last.message}" if last else ""
        notification = settled or failed(
            job_id=job_id,
            input=request.input,
            model=request.model,
            error=ErrorInfo(
                code="exhausted",
                message=f"s3://{request.input.bucket}/{request.input.key} was not scored after "
                f"every delivery of {_task_of(request)} failed{reason}",
            ),
            received_at=request.received_at,
            run=request.run,
        )
    runtime.ledger.keep_dead_letter(
        job_id, {"messageId": record.message_id, "body": record.body, "deliveries": deliveries}
    )
    outcome = announce(
        runtime.ledger, runtime.sns, runtime.settings.notification_topic_arn, notification
    )
    key = outcome.input.key if outcome.input else None
    with logs.job_context(job_id=job_id, key=key, delivery=deliveries):
        code = outcome.error.code if outcome.error else ""
        log.info("dead letter answered: %s %s", outcome.status, code)
    return outcome


def _task_of(request: ScoreRequest) -> str:
    if request.shard is None:
        return "its task"
    return f"the task of its shard {request.shard + 1} (the file was split across workers)"


def score_request_in(body: str) -> ScoreRequest | None:
    """The ScoreRequest a Celery task message carries, or None if it carries none."""
    return _argument(body, ScoreRequest)


def compile_request_in(body: str) -> CompileRequest | None:
    return _argument(body, CompileRequest)


def _argument(body: str, kind: type[_Request]) -> _Request | None:
    try:
        return kind.model_validate(task_argument(body))
    except ValidationError:
        return None


def _sent_at(record: events.SqsRecord) -> datetime:
    sent = record.attributes.get("SentTimestamp")
    if sent is None:
        return utc_now()
    return datetime.fromtimestamp(int(sent) / 1000, tz=utc_now().tzinfo)
