"""Who each part of a local stack is when its emulator enforces IAM (``--enforce-iam``).

The template's roles become roles on the emulator, with the template's own
policy documents resolved against the local resources (the same documents a
deploy creates: the functions name their roles, so the SAM transform passes
them through unchanged). Each part of the stack then runs as its role would
in AWS, on credentials from ``AssumeRole``: the upload function and its
event-source mapping as ``UploadFunctionRole``, the dead-letter function as
``DeadLetterFunctionRole``, every worker as ``WorkerTaskRole``. People get
``ClientPolicy`` through a user of their own (its keys go to the outputs
file). The supervisor plays AWS's own services (ECS, Application Auto
Scaling), which act with service-linked roles the template does not declare:
it gets exactly what it asks of AWS, the task queue's depth.

Everything is created while the emulator still admits anyone, then
``Emulator.enforce`` turns checking on. moto's access control evaluates
identity policies' actions and resources; it ignores conditions, resource
policies (bucket and queue policies), permission boundaries and KMS, so a
stack that passes here can still be refused by those in AWS.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import boto3

from pipeline.local.provision import Stack
from pipeline.local.template import TemplateError
from pipeline.stores import aws

#: The roles the local stack's parts take, by the template's logical ids.
UPLOAD_ROLE = "UploadFunctionRole"
DEAD_LETTER_ROLE = "DeadLetterFunctionRole"
WORKER_ROLE = "WorkerTaskRole"
CLIENT_POLICY = "ClientPolicy"
_SESSION_SECONDS = 12 * 3600


@dataclass(frozen=True)
class Identity:
    """Credentials of one identity on the emulator."""

    name: str
    access_key_id: str
    secret_access_key: str
    session_token: str = ""

    def environment(self) -> dict[str, str]:
        """The standard variables that make a process this identity."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": self.session_token,
        }

    def session(self, region: str) -> boto3.Session:
        return boto3.Session(
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            aws_session_token=self.session_token or None,
            region_name=region,
        )


@dataclass(frozen=True)
class Identities:
    roles: dict[str, Identity]
    #: A user holding the template's ``ClientPolicy`` (``client_policy_arn``): what people may do.
    client: Identity
    client_policy_arn: str
    #: A user allowed everything: the local stack's own provisioning and removal.
    admin: Identity
    supervisor: Identity


def create(template: Mapping[str, Any], stack: Stack, region: str) -> Identities:
    """The template's roles and policies on the emulator, and credentials for each part."""
    _check_functions_name_roles(template)
    session = boto3.Session(region_name=region)
    iam = session.client("iam", config=aws.CONFIG)
    sts = session.client("sts", config=aws.CONFIG)
    prefix = stack.name
    roles: dict[str, Identity] = {}
    for logical, spec in template["Resources"].items():
        if spec["Type"] != "AWS::IAM::Role":
            continue
        properties = stack.properties.get(logical, {})
        name = f"{prefix}-{logical}"[:64]
        arn = iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(_allow_local_assume()),
            Description=str(properties.get("Description") or logical)[:1000],
        )["Role"]["Arn"]
        for policy in properties.get("Policies") or []:
            iam.put_role_policy(
                RoleName=name,
                PolicyName=policy["PolicyName"],
                PolicyDocument=json.dumps(_document(policy["PolicyDocument"], logical)),
            )
        assumed = sts.assume_role(
            RoleArn=arn, RoleSessionName=f"local-{logical}"[:64], DurationSeconds=_SESSION_SECONDS
        )["Credentials"]
        roles[logical] = Identity(
            logical, assumed["AccessKeyId"], assumed["SecretAccessKey"], assumed["SessionToken"]
        )
    missing = {UPLOAD_ROLE, DEAD_LETTER_ROLE, WORKER_ROLE} - set(roles)
    if missing:
        raise TemplateError(f"the template declares no role {', '.join(sorted(missing))}")
    client_policy = stack.properties.get(CLIENT_POLICY, {}).get("PolicyDocument")
    if client_policy is None:
        raise TemplateError(f"the template declares no {CLIENT_POLICY} (AWS::IAM::ManagedPolicy)")
    client_policy_arn = iam.create_policy(
        PolicyName=f"{prefix}-{CLIENT_POLICY}",
        PolicyDocument=json.dumps(_document(client_policy, CLIENT_POLICY)),
    )["Policy"]["Arn"]
    client = _user(iam, f"{prefix}-client", None, attached=client_policy_arn)
    admin = _user(iam, f"{prefix}-admin", _ALLOW_ALL)
    supervisor = _user(
        iam,
        f"{prefix}-supervisor",
        _statements(
            {
                "Effect": "Allow",
                "Action": "sqs:GetQueueAttributes",
                "Resource": _queue_arn(stack, region),
            }
        ),
    )
    return Identities(
        roles=roles,
        client=client,
        client_policy_arn=client_policy_arn,
        admin=admin,
        supervisor=supervisor,
    )


def _check_functions_name_roles(template: Mapping[str, Any]) -> None:
    for logical, spec in template["Resources"].items():
        if spec["Type"] == "AWS::Serverless::Function" and "Role" not in spec.get("Properties", {}):
            raise TemplateError(
                f"{logical} has no Role: the SAM transform would generate one, which the local "
                "stack does not derive; name a role the template declares"
            )


def _queue_arn(stack: Stack, region: str) -> str:
    name = stack.outputs["TaskQueueUrl"].rsplit("/", 1)[-1]
    account = stack.outputs["TaskQueueUrl"].rsplit("/", 2)[-2]
    return f"arn:aws:sqs:{region}:{account}:{name}"


def _user(
    iam: Any, name: str, document: dict[str, Any] | None, attached: str | None = None
) -> Identity:
    iam.create_user(UserName=name[:64])
    if document is not None:
        iam.put_user_policy(
            UserName=name[:64], PolicyName="local-stack", PolicyDocument=json.dumps(document)
        )
    if attached is not None:
        iam.attach_user_policy(UserName=name[:64], PolicyArn=attached)
    key = iam.create_access_key(UserName=name[:64])["AccessKey"]
    return Identity(name, key["AccessKeyId"], key["SecretAccessKey"])


def _allow_local_assume() -> dict[str, Any]:
    """A trust policy the local stack's own identity can assume (AWS services are not here)."""
    return _statements({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"})


def _statements(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


_ALLOW_ALL = _statements({"Effect": "Allow", "Action": "*", "Resource": "*"})


def _document(document: Any, owner: str) -> dict[str, Any]:
    """A resolved policy document; statements on resources the local stack lacks (log
    groups: its logs go to files) are left out, since nothing here can use them."""
    if not isinstance(document, dict):
        raise TemplateError(f"{owner}: a policy document that does not resolve")
    kept = []
    for statement in document.get("Statement", []):
        resources = statement.get("Resource")
        listed = resources if isinstance(resources, list) else [resources]
        if any(resource is None for resource in listed):
            continue
        kept.append(statement)
    return {**document, "Statement": kept}
