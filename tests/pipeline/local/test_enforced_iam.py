"""The template's IAM proven on the laptop: a stack whose emulator checks every request.

Each part runs as its template role, the CLI as the template's ClientPolicy
(the keys in the outputs file). Everything a user does goes through here once;
then a permission is taken out of a copy of the template, and the path that
needs it fails, naming the action and the resource.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from pipeline.client.api import Client
from pipeline.local import template
from pipeline.local.identities import WORKER_ROLE
from pipeline.local.stack import LocalStack
from tests.conftest import REGION, TEST_SETTINGS, outputs_file, unique

PIPELINE = [sys.executable, "-m", "pipeline.client.cli"]


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(
        stack_name=unique("iam"),
        region=REGION,
        settings=TEST_SETTINGS,
        sink=lambda _line: None,
        enforce_iam=True,
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def outputs(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return outputs_file(stack, tmp_path_factory.mktemp("iam"))


def cli(outputs: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*PIPELINE, *args, "--outputs", str(outputs)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert not check or done.returncode == 0, done.stderr
    return done


def test_everything_a_user_does_works_with_the_client_policy_alone(
    stack: LocalStack,
    outputs: Path,
    tmp_path: Path,
    binary_model: Any,
    challenger_model: Any,
) -> None:
    assert stack.outputs["ClientAccessKeyId"] != "testing"
    assert stack.outputs["ClientPolicyArn"].endswith("-ClientPolicy")
    models = tmp_path / "v1.txt", tmp_path / "v2.txt"
    binary_model.save_model(str(models[0]))
    challenger_model.save_model(str(models[1]))
    data = tmp_path / "people.csv"
    data.write_text("id,age,income,score,balance\n1,1,2,3,4\n2,5,6,7,8\n")
    broken = tmp_path / "broken.csv"
    broken.write_text("id,age\n1,2\n")

    cli(outputs, "model", "publish", str(models[0]), "--name", "churn")
    cli(outputs, "model", "publish", str(models[1]), "--name", "churn")
    cli(outputs, "model", "alias", "churn", "champion", "1")
    cli(outputs, "model", "shadow", "churn", "2")
    listed = cli(outputs, "model", "list").stdout
    scored = json.loads(
        cli(outputs, "submit", str(data), "--model", "churn", "--wait", "-o", str(tmp_path)).stdout
    )
    failed = json.loads(
        cli(outputs, "submit", str(broken), "--model", "churn", "--wait", check=False).stdout
    )
    retried = cli(outputs, "retry", failed["job_id"], check=False)
    got = cli(outputs, "get", scored["job_id"], "-o", "-").stdout
    report = cli(outputs, "report", scored["job_id"]).stdout
    shadow = cli(outputs, "report", scored["job_id"], "--shadow").stdout
    bucket = stack.outputs["InputBucketName"]
    rescored = cli(outputs, "rescore", f"s3://{bucket}/churn/people.csv", "--model-version", "2",
                   "--wait")  # fmt: skip
    status = cli(outputs, "status").stdout
    logs = cli(outputs, "logs", scored["job_id"]).stdout

    assert "@champion" in listed
    assert scored["status"] == "succeeded"
    assert scored["model"] == {"name": "churn", "version": 1, "alias": "champion"}
    assert scored["shadow"]["version"] == 2
    assert failed["error"]["code"] == "schema_mismatch"
    assert retried.returncode == 0, retried.stderr
    assert got.splitlines()[0] == "id,age,income,score,balance,prediction"
    assert "largest PSI" in report
    assert "against shadow v2" in shadow
    assert "1 started now" in rescored.stdout
    assert "dead-letter queue: 0" in status
    assert "scoring" in logs


def test_requests_with_unknown_credentials_are_refused(stack: LocalStack) -> None:
    anyone = boto3.client(
        "s3",
        endpoint_url=stack.endpoint_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with pytest.raises(ClientError, match="InvalidAccessKeyId"):
        anyone.list_objects_v2(Bucket=stack.outputs["InputBucketName"])


def test_a_part_may_do_what_its_role_allows_and_no_more(stack: LocalStack) -> None:
    assert stack.identities is not None
    worker = stack.identities.roles[WORKER_ROLE].session(REGION)
    s3 = worker.client("s3", endpoint_url=stack.endpoint_url)
    bucket = stack.outputs["InputBucketName"]
    Client.from_local(stack).s3.put_object(Bucket=bucket, Key="churn/mine.csv", Body=b"a\n1\n")

    assert s3.get_object(Bucket=bucket, Key="churn/mine.csv")["Body"].read() == b"a\n1\n"
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=bucket, Key="churn/mine.csv")  # workers never change inputs
    said = str(refused.value)
    assert "WorkerTaskRole" in said
    assert f"s3:DeleteObject on resource: arn:aws:s3:::{bucket}/churn/mine.csv" in said


def test_a_permission_taken_out_of_the_template_fails_its_path_naming_it(
    tmp_path: Path, binary_model: Any
) -> None:
    text = template.default_path().read_text()
    indent = "\n" + " " * 16
    granted = f"Sid: EnqueueTasks{indent}Effect: Allow{indent}Action: [sqs:SendMessage, "
    assert granted in text
    copy = tmp_path / "template.yaml"
    copy.write_text(text.replace(granted, granted.replace("sqs:SendMessage, ", "")))

    with LocalStack(
        stack_name=unique("iam"),
        region=REGION,
        settings=TEST_SETTINGS,
        sink=lambda _line: None,
        template_path=copy,
        enforce_iam=True,
        logs_dir=tmp_path / "logs",
    ) as stack, Client.from_local(stack) as client:  # fmt: skip
        client.publish_model(binary_model.model_to_string().encode(), name="churn")
        client.submit(b"age,income,score,balance\n1,2,3,4\n", model="churn", key="a.csv",
                      wait=False)  # fmt: skip
        deadline = time.monotonic() + 30
        said = ""
        while "not authorized" not in said and time.monotonic() < deadline:
            time.sleep(0.5)
            said = (tmp_path / "logs" / "local-stack.jsonl").read_text()
        queue = stack.outputs["TaskQueueUrl"].rsplit("/", 1)[-1]

    assert "UploadFunctionRole" in said
    assert f"sqs:SendMessage on resource: arn:aws:sqs:{REGION}:123456789012:{queue}" in said
