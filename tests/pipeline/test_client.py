"""The Python API against a running local stack: the ``pipeline_stack`` fixture's."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline import (
    Client,
    LocalStack,
    NotificationTimeout,
    NotRetryable,
    StackNotFound,
    Submission,
)
from tests.conftest import REGION, queue_depth, unique

FEATURES = ["age", "income", "score", "balance"]


def customers(rows: int, seed: int = 0) -> tuple[bytes, np.ndarray]:
    x = np.random.default_rng(seed).normal(size=(rows, len(FEATURES)))
    out = io.StringIO()
    out.write("id," + ",".join(FEATURES) + "\n")
    for i, row in enumerate(x):
        out.write(f"{i}," + ",".join(repr(float(v)) for v in row) + "\n")
    return out.getvalue().encode(), x


@pytest.fixture
def model_file(binary_model: Any, tmp_path: Path) -> Path:
    path = tmp_path / "churn.txt"
    binary_model.save_model(str(path))
    return path


def test_a_published_model_scores_a_submitted_file_exactly(
    pipeline_stack: Client, model_file: Path, binary_model: Any, tmp_path: Path
) -> None:
    name = unique("churn")
    data, x = customers(300)
    (tmp_path / "customers.csv").write_bytes(data)

    version = pipeline_stack.publish_model(model_file, name=name)
    note = pipeline_stack.submit(tmp_path / "customers.csv", model=name)

    assert (version.name, version.version, version.info.feature_names) == (name, 1, FEATURES)
    assert note.status == "succeeded", note.error
    assert note.input is not None
    assert note.input.key == f"{name}/customers.csv"
    assert note.output is not None
    assert note.model is not None
    assert note.model.version == 1
    body = pipeline_stack.s3.get_object(Bucket=note.output.bucket, Key=note.output.key)
    rows = list(csv.DictReader(io.StringIO(body["Body"].read().decode())))
    assert [int(r["id"]) for r in rows] == list(range(300))
    assert np.array_equal([float(r["prediction"]) for r in rows], binary_model.predict(x))


def test_bytes_are_submitted_now_and_waited_for_later(
    pipeline_stack: Client, model_file: Path
) -> None:
    name = unique("later")
    pipeline_stack.publish_model(model_file.read_bytes(), name=name)
    data, _ = customers(20)

    submission = pipeline_stack.submit(data, model=name, key="in/batch.csv", wait=False)
    note = pipeline_stack.wait(submission, timeout=120)

    assert isinstance(submission, Submission)
    assert submission.key == f"{name}/in/batch.csv"
    assert note.status == "succeeded"
    assert note.input is not None
    assert note.input.etag == submission.etag
    with pytest.raises(ValueError, match="give key="):
        pipeline_stack.submit(data, model=name)


def test_a_bad_file_is_answered_with_what_and_where(
    pipeline_stack: Client, model_file: Path
) -> None:
    name = unique("bad")
    pipeline_stack.publish_model(model_file, name=name)

    note = pipeline_stack.submit(
        b"id,age,income,score,balance\n1,1,2,3,4\n2,1,oops,3,4\n", model=name, key="bad.csv"
    )

    assert note.status == "failed"
    assert note.error is not None
    assert note.error.code == "bad_value"
    assert "income" in note.error.message
    assert "row 2" in note.error.message


def test_a_failed_file_is_retried_once_its_model_exists(
    pipeline_stack: Client, model_file: Path
) -> None:
    name = unique("late")
    data, _ = customers(10)

    first = pipeline_stack.submit(data, model=name, key="early.csv", force=True)
    pipeline_stack.publish_model(model_file, name=name)
    request = pipeline_stack.retry(first.job_id)
    assert request is not None
    second = pipeline_stack.wait(request.job_id, timeout=120)

    assert (first.status, first.error and first.error.code) == ("failed", "unknown_model")
    assert (second.status, second.run, second.job_id) == ("succeeded", 1, request.job_id)
    with pytest.raises(NotRetryable, match="retried already"):
        pipeline_stack.retry(first.job_id)


def test_notifications_reach_every_listener_and_leave_the_stacks_queue_alone(
    pipeline_stack: Client, model_file: Path
) -> None:
    name = unique("watched")
    pipeline_stack.publish_model(model_file, name=name)
    queue = pipeline_stack.outputs["NotificationQueueUrl"]
    before = queue_depth(pipeline_stack.sqs, queue)
    data, _ = customers(5)

    with Client(pipeline_stack.outputs) as watcher:
        arriving = watcher.notifications(timeout=60)
        answer = pipeline_stack.submit(data, model=name, key="w.csv")
        seen = next(n for n in arriving if n.job_id == answer.job_id)

    assert seen == answer
    assert queue_depth(pipeline_stack.sqs, queue) == before + 1


def test_status_shows_the_queues_and_the_latest_outcomes(
    pipeline_stack: Client, model_file: Path
) -> None:
    name = unique("status")
    pipeline_stack.publish_model(model_file, name=name)
    answer = pipeline_stack.submit(customers(5)[0], model=name, key="s.csv")

    status = pipeline_stack.status(jobs=50)

    assert (status.waiting, status.dead_letters) == (0, 0)
    assert answer.job_id in [n.job_id for n in status.recent]


def test_waiting_in_vain_says_so(pipeline_stack: Client) -> None:
    with pytest.raises(NotificationTimeout, match="no-such-job"):
        pipeline_stack.wait("no-such-job", timeout=1)


def test_a_client_comes_from_an_outputs_file_or_says_there_is_none(
    pipeline_stack: Client, tmp_path: Path
) -> None:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(pipeline_stack.outputs))

    assert Client.from_file(path).status().waiting == 0
    with pytest.raises(StackNotFound, match="pipeline dev"):
        Client.from_file(tmp_path / "absent.json")
    with pytest.raises(StackNotFound, match="cannot read stack"):
        Client.from_stack(unique("absent"), region=REGION)
    with pytest.raises(StackNotFound, match="no output ModelBucketName"):
        Client({"StackName": "other"}).models  # noqa: B018


def test_a_local_stack_gives_back_the_environment_it_borrowed(
    aws_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://elsewhere.invalid")
    monkeypatch.delenv("AWS_REGION", raising=False)
    stack = LocalStack(
        stack_name=unique("env"), endpoint_url=aws_endpoint, workers=0, sink=lambda _: None
    )

    with stack:
        during = os.environ["AWS_ENDPOINT_URL"]

    assert during == aws_endpoint
    assert os.environ["AWS_ENDPOINT_URL"] == "http://elsewhere.invalid"
    assert "AWS_REGION" not in os.environ


def test_a_client_only_install_submits_and_waits(
    pipeline_stack: Client, model_file: Path, tmp_path: Path
) -> None:
    """The package without extras, in a fresh environment: no Celery, LightGBM or moto."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    root = Path(__file__).resolve().parents[2]
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", str(root)],
        check=True,
        timeout=600,
        capture_output=True,
    )
    name = unique("thin")
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(pipeline_stack.outputs))
    (tmp_path / "customers.csv").write_bytes(customers(50)[0])
    script = (
        "import sys\n"
        "from pipeline import Client\n"
        f"with Client.from_file({str(outputs)!r}) as client:\n"
        f"    client.publish_model({str(model_file)!r}, name={name!r})\n"
        f"    note = client.submit({str(tmp_path / 'customers.csv')!r}, model={name!r})\n"
        "print(note.model_dump_json())\n"
        "heavy = ('celery', 'kombu', 'lightgbm', 'numpy', 'pyarrow', 'moto', 'llvmlite')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    # Nothing of this process's AWS variables: the outputs file is all it needs.
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    run = subprocess.run(
        [python, "-c", script], env=env, capture_output=True, text=True, timeout=180, check=False
    )
    installed = subprocess.run(
        [python, "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )

    assert run.returncode == 0, run.stderr
    note_line, imported = run.stdout.strip().splitlines()[-2:]
    assert json.loads(note_line)["status"] == "succeeded"
    assert imported == "[]"
    names = {p["name"].lower() for p in json.loads(installed.stdout)}
    assert "lgbm-pipeline" in names
    assert names.isdisjoint({"celery", "kombu", "lightgbm", "numpy", "pyarrow", "moto"})


def test_the_readme_example_runs_as_written(tmp_path: Path) -> None:
    from tests.conftest import readme_example, run_as_a_user

    run = run_as_a_user([sys.executable, "-c", readme_example("## Use it from Python")], tmp_path)

    assert run.returncode == 0, run.stderr[-3000:]
    status, header, first, second = run.stdout.strip().splitlines()[-4:]
    assert status.startswith("succeeded churn v1 churn/customers/")
    assert header == "id,age,income,prediction"
    assert (first.split(",")[0], second.split(",")[0]) == ("0", "1")
