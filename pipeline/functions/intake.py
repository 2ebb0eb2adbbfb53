"""Accepting uploaded files: from an S3 event record to a task on the queue.

For each created object the intake decides which model scores it (the key's
first segment; the version is the latest, or the one the object's
``model-version`` metadata pins) and with which options (the object's
metadata over the version's defaults, ``pipeline.options``), computes the
job id, and sends the ``score`` task. A file it cannot accept (no model in
its key, an unknown model, a bad option) is answered at once with a
``failed`` notification: every file that lands in the input bucket gets an
answer.

This runs inside the Lambda function, so it imports boto3 and pydantic only:
never celery (tasks are sent by ``task_messages``), lightgbm, numpy or pyarrow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline import events, logs, metrics, naming
from pipeline.errors import BadOption, InputError, UnknownModel, located
from pipeline.functions import task_messages
from pipeline.messages import ErrorInfo, ModelRef, ObjectRef, ScoreRequest, failed
from pipeline.options import InForce, ScoreOptions
from pipeline.settings import Settings
from pipeline.stores import aws
from pipeline.stores.ledger import Ledger
from pipeline.stores.model_store import ModelStore, ModelVersion
from pipeline.stores.notify import announce
from pipeline.stores.storage import object_metadata

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)

#: Object metadata that pins a model version (``x-amz-meta-model-version``).
MODEL_VERSION_METADATA = "model-version"


@dataclass
class IntakeRuntime:
    settings: Settings
    s3: S3Client
    sns: SNSClient
    sqs: SQSClient
    models: ModelStore
    ledger: Ledger

    @classmethod
    def create(cls, settings: Settings) -> IntakeRuntime:
        return cls.of(settings, aws.s3_client(), aws.sns_client(), aws.sqs_client())

    @classmethod
    def of(cls, settings: Settings, s3: S3Client, sns: SNSClient, sqs: SQSClient) -> IntakeRuntime:
        return cls(
            settings=settings,
            s3=s3,
            sns=sns,
            sqs=sqs,
            models=ModelStore(s3, settings.model_bucket),
            ledger=Ledger(s3, settings.output_bucket),
        )


def handle_event(event: dict[str, Any], runtime: IntakeRuntime) -> dict[str, Any]:
    """Process a Lambda SQS event; return the records to be delivered again.

    A record whose body is not an S3 event is logged and dropped: redelivering
    it cannot help, and failing it would hold up the records behind it.
    """
    failures: list[dict[str, str]] = []
    for record in events.parse_sqs_event(event).records:
        try:
            parsed = events.parse_s3_body(record.body)
        except events.MalformedEvent as exc:
            log.error("dropping message %s: %s", record.message_id, exc)  # noqa: TRY400 - reason, not a trace
            continue
        if isinstance(parsed, events.TestEvent):
            continue
        try:
            for created in parsed:
                accept(created, runtime)
        except Exception:
            log.exception("message %s will be delivered again", record.message_id)
            failures.append({"itemIdentifier": record.message_id})
    return {"batchItemFailures": failures}


def accept(
    created: events.ObjectCreated, runtime: IntakeRuntime, run: int = 0
) -> ScoreRequest | None:
    """Enqueue the object's job, or announce why it cannot be scored.

    ``run`` is 0 for an upload's event, and n for the n-th retry of its job.
    """
    obj = created.object
    model: ModelRef | None = None
    metadata: dict[str, str] = {}

    def pinned() -> int | None:
        metadata.update(object_metadata(runtime.s3, obj))
        return _pinned_version(metadata, obj)

    try:
        name = naming.model_name_for(obj.key)
        model = runtime.models.resolve(name, pinned)
        options = _options(metadata, runtime.models.record(model), obj)
    except InputError as exc:
        notification = failed(
            job_id=naming.job_id(obj, model, run),
            input=obj,
            model=model,
            error=ErrorInfo(code=exc.code, message=located(exc, f"s3://{obj.bucket}/{obj.key}")),
            received_at=created.event_time,
            run=run,
        )
        announce(runtime.ledger, runtime.sns, runtime.settings.notification_topic_arn, notification)
        with logs.job_context(job_id=notification.job_id, key=obj.key):
            log.info(
                "refused s3://%s/%s: %s: %s",
                obj.bucket,
                obj.key,
                exc.code,
                exc,
                extra=_metrics("refused", model.name if model else "", obj, exc.code),
            )
        return None
    request = ScoreRequest(
        job_id=naming.job_id(obj, model, run),
        input=obj,
        model=model,
        received_at=created.event_time,
        run=run,
        options=options,
    )
    task_messages.send(
        runtime.sqs,
        runtime.settings.task_queue_url,
        task_messages.SCORE_TASK,
        request.model_dump(mode="json"),
    )
    with logs.job_context(
        job_id=request.job_id, key=obj.key, model=f"{model.name}@{model.version}"
    ):
        log.info(
            "accepted s3://%s/%s (run %d)",
            obj.bucket,
            obj.key,
            run,
            extra=_metrics("accepted", model.name, obj, None),
        )
    return request


def _metrics(outcome: str, model: str, obj: ObjectRef, code: str | None) -> dict[str, Any]:
    return metrics.document(
        "intake",
        outcome,
        model,
        error_code=code,
        values={"Files": 1, "InputBytes": obj.size},
        properties={},
    )


def _options(metadata: dict[str, str], model: ModelVersion, obj: ObjectRef) -> InForce:
    """The file's options over its model's defaults; ``BadOption`` names the one at fault."""
    try:
        return ScoreOptions.from_metadata(metadata).over(model.defaults).in_force(model.info)
    except BadOption as exc:
        raise BadOption(
            f"s3://{obj.bucket}/{obj.key} (model {model.name!r} version {model.version}): {exc}"
        ) from None


def _pinned_version(metadata: dict[str, str], obj: ObjectRef) -> int | None:
    value = metadata.get(MODEL_VERSION_METADATA)
    if value is None:
        return None
    if not value.strip().isdigit() or int(value) < 1:
        raise UnknownModel(
            f"s3://{obj.bucket}/{obj.key} pins model version {value!r} in its "
            f"'{MODEL_VERSION_METADATA}' metadata; a version is a whole number from 1"
        )
    return int(value)
