"""Accepting uploaded files: from an S3 event record to a task on the queue.

For each created object the intake decides which model scores it (the key's
first segment; the version is the one the object's ``model-version`` or
``model-alias`` metadata pins, else the one the alias ``champion`` names, else
the latest), which version shadows it (``pipeline model shadow``), and with
which options (the object's metadata over the version's defaults,
``pipeline.options``), computes the
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
from pipeline.messages import (
    ErrorInfo,
    ModelRef,
    Notification,
    ObjectRef,
    ScoreRequest,
    failed,
)
from pipeline.options import InForce, ScoreOptions
from pipeline.settings import Settings
from pipeline.stores import aws
from pipeline.stores.ledger import Ledger
from pipeline.stores.model_store import ModelStore, ModelVersion, Pin
from pipeline.stores.notify import announce
from pipeline.stores.storage import object_metadata

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)

#: Object metadata that pins a model version (``x-amz-meta-model-version``), or an alias.
MODEL_VERSION_METADATA = "model-version"
MODEL_ALIAS_METADATA = "model-alias"


@dataclass
class IntakeRuntime:
    settings: Settings
    s3: S3Client
    sns: SNSClient
    sqs: SQSClient
    models: ModelStore
    ledger: Ledger

    @classmethod
    def create(cls, settings: Settings, session: boto3.Session | None = None) -> IntakeRuntime:
        """``session``: as that identity (the local stack playing the function's role)."""
        return cls.of(
            settings,
            aws.s3_client(session=session),
            aws.sns_client(session=session),
            aws.sqs_client(session=session),
        )

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
    created: events.ObjectCreated, runtime: IntakeRuntime, run: int = 0, pin: Pin = None
) -> ScoreRequest | None:
    """Enqueue the object's job, or announce why it cannot be scored.

    ``run`` is 0 for an upload's event, and n for the n-th retry of its job.
    ``pin`` (a version, or an alias) overrides the object's own pin: a rescore's.
    """
    decision = decide(created, runtime, run, pin)
    if isinstance(decision, Refusal):
        refuse(decision, runtime)
        return None
    dispatch(decision, runtime)
    return decision


@dataclass(frozen=True)
class Refusal:
    """A file that cannot be scored, and its ``failed`` notification."""

    notification: Notification
    error: InputError


def decide(
    created: events.ObjectCreated, runtime: IntakeRuntime, run: int = 0, pin: Pin = None
) -> ScoreRequest | Refusal:
    """The object's job (its model, shadow and options), or why it cannot be scored."""
    obj = created.object
    model: ModelRef | None = None
    metadata: dict[str, str] = {}

    def pinned() -> Pin:
        metadata.update(object_metadata(runtime.s3, obj))
        own = _pin(metadata, obj)
        return own if pin is None else pin

    try:
        name = naming.model_name_for(obj.key)
        route = runtime.models.route(name, pinned)
        model = route.model
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
        return Refusal(notification, exc)
    return ScoreRequest(
        job_id=naming.job_id(obj, model, run),
        input=obj,
        model=model,
        received_at=created.event_time,
        run=run,
        options=options,
        shadow=route.shadow,
    )


def refuse(refusal: Refusal, runtime: IntakeRuntime) -> Notification:
    """Announce a refused file's outcome (the one settled first, if it was refused before)."""
    notification, exc = refusal.notification, refusal.error
    settled = announce(
        runtime.ledger, runtime.sns, runtime.settings.notification_topic_arn, notification
    )
    obj, model = notification.input, notification.model
    assert obj is not None  # noqa: S101 - a refusal names its file
    with logs.job_context(job_id=notification.job_id, key=obj.key):
        log.info(
            "refused s3://%s/%s: %s: %s",
            obj.bucket,
            obj.key,
            exc.code,
            exc,
            extra=_metrics("refused", model.name if model else "", obj, exc.code),
        )
    return settled


def dispatch(request: ScoreRequest, runtime: IntakeRuntime) -> None:
    """Send the file's ``score`` task."""
    task_messages.send(
        runtime.sqs,
        runtime.settings.task_queue_url,
        task_messages.SCORE_TASK,
        request.model_dump(mode="json"),
    )
    obj, model = request.input, request.model
    with logs.job_context(
        job_id=request.job_id, key=obj.key, model=f"{model.name}@{model.version}"
    ):
        log.info(
            "accepted s3://%s/%s (run %d%s%s)",
            obj.bucket,
            obj.key,
            request.run,
            f", @{model.alias}" if model.alias else "",
            f", shadow {request.shadow.version}" if request.shadow else "",
            extra=_metrics("accepted", model.name, obj, None),
        )


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


def _pin(metadata: dict[str, str], obj: ObjectRef) -> Pin:
    """The version or alias the object's metadata pins, if any."""
    where = f"s3://{obj.bucket}/{obj.key}"
    version, alias = metadata.get(MODEL_VERSION_METADATA), metadata.get(MODEL_ALIAS_METADATA)
    if version is not None and alias is not None:
        raise UnknownModel(
            f"{where} pins both version {version!r} ('{MODEL_VERSION_METADATA}') and alias "
            f"{alias!r} ('{MODEL_ALIAS_METADATA}'): pin one"
        )
    if alias is not None:
        problem = naming.alias_problem(alias.strip())
        if problem is not None:
            raise UnknownModel(f"{where} pins {problem}, in its '{MODEL_ALIAS_METADATA}' metadata")
        return alias.strip()
    if version is None:
        return None
    if not version.strip().isdigit() or int(version) < 1:
        raise UnknownModel(
            f"{where} pins model version {version!r} in its "
            f"'{MODEL_VERSION_METADATA}' metadata; a version is a whole number from 1"
        )
    return int(version)
