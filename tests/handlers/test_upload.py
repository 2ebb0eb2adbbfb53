"""The Lambda entry point as Lambda calls it: settings from the environment, an SQS event."""

import json
import subprocess
import sys
from typing import Any

import pytest

from handlers import upload
from tests.conftest import load_event


@pytest.fixture
def function_env(function_environment: Any) -> Any:
    return function_environment("UploadFunction", upload)


def test_the_entry_point_answers_a_canned_event_from_its_environment(
    function_env: Any, sqs: Any
) -> None:
    # The canned key names model 'churn', which this fresh stack has never published.
    result = upload.lambda_handler(load_event("sqs_s3_put"), None)

    assert result == {"batchItemFailures": []}
    got = sqs.receive_message(
        QueueUrl=function_env.outputs["NotificationQueueUrl"], WaitTimeSeconds=2
    )
    (message,) = got["Messages"]
    note = json.loads(message["Body"])
    assert note["input"]["key"] == "churn/2026/Jan report + extra été.csv"
    assert note["error"]["code"] == "input_changed"  # never uploaded to this emulator


def test_the_test_event_is_ignored(function_env: Any) -> None:
    assert upload.lambda_handler(load_event("sqs_s3_test_event"), None) == {"batchItemFailures": []}


def test_the_handler_never_imports_the_scoring_side() -> None:
    code = (
        "import sys, handlers.upload\n"
        "heavy = {'lightgbm', 'pyarrow', 'numpy', 'pandas', 'moto', 'pipeline.scoring'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
