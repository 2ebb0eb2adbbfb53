"""End to end: a file uploaded with boto3 is scored by a real solo worker subprocess.

Every path runs through the real parts: the moto server over HTTP, the bucket
notification, the poller calling the upload handler, Celery over SQS, the
worker, SNS fanned out to the notification queue. The stack's models are
compiled first (by the worker, through a compile task), so these files are
scored by the compiled engine and compared with ``Booster.predict``.
"""

from __future__ import annotations

import gzip
import io
import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from pipeline.client import consumer
from pipeline.client.api import Client
from pipeline.messages import Notification
from tests.conftest import submit, unique

TIMEOUT = 60


def half_of(data: bytes) -> bytes:
    return data[: len(data) // 2]


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
    scoring_stack: Client, s3: Any, sqs: Any, binary_model: Any
) -> None:
    rng = np.random.default_rng(11)
    edges = split_edge_rows(binary_model, rng)
    x = np.vstack([rng.normal(size=(20_000 - len(edges), 4)), edges])
    x[::97, 2] = np.nan  # missing values are part of real files
    names = binary_model.feature_name()
    body = csv_of(x, names, order=[3, 1, 0, 2]).replace(b",nan,", b",,")
    key = f"churn/{unique('batch')}/jan report+1 é.csv"

    note = submit(scoring_stack, key, body)

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
    assert note.output.engine == "compiled"
    assert np.max(np.abs(got - expected)) <= 1e-12


def test_a_multiclass_model_gives_one_column_per_class(
    scoring_stack: Client, s3: Any, sqs: Any, multiclass_model: Any
) -> None:
    x = np.random.default_rng(5).normal(size=(500, 3))
    body = csv_of(x, multiclass_model.feature_name(), order=[0, 1, 2])

    note = submit(scoring_stack, f"segments/{unique('m')}.csv.gz", gzip.compress(body))

    assert note.status == "succeeded", note.error
    assert note.output is not None
    assert note.output.format == "csv.gz"
    table = read_output(s3, note)
    got = np.column_stack([table.column(f"prediction_{k}").to_numpy() for k in range(3)])
    assert note.output.engine == "compiled"
    assert np.max(np.abs(got - multiclass_model.predict(x))) <= 1e-12


def test_a_header_only_file_succeeds_with_zero_rows(
    scoring_stack: Client, s3: Any, sqs: Any
) -> None:
    note = submit(scoring_stack, f"churn/{unique('h')}.csv", b"age,income,score,balance\n")

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
            "cut.csv.gz",
            half_of(gzip.compress(b"age,income,score,balance\n" + b"1,2,3,4\n" * 50_000)),
            "unreadable_file",
            "cannot be decompressed",
            id="truncated-gzip",
        ),
        pytest.param(
            "parquet.parquet",
            b"PAR1 not really",
            "unreadable_file",
            "not a readable Parquet",
            id="pq",
        ),
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
    scoring_stack: Client,
    s3: Any,
    sqs: Any,
    name: str,
    body: bytes,
    code: str,
    message: str,
) -> None:
    key = f"churn/{unique('bad')}/{name}"

    note = submit(scoring_stack, key, body)

    assert note.status == "failed"
    assert note.output is None
    assert note.error is not None
    assert note.error.code == code
    assert message in note.error.message
    assert key in note.error.message
    out = s3.list_objects_v2(Bucket=scoring_stack.outputs["OutputBucketName"], Prefix=key[:-4])
    assert out.get("KeyCount", 0) == 0, "a failed job must leave no output"
    uploads = s3.list_multipart_uploads(Bucket=scoring_stack.outputs["OutputBucketName"])
    assert not [u for u in uploads.get("Uploads", []) if u["Key"].startswith(key[:-4])]


# ---- every format, end to end ------------------------------------------------------------


def encode(name: str, x: np.ndarray, columns: list[str]) -> bytes:
    """``x`` as a file of format ``name``, with a zero-padded id and an extra column."""
    ids = [f"{i:07d}" for i in range(len(x))]
    table = pa.table(
        {
            "id": ids,
            **{c: x[:, j] for j, c in enumerate(columns)},
            "extra": [f"r{i}" for i in range(len(x))],
        }
    )
    if name.startswith("parquet"):
        out = io.BytesIO()
        pq.write_table(table, out, row_group_size=700)
        return out.getvalue()
    if name.startswith("csv"):
        data = csv_of(x, columns, list(range(len(columns))))
    else:
        data = b"".join(
            json.dumps(row, allow_nan=True).replace("NaN", "null").encode() + b"\n"
            for row in table.to_pylist()
        )
    return gzip.compress(data) if name.endswith(".gz") else data


def decode(name: str, data: bytes) -> pa.Table:
    if name.endswith(".gz"):
        data = gzip.decompress(data)
    if name.startswith("parquet"):
        return pq.read_table(io.BytesIO(data))
    if name.startswith("csv"):
        return pa_csv.read_csv(
            io.BytesIO(data),
            convert_options=pa_csv.ConvertOptions(column_types={"id": pa.string()}),
        )
    return pa.Table.from_pylist([json.loads(line) for line in data.splitlines()])


@pytest.mark.parametrize(
    ("extension", "name"),
    [
        pytest.param(".csv", "csv", id="csv"),
        pytest.param(".csv.gz", "csv.gz", id="csv-gz"),
        pytest.param(".parquet", "parquet", id="parquet"),
        pytest.param(".jsonl", "jsonl", id="jsonl"),
        pytest.param(".ndjson.gz", "jsonl.gz", id="ndjson-gz"),
        pytest.param("", "parquet", id="sniffed-parquet"),
        pytest.param(".gz", "jsonl.gz", id="sniffed-jsonl-gz"),
    ],
)
def test_every_format_comes_back_in_its_own_format(
    scoring_stack: Client, s3: Any, sqs: Any, binary_model: Any, extension: str, name: str
) -> None:
    rng = np.random.default_rng(21)
    edges = split_edge_rows(binary_model, rng)
    x = np.vstack([rng.normal(size=(3000 - len(edges), 4)), edges])
    x[::31, 1] = np.nan
    key = f"churn/{unique('fmt')}/export{extension}"

    note = submit(scoring_stack, key, encode(name, x, binary_model.feature_name()))

    assert note.status == "succeeded", note.error
    assert note.output is not None
    assert note.output.format == name
    assert note.output.rows == len(x)
    table = decode(
        name, s3.get_object(Bucket=note.output.bucket, Key=note.output.key)["Body"].read()
    )
    assert table.column("id").to_pylist() == [f"{i:07d}" for i in range(len(x))]
    assert table.column("extra").to_pylist()[-1] == f"r{len(x) - 1}"
    got = table.column("prediction").to_numpy()
    assert note.output.engine == "compiled"
    assert np.max(np.abs(got - binary_model.predict(x))) <= 1e-12


@pytest.mark.parametrize("name", ["csv", "parquet", "jsonl"])
def test_categorical_values_score_as_lightgbm_scores_the_dataframe(
    scoring_stack: Client, s3: Any, sqs: Any, categorical_model: Any, name: str
) -> None:
    import pandas as pd

    booster, categories = categorical_model
    rng = np.random.default_rng(8)
    n = 2000
    colors = rng.choice(["blue", "green", "red", "teal", "purple", None], n)  # purple: unseen
    sizes = rng.choice([1, 2, 3, 4], n)  # 4: unseen
    amount = rng.normal(size=n)
    # The file's own categories: LightGBM maps them onto the training ones itself.
    frame = pd.DataFrame(
        {"amount": amount, "color": pd.Categorical(colors), "size": pd.Categorical(sizes)}
    )
    expected = booster.predict(frame)
    assert booster.pandas_categorical == [categories["color"], categories["size"]]
    table = pa.table(
        {"amount": amount, "color": pa.array(colors, pa.string()), "size": pa.array(sizes)}
    )
    if name == "parquet":
        out = io.BytesIO()
        pq.write_table(table.set_column(1, "color", table.column("color").dictionary_encode()), out)
        body = out.getvalue()
    elif name == "csv":
        out = io.BytesIO()
        pa_csv.write_csv(table, out)
        body = out.getvalue()
    else:
        body = b"".join(json.dumps(r).encode() + b"\n" for r in table.to_pylist())

    note = submit(scoring_stack, f"colors/{unique('cat')}.{name}", body)

    assert note.status == "succeeded", note.error
    assert note.output is not None
    result = decode(
        name, s3.get_object(Bucket=note.output.bucket, Key=note.output.key)["Body"].read()
    )
    assert note.output.engine == "compiled"
    assert np.max(np.abs(result.column("prediction").to_numpy() - expected)) <= 1e-12


def test_an_unknown_model_is_answered_with_a_failure(
    scoring_stack: Client, s3: Any, sqs: Any
) -> None:
    key = f"fraud/{unique('x')}.csv"

    note = submit(scoring_stack, key, b"a\n1\n", force=True)  # the intake answers it

    assert note.status == "failed"
    assert note.model is None
    assert note.error is not None
    assert note.error.code == "unknown_model"
    assert note.error.message.startswith(f"s3://{note.input.bucket}/{key}: no model named 'fraud'")


def test_metadata_pins_the_model_version_and_the_notification_says_which(
    scoring_stack: Client, s3: Any, sqs: Any, binary_model: Any
) -> None:
    import lightgbm as lgb

    from pipeline.stores.model_store import ModelStore

    x = np.random.default_rng(2).normal(size=(300, 4))
    names = binary_model.feature_name()
    newer = lgb.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 4},
        lgb.Dataset(x, (x[:, 3] > 0).astype(int), feature_name=names),
        num_boost_round=5,
    )
    name = unique("pin")
    store = ModelStore(s3, scoring_stack.outputs["ModelBucketName"])
    store.publish(name, binary_model.model_to_string().encode(), "v1")
    store.publish(name, newer.model_to_string().encode(), "v2")
    body = csv_of(x, names, [0, 1, 2, 3])
    bucket = scoring_stack.outputs["InputBucketName"]
    results = {}
    for pin in (None, 1):
        key = f"{name}/{pin}.csv"
        extra = {} if pin is None else {"Metadata": {"model-version": str(pin)}}
        etag = s3.put_object(Bucket=bucket, Key=key, Body=body, **extra)["ETag"].strip('"')
        results[pin] = consumer.wait_for(
            sqs,
            scoring_stack.outputs["NotificationQueueUrl"],
            lambda n, key=key, etag=etag: n.is_for(key, etag),
            timeout=TIMEOUT,
        )

    latest, pinned = results[None], results[1]
    assert latest is not None
    assert pinned is not None
    assert latest.model is not None
    assert pinned.model is not None
    assert (latest.model.version, pinned.model.version) == (2, 1)
    assert latest.job_id != pinned.job_id
    for note, model in ((latest, newer), (pinned, binary_model)):
        got = read_output(s3, note).column("prediction").to_numpy()
        assert np.max(np.abs(got - model.predict(x))) <= 1e-9
