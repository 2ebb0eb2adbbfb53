"""Workers dying under load: the supervisor replaces them and no file is lost."""

from __future__ import annotations

import io
import os
import signal
import time
from typing import Any

import numpy as np
import pyarrow.csv as pa_csv
import pytest

from pipeline.client import consumer
from pipeline.messages import Notification
from pipeline.stores.model_store import ModelStore
from tests.conftest import StackFactory, queue_depth, unique
from tests.faults import FaultProxy


@pytest.fixture
def proxy(aws_endpoint: str) -> Any:
    running = FaultProxy(aws_endpoint).start()
    yield running
    running.stop()


def test_a_worker_that_dies_is_replaced(local_stack: StackFactory) -> None:
    stack = local_stack(workers=1)
    supervisor = stack.supervisor
    assert supervisor is not None
    (first,) = supervisor.workers
    assert first.pid is not None

    os.kill(first.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while supervisor.restarts == 0 or not supervisor.workers[0].wait_ready(0.1):
        assert time.monotonic() < deadline, "the dead worker was not replaced"

    assert supervisor.workers[0] is not first
    assert supervisor.workers[0].alive()


def test_chaos_kill_busy_workers_and_lose_nothing(
    local_stack: StackFactory, proxy: FaultProxy, binary_model: Any, s3: Any, sqs: Any
) -> None:
    stack = local_stack(
        workers=2,
        worker_endpoint_url=proxy.url,
        parameters={"TaskVisibilityTimeout": "4", "TaskMaxReceiveCount": "6"},
    )
    ModelStore(s3, stack.outputs["ModelBucketName"]).publish(
        "churn",
        binary_model.model_to_string().encode(),
        "m",
    )
    run = unique("chaos")
    # Big files hold a worker for seconds: slow to fetch (as from far away) and large.
    proxy.delays.append(lambda method, path: 1.5 if method == "GET" and "/big-" in path else 0.0)
    names = binary_model.feature_name()
    files: dict[str, np.ndarray] = {}
    for i in range(30):
        rows = 150_000 if i % 5 == 0 else 300
        x = np.random.default_rng(i).normal(size=(rows, 4))
        key = f"churn/{run}/{'big' if rows > 1000 else 'small'}-{i:02d}.csv"
        body = ",".join(names) + "\n" + "\n".join(",".join(repr(float(v)) for v in r) for r in x)
        s3.put_object(Bucket=stack.outputs["InputBucketName"], Key=key, Body=body.encode())
        files[key] = x

    supervisor = stack.supervisor
    assert supervisor is not None
    kills = 0
    deadline = time.monotonic() + 90
    while kills < 2:
        assert time.monotonic() < deadline, f"only {kills} busy worker(s) found to kill"
        busy = [w for w in supervisor.workers if w.busy and w.alive()]
        if busy and busy[0].pid is not None:
            os.kill(busy[0].pid, signal.SIGKILL)
            kills += 1
            time.sleep(1.0)
        time.sleep(0.05)

    notes: dict[str, list[Notification]] = {key: [] for key in files}
    deadline = time.monotonic() + 180
    while not all(any(n.status == "succeeded" for n in ns) for ns in notes.values()):
        assert time.monotonic() < deadline, "some files never succeeded"
        for note in consumer.take_from(sqs, stack.outputs["NotificationQueueUrl"], 1):
            assert note.input is not None
            notes[note.input.key].append(note)
    while queue_depth(sqs, stack.outputs["TaskQueueUrl"]) or queue_depth(
        sqs, stack.outputs["TaskDeadLetterQueueUrl"]
    ):
        assert time.monotonic() < deadline, "messages left on the task or dead-letter queue"
        time.sleep(0.5)

    assert supervisor.restarts >= 2
    out_bucket = stack.outputs["OutputBucketName"]
    for key, x in files.items():
        assert len({n.job_id for n in notes[key]}) == 1, f"{key}: more than one job"
        assert all(n.status == "succeeded" for n in notes[key]), f"{key}: a different outcome"
        listing = s3.list_objects_v2(Bucket=out_bucket, Prefix=key.removesuffix(".csv") + "/")
        outputs = [o["Key"] for o in listing["Contents"] if ".quality." not in o["Key"]]
        assert len(outputs) == 1, f"{key}: {len(outputs)} outputs"
        data = s3.get_object(Bucket=out_bucket, Key=outputs[0])["Body"].read()
        got = pa_csv.read_csv(io.BytesIO(data)).column("prediction").to_numpy()
        assert np.max(np.abs(got - binary_model.predict(x))) <= 1e-9, key


def test_autoscaling_follows_the_queue_and_never_stops_a_busy_worker(
    local_stack: StackFactory, proxy: FaultProxy, binary_model: Any, s3: Any, sqs: Any
) -> None:
    from pipeline.scaling import Policy

    policy = Policy(minimum=0, maximum=2, target_backlog=1, cooldown_seconds=3)
    # A worker stopped mid long poll can leave that poll holding the next message
    # (moto, and SQS when a connection drops) for one visibility timeout: keep it short.
    stack = local_stack(
        scaling=policy, worker_endpoint_url=proxy.url, parameters={"TaskVisibilityTimeout": "5"}
    )
    supervisor = stack.supervisor
    assert supervisor is not None
    assert supervisor.running == []  # scaled to zero while idle
    ModelStore(s3, stack.outputs["ModelBucketName"]).publish(
        "churn",
        binary_model.model_to_string().encode(),
        "m",
    )
    run = unique("burst")
    proxy.delays.append(lambda method, path: 1.0 if method == "GET" and run in path else 0.0)
    body = b"age,income,score,balance\n1,2,3,4\n"
    keys = [f"churn/{run}/{i}.csv" for i in range(10)]
    for key in keys:
        s3.put_object(Bucket=stack.outputs["InputBucketName"], Key=key, Body=body)

    notes: dict[str, Notification] = {}
    deadline = time.monotonic() + 120
    while len(notes) < len(keys):
        assert time.monotonic() < deadline, f"{len(notes)} of {len(keys)} files answered"
        for note in consumer.take_from(sqs, stack.outputs["NotificationQueueUrl"], 1):
            assert note.input is not None
            notes[note.input.key] = note
    while supervisor.running:
        assert time.monotonic() < deadline, "the workers were not scaled back to zero"
        time.sleep(0.2)
    stopped = [reason for _, workers, reason in supervisor.decisions if "scale in" in reason]

    assert supervisor.peak_workers == 2
    assert all(n.status == "succeeded" for n in notes.values())
    assert all(proxy.gets(key) == 1 for key in keys), "a file was started twice"
    assert stopped, "no scale-in decision was recorded"
    assert supervisor.restarts == 0

    # From zero, one waiting file starts a worker again.
    late = f"churn/{run}/late.csv"
    etag = s3.put_object(Bucket=stack.outputs["InputBucketName"], Key=late, Body=body)["ETag"]
    note = consumer.wait_for(
        sqs, stack.outputs["NotificationQueueUrl"], lambda n: n.is_for(late, etag.strip('"')), 60
    )
    assert note is not None
    assert note.status == "succeeded"
