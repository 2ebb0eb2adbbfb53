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
    _jobs/<job_id>/retried.json       written once when a failed job is retried (its next run)
    _jobs/<job_id>/dead-letter.json   the task message that reached the dead-letter queue
    _jobs/<job_id>/progress.json      how far the file has got (rows, input bytes read)
    _jobs/_recent/<newest first>-<job_id>   an empty marker per settled outcome
    _jobs/_running/<job_id>           an empty marker while a worker holds the file

S3 lists keys in name order and job ids are hashes, so the markers' names
(an inverted millisecond timestamp) are what lets ``pipeline status`` list
the latest outcomes without reading the whole ledger.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict

from pipeline.aws import error_code, raise_transient
from pipeline.messages import Notification, Progress, utc_now
from pipeline.storage import read_optional

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PREFIX = "_jobs/"
RECENT = f"{PREFIX}_recent/"
RUNNING = f"{PREFIX}_running/"
_LATEST_MS = 10**13 - 1


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

    def mark_recent(self, notification: Notification) -> None:
        """Index a newly settled outcome by time, for ``recent``; a diagnostic only."""
        finished_ms = int(notification.finished_at.timestamp() * 1000)
        key = f"{RECENT}{_LATEST_MS - finished_ms:013d}-{notification.job_id}"
        with contextlib.suppress(ClientError, BotoCoreError):
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=b"")

    def recent(self, count: int) -> list[Notification]:
        """The ``count`` latest settled outcomes, newest first."""
        return list(itertools.islice(self.latest(), count))

    def latest(self) -> Iterator[Notification]:
        """Settled outcomes, newest first, read as they are needed."""
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=RECENT):
            for item in page.get("Contents", []):
                outcome = self.outcome(item["Key"].rsplit("-", 1)[1])
                if outcome is not None:
                    yield outcome

    def record_progress(self, job_id: str, progress: Progress) -> None:
        """Best effort, like every diagnostic: a file never fails for its progress."""
        with contextlib.suppress(ClientError, BotoCoreError):
            self._s3.put_object(
                Bucket=self.bucket,
                Key=f"{PREFIX}{job_id}/progress.json",
                Body=progress.model_dump_json().encode(),
                ContentType="application/json",
            )

    def progress(self, job_id: str) -> Progress | None:
        data = self._get(f"{PREFIX}{job_id}/progress.json")
        return None if data is None else Progress.model_validate_json(data)

    def mark_running(self, job_id: str, running: bool) -> None:
        with contextlib.suppress(ClientError, BotoCoreError):
            if running:
                self._s3.put_object(Bucket=self.bucket, Key=f"{RUNNING}{job_id}", Body=b"")
            else:
                self._s3.delete_object(Bucket=self.bucket, Key=f"{RUNNING}{job_id}")

    def running(self) -> list[str]:
        """Job ids a worker holds now (or held when it died: its rerun clears them)."""
        response = self._s3.list_objects_v2(Bucket=self.bucket, Prefix=RUNNING)
        return [item["Key"].removeprefix(RUNNING) for item in response.get("Contents", [])]

    def claim_retry(self, job_id: str) -> bool:
        """Whether this caller may retry the job: a job is retried once, by one caller."""
        try:
            self._s3.put_object(
                Bucket=self.bucket,
                Key=f"{PREFIX}{job_id}/retried.json",
                Body=json.dumps({"retried_at": utc_now().isoformat()}).encode(),
                IfNoneMatch="*",
                ContentType="application/json",
            )
        except ClientError as exc:
            if error_code(exc) == "PreconditionFailed":
                return False
            raise_transient(exc, f"claiming the retry of job {job_id}")
            raise
        return True

    def was_retried(self, job_id: str) -> bool:
        return self._get(f"{PREFIX}{job_id}/retried.json") is not None

    def dead_letter_location(self, job_id: str) -> str:
        return f"s3://{self.bucket}/{PREFIX}{job_id}/dead-letter.json"

    def keep_dead_letter(self, job_id: str, message: dict[str, object]) -> None:
        """Keep a dead-lettered task message beside its job, for whoever investigates."""
        self._s3.put_object(
            Bucket=self.bucket,
            Key=f"{PREFIX}{job_id}/dead-letter.json",
            Body=json.dumps(message).encode(),
            ContentType="application/json",
        )

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
        return read_optional(self._s3, self.bucket, key)
