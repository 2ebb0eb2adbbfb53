"""The ``pipeline`` command as a user runs it, in real subprocesses."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.conftest import StackFactory, unique

PIPELINE = [sys.executable, "-m", "pipeline.client.cli"]


def run(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PIPELINE, *args], capture_output=True, text=True, check=check, timeout=timeout
    )


def emulator_s3(stack: Any) -> Any:
    """An S3 client of a local stack's emulator, as any AWS tool would make one."""
    return boto3.client(
        "s3",
        endpoint_url=stack.outputs["EndpointUrl"],
        region_name=stack.outputs["Region"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def command_line(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def dev(tmp_path: Path) -> Any:
    outputs = tmp_path / "outputs.json"
    process = subprocess.Popen(
        [*PIPELINE, "dev", "--outputs", str(outputs), "--stack-name", unique("cli")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not outputs.exists():
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        assert time.monotonic() < deadline, "pipeline dev did not become ready"
        time.sleep(0.2)
    yield process, outputs
    if process.poll() is None:
        process.kill()
        process.wait()


def test_dev_submit_watch_and_a_clean_stop(dev: Any, tmp_path: Path, binary_model: Any) -> None:
    process, outputs = dev
    stack = json.loads(outputs.read_text())
    assert {"InputBucketName", "NotificationQueueUrl", "EndpointUrl", "Region"} <= set(stack)
    assert stack["EndpointUrl"].startswith("http://127.0.0.1:")
    model = tmp_path / "model.txt"
    binary_model.save_model(str(model))
    data = tmp_path / "people.csv"
    data.write_text("age,income,score,balance\n1,2,3,4\n5,6,7,8\n")

    published = run("model", "publish", str(model), "--name", "churn", "--outputs", str(outputs))
    listed = run("model", "list", "--outputs", str(outputs))
    waited = run("submit", str(data), "--model", "churn", "--wait", "--outputs", str(outputs))
    # watch shows what is published once it listens, from a queue of its own.
    watch = subprocess.Popen(
        [*PIPELINE, "watch", "--count", "1", "--timeout", "60", "--outputs", str(outputs)],
        stdout=subprocess.PIPE,
        text=True,
    )
    sqs = boto3.client(
        "sqs",
        endpoint_url=stack["EndpointUrl"],
        region_name=stack["Region"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    deadline = time.monotonic() + 30
    while not sqs.list_queues(QueueNamePrefix=f"{stack['StackName']}-listen-").get("QueueUrls"):
        assert time.monotonic() < deadline, "watch never subscribed"
        time.sleep(0.1)
    run("submit", str(data), "--model", "churn", "--key", "again.csv", "--outputs", str(outputs))
    watched_out, _ = watch.communicate(timeout=90)
    # The worker marks itself idle just after it announces: give it a moment.
    deadline = time.monotonic() + 10
    status = run("status", "--outputs", str(outputs)).stdout
    while "(0 busy" not in status and time.monotonic() < deadline:
        time.sleep(0.2)
        status = run("status", "--outputs", str(outputs)).stdout

    assert published.stdout.startswith("published churn version 1: binary, 4 features, 25 trees;")
    assert listed.stdout.startswith("churn\tv1\t")
    note = json.loads(waited.stdout)
    assert note["status"] == "succeeded"
    assert note["input"]["key"] == "churn/people.csv"
    assert note["output"]["rows"] == 2
    (line,) = watched_out.splitlines()
    assert json.loads(line)["input"]["key"] == "churn/again.csv"
    assert "task queue:        0 waiting, 0 in flight" in status
    assert "dead-letter queue: 0" in status
    assert "workers:           1 (0 busy" in status
    assert "succeeded 2 rows" in status
    assert "churn/people.csv" in status

    workers = children_of(process.pid)
    assert workers, "pipeline dev runs its workers as child processes"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    assert not [pid for pid in workers if alive(pid)]
    assert not outputs.exists()


@pytest.mark.parametrize("flags", [(), ("--enforce-iam",)], ids=["default", "enforce-iam"])
def test_ctrl_c_stops_everything_without_replacing_workers(
    tmp_path: Path, flags: tuple[str, ...]
) -> None:
    """A terminal's Ctrl-C signals the whole process group: dev and its workers at once,
    and the stack's emulator, which dev still needs while it cleans up."""
    outputs = tmp_path / "outputs.json"
    process = subprocess.Popen(
        [
            *PIPELINE,
            "dev",
            "--outputs",
            str(outputs),
            "--stack-name",
            unique("int"),
            "--min-workers",
            "2",
            *flags,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not outputs.exists():
        assert process.poll() is None
        assert time.monotonic() < deadline, "pipeline dev did not become ready"
        time.sleep(0.2)
    children = children_of(process.pid)
    emulators = [p for p in children if b"pipeline.local.emulator" in command_line(p)]
    workers = [p for p in children if p not in emulators]

    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=60)

    assert process.returncode == 0
    assert len(workers) == 2
    assert len(emulators) == 1  # the stack's own, apart; it ends when dev is done
    assert "replacing it" not in output
    assert "Traceback" not in output
    assert not [pid for pid in children if alive(pid)]
    assert not outputs.exists()


def test_commands_without_a_running_stack_say_what_to_do(tmp_path: Path) -> None:
    result = run("outputs", "--outputs", str(tmp_path / "none.json"), check=False)
    assert result.returncode == 2
    assert "start one with 'pipeline dev' first" in result.stderr


def test_publishing_something_that_is_not_a_model_is_refused(dev: Any, tmp_path: Path) -> None:
    _process, outputs = dev
    bogus = tmp_path / "model.txt"
    bogus.write_text("not a model\n")

    result = run(
        "model", "publish", str(bogus), "--name", "churn", "--outputs", str(outputs), check=False
    )

    assert result.returncode == 2
    assert "is not a LightGBM text model" in result.stderr


def test_a_deployed_stack_is_found_by_name(aws_endpoint: str) -> None:
    from pipeline.stores import aws

    name = unique("deployed")
    body = (
        '{"Resources": {"Q": {"Type": "AWS::SQS::Queue"}},'
        ' "Outputs": {"TaskQueueUrl": {"Value": {"Ref": "Q"}}}}'
    )
    cloudformation = aws.cloudformation_client("us-east-1")
    cloudformation.create_stack(StackName=name, TemplateBody=body)
    try:
        shown = json.loads(run("outputs", "--stack", name).stdout)
        missing = run("outputs", "--stack", unique("absent"), check=False)
        queue = aws.sqs_client("us-east-1").get_queue_attributes(
            QueueUrl=shown["TaskQueueUrl"], AttributeNames=["QueueArn"]
        )
    finally:
        cloudformation.delete_stack(StackName=name)

    assert shown["StackName"] == name
    assert queue["Attributes"]["QueueArn"].startswith("arn:aws:sqs:us-east-1:")
    assert missing.returncode == 2
    assert "cannot read stack" in missing.stderr


def test_the_version_is_the_packages() -> None:
    from importlib.metadata import version

    assert run("--version").stdout.strip() == f"pipeline {version('lgbm-pipeline')}"


def test_with_no_local_stack_the_stack_comes_from_samconfig(tmp_path: Path) -> None:
    """As sam deploy does: the stack named in samconfig.toml, here where none exists."""
    (tmp_path / "samconfig.toml").write_text(
        'version = 0.1\n[default.global.parameters]\nstack_name = "my-scoring"\n'
    )
    result = subprocess.run(
        [*PIPELINE, "outputs"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
             "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"},
    )  # fmt: skip

    assert result.returncode == 2
    assert "cannot read stack 'my-scoring'" in result.stderr
    assert result.stderr.startswith(
        "pipeline: no local stack was found (.pipeline/outputs.json does not exist: is "
        "'pipeline dev' running here?), so the deployed stack named in samconfig.toml, "
        "'my-scoring', was tried: "
    )


def test_an_unknown_profile_is_said_plainly(tmp_path: Path) -> None:
    result = run("outputs", "--stack", "s", "--profile", "no-such-profile", check=False)

    assert result.returncode == 2
    assert "no-such-profile" in result.stderr
    assert "Traceback" not in result.stderr


def test_status_and_model_list_speak_json(
    local_stack: StackFactory, binary_model: Any, tmp_path: Path
) -> None:
    from tests.conftest import outputs_file, publish

    stack = local_stack()
    version = publish(stack, binary_model)
    outputs = outputs_file(stack, tmp_path)

    status = json.loads(run("status", "--json", "--outputs", str(outputs)).stdout)
    listed = json.loads(run("model", "list", "--json", "--outputs", str(outputs)).stdout)

    assert (status["waiting"], status["dead_letters"]) == (0, 0)
    assert status["recent"] == []
    assert [(m["name"], m["version"], m["sha256"]) for m in listed] == [
        ("churn", 1, version.sha256)
    ]
    assert listed[0]["info"]["objective"] == "binary"


def test_output_options_at_publish_and_submit(
    local_stack: StackFactory, binary_model: Any, tmp_path: Path
) -> None:
    from tests.conftest import outputs_file

    stack = local_stack()
    outputs = outputs_file(stack, tmp_path)
    model = tmp_path / "model.txt"
    binary_model.save_model(str(model))
    data = tmp_path / "people.csv"
    data.write_text("id,age,income,score,balance\n7,1,2,3,4\n8,5,6,7,8\n")
    defaults = ["--columns", "id", "--scores", "prediction,reasons:3", "--threshold", "0.4"]

    run("model", "publish", str(model), "--name", "churn", *defaults, "--outputs", str(outputs))
    listed = run("model", "list", "--outputs", str(outputs)).stdout
    waited = run(
        "submit", str(data), "--model", "churn", "--scores", "label,prediction",
        "--num-iteration", "10", "--wait", "--outputs", str(outputs),
    )  # fmt: skip
    refused = run(
        "submit", str(data), "--model", "churn", "--key", "never.csv", "--scores", "shap",
        "--outputs", str(outputs), check=False,
    )  # fmt: skip

    assert listed.rstrip().endswith("columns=id scores=prediction,reasons:3 threshold=0.4")
    note = json.loads(waited.stdout)
    assert note["output"]["options"] == {
        "columns": ["id"],
        "drop_columns": [],
        "scores": ["label", "prediction"],
        "threshold": 0.4,
        "num_iteration": 10,
        "max_bad_rows": 0,
    }
    s3 = emulator_s3(stack)
    body = s3.get_object(Bucket=note["output"]["bucket"], Key=note["output"]["key"])["Body"]
    header, *lines = csv.reader(body.read().decode().splitlines())
    x = [[1.0, 2, 3, 4], [5, 6, 7, 8]]
    expected = binary_model.predict(x, num_iteration=10)
    assert header == ["id", "label", "prediction"]
    assert [line[0] for line in lines] == ["7", "8"]
    assert [float(line[1]) for line in lines] == [float(p > 0.4) for p in expected]
    assert [float(line[2]) for line in lines] == list(expected)
    assert refused.returncode != 0
    assert "unknown score kind 'shap'" in refused.stderr
    report = run("report", note["job_id"], "--outputs", str(outputs)).stdout
    assert report.startswith(f"job {note['job_id']}: model churn v1, 2 rows, largest PSI n/a")
    assert "prediction: mean" in report
    sample = tmp_path / "train.csv"
    sample.write_text("age,income,score,balance\n" + "1,2,3,4\n0,1,-1,2\n" * 50)
    run(
        "model", "publish", str(model), "--name", "churn", "--baseline", str(sample),
        "--max-psi", "0.3", "--on-quality", "fail", "--outputs", str(outputs),
    )  # fmt: skip
    second = json.loads(run("model", "list", "--json", "--outputs", str(outputs)).stdout)[1]
    assert second["baseline"] is True
    assert second["quality"] == {"max_psi": 0.3, "max_missing": None, "on_quality": "fail"}
    missing = run("report", "nosuchjob", "--outputs", str(outputs), check=False)
    assert missing.returncode == 2
    assert "job nosuchjob has no outcome yet" in missing.stderr
    listing = s3.list_objects_v2(Bucket=stack.outputs["InputBucketName"], Prefix="churn/never")
    assert listing["KeyCount"] == 0


def test_mistakes_are_caught_before_the_upload_with_the_next_step(
    local_stack: StackFactory, binary_model: Any, tmp_path: Path
) -> None:
    from tests.conftest import outputs_file, publish

    stack = local_stack()
    publish(stack, binary_model, "price")
    outputs = outputs_file(stack, tmp_path)
    data = tmp_path / "f.csv"
    data.write_text("age,income,score,balance\n1,2,3,4\n")

    typo = run("submit", str(data), "--model", "prcie", "--outputs", str(outputs), check=False)
    upper = run("submit", str(data), "--model", "Price", "--outputs", str(outputs), check=False)
    folder = run(
        "submit", str(tmp_path), "--model", "price", "--outputs", str(outputs), check=False
    )
    forced = run(
        "submit", str(data), "--model", "later", "--force", "--outputs", str(outputs), check=False
    )
    assert forced.returncode == 0, forced.stderr
    nosuch = run("model", "list", "--name", "nosuch", "--outputs", str(outputs), check=False)

    assert typo.returncode == 2
    assert "--model prcie: no model named 'prcie' is published (published: price)" in typo.stderr
    assert "did you mean 'price'?" in typo.stderr
    assert "--model Price: 'Price' is not a model name" in upper.stderr
    assert "did you mean 'price'?" in upper.stderr
    assert "key" not in upper.stderr
    assert f"{tmp_path} is a directory" in folder.stderr
    assert "uploaded s3://" in forced.stderr
    assert nosuch.returncode == 2
    assert "no model named 'nosuch' is published (published: price)" in nosuch.stderr
    s3 = emulator_s3(stack)
    keys = [
        o["Key"] for o in s3.list_objects_v2(Bucket=stack.outputs["InputBucketName"])["Contents"]
    ]
    assert keys == ["later/f.csv"]  # only the forced upload went up


def test_every_command_and_argument_says_what_it_is() -> None:
    import argparse

    from pipeline.client.cli import _parser

    missing: list[str] = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {choice.dest: choice.help for choice in action._choices_actions}
                for name, sub in action.choices.items():
                    if not helps.get(name):
                        missing.append(f"{path} {name}")
                    walk(sub, f"{path} {name}")
            elif not action.option_strings and not action.help:
                missing.append(f"{path} {action.dest}")

    walk(_parser(), "pipeline")

    assert missing == []


def test_a_stack_that_died_is_said_in_one_line(tmp_path: Path) -> None:
    """pipeline dev killed: its outputs file stays, its emulator is gone."""
    outputs = tmp_path / "outputs.json"
    outputs.write_text(
        json.dumps(
            {
                "StackName": "gone",
                "Region": "us-east-1",
                "EndpointUrl": "http://127.0.0.1:9",
                "InputBucketName": "in",
                "OutputBucketName": "out",
                "ModelBucketName": "models",
                "NotificationTopicArn": "arn:aws:sns:us-east-1:123456789012:n",
                "NotificationQueueUrl": "http://127.0.0.1:9/123456789012/n",
                "TaskQueueUrl": "http://127.0.0.1:9/123456789012/t",
                "TaskDeadLetterQueueUrl": "http://127.0.0.1:9/123456789012/d",
            }
        )
    )

    status = run("status", "--outputs", str(outputs), check=False)

    assert status.returncode == 2
    assert status.stderr.splitlines() == [
        f"pipeline: the local stack of {outputs} (http://127.0.0.1:9) does not answer: has "
        "'pipeline dev' stopped? Start it again with 'pipeline dev' (a local stack's data "
        "lives only while it runs)"
    ]


def test_a_second_dev_refuses_to_take_over_a_running_stacks_outputs(dev: Any) -> None:
    _process, outputs = dev
    before = outputs.read_text()
    stack = json.loads(before)

    second = run("dev", "--outputs", str(outputs), "--stack-name", unique("cli2"), check=False)

    assert second.returncode == 2
    assert second.stderr.strip() == (
        f"pipeline: {outputs} belongs to a running stack, {stack['StackName']!r} at "
        f"{stack['EndpointUrl']}: stop that 'pipeline dev' first (Ctrl-C in its terminal), or "
        "start this one with --outputs OTHER_FILE"
    )
    assert outputs.read_text() == before


def test_the_result_comes_out_and_a_short_wait_says_how_to_follow(
    local_stack: StackFactory, binary_model: Any, tmp_path: Path
) -> None:
    from tests.conftest import outputs_file, publish

    stack = local_stack()
    publish(stack, binary_model)
    outputs = outputs_file(stack, tmp_path)
    data = tmp_path / "people.csv"
    data.write_text("age,income,score,balance\n1,2,3,4\n5,6,7,8\n")
    scored = tmp_path / "scored.csv"

    waited = run(
        "submit", str(data), "--model", "churn", "--wait", "-o", str(scored),
        "--outputs", str(outputs),
    )  # fmt: skip
    note = json.loads(waited.stdout)
    job = note["job_id"]
    to_stdout = run("get", job, "-o", "-", "--outputs", str(outputs))
    folder = tmp_path / "here"
    folder.mkdir()
    into_folder = run("get", job, "-o", str(folder), "--outputs", str(outputs))
    big = tmp_path / "big.csv"  # long enough to outlast the wait
    big.write_text("age,income,score,balance\n" + "1,2,3,4\n" * 2_000_000)
    short = run(
        "submit", str(big), "--model", "churn", "--wait", "--timeout", "0.01",
        "--outputs", str(outputs), check=False,
    )  # fmt: skip
    status = run("status", "--outputs", str(outputs)).stdout

    assert f"wrote {scored}" in waited.stderr
    assert f"job {job}: follow it with 'pipeline logs {job} --follow'" in waited.stderr
    body = scored.read_bytes()
    assert body.decode().splitlines()[0] == "age,income,score,balance,prediction"
    assert to_stdout.stdout.encode() == body
    saved = folder / note["output"]["key"].rsplit("/", 1)[1]
    assert saved.read_bytes() == body
    assert f"wrote {saved}" in into_folder.stderr
    assert short.returncode == 2
    assert "no answer within 0.01 s (the file may still be running); job " in short.stderr
    assert "Submission(" not in short.stderr
    assert job in status


def test_dev_with_enforce_iam_hands_out_the_client_policys_keys(tmp_path: Path) -> None:
    """The flag as a user types it: the outputs carry the client identity, which works,
    and the emulator refuses the fake keys every other local stack takes."""
    outputs = tmp_path / "outputs.json"
    process = subprocess.Popen(
        [*PIPELINE, "dev", "--enforce-iam", "--outputs", str(outputs), "--stack-name",
         unique("iam")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while not outputs.exists():
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "pipeline dev --enforce-iam did not become ready"
            time.sleep(0.2)
        stack = json.loads(outputs.read_text())
        status = run("status", "--outputs", str(outputs))
        anyone = boto3.client(
            "s3",
            endpoint_url=stack["EndpointUrl"],
            region_name=stack["Region"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        with pytest.raises(Exception, match="InvalidAccessKeyId"):
            anyone.list_objects_v2(Bucket=stack["InputBucketName"])
    finally:
        process.send_signal(signal.SIGINT)
        said, _ = process.communicate(timeout=60)

    assert stack["ClientAccessKeyId"] != "testing"
    assert stack["ClientSecretAccessKey"]
    assert "task queue:" in status.stdout
    assert "IAM enforced" in said
