"""End to end: a file uploaded with boto3 is scored by a real solo worker subprocess.

Every path runs through the real parts: the moto server over HTTP, the bucket
notification, the poller calling the upload handler, Celery over SQS, the
worker, SNS fanned out to the notification queue.
"""

from __future__ import annotations

import gzip
import io
from typing import Any

import numpy as np
import pyarrow.csv as pa_csv
import pytest

from pipeline import consumer
from pipeline.messages import Notification
from tests.conftest import unique

TIMEOUT = 60


def submit(stack: Any, s3: Any, sqs: Any, key: str, body: bytes) -> Notification:
    bucket = stack.outputs["InputBucketName"]
    etag = s3.put_object(Bucket=bucket, Key=key, Body=body)["ETag"].strip('"')
    note = consumer.wait_for(
        sqs,
        stack.outputs["NotificationQueueUrl"],
        lambda n: n.input.key == key and n.input.etag == etag,
        timeout=TIMEOUT,
    )
    assert note is not None, f"no notification for {key} within {TIMEOUT} s"
    # Failure is an answer, never a change: the input is still there, byte for byte.
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    return note


def read_output(s3: Any, note: Notification) -> Any:
    assert note.output is not None
    data = s3.get_object(Bucket=note.output.bucket, Key=note.output.key)["Body"].read()
    if note.output.format.endswith(".gz"):
        data = gzip.decompress(data)
    return pa_csv.read_csv(
        io.BytesIO(data),
        convert_options=pa_csv.ConvertOptions(column_types={"id": "string", "extra": "string"}),
    )


def csv_of(x: np.ndarray, columns: list[str], order: list[int]) -> bytes:
    """Rows with a zero-padded id, the features in ``order``, and an extra text column."""
    out = io.StringIO()
    out.write("id," + ",".join(columns[j] for j in order) + ",extra\n")
    for i, row in enumerate(x):
        out.write(f"{i:07d}," + ",".join(repr(float(row[j])) for j in order) + f",r{i}\n")
    return out.getvalue().encode()


def split_edge_rows(booster: Any, rng: np.random.Generator) -> np.ndarray:
    """Rows whose values sit exactly on, and one float64 step above, each split threshold.

    There any loss of precision (float32, a lossy text round trip) sends a row
    down the other branch, so these rows make a precision bug visible.
    """
    rows = []
    for tree in booster.dump_model()["tree_info"]:
        stack = [tree["tree_structure"]]
        while stack:
            node = stack.pop()
            if "split_feature" not in node:
                continue
            stack += [node["left_child"], node["right_child"]]
            for value in (node["threshold"], np.nextafter(node["threshold"], np.inf)):
                row = rng.normal(size=booster.num_feature())
                row[node["split_feature"]] = value
                rows.append(row)
    return np.array(rows)


def test_a_csv_comes_back_scored_in_order_with_every_column(
    scoring_stack: Any, s3: Any, sqs: Any, binary_model: Any
) -> None:
    rng = np.random.default_rng(11)
    edges = split_edge_rows(binary_model, rng)
    x = np.vstack([rng.normal(size=(20_000 - len(edges), 4)), edges])
    x[::97, 2] = np.nan  # missing values are part of real files
    names = binary_model.feature_name()
    body = csv_of(x, names, order=[3, 1, 0, 2]).replace(b",nan,", b",,")
    key = f"churn/{unique('batch')}/jan report+1 é.csv"

    note = submit(scoring_stack, s3, sqs, key, body)

    assert note.status == "succeeded", note.error
    assert note.model is not None
    assert (note.model.name, note.model.version) == ("churn", 1)
    assert note.input.size == len(body)
    assert note.output is not None
    assert note.output.rows == 20_000
    assert note.output.format == "csv"
    assert note.output.key.endswith(f"/{note.job_id}.csv")
    assert note.started_at is not None
    assert note.received_at <= note.started_at <= note.finished_at
    table = read_output(s3, note)
    assert table.column_names == ["id", "balance", "income", "age", "score", "extra", "prediction"]
    assert table.column("id").to_pylist() == [f"{i:07d}" for i in range(20_000)]
    assert table.column("extra").to_pylist()[:3] == ["r0", "r1", "r2"]
    expected = binary_model.predict(x)
    got = table.column("prediction").to_numpy()
    assert np.max(np.abs(got - expected)) <= 1e-9


def test_a_multiclass_model_gives_one_column_per_class(
    scoring_stack: Any, s3: Any, sqs: Any, multiclass_model: Any
) -> None:
    x = np.random.default_rng(5).normal(size=(500, 3))
    body = csv_of(x, multiclass_model.feature_name(), order=[0, 1, 2])

    note = submit(scoring_stack, s3, sqs, f"segments/{unique('m')}.csv.gz", gzip.compress(body))

    assert note.status == "succeeded", note.error
    assert note.output is not None
    assert note.output.format == "csv.gz"
    table = read_output(s3, note)
    got = np.column_stack([table.column(f"prediction_{k}").to_numpy() for k in range(3)])
    assert np.max(np.abs(got - multiclass_model.predict(x))) <= 1e-9


def test_a_header_only_file_succeeds_with_zero_rows(scoring_stack: Any, s3: Any, sqs: Any) -> None:
    note = submit(scoring_stack, s3, sqs, f"churn/{unique('h')}.csv", b"age,income,score,balance\n")

    assert note.status == "succeeded", note.error
    assert note.output is not None
    assert note.output.rows == 0
    assert read_output(s3, note).column_names[-1] == "prediction"


@pytest.mark.parametrize(
    ("name", "body", "code", "message"),
    [
        pytest.param(
            "bin.csv",
            b"\x00\x9f\x92\x96garbage\xff\xfe",
            "unreadable_file",
            "not UTF-8",
            id="unreadable",
        ),
        pytest.param(
            "bad.csv",
            b"age,income,score,balance\n1,2,3,4\n1,2,three,4\n",
            "bad_value",
            "column 'score', row 2: 'three' is not a number",
            id="bad-value",
        ),
        pytest.param(
            "missing.csv",
            b"age,score\n1,2\n",
            "schema_mismatch",
            "lacks 2 feature column(s) the model needs: income, balance",
            id="missing-columns",
        ),
        pytest.param("empty.csv", b"", "empty_file", "is empty", id="zero-bytes"),
        pytest.param(
            "table.xlsx", b"PK\x03\x04", "unsupported_format", "accepted extensions", id="format"
        ),
        pytest.param(
            "ragged.csv",
            b"age,income,score,balance\n1,2,3,4\n1,2\n",
            "unreadable_file",
            "line 3 has 2 field(s) where the header has 4",
            id="ragged",
        ),
    ],
)
def test_a_bad_file_gets_a_failed_notification_saying_what_and_where(
    scoring_stack: Any,
    s3: Any,
    sqs: Any,
    name: str,
    body: bytes,
    code: str,
    message: str,
) -> None:
    key = f"churn/{unique('bad')}/{name}"

    note = submit(scoring_stack, s3, sqs, key, body)

    assert note.status == "failed"
    assert note.output is None
    assert note.error is not None
    assert note.error.code == code
    assert message in note.error.message
    assert key in note.error.message or code == "unsupported_format"
    out = s3.list_objects_v2(Bucket=scoring_stack.outputs["OutputBucketName"], Prefix=key[:-4])
    assert out.get("KeyCount", 0) == 0, "a failed job must leave no output"
    uploads = s3.list_multipart_uploads(Bucket=scoring_stack.outputs["OutputBucketName"])
    assert not [u for u in uploads.get("Uploads", []) if u["Key"].startswith(key[:-4])]
