"""Splitting a big file: its plan, written once, and a task per shard.

The worker that takes a big file's task writes the plan (once: a conditional
put) with the output's multipart upload, sends one task per shard to the task
queue and is done. Autoscaling sees the shards as backlog, like files. Where
shards begin and end is the rules' (``rules``) and each format's.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING

from pipeline.errors import InputError
from pipeline.functions import task_messages
from pipeline.messages import (
    ScoreRequest,
    utc_now,
)
from pipeline.records import ShardPlan
from pipeline.scoring import formats
from pipeline.scoring.run import file_format
from pipeline.stores.storage import S3Object
from pipeline.stores.uploads import LAST_PART, Upload
from pipeline.worker.sharding.rules import MAX_SHARDS

if TYPE_CHECKING:
    from pipeline.worker.runtime import WorkerRuntime

log = logging.getLogger(__name__)
_HEADER_PEEK = 64 * 1024


def plan_for(request: ScoreRequest, runtime: WorkerRuntime) -> ShardPlan | None:
    """The file's plan if it is to run as shards, else None (it runs whole)."""
    settings, ledger, obj = runtime.settings, runtime.ledger, request.input
    if obj.size <= settings.shard_bytes or obj.size > settings.max_input_bytes:
        return None
    if ledger.is_unsplit(request.job_id):
        return None
    existing = ledger.plan(request.job_id)
    if existing is not None:
        return existing
    try:
        plan = _new_plan(request, runtime)
    except InputError as exc:
        log.info("not split (%s): it runs whole, which reports the error", exc)
        return None
    if plan is None or plan.count < 2:
        return None
    bucket, fmt = runtime.settings.output_bucket, formats.BY_NAME[plan.format]
    upload = Upload.start(runtime.s3, bucket, plan.output_key, fmt.content_type)
    plan = plan.model_copy(
        update={"upload_id": upload.upload_id, "stride": (LAST_PART - 1) // plan.count}
    )
    counted = ledger.put_plan(request.job_id, plan)
    if counted.upload_id != plan.upload_id:  # another worker planned it first
        abort(runtime, plan)
    return counted


def _new_plan(request: ScoreRequest, runtime: WorkerRuntime) -> ShardPlan | None:
    obj = request.input
    shard_bytes = max(runtime.settings.shard_bytes, -(-obj.size // MAX_SHARDS))
    source = S3Object(runtime.s3, obj)
    fmt = file_format(source)
    if fmt.compression:
        log.info("not split: a %s stream cannot be entered in the middle", fmt.compression)
        return None
    output_key = fmt.output_key(obj.key, request.job_id)
    common = {
        "format": fmt.name,
        "output_key": output_key,
        "size": obj.size,
        "created_at": utc_now(),
    }
    where = f"s3://{obj.bucket}/{obj.key}"
    cut = fmt.codec.shards.cut(
        source, obj.size, shard_bytes, where, runtime.settings.max_line_bytes
    )
    return ShardPlan(
        **common,
        ranges=cut.ranges,
        row_groups=cut.row_groups,
        header=cut.header.decode("utf-8", errors="strict"),
    )


def split(request: ScoreRequest, plan: ShardPlan, runtime: WorkerRuntime) -> None:
    """Send the task of every shard that has no result yet (all of them, the first time)."""
    done = runtime.retrying(lambda: runtime.ledger.shard_results(request.job_id))
    runtime.ledger.mark_running(request.job_id, running=True)

    for index in range(plan.count):
        if index not in done:
            runtime.retrying(functools.partial(send, runtime, request, index))
    log.info("split into %d shards (%s)", plan.count, plan.format)


def send(runtime: WorkerRuntime, request: ScoreRequest, shard: int | None) -> None:
    """Put the file's task on the queue again: for one shard, or (None) for the whole file."""
    task = request.model_copy(update={"shard": shard})
    task_messages.send(
        runtime.sqs,
        runtime.settings.task_queue_url,
        task_messages.SCORE_TASK,
        task.model_dump(mode="json"),
    )


def plan_of(request: ScoreRequest, runtime: WorkerRuntime) -> ShardPlan:
    """The plan a shard's task belongs to (written before any shard's task was sent)."""
    plan = runtime.ledger.plan(request.job_id)
    if plan is None:
        raise RuntimeError(f"shard {request.shard} of job {request.job_id} has no plan")
    return plan


def share(plan: ShardPlan, request: ScoreRequest) -> int:
    """About how many bytes of the input a shard reads: its progress's whole."""
    assert request.shard is not None  # noqa: S101
    if plan.ranges:
        begin, end = plan.ranges[request.shard]
        return end - begin
    return plan.size // plan.count


def abort(runtime: WorkerRuntime, plan: ShardPlan) -> None:
    Upload(runtime.s3, runtime.settings.output_bucket, plan.output_key, plan.upload_id).abort()
