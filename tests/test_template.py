"""template.yaml as AWS would see it after the SAM transform: secure by default."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.local import template
from tests.conftest import infra_module

check_template = infra_module("check_template")

#: Actions AWS grants only on "*", each with the reason it is harmless here.
STAR_RESOURCE_ACTIONS = {
    "ecr:GetAuthorizationToken": "a registry login token; pulling still needs the repository",
}


@pytest.fixture(scope="module")
def transformed(aws_region: None) -> dict[str, Any]:
    return check_template.transformed()


@pytest.fixture(scope="module")
def aws_region() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        yield


def resources(doc: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in doc["Resources"].items() if r["Type"] == kind}


def identity_statements(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, role in resources(doc, "AWS::IAM::Role").items():
        assert not role["Properties"].get("ManagedPolicyArns"), f"{name} uses a managed policy"
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                yield name, statement
    for name, policy in resources(doc, "AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            yield name, statement


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_every_iam_statement_names_its_actions_and_resources(transformed: dict[str, Any]) -> None:
    statements = list(identity_statements(transformed))
    assert len(statements) > 15
    for role, statement in statements:
        actions = as_list(statement["Action"])
        assert statement["Effect"] == "Allow"
        for action in actions:
            assert "*" not in action, f"{role}: wildcard action {action}"
        if "*" in as_list(statement["Resource"]):
            assert set(actions) <= set(STAR_RESOURCE_ACTIONS), f"{role}: {actions} on '*'"


def test_every_function_has_its_own_role(transformed: dict[str, Any]) -> None:
    functions = resources(transformed, "AWS::Lambda::Function")
    assert len(functions) == 2
    roles = {f["Properties"]["Role"]["Fn::GetAtt"][0] for f in functions.values()}
    assert roles == {"UploadFunctionRole", "DeadLetterFunctionRole"}


def test_everything_that_stores_data_is_encrypted(transformed: dict[str, Any]) -> None:
    for name, bucket in resources(transformed, "AWS::S3::Bucket").items():
        rules = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rules, name
        assert all(bucket["Properties"]["PublicAccessBlockConfiguration"].values()), name
    for name, queue in resources(transformed, "AWS::SQS::Queue").items():
        props = queue["Properties"]
        assert props.get("SqsManagedSseEnabled") or props.get("KmsMasterKeyId"), name
    for name, topic in resources(transformed, "AWS::SNS::Topic").items():
        assert topic["Properties"].get("KmsMasterKeyId"), name


def test_every_bucket_refuses_plain_http(transformed: dict[str, Any]) -> None:
    buckets = set(resources(transformed, "AWS::S3::Bucket"))
    guarded = set()
    for policy in resources(transformed, "AWS::S3::BucketPolicy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Deny" and "aws:SecureTransport" in str(statement):
                guarded.add(policy["Properties"]["Bucket"]["Ref"])
    assert guarded == buckets


def test_every_queue_that_takes_work_has_a_dead_letter_queue(transformed: dict[str, Any]) -> None:
    queues = resources(transformed, "AWS::SQS::Queue")
    dead_letter_queues = {
        q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for q in queues.values()
        if "RedrivePolicy" in q["Properties"]
    }
    working = set(queues) - dead_letter_queues
    assert working == {"UploadEventsQueue", "TaskQueue", "NotificationQueue"}
    for name in working:
        assert "RedrivePolicy" in queues[name]["Properties"], name


def test_visibility_timeouts_suit_their_consumers() -> None:
    doc = template.load()
    res = doc["Resources"]
    upload_timeout = doc["Globals"]["Function"]["Timeout"]
    assert res["UploadEventsQueue"]["Properties"]["VisibilityTimeout"] >= 6 * upload_timeout
    # The worker renews exactly the task queue's visibility timeout.
    (container,) = res["WorkerTaskDefinition"]["Properties"]["ContainerDefinitions"]
    env = {item["Name"]: item["Value"] for item in container["Environment"]}
    queue_timeout = res["TaskQueue"]["Properties"]["VisibilityTimeout"]
    assert (
        env["PIPELINE_TASK_VISIBILITY_SECONDS"] == queue_timeout == {"Ref": "TaskVisibilityTimeout"}
    )


def test_the_worker_keeps_the_memory_its_allocator_frees() -> None:
    """Freed memory given back after 10 ms came back as fresh pages for every chunk."""
    res = template.load()["Resources"]
    (container,) = res["WorkerTaskDefinition"]["Properties"]["ContainerDefinitions"]
    env = {item["Name"]: item["Value"] for item in container["Environment"]}
    assert env["MIMALLOC_PURGE_DELAY"] == "-1"


def test_the_stack_outputs_contract() -> None:
    outputs = set(template.load()["Outputs"])
    assert {
        "InputBucketName",
        "OutputBucketName",
        "ModelBucketName",
        "NotificationTopicArn",
        "NotificationQueueUrl",
        "TaskQueueUrl",
        "TaskDeadLetterQueueUrl",
    } <= outputs


def test_workers_scale_on_backlog_and_can_leave_zero(transformed: dict[str, Any]) -> None:
    policies = resources(transformed, "AWS::ApplicationAutoScaling::ScalingPolicy")
    tracking = policies["WorkerBacklogPolicy"]["Properties"][
        "TargetTrackingScalingPolicyConfiguration"
    ]
    metrics = {m["Id"]: m for m in tracking["CustomizedMetricSpecification"]["Metrics"]}
    assert metrics["backlog"]["Expression"] == "(waiting + inflight) / IF(tasks > 0, tasks, 1)"
    alarm = resources(transformed, "AWS::CloudWatch::Alarm")["WorkerFromZeroAlarm"]
    assert alarm["Properties"]["AlarmActions"] == [{"Ref": "WorkerFromZeroPolicy"}]


def test_the_dashboard_is_json_and_charts_the_metrics_the_code_emits() -> None:
    """The dashboard body is a !Sub string: substituted, it must parse and name real metrics."""
    import json
    import re

    from pipeline import metrics

    body, variables = template.load()["Resources"]["PipelineDashboard"]["Properties"][
        "DashboardBody"
    ]["Fn::Sub"]
    names = set(re.findall(r"\$\{([A-Za-z:]+)\}", body))
    assert names <= {*variables, "AWS::Region", "WorkerCluster"}
    dashboard = json.loads(re.sub(r"\$\{[A-Za-z:]+\}", "x", body))

    charted = [
        row
        for widget in dashboard["widgets"]
        for row in widget["properties"]["metrics"]
        if isinstance(row[0], str) and row[0] == metrics.NAMESPACE
    ]
    assert charted
    for row in charted:
        assert row[1] in metrics.UNITS
        dimensions = row[2:]
        keys = [d for d in dimensions[::2] if isinstance(d, str)]
        assert keys in metrics.DIMENSION_SETS
