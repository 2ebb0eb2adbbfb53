"""``worker.process`` in this process, against the emulator: how each failure is answered."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.config import Config

from pipeline import naming
from pipeline.errors import TransientError
from pipeline.local import template
from pipeline.local.provision import provision
from pipeline.messages import ModelRef, ObjectRef, ScoreRequest
from pipeline.settings import Settings
from pipeline.stores.model_store import ModelStore
from pipeline.worker.delivery import Delivery
from pipeline.worker.process import process
from pipeline.worker.runtime import WorkerRuntime
from tests.conftest import REGION, unique

CSV = b"age,income,score,balance\n1,2,3,4\n"


@pytest.fixture
def outputs(aws_endpoint: str, s3: Any, binary_model: Any) -> Any:
    created = provision(template.load(), unique("p"), REGION)
    store = ModelStore(s3, created.outputs["ModelBucketName"])
    store.publish("churn", binary_model.model_to_string().encode(), "m")
    yield created.outputs
    created.destroy()


def runtime_for(outputs: dict[str, str], **changes: Any) -> WorkerRuntime:
    settings = {
        "output_bucket": outputs["OutputBucketName"],
        "model_bucket": outputs["ModelBucketName"],
        "notification_topic_arn": outputs["NotificationTopicArn"],
        "task_queue_url": outputs["TaskQueueUrl"],
        "retry_attempts": 1,
        "predict_engine": "lightgbm",
    }
    return WorkerRuntime.create(Settings.model_validate({**settings, **changes}))


def request_for(s3: Any, outputs: dict[str, str]) -> ScoreRequest:
    bucket = outputs["InputBucketName"]
    key = f"churn/{unique('f')}.csv"
    etag = s3.put_object(Bucket=bucket, Key=key, Body=CSV)["ETag"].strip('"')
    obj = ObjectRef(bucket=bucket, key=key, etag=etag, size=len(CSV))
    model = ModelRef(name="churn", version=1)
    return ScoreRequest(
        job_id=naming.job_id(obj, model), input=obj, model=model, received_at=datetime.now(UTC)
    )


def test_a_configuration_error_fails_the_file_at_once_saying_what_to_fix(
    outputs: Any, s3: Any
) -> None:
    """An empty bucket name is the deployment's error: no delivery could succeed."""
    runtime = runtime_for(outputs, model_bucket="")
    request = request_for(s3, outputs)

    answer = process(request, runtime)

    assert answer.status == "failed"
    assert answer.error is not None
    assert answer.error.code == "configuration"
    assert "PIPELINE_" in answer.error.message
    assert runtime.ledger.outcome(request.job_id) == answer


def test_a_failing_announce_is_noted_and_the_delivery_fails(outputs: Any, s3: Any) -> None:
    """SNS unreachable after scoring: the error is kept for the dead-letter handler."""
    unreachable = boto3.client(
        "sns",
        endpoint_url="http://127.0.0.1:9",
        region_name=REGION,
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1),
    )
    runtime = dataclasses.replace(runtime_for(outputs), sns=unreachable)
    request = request_for(s3, outputs)

    with pytest.raises(TransientError, match="publishing the notification"):
        process(request, runtime)

    last = runtime.ledger.last_error(request.job_id)
    assert last is not None
    assert last.code == "transient"


@pytest.mark.parametrize(("receive_count", "scored_again"), [(1, True), (2, False)])
def test_an_answered_small_file_delivered_again_publishes_its_first_outcome(
    outputs: Any, s3: Any, receive_count: int, scored_again: bool
) -> None:
    """A duplicate first delivery of a small file is not looked up in the ledger: it is
    scored again (the same output) and the settled outcome is what it publishes. A
    redelivery, which follows a crash, is looked up and not scored."""
    runtime = runtime_for(outputs)
    request = request_for(s3, outputs)
    first = process(request, runtime, Delivery(outputs["TaskQueueUrl"], "r1", 1, "m1"))
    assert first is not None
    assert first.output is not None
    s3.delete_object(Bucket=first.output.bucket, Key=first.output.key)

    again = process(request, runtime, Delivery(outputs["TaskQueueUrl"], "r2", receive_count, "m2"))

    assert again == first
    assert runtime.ledger.outcome(request.job_id) == first
    listed = s3.list_objects_v2(Bucket=first.output.bucket, Prefix=first.output.key)
    assert ("Contents" in listed) is scored_again
