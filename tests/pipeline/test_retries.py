"""``pipeline retry``: a file failed for a cause since fixed runs again, with one new outcome."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.csv as pa_csv
import pytest

from pipeline.client import consumer
from pipeline.client.cli import main
from tests.conftest import StackFactory, outputs_file, publish, unique


def test_a_file_uploaded_before_its_model_succeeds_when_retried_after_publishing(
    local_stack: StackFactory,
    s3: Any,
    sqs: Any,
    binary_model: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stack = local_stack()
    out = stack.outputs
    outputs = outputs_file(stack, tmp_path)
    x = np.random.default_rng(9).normal(size=(300, 4))
    body = (
        b"age,income,score,balance\n"
        + "\n".join(",".join(repr(float(v)) for v in row) for row in x).encode()
    )
    key = f"churn/{unique('early')}.csv"
    etag = s3.put_object(Bucket=out["InputBucketName"], Key=key, Body=body)["ETag"].strip('"')
    queue = out["NotificationQueueUrl"]
    first = consumer.wait_for(sqs, queue, lambda n: n.is_for(key, etag), timeout=60)
    assert first is not None
    assert first.error is not None
    assert first.error.code == "unknown_model"

    publish(stack, binary_model)
    assert main(["retry", first.job_id, "--outputs", str(outputs)]) == 0
    printed = capsys.readouterr().out
    second = consumer.wait_for(sqs, queue, lambda n: n.is_for(key, etag) and n.run == 1, timeout=60)

    assert second is not None
    assert second.status == "succeeded", second.error
    assert f"{first.job_id} -> {second.job_id} (run 1)" in printed
    assert second.output is not None
    data = s3.get_object(Bucket=second.output.bucket, Key=second.output.key)["Body"].read()
    got = pa_csv.read_csv(io.BytesIO(data)).column("prediction").to_numpy()
    assert np.max(np.abs(got - binary_model.predict(x))) <= 1e-12
    # Neither the succeeded run nor the retried failure runs again.
    assert main(["retry", second.job_id, "--outputs", str(outputs)]) == 1
    assert main(["retry", first.job_id, "--outputs", str(outputs)]) == 1
    errors = capsys.readouterr().err
    assert "succeeded: there is nothing to retry" in errors
    assert "was retried already" in errors


def test_failed_since_retries_every_recent_failure_once(
    local_stack: StackFactory, s3: Any, sqs: Any, binary_model: Any, tmp_path: Path
) -> None:
    stack = local_stack()
    out = stack.outputs
    outputs = outputs_file(stack, tmp_path)
    keys = [f"churn/{unique('f')}.csv" for _ in range(3)]
    etags = [
        s3.put_object(Bucket=out["InputBucketName"], Key=k, Body=b"age,income,score,balance\n")[
            "ETag"
        ].strip('"')
        for k in keys
    ]
    for key, etag in zip(keys, etags, strict=True):
        assert consumer.wait_for(
            sqs, out["NotificationQueueUrl"], lambda n, k=key, e=etag: n.is_for(k, e), timeout=60
        )
    publish(stack, binary_model)

    assert main(["retry", "--failed-since", "1h", "--outputs", str(outputs)]) == 0
    reruns = [
        consumer.wait_for(
            sqs,
            out["NotificationQueueUrl"],
            lambda n, k=key, e=etag: n.is_for(k, e) and n.run == 1,
            timeout=60,
        )
        for key, etag in zip(keys, etags, strict=True)
    ]

    assert all(r is not None and r.status == "succeeded" for r in reruns)
    assert main(["retry", "--failed-since", "1h", "--outputs", str(outputs)]) == 0  # none left
