"""The worker process: one file at a time, start to notification.

``process`` is the one function the Celery task calls. It scores the file,
and answers with a notification either way: an input error (the user's file is
wrong) becomes a ``failed`` notification at once, a transient error is retried
with backoff, and whatever still fails is announced as ``failed`` too, so no
accepted file ends in silence.

The celery command line loads ``app`` from here::

    celery -A pipeline.worker worker --pool=solo
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from pipeline import aws, tasks
from pipeline.celery_app import create_app
from pipeline.errors import InputError, PipelineError, located
from pipeline.messages import ErrorInfo, Notification, ScoreRequest, failed, succeeded, utc_now
from pipeline.model_store import ModelStore
from pipeline.notify import publish
from pipeline.retry import with_retries
from pipeline.scoring.model import ModelCache
from pipeline.scoring.run import score_object
from pipeline.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient

log = logging.getLogger(__name__)


@dataclass
class WorkerRuntime:
    """What a worker process keeps between files: clients and loaded models."""

    settings: Settings
    s3: S3Client
    sns: SNSClient
    models: ModelCache

    @classmethod
    def create(cls, settings: Settings) -> WorkerRuntime:
        s3 = aws.s3_client()
        store = ModelStore(s3, settings.model_bucket)
        return cls(
            settings=settings, s3=s3, sns=aws.sns_client(), models=ModelCache(store.model_text)
        )


def process(request: ScoreRequest, runtime: WorkerRuntime) -> Notification:
    """Score one file and publish its notification."""
    started = utc_now()
    settings = runtime.settings
    where = f"s3://{request.input.bucket}/{request.input.key}"
    try:
        output = with_retries(
            lambda: score_object(request, runtime.s3, runtime.models, settings),
            settings.retry_attempts,
            settings.retry_base_seconds,
        )
        notification = succeeded(request, output, started)
    except InputError as exc:
        log.info("job %s: %s: %s", request.job_id, exc.code, exc)
        notification = _failed(request, exc.code, located(exc, where), started)
    except Exception as exc:
        code = exc.code if isinstance(exc, PipelineError) else "internal"
        log.exception("job %s failed", request.job_id)
        message = located(f"{type(exc).__name__}: {exc}", where)
        notification = _failed(request, code, message, started)
    with_retries(
        lambda: publish(runtime.sns, settings.notification_topic_arn, notification),
        settings.retry_attempts,
        settings.retry_base_seconds,
    )
    return notification


def _failed(request: ScoreRequest, code: str, message: str, started: datetime) -> Notification:
    return failed(
        job_id=request.job_id,
        input=request.input,
        model=request.model,
        error=ErrorInfo(code=code, message=message),
        received_at=request.received_at,
        started_at=started,
    )


@functools.cache
def runtime() -> WorkerRuntime:
    return WorkerRuntime.create(Settings())


app = create_app(Settings())
tasks.register(app, lambda request: process(request, runtime()))
