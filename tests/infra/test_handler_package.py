"""The functions' deployment package: small, without the scoring side, and working alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeline.local import emulator, template
from pipeline.local.provision import provision
from pipeline.settings import child_environment
from pipeline.stores.model_store import ModelStore
from tests.conftest import REGION, infra_module, unique

package_handler = infra_module("package_handler")


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("handler-package")
    package_handler.build(out)
    return out


def test_the_package_holds_the_handlers_and_nothing_of_the_scoring_side(package: Path) -> None:
    ours = sorted(str(p.relative_to(package)) for p in package.glob("pipeline/**/*.py"))
    assert "pipeline/functions/intake.py" in ours
    assert "pipeline/functions/dead_letters.py" in ours
    for absent in (
        "pipeline/worker/main.py",
        "pipeline/scoring/model.py",
        "pipeline/local/stack.py",
    ):
        assert absent not in ours
    assert [name for name in package_handler.HEAVY if (package / name).exists()] == []
    assert package_handler.size_mb(package) < 80


def test_the_packaged_handler_enqueues_a_file_on_its_own(
    package: Path, aws_endpoint: str, s3: Any, sqs: Any, binary_model: Any
) -> None:
    stack = provision(template.load(), unique("pkg"), REGION)
    try:
        env = stack.properties["UploadFunction"]["Environment"]["Variables"]
        ModelStore(s3, env["PIPELINE_MODEL_BUCKET"]).publish(
            "churn",
            binary_model.model_to_string().encode(),
            "m",
        )
        put = s3.put_object(Bucket=env["PIPELINE_INPUT_BUCKET"], Key="churn/a.csv", Body=b"x\n1\n")
        event = {
            "Records": [
                {
                    "messageId": "m1",
                    "receiptHandle": "r",
                    "attributes": {},
                    "body": json.dumps(
                        {
                            "Records": [
                                {
                                    "eventName": "ObjectCreated:Put",
                                    "eventTime": "2026-11-21T07:00:00Z",
                                    "s3": {
                                        "bucket": {"name": env["PIPELINE_INPUT_BUCKET"]},
                                        "object": {
                                            "key": "churn/a.csv",
                                            "eTag": put["ETag"].strip('"'),
                                            "size": 4,
                                        },
                                    },
                                }
                            ]
                        }
                    ),
                }
            ]
        }
        code = (
            "import json, sys\n"
            f"sys.path.insert(0, {str(package)!r})\n"
            "from handlers.upload import lambda_handler\n"
            "print(json.dumps(lambda_handler(json.loads(sys.stdin.read()), None)))\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('celery', 'kombu', 'lightgbm', 'numpy', 'pyarrow', 'pycurl')))\n"
        )
        run = subprocess.run(
            [sys.executable, "-S", "-I", "-c", code],
            input=json.dumps(event),
            env=child_environment({**emulator.environment(aws_endpoint, REGION), **env}),
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        result, imported = run.stdout.strip().splitlines()[-2:]
        assert json.loads(result) == {"batchItemFailures": []}
        assert imported == "[]"
        got = sqs.receive_message(QueueUrl=env["PIPELINE_TASK_QUEUE_URL"], WaitTimeSeconds=2)
        assert json.loads(got["Messages"][0]["Body"])["headers"]["task"] == "pipeline.score"
    finally:
        stack.destroy()


def test_importing_the_handlers_cold_is_quick(package: Path) -> None:
    assert min(package_handler.cold_import_seconds(package) for _ in range(3)) < 2.0
