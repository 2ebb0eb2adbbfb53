"""``pipeline status``: what the pipeline is doing, from the queues, the workers and the ledger."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from pipeline.messages import Notification, Progress
from pipeline.stores.ledger import Ledger

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient


@dataclass
class Status:
    stack: str
    waiting: int
    in_flight: int
    dead_letters: int
    workers: list[dict[str, Any]] = field(default_factory=list)
    target: int | None = None
    last_decision: str = ""
    restarts: int = 0
    recent: list[Notification] = field(default_factory=list)
    running: list[Progress] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The status as one JSON document, for scripts (``pipeline status --json``)."""
        return {
            "stack": self.stack,
            "waiting": self.waiting,
            "in_flight": self.in_flight,
            "dead_letters": self.dead_letters,
            "workers": self.workers,
            "target": self.target,
            "last_decision": self.last_decision,
            "restarts": self.restarts,
            "running": [p.model_dump(mode="json") for p in self.running],
            "recent": [n.model_dump(mode="json") for n in self.recent],
        }


def queue_depth(sqs: SQSClient, url: str) -> tuple[int, int]:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def recent_jobs(s3: S3Client, bucket: str, count: int) -> list[Notification]:
    """The latest outcomes in the ledger, newest first."""
    return Ledger(s3, bucket).recent(count)


def local_status(outputs: dict[str, str], jobs: int, sqs: SQSClient, s3: S3Client) -> Status:
    waiting, in_flight = queue_depth(sqs, outputs["TaskQueueUrl"])
    dead = sum(queue_depth(sqs, outputs["TaskDeadLetterQueueUrl"]))
    status = Status(
        stack=f"{outputs.get('StackName', '?')} (local, {outputs.get('EndpointUrl', '')})",
        waiting=waiting,
        in_flight=in_flight,
        dead_letters=dead,
        recent=recent_jobs(s3, outputs["OutputBucketName"], jobs),
        running=running_jobs(s3, outputs["OutputBucketName"]),
    )
    status_file = Path(outputs.get("StatusFile", ""))
    if status_file.is_file():
        supervisor = json.loads(status_file.read_text())
        status.workers = supervisor["workers"]
        status.target = supervisor["target"]
        status.last_decision = supervisor["last_decision"]
        status.restarts = supervisor["restarts"]
    return status


def deployed_status(
    outputs: dict[str, str], jobs: int, sqs: SQSClient, s3: S3Client, ecs: ECSClient
) -> Status:
    """A deployed stack: queues from SQS, workers from ECS (protected tasks are busy)."""
    waiting, in_flight = queue_depth(sqs, outputs["TaskQueueUrl"])
    cluster, service = outputs["WorkerClusterName"], outputs["WorkerServiceName"]
    described = ecs.describe_services(cluster=cluster, services=[service])["services"][0]
    tasks = ecs.list_tasks(cluster=cluster, serviceName=service)["taskArns"]
    protected: set[str] | None = set()
    if tasks:
        try:
            states = ecs.get_task_protection(cluster=cluster, tasks=tasks)["protectedTasks"]
            protected = {t["taskArn"] for t in states if t.get("protectionEnabled")}
        except (ClientError, BotoCoreError):
            protected = None  # busy or idle cannot be told; the counts still can

    return Status(
        stack=f"{outputs['StackName']} (deployed)",
        waiting=waiting,
        in_flight=in_flight,
        dead_letters=sum(queue_depth(sqs, outputs["TaskDeadLetterQueueUrl"])),
        workers=[
            {
                "name": arn.rsplit("/", 1)[-1][:12],
                "pid": "-",
                "state": "unknown"
                if protected is None
                else ("busy" if arn in protected else "idle"),
            }
            for arn in tasks
        ],
        target=described.get("desiredCount"),
        last_decision=f"ECS: {described.get('runningCount')} running, "
        f"{described.get('pendingCount')} pending",
        recent=recent_jobs(s3, outputs["OutputBucketName"], jobs),
        running=running_jobs(s3, outputs["OutputBucketName"]),
    )


def _speed(note: Notification) -> str:
    """Seconds in the worker, rows/s and engine: the figures the worker's metrics carry."""
    if note.started_at is None:
        return ""
    seconds = (note.finished_at - note.started_at).total_seconds()
    if note.output is None:
        return f"{seconds:.2f} s"
    rate = note.output.rows / seconds if seconds > 0 else 0.0
    return f"{seconds:.2f} s {rate:,.0f} rows/s {note.output.engine or ''}"


def running_jobs(s3: S3Client, bucket: str) -> list[Progress]:
    """How far each file a worker holds now has got."""
    ledger = Ledger(s3, bucket)
    found = (ledger.progress(job_id) for job_id in ledger.running())
    return [progress for progress in found if progress is not None]


def progress_line(progress: Progress, bar: bool) -> str:
    """A running file's progress: a bar for a terminal, plain words otherwise."""
    if bar:
        from tqdm import tqdm  # noqa: PLC0415

        elapsed = (progress.updated_at - progress.started_at).total_seconds()
        meter = tqdm.format_meter(
            progress.input_bytes, progress.input_size, elapsed, ncols=70, unit="B", unit_scale=True
        )
        return f"{meter} {progress.rows:,} rows  {progress.key}"
    return (
        f"{progress.fraction:.0%} of {progress.input_size:,} bytes read, "
        f"{progress.rows:,} rows scored  {progress.key}"
    )


def render(status: Status, bars: bool = False) -> str:
    busy = sum(1 for w in status.workers if w["state"] == "busy")
    lines = [
        f"stack:             {status.stack}",
        f"task queue:        {status.waiting} waiting, {status.in_flight} in flight",
        f"dead-letter queue: {status.dead_letters}",
        f"workers:           {len(status.workers)} ({busy} busy, "
        f"{len(status.workers) - busy} idle or stopping); target {status.target}; "
        f"restarts {status.restarts}",
    ]
    lines += [f"  {w['name']:<10} pid {w['pid']:<8} {w['state']}" for w in status.workers]
    if status.last_decision:
        lines.append(f"last decision:     {status.last_decision}")
    if status.running:
        lines.append("running:")
        lines += [f"  {progress_line(p, bars)}" for p in status.running]
    lines.append("recent jobs:")
    for note in status.recent:
        where = note.input.key if note.input else "(no file)"
        detail = (
            f"{note.output.rows} rows" if note.output else (note.error.code if note.error else "")
        )
        lines.append(
            f"  {note.finished_at:%Y-%m-%d %H:%M:%S}  {note.job_id}  {note.status:<9} "
            f"{detail:<16} {_speed(note):<28} {where}"
        )
    if not status.recent:
        lines.append("  (none yet)")
    return "\n".join(lines)


class ProgressPrinter:
    """A waiting file's progress on stderr: a bar redrawn on a terminal, else a line per change."""

    def __init__(self, bar: bool) -> None:
        self._bar = bar
        self._shown = ""

    def __call__(self, progress: Progress) -> None:
        line = progress_line(progress, bar=self._bar)
        if line != self._shown:
            print(line, end="\r" if self._bar else "\n", file=sys.stderr, flush=True)
            self._shown = line

    def finish(self) -> None:
        if self._shown and self._bar:
            print(file=sys.stderr)
