"""The local stack builds what template.yaml describes, read from the template itself."""

import json
from typing import Any

import pytest

from pipeline.local import template
from pipeline.local.provision import provision
from pipeline.local.template import Evaluator, TemplateError
from tests.conftest import REGION, unique


@pytest.fixture
def stack(aws_endpoint: str) -> Any:
    created = provision(template.load(), unique("p"), REGION, {"TaskMaxReceiveCount": "4"})
    yield created
    created.destroy()


def test_every_output_of_the_template_is_provided(stack: Any) -> None:
    declared = set(template.load()["Outputs"])
    # Workers are local processes; the client policy exists where IAM is enforced.
    played_by_local_processes = {"WorkerClusterName", "WorkerServiceName", "ClientPolicyArn"}
    assert set(stack.outputs) == declared - played_by_local_processes


def test_queues_carry_the_template_settings_and_redrive(stack: Any, sqs: Any) -> None:
    spec = template.load()["Resources"]["TaskQueue"]["Properties"]
    attributes = sqs.get_queue_attributes(
        QueueUrl=stack.outputs["TaskQueueUrl"], AttributeNames=["All"]
    )["Attributes"]

    assert attributes["VisibilityTimeout"] == str(
        template.load()["Parameters"]["TaskVisibilityTimeout"]["Default"]
    )
    assert attributes["MessageRetentionPeriod"] == str(spec["MessageRetentionPeriod"])
    redrive = json.loads(attributes["RedrivePolicy"])
    assert int(redrive["maxReceiveCount"]) == 4  # the parameter given, not the default
    dlq_arn = sqs.get_queue_attributes(
        QueueUrl=stack.outputs["TaskDeadLetterQueueUrl"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    assert redrive["deadLetterTargetArn"] == dlq_arn


def test_uploads_reach_the_upload_events_queue(stack: Any, s3: Any, sqs: Any) -> None:
    s3.put_object(Bucket=stack.outputs["InputBucketName"], Key="m/a b.csv", Body=b"x\n1\n")

    bodies = []
    for _ in range(3):
        got = sqs.receive_message(
            QueueUrl=stack.outputs["UploadEventsQueueUrl"],
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
        )
        bodies += [json.loads(m["Body"]) for m in got.get("Messages", [])]
    created = [b for b in bodies if "Records" in b]
    assert created[0]["Records"][0]["s3"]["object"]["key"] == "m%2Fa+b.csv"


def test_notifications_reach_the_queue_raw(stack: Any, sqs: Any, aws_endpoint: str) -> None:
    from pipeline.stores import aws

    aws.sns_client(REGION).publish(
        TopicArn=stack.outputs["NotificationTopicArn"], Message='{"hello": 1}'
    )
    got = sqs.receive_message(QueueUrl=stack.outputs["NotificationQueueUrl"], WaitTimeSeconds=2)
    assert json.loads(got["Messages"][0]["Body"]) == {"hello": 1}


def test_compute_resources_are_left_to_local_processes(stack: Any) -> None:
    for name in ("UploadFunction", "DeadLetterFunction", "WorkerService", "WorkerTaskDefinition"):
        assert any(entry.startswith(f"{name} ") for entry in stack.emulated_elsewhere)
    env = stack.properties["UploadFunction"]["Environment"]["Variables"]
    assert env["PIPELINE_TASK_QUEUE_URL"] == stack.outputs["TaskQueueUrl"]
    (worker,) = stack.properties["WorkerTaskDefinition"]["ContainerDefinitions"]
    worker_env = {item["Name"]: item["Value"] for item in worker["Environment"]}
    assert worker_env["PIPELINE_TASK_QUEUE_URL"] == stack.outputs["TaskQueueUrl"]
    assert worker_env["PIPELINE_TASK_VISIBILITY_SECONDS"] == 120
    assert worker["LogConfiguration"]["Options"]["awslogs-group"] is None  # no log group here


def test_buckets_get_their_policies_and_lifecycle(stack: Any, s3: Any) -> None:
    # The TLS-only policies are all the template has, and the emulator speaks HTTP.
    with pytest.raises(s3.exceptions.ClientError, match="NoSuchBucketPolicy"):
        s3.get_bucket_policy(Bucket=stack.outputs["InputBucketName"])
    rules = s3.get_bucket_lifecycle_configuration(Bucket=stack.outputs["OutputBucketName"])["Rules"]
    assert rules[0]["Expiration"] == {"Days": 30}
    versioning = s3.get_bucket_versioning(Bucket=stack.outputs["InputBucketName"])
    assert versioning["Status"] == "Enabled"


def test_destroy_removes_everything(aws_endpoint: str, s3: Any, sqs: Any) -> None:
    created = provision(template.load(), unique("p"), REGION)
    s3.put_object(Bucket=created.outputs["InputBucketName"], Key="m/x.csv", Body=b"x")

    created.destroy()

    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert created.outputs["InputBucketName"] not in buckets
    queues = sqs.list_queues(QueueNamePrefix=created.name).get("QueueUrls", [])
    assert queues == []


def test_intrinsics_resolve_like_cloudformation() -> None:
    doc = {"Parameters": {"Size": {"Type": "Number", "Default": 3}}}
    ev = Evaluator(doc, "st", "eu-west-1")
    ev.record("Q", "https://q", Arn="arn:q")

    assert ev({"Fn::Sub": "${AWS::StackName}-${Size}-${Q.Arn}"}) == "st-3-arn:q"
    assert ev({"Fn::Sub": ["${X}-${Q}", {"X": {"Ref": "AWS::Region"}}]}) == "eu-west-1-https://q"
    assert ev({"Fn::Join": ["/", ["a", {"Ref": "Q"}]]}) == "a/https://q"
    with pytest.raises(TemplateError, match="not known"):
        ev({"Ref": "Nope"})
    with pytest.raises(TemplateError, match="not supported"):
        ev({"Fn::Cidr": ["10.0.0.0/16", 2, 8]})


def test_short_tags_load_as_long_forms(tmp_path: Any) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("A: !Ref X\nB: !GetAtt Q.Arn\nC: !Sub '${X}'\nD: !Join [',', [a, b]]\n")
    assert template.load(path) == {
        "A": {"Ref": "X"},
        "B": {"Fn::GetAtt": ["Q", "Arn"]},
        "C": {"Fn::Sub": "${X}"},
        "D": {"Fn::Join": [",", ["a", "b"]]},
    }
