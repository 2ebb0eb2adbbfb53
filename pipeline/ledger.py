"""The job ledger: one outcome per job, decided once, in S3.

S3 events, SQS and Celery all deliver at least once, and a job whose worker
died runs again. The ledger turns that into one answer per ``job_id``: the
first outcome written for a job (a conditional put, ``If-None-Match: *``) is
the outcome, and every later run, duplicate or dead-letter handler announces
that stored notification, never one of its own. Consumers may therefore see
the same notification more than once, but never two different outcomes.

Layout, in the output bucket under a prefix no model name can take
(model names start with a letter or digit)::

    _jobs/<job_id>/outcome.json       the Notification announced for the job
    _jobs/<job_id>/last-error.json    the last non-input error, for the dead-letter handler
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict

from pipeline.aws import error_code, raise_transient
from pipeline.messages import Notification

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PREFIX = "_jobs/"


class AttemptError(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    message: str
    delivery: int


class Ledger:
    def __init__(self, s3: S3Client, bucket: str) -> None:
        self._s3, self.bucket = s3, bucket

    def outcome(self, job_id: str) -> Notification | None:
        data = self._get(f"{PREFIX}{job_id}/outcome.json")
        return None if data is None else Notification.model_validate_json(data)

    def settle(self, notification: Notification) -> Notification:
        """Record ``notification`` as the job's outcome unless one exists; return the outcome."""
        key = f"{PREFIX}{notification.job_id}/outcome.json"
        try:
            self._s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=notification.model_dump_json().encode(),
                IfNoneMatch="*",
                ContentType="application/json",
            )
        except ClientError as exc:
            if error_code(exc) in {"PreconditionFailed", "ConditionalRequestConflict"}:
                existing = self.outcome(notification.job_id)
                if existing is not None:
                    return existing
            raise_transient(exc, f"recording the outcome of job {notification.job_id}")
            raise
        except BotoCoreError as exc:
            raise_transient(exc, f"recording the outcome of job {notification.job_id}")
            raise
        return notification

    def note_error(self, job_id: str, error: AttemptError) -> None:
        # A diagnostic only: if it cannot be written, the delivery still fails and is retried.
        with contextlib.suppress(ClientError, BotoCoreError):
            self._s3.put_object(
                Bucket=self.bucket,
                Key=f"{PREFIX}{job_id}/last-error.json",
                Body=error.model_dump_json().encode(),
                ContentType="application/json",
            )

    def last_error(self, job_id: str) -> AttemptError | None:
        data = self._get(f"{PREFIX}{job_id}/last-error.json")
        return None if data is None else AttemptError.model_validate_json(data)

    def _get(self, key: str) -> bytes | None:
        try:
            return self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if error_code(exc) in {"NoSuchKey", "404"}:
                return None
            raise_transient(exc, f"reading s3://{self.bucket}/{key}")
            raise
        except BotoCoreError as exc:
            raise_transient(exc, f"reading s3://{self.bucket}/{key}")
            raise
