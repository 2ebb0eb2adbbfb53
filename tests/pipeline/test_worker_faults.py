"""What the worker does when things go wrong, end to end with real worker subprocesses.

S3 failures are injected by a proxy between the workers and the emulator
(``tests/faults.py``); the handler side talks to the emulator directly.
"""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.client import consumer
from pipeline.client.api import Client
from pipeline.client.cli import main
from pipeline.messages import Notification
from pipeline.stores.model_store import ModelStore
from tests.conftest import StackFactory, queue_depth, submit, unique
from tests.faults import FaultProxy

TIMEOUT = 90
GOOD_CSV = b"age,income,score,balance\n1,2,3,4\n5,6,7,8\n"


@pytest.fixture
def proxy(aws_endpoint: str) -> Any:
    running = FaultProxy(aws_endpoint).start()
    yield running
    running.stop()


def with_model(stack: Any, s3: Any, model: Any) -> Any:
    """``stack`` with ``model`` published as ``churn``."""
    store = ModelStore(s3, stack.outputs["ModelBucketName"])
    store.publish("churn", model.model_to_string().encode(), "m")
    return stack


@pytest.fixture
def stack(local_stack: StackFactory, proxy: FaultProxy, binary_model: Any, s3: Any) -> Any:
    started = local_stack(
        worker_endpoint_url=proxy.url,
        parameters={"TaskVisibilityTimeout": "6", "TaskMaxReceiveCount": "2"},
        settings={"retry_attempts": 1},  # botocore's own retries only: attempts are countable
    )
    return with_model(started, s3, binary_model)


def drained(sqs: Any, url: str, timeout: float = 10) -> bool:
    """Whether the queue empties within ``timeout``.

    A worker (or the dead-letter handler) announces a file and then deletes its
    message, so the queue empties a moment after the notification arrives.
    """
    deadline = time.monotonic() + timeout
    while queue_depth(sqs, url):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_a_transient_s3_error_is_retried_and_the_file_succeeds(
    stack: Any, proxy: FaultProxy, s3: Any, sqs: Any
) -> None:
    key = f"churn/{unique('flaky')}.csv"
    fails = iter([True, True])  # the first two GETs of the file answer 503 SlowDown
    proxy.rules.append(lambda method, path: method == "GET" and key in path and next(fails, False))

    note = submit(Client.from_local(stack), key, GOOD_CSV)

    assert note.status == "succeeded", note.error
    assert proxy.gets(key) == 3  # two refused, the third served


def test_an_input_error_is_answered_once_and_never_retried(
    stack: Any, proxy: FaultProxy, s3: Any, sqs: Any
) -> None:
    key = f"churn/{unique('bad')}.csv"

    note = submit(Client.from_local(stack), key, b"age,income,score,balance\n1,x,3,4\n")

    assert note.error is not None
    assert note.error.code == "bad_value"
    assert proxy.gets(key) == 1
    assert drained(sqs, stack.outputs["TaskQueueUrl"])
    assert proxy.gets(key) == 1  # and still once after the message was acked


def test_a_file_that_fails_every_delivery_ends_in_exhausted(
    stack: Any, proxy: FaultProxy, s3: Any, sqs: Any
) -> None:
    key = f"churn/{unique('doomed')}.csv"
    proxy.rules.append(lambda method, path: method == "GET" and key in path)

    note = submit(Client.from_local(stack), key, GOOD_CSV)

    assert note.status == "failed"
    assert note.error is not None
    assert note.error.code == "exhausted"
    assert "the last error was transient" in note.error.message
    assert "SlowDown" in note.error.message
    # The first delivery's early read (one try), then 2 deliveries (TaskMaxReceiveCount)
    # x 5 tries (botocore's total_max_attempts)
    assert proxy.gets(key) == 11
    assert drained(sqs, stack.outputs["TaskQueueUrl"])
    assert drained(sqs, stack.outputs["TaskDeadLetterQueueUrl"])


def test_an_exhausted_file_runs_again_with_pipeline_retry_once_s3_is_well(
    stack: Any, proxy: FaultProxy, s3: Any, sqs: Any, tmp_path: Path
) -> None:
    key = f"churn/{unique('outage')}.csv"
    proxy.rules.append(lambda method, path: method == "GET" and key in path)
    client = Client.from_local(stack)
    sent = client.submit(GOOD_CSV, model="churn", key=key.partition("/")[2], wait=False)
    exhausted = client.wait(sent, timeout=TIMEOUT)
    assert exhausted.error is not None
    assert exhausted.error.code == "exhausted"
    outputs = tmp_path / "outputs.json"
    stack.write_outputs(outputs)

    proxy.rules.clear()  # the outage is over
    assert main(["retry", exhausted.job_id, "--outputs", str(outputs)]) == 0
    rerun = consumer.wait_for(
        sqs,
        stack.outputs["NotificationQueueUrl"],
        lambda n: n.is_for(key, sent.etag) and n.run == 1,
        timeout=TIMEOUT,
    )

    assert rerun is not None
    assert rerun.status == "succeeded", rerun.error
    assert rerun.job_id != exhausted.job_id
    assert rerun.output is not None
    assert rerun.output.rows == 2
    # The first run keeps its one outcome; a second retry of it is refused.
    assert main(["retry", exhausted.job_id, "--outputs", str(outputs)]) == 1


def celery_envelope(args: list[Any]) -> str:
    body = base64.b64encode(json.dumps([args, {}, {}]).encode()).decode()
    return json.dumps(
        {
            "body": body,
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"lang": "py", "task": "pipeline.score", "id": unique("t"), "argsrepr": ""},
            "properties": {
                "body_encoding": "base64",
                "delivery_tag": unique("d"),
                "delivery_info": {"exchange": "", "routing_key": "score"},
            },
        }
    )


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("this is not a task message", id="not-json"),
        pytest.param(celery_envelope([{"schema_version": 1, "job_id": 7}]), id="wrong-schema"),
    ],
)
def test_a_poison_message_reaches_the_dead_letter_queue_and_is_announced(
    stack: Any, s3: Any, sqs: Any, body: str
) -> None:
    sqs.send_message(QueueUrl=stack.outputs["TaskQueueUrl"], MessageBody=body)

    poison = consumer.wait_for(
        sqs,
        stack.outputs["NotificationQueueUrl"],
        lambda n: n.error is not None and n.error.code == "poison_message",
        timeout=TIMEOUT,
    )
    key = f"churn/{unique('after')}.csv"
    after = submit(Client.from_local(stack), key, GOOD_CSV)

    assert poison is not None
    assert poison.input is None
    assert poison.error is not None
    assert "dead-letter.json" in poison.error.message
    kept = s3.get_object(
        Bucket=stack.outputs["OutputBucketName"], Key=poison.error.message.split("/", 3)[3]
    )["Body"].read()
    assert json.loads(kept)["body"] == body
    assert after.status == "succeeded"  # the worker keeps serving files
    assert drained(sqs, stack.outputs["TaskDeadLetterQueueUrl"])


def notifications_for(sqs: Any, stack: Any, key: str, settle_seconds: float) -> list[Notification]:
    """Every notification about ``key`` that arrives within ``settle_seconds``."""
    found: list[Notification] = []
    deadline = time.monotonic() + settle_seconds
    while time.monotonic() < deadline:
        found += [
            n
            for n in consumer.take_from(sqs, stack.outputs["NotificationQueueUrl"], 1)
            if n.input is not None and n.input.key == key
        ]
    return found


def test_a_multipart_upload_is_one_job(stack: Any, s3: Any, sqs: Any) -> None:
    from boto3.s3.transfer import TransferConfig

    key = f"churn/{unique('multi')}.csv"
    body = b"age,income,score,balance\n" + b"0.5,1.5,2.5,3.5\n" * 400_000  # 6.4 MB, 2 parts
    config = TransferConfig(multipart_threshold=5 * 1024**2, multipart_chunksize=5 * 1024**2)
    s3.upload_fileobj(io.BytesIO(body), stack.outputs["InputBucketName"], key, Config=config)

    notes = notifications_for(sqs, stack, key, settle_seconds=15)

    assert notes, "no notification"
    assert {n.job_id for n in notes} == {notes[0].job_id}
    assert {n.model_dump_json() for n in notes} == {notes[0].model_dump_json()}  # same outcome
    assert notes[0].status == "succeeded"
    assert notes[0].input is not None
    assert notes[0].input.etag.endswith("-2")
    stem = key.removesuffix(".csv") + "/"
    listing = s3.list_objects_v2(Bucket=stack.outputs["OutputBucketName"], Prefix=stem)
    keys = [o["Key"] for o in listing["Contents"]]
    assert [k for k in keys if ".quality." not in k] == [notes[0].output.key]  # one output
    assert len(keys) == 3  # and its quality report and page


def test_a_file_longer_than_the_visibility_timeout_runs_once(
    local_stack: StackFactory, proxy: FaultProxy, binary_model: Any, s3: Any, sqs: Any
) -> None:
    two = with_model(
        local_stack(
            workers=2, worker_endpoint_url=proxy.url, parameters={"TaskVisibilityTimeout": "3"}
        ),
        s3,
        binary_model,
    )
    key = f"churn/{unique('long')}.csv"
    proxy.delays.append(lambda method, path: 10.0 if method == "GET" and key in path else 0.0)

    note = submit(Client.from_local(two), key, GOOD_CSV)

    assert note.status == "succeeded"
    assert note.started_at is not None
    assert (note.finished_at - note.started_at).total_seconds() >= 10  # > 3x the timeout
    assert proxy.gets(key) == 1  # no second worker ever started on it


def test_a_stopped_worker_finishes_its_file_first(
    stack: Any, proxy: FaultProxy, s3: Any, sqs: Any
) -> None:
    key = f"churn/{unique('stop')}.csv"
    proxy.delays.append(lambda method, path: 4.0 if method == "GET" and key in path else 0.0)
    client = Client.from_local(stack)
    sent = client.submit(GOOD_CSV, model="churn", key=key.partition("/")[2], wait=False)
    (worker,) = stack.workers
    deadline = time.monotonic() + 30
    while not worker.busy:
        assert time.monotonic() < deadline, "the worker never started the file"
        time.sleep(0.05)

    worker.request_stop()  # SIGTERM mid-file
    note = client.wait(sent, timeout=TIMEOUT)

    assert note.status == "succeeded"
    assert worker.stop(timeout=30) == 0
    assert drained(sqs, stack.outputs["TaskQueueUrl"])


def test_a_stuck_file_fails_with_timeout(
    local_stack: StackFactory, proxy: FaultProxy, binary_model: Any, s3: Any, sqs: Any
) -> None:
    limited = with_model(
        local_stack(worker_endpoint_url=proxy.url, settings={"job_timeout_seconds": 2}),
        s3,
        binary_model,
    )
    key = f"churn/{unique('stuck')}.csv"
    proxy.delays.append(lambda method, path: 30.0 if method == "GET" and key in path else 0.0)

    note = submit(Client.from_local(limited), key, GOOD_CSV)

    assert note.status == "failed"
    assert note.error is not None
    assert note.error.code == "timeout"
    assert f"{key} was still running after 2 s" in note.error.message
    assert note.started_at is not None
    assert (note.finished_at - note.started_at).total_seconds() < 10


def test_a_duplicate_delivery_while_the_file_runs_is_acknowledged_not_run_again(
    local_stack: StackFactory, binary_model: Any, s3: Any, sqs: Any
) -> None:
    """A second event for one upload (the emulator sends two for a multipart upload; SQS may
    deliver twice): two idle workers, and the file is still scored once."""
    from datetime import UTC, datetime

    from pipeline.client.api import Client
    from pipeline.client.log_reader import local_lines
    from pipeline.events import ObjectCreated
    from pipeline.functions.intake import IntakeRuntime, accept
    from pipeline.messages import ObjectRef

    stack = with_model(local_stack(workers=2), s3, binary_model)
    client = Client.from_local(stack)
    key = f"churn/{unique('twice')}.csv"
    body = b"age,income,score,balance\n" + b"0.5,1.5,2.5,3.5\n" * 600_000
    etag = s3.put_object(Bucket=stack.outputs["InputBucketName"], Key=key, Body=body)["ETag"]
    obj = ObjectRef(
        bucket=stack.outputs["InputBucketName"], key=key, etag=etag.strip('"'), size=len(body)
    )
    runtime = IntakeRuntime.of(client.settings, client.s3, client.sns, client.sqs)
    request = accept(ObjectCreated(event_name="ObjectCreated:Put", event_time=datetime.now(UTC),
                                   object=obj), runtime)  # fmt: skip
    assert request is not None

    notes = notifications_for(sqs, stack, key, settle_seconds=20)
    lines = [
        line for line in local_lines(Path(stack.outputs["LogsFolder"]))
        if line.get("job_id") == request.job_id
    ]  # fmt: skip

    assert {n.status for n in notes} == {"succeeded"}
    assert {n.model_dump_json() for n in notes} == {notes[0].model_dump_json()}
    scored = [line for line in lines if line["message"].startswith("scoring s3://")]
    acknowledged = [
        line for line in lines if "duplicate delivery is acknowledged" in line["message"]
    ]
    assert len(scored) == 1, [line["message"] for line in lines]
    assert len(acknowledged) == 1
    assert drained(sqs, stack.outputs["TaskQueueUrl"])
