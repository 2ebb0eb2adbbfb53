"""The intake against the real emulator: what reaches the task queue and the topic."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from pipeline import events
from pipeline.functions.intake import IntakeRuntime, accept, handle_event
from pipeline.local import template
from pipeline.local.poller import lambda_event
from pipeline.local.provision import provision
from pipeline.messages import Notification, ObjectRef, ScoreRequest
from pipeline.settings import Settings
from pipeline.stores.model_store import ModelStore
from tests.conftest import REGION, TEST_SETTINGS, unique


@pytest.fixture
def stack(aws_endpoint: str) -> Any:
    created = provision(template.load(), unique("i"), REGION)
    yield created
    created.destroy()


@pytest.fixture
def runtime(stack: Any) -> IntakeRuntime:
    env = stack.properties["UploadFunction"]["Environment"]["Variables"]
    return IntakeRuntime.create(Settings.from_environment(env).model_copy(update=TEST_SETTINGS))


def upload(s3: Any, stack: Any, key: str, body: bytes = b"a\n1\n", **extra: Any) -> ObjectRef:
    bucket = stack.outputs["InputBucketName"]
    put = s3.put_object(Bucket=bucket, Key=key, Body=body, **extra)
    return ObjectRef(bucket=bucket, key=key, etag=put["ETag"].strip('"'), size=len(body))


def created(obj: ObjectRef) -> events.ObjectCreated:
    return events.ObjectCreated(
        event_name="ObjectCreated:Put", event_time=datetime.now(UTC), object=obj
    )


def drain(sqs: Any, url: str, wait: int = 1) -> list[dict[str, Any]]:
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait)
    return [json.loads(m["Body"]) for m in got.get("Messages", [])]


def task_requests(sqs: Any, stack: Any) -> list[ScoreRequest]:
    """The score tasks on the queue, decoded from Celery's JSON message protocol."""
    import base64

    found = []
    for envelope in drain(sqs, stack.outputs["TaskQueueUrl"]):
        assert envelope["content-type"] == "application/json"
        assert envelope["headers"]["task"] == "pipeline.score"
        args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        found.append(ScoreRequest.model_validate(args[0]))
    return found


def test_a_routable_file_becomes_one_json_task(
    runtime: IntakeRuntime, stack: Any, s3: Any, sqs: Any, binary_model: Any
) -> None:
    runtime.models.publish("churn", binary_model.model_to_string().encode(), "m")
    runtime.models.publish("churn", binary_model.model_to_string().encode(), "m")
    obj = upload(s3, stack, "churn/2026/jan file.csv")

    request = accept(created(obj), runtime)

    (queued,) = task_requests(sqs, stack)
    assert queued == request
    assert queued.input == obj
    assert (queued.model.name, queued.model.version) == ("churn", 2)


def test_metadata_pins_a_model_version(
    runtime: IntakeRuntime, stack: Any, s3: Any, sqs: Any, binary_model: Any
) -> None:
    for _ in range(2):
        runtime.models.publish("churn", binary_model.model_to_string().encode(), "m")
    obj = upload(s3, stack, "churn/a.csv", Metadata={"model-version": "1"})

    accept(created(obj), runtime)

    (queued,) = task_requests(sqs, stack)
    assert queued.model.version == 1


def test_champion_chooses_an_unpinned_file_and_an_alias_may_be_pinned(
    runtime: IntakeRuntime, stack: Any, s3: Any, sqs: Any, binary_model: Any
) -> None:
    for _ in range(3):
        runtime.models.publish("churn", binary_model.model_to_string().encode(), "m")
    runtime.models.set_alias("churn", "champion", 1)
    runtime.models.set_alias("churn", "challenger", 2)
    runtime.models.set_shadow("churn", "challenger")

    accept(created(upload(s3, stack, "churn/a.csv")), runtime)
    accept(
        created(upload(s3, stack, "churn/b.csv", Metadata={"model-alias": "challenger"})), runtime
    )
    accept(created(upload(s3, stack, "churn/c.csv", Metadata={"model-version": "3"})), runtime)
    runtime.models.set_alias("churn", "champion", 3)  # the next file gets 3, nothing restarted
    accept(created(upload(s3, stack, "churn/d.csv")), runtime)

    queued = sorted(task_requests(sqs, stack), key=lambda r: r.input.key)
    assert [(r.model.version, r.model.alias) for r in queued] == [
        (1, "champion"),
        (2, "challenger"),
        (3, None),
        (3, "champion"),
    ]
    # The shadow (challenger's version, 2) scores every file but its own version's.
    assert [r.shadow.version if r.shadow else None for r in queued] == [2, None, 2, 2]
    assert len({r.job_id for r in queued}) == 4


@pytest.mark.parametrize(
    ("key", "metadata", "code", "message"),
    [
        pytest.param(
            "churn/a.csv", {"model-alias": "nope"}, "unknown_model", "no alias 'nope'", id="alias"
        ),
        pytest.param(
            "churn/a.csv",
            {"model-alias": "champion", "model-version": "1"},
            "unknown_model",
            "pin one",
            id="both",
        ),
        pytest.param("a.csv", {}, "unroutable_key", "does not name a model", id="no-prefix"),
        pytest.param(
            "nomodel/a.csv", {}, "unknown_model", "no model named 'nomodel'", id="unknown"
        ),
        pytest.param(
            "churn/a.csv", {"model-version": "9"}, "unknown_model", "no version 9", id="bad-pin"
        ),
        pytest.param(
            "churn/a.csv", {"model-version": "latest"}, "unknown_model", "whole number", id="pin"
        ),
    ],
)
def test_a_file_that_cannot_be_routed_is_answered_at_once(
    runtime: IntakeRuntime,
    stack: Any,
    s3: Any,
    sqs: Any,
    binary_model: Any,
    key: str,
    metadata: dict[str, str],
    code: str,
    message: str,
) -> None:
    runtime.models.publish("churn", binary_model.model_to_string().encode(), "m")
    obj = upload(s3, stack, key, Metadata=metadata)

    assert accept(created(obj), runtime) is None

    (note,) = [
        Notification.model_validate(b) for b in drain(sqs, stack.outputs["NotificationQueueUrl"])
    ]
    assert note.status == "failed"
    assert note.input == obj
    assert note.error is not None
    assert note.error.code == code
    assert message in note.error.message
    assert task_requests(sqs, stack) == []


def test_an_overwritten_object_is_not_scored_as_its_old_self(
    runtime: IntakeRuntime, stack: Any, s3: Any, sqs: Any, binary_model: Any
) -> None:
    runtime.models.publish("churn", binary_model.model_to_string().encode(), "m")
    old = upload(s3, stack, "churn/a.csv", b"a\n1\n")
    upload(s3, stack, "churn/a.csv", b"a\n2\n")

    accept(created(old), runtime)

    (note,) = [
        Notification.model_validate(b) for b in drain(sqs, stack.outputs["NotificationQueueUrl"])
    ]
    assert note.error is not None
    assert note.error.code == "input_changed"


def test_the_handler_reports_only_records_it_could_not_enqueue(
    runtime: IntakeRuntime, stack: Any, s3: Any, sqs: Any, binary_model: Any
) -> None:
    runtime.models.publish("churn", binary_model.model_to_string().encode(), "m")
    obj = upload(s3, stack, "churn/ok.csv")
    body = json.dumps(
        {
            "Records": [
                {
                    "eventName": "ObjectCreated:Put",
                    "eventTime": "2026-11-21T07:00:00Z",
                    "s3": {
                        "bucket": {"name": obj.bucket},
                        "object": {"key": "churn/ok.csv", "eTag": obj.etag, "size": obj.size},
                    },
                }
            ]
        }
    )
    messages = [
        {"MessageId": "good", "ReceiptHandle": "r1", "Body": body},
        {"MessageId": "junk", "ReceiptHandle": "r2", "Body": "not json"},
        {"MessageId": "test", "ReceiptHandle": "r3", "Body": '{"Event": "s3:TestEvent"}'},
    ]
    broken = IntakeRuntime.create(
        runtime.settings.model_copy(
            update={"task_queue_url": runtime.settings.task_queue_url + "-gone"}
        )
    )

    ok = handle_event(lambda_event(messages, "arn:q", REGION), runtime)  # type: ignore[arg-type]
    failing = handle_event(lambda_event(messages[:1], "arn:q", REGION), broken)  # type: ignore[arg-type]

    assert ok == {"batchItemFailures": []}
    assert failing == {"batchItemFailures": [{"itemIdentifier": "good"}]}
    assert [r.input.key for r in task_requests(sqs, stack)] == ["churn/ok.csv"]


def test_model_store_is_readable_by_the_intake(runtime: IntakeRuntime) -> None:
    assert isinstance(runtime.models, ModelStore)
