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
    _jobs/<job_id>/run.json           which task message is scoring the file, since when
    _jobs/<job_id>/last-error.json    the last non-input error, for the dead-letter handler
    _jobs/<job_id>/retried.json       written once when a failed job is retried (its next run)
    _jobs/<job_id>/queued.json        a rescore sent the job's task (``pipeline rescore``)
    _jobs/<job_id>/dead-letter.json   the task message that reached the dead-letter queue
    _jobs/<job_id>/progress.json      how far the file has got (rows, input bytes read)
    _jobs/<job_id>/plan.json          a split file's shards (see ``pipeline.worker.sharding``)
    _jobs/<job_id>/unsplit.json       a split file that runs again as one job
    _jobs/<job_id>/shards/<i>.json    shard i's result; shards/failed/<i> if it failed;
                                      shards/finish.json: who finishes
    _jobs/<job_id>/progress/<i>.json  shard i's progress (a split file's is their sum)
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
from datetime import datetime
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict

from pipeline.errors import TransientError
from pipeline.messages import Notification, Progress, utc_now
from pipeline.records import ShardPlan, ShardResult
from pipeline.stores.aws import put_once
from pipeline.stores.storage import read_optional

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
        if self._put_once(key, notification.model_dump_json().encode()):
            return notification
        existing = self.outcome(notification.job_id)
        if existing is None:  # written and gone again: nothing removes an outcome
            raise TransientError(f"the outcome of job {notification.job_id} cannot be read")
        return existing

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

    def record_progress(self, job_id: str, progress: Progress, shard: int | None = None) -> None:
        """Best effort, like every diagnostic: a file never fails for its progress."""
        name = "progress.json" if shard is None else f"progress/{shard:05d}.json"
        with contextlib.suppress(ClientError, BotoCoreError):
            self._s3.put_object(
                Bucket=self.bucket,
                Key=f"{PREFIX}{job_id}/{name}",
                Body=progress.model_dump_json().encode(),
                ContentType="application/json",
            )

    def progress(self, job_id: str) -> Progress | None:
        """How far the file has got; a split file's shards summed."""
        shards = [Progress.model_validate_json(d) for d in self._all(f"{PREFIX}{job_id}/progress/")]
        if shards:
            plan = self.plan(job_id)
            return Progress(
                key=shards[0].key,
                etag=shards[0].etag,
                rows=sum(p.rows for p in shards),
                input_bytes=sum(p.input_bytes for p in shards),
                input_size=plan.size if plan else sum(p.input_size for p in shards),
                started_at=min(p.started_at for p in shards),
                updated_at=max(p.updated_at for p in shards),
            )
        data = self._get(f"{PREFIX}{job_id}/progress.json")
        return None if data is None else Progress.model_validate_json(data)

    # ---- a file split into shards ------------------------------------------------

    def plan(self, job_id: str) -> ShardPlan | None:
        data = self._get(f"{PREFIX}{job_id}/plan.json")
        return None if data is None else ShardPlan.model_validate_json(data)

    def put_plan(self, job_id: str, plan: ShardPlan) -> ShardPlan:
        """Record the file's plan unless one exists; the plan that counts."""
        if self._put_once(f"{PREFIX}{job_id}/plan.json", plan.model_dump_json().encode()):
            return plan
        existing = self.plan(job_id)
        assert existing is not None  # noqa: S101 - the put failed because it exists
        return existing

    def mark_unsplit(self, job_id: str) -> None:
        self._put_once(f"{PREFIX}{job_id}/unsplit.json", b"{}")

    def is_unsplit(self, job_id: str) -> bool:
        return self._get(f"{PREFIX}{job_id}/unsplit.json") is not None

    def put_shard_result(self, job_id: str, result: ShardResult) -> bool:
        """Record a shard's result unless it has one: whether this one counts.

        A failed shard is also marked by name, so the shards after it learn of
        it with one listing (``failed_shards``), not a read of every result.
        """
        key = f"{PREFIX}{job_id}/shards/{result.index:05d}.json"
        counts = self._put_once(key, result.model_dump_json().encode())
        if counts and result.status == "failed":
            self._put_once(f"{PREFIX}{job_id}/shards/failed/{result.index:05d}", b"")
        return counts

    def has_shard_result(self, job_id: str, shard: int) -> bool:
        return self._get(f"{PREFIX}{job_id}/shards/{shard:05d}.json") is not None

    def failed_shards(self, job_id: str) -> list[int]:
        prefix = f"{PREFIX}{job_id}/shards/failed/"
        return [int(key.removeprefix(prefix)) for key in self._keys(prefix)]

    def shard_results(self, job_id: str) -> dict[int, ShardResult]:
        results = map(ShardResult.model_validate_json, self._all(f"{PREFIX}{job_id}/shards/0"))
        return {result.index: result for result in results}

    def claim_run(self, job_id: str, message_id: str, stale_seconds: float) -> str | None:
        """Take the file's run for this task message; None if taken, else who holds it.

        A duplicate message (a second event for one upload, SQS delivering twice)
        finds the run held and is acknowledged instead of scoring the file again.
        The same message delivered again (its worker died or failed) takes the run
        back, and so does any message once the holder is older than
        ``stale_seconds`` (a run never outlives the job time limit).
        """
        key = f"{PREFIX}{job_id}/run.json"
        mine = json.dumps({"message": message_id, "at": utc_now().isoformat()}).encode()
        if self._put_once(key, mine):
            return None
        data = self._get(key)
        if data is not None:
            held = json.loads(data)
            age = (utc_now() - datetime.fromisoformat(held["at"])).total_seconds()
            if held.get("message") != message_id and age < stale_seconds:
                return f"task message {held.get('message')} since {age:.1f} s"
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=mine)
        return None

    def release_run(self, job_id: str) -> None:
        """Let the file's next task message run it (a split file sent to run whole)."""
        with contextlib.suppress(ClientError, BotoCoreError):
            self._s3.delete_object(Bucket=self.bucket, Key=f"{PREFIX}{job_id}/run.json")

    def claim_finish(self, job_id: str, shard: int) -> bool:
        """Whether this shard finishes the file: the first to ask does, and so does its rerun."""
        key = f"{PREFIX}{job_id}/shards/finish.json"
        if self._put_once(key, json.dumps({"shard": shard}).encode()):
            return True
        data = self._get(key)
        return data is not None and json.loads(data).get("shard") == shard

    def forget_shards(self, job_id: str) -> None:
        """Remove the shards' results and progress once the file is answered."""
        for prefix in (f"{PREFIX}{job_id}/shards/", f"{PREFIX}{job_id}/progress/"):
            for key in self._keys(prefix):
                with contextlib.suppress(ClientError, BotoCoreError):
                    self._s3.delete_object(Bucket=self.bucket, Key=key)

    def _keys(self, prefix: str) -> list[str]:
        paginator = self._s3.get_paginator("list_objects_v2")
        return [
            item["Key"]
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix)
            for item in page.get("Contents", [])
        ]

    def _all(self, prefix: str) -> list[bytes]:
        found = (self._get(key) for key in self._keys(prefix))
        return [data for data in found if data is not None]

    def _put_once(self, key: str, body: bytes) -> bool:
        """A conditional put: whether this call wrote ``key`` (False: it exists)."""
        doing = f"recording s3://{self.bucket}/{key}"
        return put_once(self._s3, self.bucket, key, body, doing, ContentType="application/json")

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
        body = json.dumps({"retried_at": utc_now().isoformat()}).encode()
        return self._put_once(f"{PREFIX}{job_id}/retried.json", body)

    def mark_queued(self, job_id: str) -> None:
        """Note that a rescore sent the job's task: running it again starts no second one."""
        body = json.dumps({"queued_at": utc_now().isoformat()}).encode()
        self._put_once(f"{PREFIX}{job_id}/queued.json", body)

    def was_queued(self, job_id: str) -> bool:
        return self._get(f"{PREFIX}{job_id}/queued.json") is not None

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
