"""Structured logs: every line JSON, a job's lines found by its id across processes."""

from __future__ import annotations

import io
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline import logs
from pipeline.client import consumer, log_reader
from pipeline.client.cli import main
from pipeline.stores import aws
from tests.conftest import REGION, StackFactory, outputs_file, publish, unique


def test_lines_in_a_job_context_carry_the_job_and_extra_fields() -> None:
    out = io.StringIO()
    logger = logging.getLogger("pipeline.test-logs")
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter("worker"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with logs.job_context(job_id="j1", key="m/a.csv", model="m@1", delivery=2):
            logger.info("scoring %s", "m/a.csv", extra={"rows": 3})
        logger.info("idle")
    finally:
        logger.removeHandler(handler)

    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["job_id"] == "j1"
    assert (first["key"], first["model"], first["delivery"], first["rows"]) == (
        "m/a.csv",
        "m@1",
        2,
        3,
    )
    assert first["role"] == "worker"
    assert first["message"] == "scoring m/a.csv"
    assert first["time"].endswith("+00:00")
    assert "job_id" not in second


def test_pipeline_logs_gives_one_jobs_lines_from_the_function_and_the_worker(
    local_stack: StackFactory,
    s3: Any,
    sqs: Any,
    binary_model: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stack = local_stack()
    out = stack.outputs
    publish(stack, binary_model)
    notes = []
    for name in ("first", "second"):
        key = f"churn/{unique(name)}.csv"
        body = b"age,income,score,balance\n1,2,3,4\n"
        etag = s3.put_object(Bucket=out["InputBucketName"], Key=key, Body=body)["ETag"].strip('"')
        note = consumer.wait_for(
            sqs, out["NotificationQueueUrl"], lambda n, k=key, e=etag: n.is_for(k, e), timeout=60
        )
        assert note is not None
        notes.append(note)
    outputs = outputs_file(stack, tmp_path)
    folder = Path(out["LogsFolder"])

    assert main(["logs", notes[0].job_id, "--json", "--outputs", str(outputs)]) == 0
    shown = [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    assert {line["job_id"] for line in shown} == {notes[0].job_id}
    roles = {line["role"] for line in shown}
    assert {"upload-function", "worker"} <= roles
    assert [line["time"] for line in shown] == sorted(line["time"] for line in shown)
    assert any(line["message"].startswith("answered: succeeded") for line in shown)
    # Every line of every process parses, and a line that names a job carries its id.
    raw = [line for path in folder.glob("*.jsonl") for line in path.read_text().splitlines()]
    assert raw
    documents = [json.loads(line) for line in raw]
    for line, document in zip(raw, documents, strict=True):
        for note in notes:
            if note.job_id in line:
                assert document.get("job_id") == note.job_id, line
    assert {d["role"] for d in documents} >= {"upload-function", "worker"}


def test_a_deployed_stacks_job_lines_come_from_its_cloudwatch_log_groups(
    aws_endpoint: str,
) -> None:
    """The lines CloudWatch returns for the job's id, parsed and filtered to that job exactly."""

    client = aws.logs_client(REGION)
    group = f"/lgbm/{unique('g')}"
    client.create_log_group(logGroupName=group)
    client.create_log_stream(logGroupName=group, logStreamName="worker/1")
    lines = [
        {"time": "2026-11-21T10:00:02.000+00:00", "message": "answered", "job_id": "abc"},
        {"time": "2026-11-21T10:00:01.000+00:00", "message": "scoring", "job_id": "abc"},
        {"time": "2026-11-21T10:00:01.500+00:00", "message": "other", "job_id": "abd"},
    ]
    now = int(time.time() * 1000)  # CloudWatch refuses events older than 14 days
    client.put_log_events(
        logGroupName=group,
        logStreamName="worker/1",
        logEvents=[
            {"timestamp": now + i, "message": json.dumps(line)} for i, line in enumerate(lines)
        ],
    )
    try:
        found = log_reader.of_job(log_reader.cloudwatch_lines(client, [group], "abc"), "abc")
    finally:
        client.delete_log_group(logGroupName=group)

    assert [line["message"] for line in found] == ["scoring", "answered"]
