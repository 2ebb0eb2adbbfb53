"""The dead-letter entry point as Lambda calls it: no file ends in silence."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from handlers import dead_letter
from pipeline.messages import ErrorInfo, Notification, ObjectRef, failed
from pipeline.stores.ledger import Ledger
from tests.conftest import load_event


@pytest.fixture
def function_env(function_environment: Any) -> Any:
    return function_environment("DeadLetterFunction", dead_letter)


def notifications(sqs: Any, stack: Any) -> list[Notification]:
    got = sqs.receive_message(
        QueueUrl=stack.outputs["NotificationQueueUrl"], MaxNumberOfMessages=10, WaitTimeSeconds=2
    )
    return [Notification.model_validate_json(m["Body"]) for m in got.get("Messages", [])]


def test_every_dead_letter_is_announced(function_env: Any, sqs: Any) -> None:
    result = dead_letter.lambda_handler(load_event("sqs_task_dead_letters"), None)

    assert result == {"batchItemFailures": []}
    notes = {n.error.code: n for n in notifications(sqs, function_env) if n.error}
    exhausted, poison = notes["exhausted"], notes["poison_message"]
    assert exhausted.job_id == "5b7e0d1c9a8f4e3d2c1b0a9f8e7d6c5b"
    assert exhausted.input is not None
    assert exhausted.input.key == "churn/2026/jan.csv"
    assert exhausted.model is not None
    assert exhausted.model.version == 3
    assert exhausted.error is not None
    assert "was not scored after every delivery of its task failed" in exhausted.error.message
    assert poison.input is None


def test_a_job_with_an_outcome_keeps_it(function_env: Any, sqs: Any, s3: Any) -> None:
    ledger = Ledger(s3, function_env.outputs["OutputBucketName"])
    event = load_event("sqs_task_dead_letters")
    event["Records"] = event["Records"][:1]
    body = json.loads(event["Records"][0]["body"])
    assert body["headers"]["task"] == "pipeline.score"
    settled = ledger.settle(
        failed(
            job_id="5b7e0d1c9a8f4e3d2c1b0a9f8e7d6c5b",
            input=ObjectRef(bucket="b", key="churn/2026/jan.csv", etag="e", size=1),
            error=ErrorInfo(code="bad_value", message="row 2"),
            received_at=datetime(2026, 11, 21, tzinfo=UTC),
        )
    )

    dead_letter.lambda_handler(event, None)

    assert notifications(sqs, function_env) == [settled]
