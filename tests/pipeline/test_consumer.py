"""Consuming notifications: waiting for one on a queue of one's own, and the CLI watching
them without taking any from the notification queue's consumers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.client import consumer
from pipeline.messages import ErrorInfo, ObjectRef, failed
from pipeline.stores import aws
from tests.conftest import REGION, StackFactory, outputs_file, publish, queue_depth, unique

PIPELINE = [sys.executable, "-m", "pipeline.client.cli"]


def csv_rows(rows: int, seed: int) -> bytes:
    x = np.round(np.random.default_rng(seed).normal(size=(rows, 4)), 4)
    return b"age,income,score,balance\n" + "\n".join(",".join(map(str, r)) for r in x).encode()


def dead_letter_url(sqs: Any, url: str) -> str:
    policy = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
    arn = json.loads(policy["Attributes"]["RedrivePolicy"])["deadLetterTargetArn"]
    return str(sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[1])["QueueUrl"])


def cli_queues(sqs: Any, stack: Any) -> list[str]:
    """The stack's listeners' queues (a client names them after the stack)."""
    prefix = f"{stack.stack_name}-listen-"
    return list(sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", []))


def wait_until(condition: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_submit_wait_and_watch_take_nothing_from_the_notification_queue(
    local_stack: StackFactory, s3: Any, sqs: Any, binary_model: Any, tmp_path: Path
) -> None:
    stack = local_stack()
    out = stack.outputs
    outputs = outputs_file(stack, tmp_path)
    publish(stack, binary_model)
    queue = out["NotificationQueueUrl"]
    # Another consumer's file: its notification waits on the queue, unread.
    s3.put_object(Bucket=out["InputBucketName"], Key="churn/theirs.csv", Body=csv_rows(10, 1))
    wait_until(lambda: queue_depth(sqs, queue) == 1)
    big = tmp_path / "mine.csv"
    big.write_bytes(csv_rows(300_000, 2))  # seconds of scoring while submit waits

    submitted = subprocess.run(
        [*PIPELINE, "submit", str(big), "--model", "churn", "--wait", "--outputs", str(outputs)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    watch = subprocess.Popen(
        [*PIPELINE, "watch", "--count", "1", "--timeout", "60", "--outputs", str(outputs)],
        stdout=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: len(cli_queues(sqs, stack)) == 1)  # watch is listening
    s3.put_object(Bucket=out["InputBucketName"], Key="churn/later.csv", Body=csv_rows(10, 3))
    watched, _ = watch.communicate(timeout=60)

    assert submitted.returncode == 0, submitted.stderr
    assert json.loads(submitted.stdout)["input"]["key"] == "churn/mine.csv"
    assert json.loads(watched)["input"]["key"] == "churn/later.csv"
    wait_until(lambda: queue_depth(sqs, queue) >= 3)
    received = sqs.receive_message(
        QueueUrl=queue,
        MaxNumberOfMessages=10,
        WaitTimeSeconds=1,
        MessageSystemAttributeNames=["ApproximateReceiveCount"],
    )["Messages"]
    jobs = {json.loads(m["Body"])["job_id"]: json.loads(m["Body"]) for m in received}
    keys = sorted(n["input"]["key"] for n in jobs.values())
    assert keys == ["churn/later.csv", "churn/mine.csv", "churn/theirs.csv"]
    # This is the first receive of each: the CLI never touched them.
    assert {m["Attributes"]["ApproximateReceiveCount"] for m in received} == {"1"}
    # mine.csv went up in parts (over 8 MiB): one job, whatever events the upload fired.
    assert big.stat().st_size > 8 * 1024**2
    assert queue_depth(sqs, dead_letter_url(sqs, queue)) == 0
    assert cli_queues(sqs, stack) == []


def test_ctrl_c_removes_the_watchers_queue_and_subscription(
    local_stack: StackFactory, sqs: Any, tmp_path: Path
) -> None:
    stack = local_stack()
    outputs = outputs_file(stack, tmp_path)
    sns = aws.sns_client(REGION)
    topic = stack.outputs["NotificationTopicArn"]
    before = len(sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"])
    watch = subprocess.Popen([*PIPELINE, "watch", "--outputs", str(outputs)])
    wait_until(lambda: len(cli_queues(sqs, stack)) == 1)
    wait_until(
        lambda: len(sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]) == before + 1
    )

    watch.send_signal(signal.SIGINT)

    assert watch.wait(timeout=30) == 130
    assert cli_queues(sqs, stack) == []
    assert len(sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]) == before


def test_taking_at_most_n_leaves_the_rest_on_the_queue(aws_endpoint: str, sqs: Any) -> None:
    """watch --count 1 must not take ten notifications to print one."""
    from datetime import UTC, datetime

    from pipeline.client import consumer
    from pipeline.messages import ErrorInfo, ObjectRef, failed
    from tests.conftest import unique

    url = sqs.create_queue(QueueName=unique("mine"))["QueueUrl"]
    for i in range(3):
        note = failed(
            job_id=f"j{i}",
            input=ObjectRef(bucket="b", key="m/a.csv", etag="e", size=1),
            error=ErrorInfo(code="x", message="x"),
            received_at=datetime(2026, 11, 21, tzinfo=UTC),
        )
        sqs.send_message(QueueUrl=url, MessageBody=note.model_dump_json())

    taken = list(consumer.take_from(sqs, url, wait_seconds=1, most=1))

    assert len(taken) == 1
    assert queue_depth(sqs, url) == 2
    sqs.delete_queue(QueueUrl=url)


def note(key: str) -> str:
    return failed(
        job_id=f"job-{key}",
        input=ObjectRef(bucket="in", key=key, etag="e", size=1),
        error=ErrorInfo(code="bad_value", message="x"),
        received_at=datetime.now(UTC),
    ).model_dump_json()


def test_the_notifications_waited_for_leave_the_queue_and_the_others_are_kept(sqs: Any) -> None:
    url = sqs.create_queue(QueueName=unique("wait"))["QueueUrl"]
    try:
        for key in ("a", "b", "c"):
            sqs.send_message(QueueUrl=url, MessageBody=note(key))

        found = consumer.wait_for(
            sqs, url, lambda n: n.input.key == "b", timeout=10, wait_seconds=1
        )
        assert found is not None
        assert found.input.key == "b"
        later = [
            consumer.wait_for(sqs, url, lambda n, k=k: n.input.key == k, 10, wait_seconds=1)
            for k in ("c", "a")
        ]
        assert [n.input.key for n in later if n is not None] == ["c", "a"]

        def left() -> tuple[str, str]:
            names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
            found = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
            return found[names[0]], found[names[1]]

        wait_until(lambda: left() == ("0", "0"), timeout=10)  # none left in flight either
    finally:
        sqs.delete_queue(QueueUrl=url)
