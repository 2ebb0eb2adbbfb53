"""Creating a stack's resources on the emulator by reading ``template.yaml``.

moto's CloudFormation would skip exactly the parts that make the pipeline a
pipeline (SAM functions, SNS subscriptions, bucket notifications, queue
policies), so the local stack creates the storage and messaging resources
itself, through the same APIs CloudFormation would call, in dependency order.
Compute resources (functions, containers, roles, alarms) are played by local
processes instead and are listed as ``emulated_elsewhere``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from pipeline.local.template import ACCOUNT_ID, Evaluator, TemplateError, references
from pipeline.stores import aws

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient


@dataclass
class _Clients:
    s3: S3Client
    sqs: SQSClient
    sns: SNSClient


@dataclass
class Stack:
    """What was created for one stack, and how to remove it."""

    name: str
    region: str
    outputs: dict[str, str]
    resources: list[tuple[str, str, str]] = field(default_factory=list)  # (type, id, physical)
    emulated_elsewhere: list[str] = field(default_factory=list)
    #: Resolved properties of every resource, by logical id (functions' environment, …).
    properties: dict[str, dict[str, Any]] = field(default_factory=dict)

    def destroy(self) -> None:
        clients = _clients(self.region)
        for kind, _logical, physical in reversed(self.resources):
            _DELETERS.get(kind, _keep)(clients, physical)


def provision(
    template: Mapping[str, Any],
    stack_name: str,
    region: str,
    parameters: Mapping[str, str] | None = None,
) -> Stack:
    resources: dict[str, Any] = template["Resources"]
    evaluate = Evaluator(template, stack_name, region, parameters)
    clients = _clients(region)
    stack = Stack(name=stack_name, region=region, outputs={})
    order = TopologicalSorter(
        {name: _dependencies(spec, resources) for name, spec in resources.items()}
    )
    try:
        for logical_id in order.static_order():
            spec = resources[logical_id]
            kind = spec["Type"]
            creator = _CREATORS.get(kind)
            if creator is None:
                stack.emulated_elsewhere.append(f"{logical_id} ({kind})")
                stack.properties[logical_id] = _try_resolve(evaluate, spec.get("Properties", {}))
                continue
            properties = evaluate(spec.get("Properties", {}))
            stack.properties[logical_id] = properties
            physical = creator(clients, evaluate, logical_id, properties, region)
            stack.resources.append((kind, logical_id, physical))
        for name, output in template.get("Outputs", {}).items():
            refs = set(references(output["Value"]))
            if all(evaluate.knows(r) or r.startswith("AWS::") for r in refs):
                stack.outputs[name] = str(evaluate(output["Value"]))
    except Exception:
        stack.destroy()
        raise
    return stack


def _dependencies(spec: Mapping[str, Any], resources: Mapping[str, Any]) -> set[str]:
    depends = spec.get("DependsOn", [])
    named = {depends} if isinstance(depends, str) else set(depends)
    named |= set(references(spec.get("Properties", {})))
    return {name for name in named if name in resources}


def _try_resolve(evaluate: Evaluator, properties: Any) -> Any:
    """Properties of a resource the stack does not create, as far as they resolve.

    A value that refers to something the local stack lacks (a log group, a
    subnet parameter) becomes None; everything else resolves, so a container's
    ``Environment`` can be read from its task definition.
    """
    if isinstance(properties, list):
        return [_try_resolve(evaluate, item) for item in properties]
    if not isinstance(properties, dict):
        return properties
    if len(properties) == 1 and next(iter(properties)).startswith(("Ref", "Fn::")):
        try:
            return evaluate(properties)
        except TemplateError:
            return None
    return {key: _try_resolve(evaluate, value) for key, value in properties.items()}


def _clients(region: str) -> _Clients:
    return _Clients(aws.s3_client(region), aws.sqs_client(region), aws.sns_client(region))


# ---- creators: (clients, evaluate, logical id, resolved properties, region) -> physical id

Creator = Callable[[_Clients, Evaluator, str, dict[str, Any], str], str]

_QUEUE_ATTRIBUTES = (
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds",
    "MaximumMessageSize",
    "SqsManagedSseEnabled",
)


def _queue(c: _Clients, ev: Evaluator, logical: str, p: dict[str, Any], region: str) -> str:
    attributes = {name: _attribute_text(p[name]) for name in _QUEUE_ATTRIBUTES if name in p}
    if "RedrivePolicy" in p:
        attributes["RedrivePolicy"] = json.dumps(
            {k: str(v) if k == "maxReceiveCount" else v for k, v in p["RedrivePolicy"].items()}
        )
    name = str(p["QueueName"])
    url = c.sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]  # type: ignore[arg-type]
    arn = f"arn:aws:sqs:{region}:{ACCOUNT_ID}:{name}"
    ev.record(logical, url, Arn=arn, QueueName=name, QueueUrl=url)
    return url


def _attribute_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _queue_policy(c: _Clients, ev: Evaluator, logical: str, p: dict[str, Any], region: str) -> str:
    for url in p["Queues"]:
        c.sqs.set_queue_attributes(
            QueueUrl=url, Attributes={"Policy": json.dumps(p["PolicyDocument"])}
        )
    ev.record(logical, logical)
    return ""


def _bucket(c: _Clients, ev: Evaluator, logical: str, p: dict[str, Any], region: str) -> str:
    name = str(p["BucketName"])
    if region == "us-east-1":
        c.s3.create_bucket(Bucket=name)
    else:
        c.s3.create_bucket(
            Bucket=name,
            CreateBucketConfiguration={"LocationConstraint": region},  # type: ignore[typeddict-item]
        )
    if "BucketEncryption" in p:
        c.s3.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {"ApplyServerSideEncryptionByDefault": r["ServerSideEncryptionByDefault"]}
                    for r in p["BucketEncryption"]["ServerSideEncryptionConfiguration"]
                ]
            },
        )
    if "PublicAccessBlockConfiguration" in p:
        c.s3.put_public_access_block(
            Bucket=name, PublicAccessBlockConfiguration=p["PublicAccessBlockConfiguration"]
        )
    rules = p.get("LifecycleConfiguration", {}).get("Rules", [])
    if rules:
        c.s3.put_bucket_lifecycle_configuration(
            Bucket=name, LifecycleConfiguration={"Rules": [_lifecycle_rule(r) for r in rules]}
        )
    if "VersioningConfiguration" in p:
        c.s3.put_bucket_versioning(
            Bucket=name, VersioningConfiguration={"Status": p["VersioningConfiguration"]["Status"]}
        )
    queues = p.get("NotificationConfiguration", {}).get("QueueConfigurations", [])
    if queues:
        c.s3.put_bucket_notification_configuration(
            Bucket=name,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {"QueueArn": q["Queue"], "Events": [q["Event"]]} for q in queues
                ]
            },
        )
    ev.record(logical, name, Arn=f"arn:aws:s3:::{name}", DomainName=f"{name}.s3.amazonaws.com")
    return name


def _lifecycle_rule(rule: dict[str, Any]) -> Any:
    """A CloudFormation lifecycle rule in the S3 API's shape."""
    api: dict[str, Any] = {
        "ID": rule.get("Id", ""),
        "Status": rule["Status"],
        "Filter": {"Prefix": rule.get("Prefix", "")},
    }
    if "NoncurrentVersionExpiration" in rule:
        days = int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])
        api["NoncurrentVersionExpiration"] = {"NoncurrentDays": days}
    if "AbortIncompleteMultipartUpload" in rule:
        api["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
    if "ExpirationInDays" in rule:
        api["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    return api


def _bucket_policy(c: _Clients, ev: Evaluator, logical: str, p: dict[str, Any], region: str) -> str:
    """Apply a bucket policy, less its TLS-only statements.

    The emulator speaks plain HTTP on loopback, and moto enforces bucket
    policies: a deny on ``aws:SecureTransport`` would refuse every local request.
    """
    document = dict(p["PolicyDocument"])
    document["Statement"] = [
        statement
        for statement in document["Statement"]
        if "aws:SecureTransport" not in json.dumps(statement.get("Condition", {}))
    ]
    if document["Statement"]:
        c.s3.put_bucket_policy(Bucket=p["Bucket"], Policy=json.dumps(document))
    ev.record(logical, logical)
    return ""


def _topic(c: _Clients, ev: Evaluator, logical: str, p: dict[str, Any], region: str) -> str:
    attributes = {"KmsMasterKeyId": p["KmsMasterKeyId"]} if "KmsMasterKeyId" in p else {}
    arn = c.sns.create_topic(Name=p["TopicName"], Attributes=attributes)["TopicArn"]
    ev.record(logical, arn, TopicArn=arn, TopicName=p["TopicName"])
    return arn


def _subscription(c: _Clients, ev: Evaluator, logical: str, p: dict[str, Any], region: str) -> str:
    attributes = {"RawMessageDelivery": "true"} if p.get("RawMessageDelivery") else {}
    if "FilterPolicy" in p:
        attributes["FilterPolicy"] = json.dumps(p["FilterPolicy"])
    response = c.sns.subscribe(
        TopicArn=p["TopicArn"],
        Protocol=p["Protocol"],
        Endpoint=p["Endpoint"],
        Attributes=attributes,
        ReturnSubscriptionArn=True,
    )
    arn = str(response["SubscriptionArn"])
    ev.record(logical, arn)
    return arn


_CREATORS: dict[str, Creator] = {
    "AWS::SQS::Queue": _queue,
    "AWS::SQS::QueuePolicy": _queue_policy,
    "AWS::S3::Bucket": _bucket,
    "AWS::S3::BucketPolicy": _bucket_policy,
    "AWS::SNS::Topic": _topic,
    "AWS::SNS::Subscription": _subscription,
}


def _keep(c: _Clients, physical: str) -> None:
    """Resources that go with their owner (a queue policy with its queue)."""


def _delete_bucket(c: _Clients, name: str) -> None:
    try:
        uploads = c.s3.list_multipart_uploads(Bucket=name).get("Uploads", [])
        for upload in uploads:
            c.s3.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
        paginator = c.s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=name):
            doomed = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
            ]
            if doomed:
                c.s3.delete_objects(Bucket=name, Delete={"Objects": doomed})  # type: ignore[typeddict-item]
        c.s3.delete_bucket(Bucket=name)
    except ClientError:
        pass


def _delete_queue(c: _Clients, url: str) -> None:
    with contextlib.suppress(ClientError):
        c.sqs.delete_queue(QueueUrl=url)


def _delete_topic(c: _Clients, arn: str) -> None:
    with contextlib.suppress(ClientError):
        c.sns.delete_topic(TopicArn=arn)


def _unsubscribe(c: _Clients, arn: str) -> None:
    with contextlib.suppress(ClientError):
        c.sns.unsubscribe(SubscriptionArn=arn)


_DELETERS: dict[str, Callable[[_Clients, str], None]] = {
    "AWS::S3::Bucket": _delete_bucket,
    "AWS::SQS::Queue": _delete_queue,
    "AWS::SNS::Topic": _delete_topic,
    "AWS::SNS::Subscription": _unsubscribe,
}
