"""What comes out, end to end: a real solo worker, the emulator over HTTP, real files.

Every kind a user can ask for is checked against LightGBM itself on the same
rows: predictions, raw scores and labels to 1e-12, leaves exactly,
contributions within 1e-9 (from the compiled kernel, whose gate the worker
ran), reasons from them.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from pipeline.client.api import Client, Submission
from pipeline.errors import BadOption
from tests.conftest import submit, unique

FEATURES = ["age", "income", "score", "balance"]


def rows(n: int, seed: int, width: int = 4) -> np.ndarray:
    x = np.round(np.random.default_rng(seed).normal(size=(n, width)), 4)
    x[np.random.default_rng(seed + 1).random(x.shape) < 0.03] = np.nan
    return x


def csv_bytes(x: np.ndarray, names: list[str], extra: str = "") -> bytes:
    head = "id,ssn," + ",".join(names) + (f",{extra}" if extra else "")
    lines = [head]
    for i, r in enumerate(x):
        cells = ["" if np.isnan(v) else repr(float(v)) for v in r]
        lines.append(f"{i},SSN-{i}," + ",".join(cells) + (",x" if extra else ""))
    return ("\n".join(lines) + "\n").encode()


def output(client: Client, note: Any) -> pa.Table:
    assert note.status == "succeeded", note.error
    data = client.s3.get_object(Bucket=note.output.bucket, Key=note.output.key)["Body"].read()
    if note.output.format == "parquet":
        return pq.read_table(io.BytesIO(data))
    if note.output.format == "jsonl":
        return pa.Table.from_pylist([json.loads(line) for line in data.splitlines()])
    return pa_csv.read_csv(io.BytesIO(data))


def column(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False)


def test_every_kind_comes_out_exact_in_the_order_asked(
    scoring_stack: Client, binary_model: Any
) -> None:
    x = rows(3000, 1)
    kinds = "prediction,raw_score,label,leaf,contrib,reasons:2"

    note = submit(
        scoring_stack,
        f"churn/{unique('all')}.csv",
        csv_bytes(x, FEATURES),
        columns="id",
        scores=kinds,
        threshold=0.3,
    )
    table = output(scoring_stack, note)

    trees = binary_model.num_trees()
    contrib_names = [f"contrib_{f}" for f in [*FEATURES, "bias"]]
    reasons = ["reason_1", "reason_1_contrib", "reason_2", "reason_2_contrib"]
    assert table.column_names == [
        "id",
        "prediction",
        "raw_score",
        "label",
        *[f"leaf_{t}" for t in range(trees)],
        *contrib_names,
        *reasons,
    ]
    assert note.output.options.model_dump() == {
        "columns": ["id"],
        "drop_columns": [],
        "scores": kinds.split(","),
        "threshold": 0.3,
        "num_iteration": None,
        "max_bad_rows": 0,
    }
    prediction = binary_model.predict(x)
    assert np.max(np.abs(column(table, "prediction") - prediction)) <= 1e-12
    raw = binary_model.predict(x, raw_score=True)
    assert np.max(np.abs(column(table, "raw_score") - raw)) <= 1e-12
    assert np.array_equal(column(table, "label"), (prediction > 0.3).astype(float))
    leaves = np.column_stack([column(table, f"leaf_{t}") for t in range(trees)])
    assert np.array_equal(leaves, binary_model.predict(x, pred_leaf=True))
    contributions = np.column_stack([column(table, n) for n in contrib_names])
    expected = binary_model.predict(x, pred_contrib=True)
    assert np.max(np.abs(contributions - expected)) <= 1e-9
    assert np.max(np.abs(contributions.sum(axis=1) - raw)) <= 1e-9
    order = np.argsort(-expected[:, :4], axis=1, kind="stable")
    names = np.array(FEATURES)
    assert list(column(table, "reason_1")) == list(names[order[:, 0]])
    assert list(column(table, "reason_2")) == list(names[order[:, 1]])
    top = np.take_along_axis(expected[:, :4], order[:, :1], axis=1)[:, 0]
    assert np.max(np.abs(column(table, "reason_1_contrib") - top)) <= 1e-9


def test_a_multiclass_parquet_file_with_fewer_iterations_and_dropped_columns(
    scoring_stack: Client, multiclass_model: Any
) -> None:
    x = rows(2000, 2, width=3)
    table = pa.table({"id": np.arange(len(x)), "ssn": [f"S{i}" for i in range(len(x))],
                      **{f"x{j}": x[:, j] for j in range(3)}})  # fmt: skip
    data = io.BytesIO()
    pq.write_table(table, data, row_group_size=500)

    note = submit(
        scoring_stack,
        f"segments/{unique('multi')}.parquet",
        data.getvalue(),
        drop_columns=["ssn"],
        scores=["raw_score", "label", "leaf", "contrib"],
        num_iteration=4,
    )
    out = output(scoring_stack, note)

    assert out.column_names[:4] == ["id", "x0", "x1", "x2"]
    assert out.column_names[4:7] == ["raw_score_0", "raw_score_1", "raw_score_2"]
    assert out.schema.field("leaf_0").type == pa.int32()
    assert out.schema.field("label").type == pa.float64()
    raw = multiclass_model.predict(x, raw_score=True, num_iteration=4)
    got = np.column_stack([column(out, f"raw_score_{k}") for k in range(3)])
    assert np.max(np.abs(got - raw)) <= 1e-12
    probabilities = multiclass_model.predict(x, num_iteration=4)
    assert np.array_equal(column(out, "label"), np.argmax(probabilities, axis=1).astype(float))
    leaves = np.column_stack([column(out, f"leaf_{t}") for t in range(12)])
    assert "leaf_12" not in out.column_names
    assert np.array_equal(leaves, multiclass_model.predict(x, pred_leaf=True, num_iteration=4))
    names = [f"contrib_{f}_{k}" for k in range(3) for f in ["x0", "x1", "x2", "bias"]]
    contributions = np.column_stack([column(out, n) for n in names])
    expected = multiclass_model.predict(x, pred_contrib=True, num_iteration=4)
    assert np.max(np.abs(contributions - expected)) <= 1e-9


def test_json_lines_keep_each_record_and_gain_the_keys(
    scoring_stack: Client, binary_model: Any
) -> None:
    x = rows(500, 3)

    def cell(v: float) -> str:
        return "null" if np.isnan(v) else repr(float(v))

    records = [
        f'{{"id": {i}, "note": "café, \\"quoted\\"", "age": {cell(r[0])}, '
        f'"income": {cell(r[1])}, "score": {cell(r[2])}, "balance": {cell(r[3])}, "amount": 1.50}}'
        for i, r in enumerate(x)
    ]
    data = ("\n".join(records) + "\n").encode()

    whole = submit(scoring_stack, f"churn/{unique('jl')}.jsonl", data, scores="reasons:1,leaf")
    assert whole.status == "succeeded", whole.error
    some = submit(
        scoring_stack,
        f"churn/{unique('jl')}.jsonl",
        data,
        columns=["amount", "id"],
        scores="prediction",
    )

    lines = (
        scoring_stack.s3.get_object(Bucket=whole.output.bucket, Key=whole.output.key)["Body"]
        .read()
        .decode()
        .splitlines()
    )
    first = lines[0]
    assert first.startswith(records[0][:-1] + ',"reason_1":"')
    assert '"leaf_0":' in first
    assert json.loads(first)["leaf_24"] == int(binary_model.predict(x[:1], pred_leaf=True)[0, 24])
    picked = (
        scoring_stack.s3.get_object(Bucket=some.output.bucket, Key=some.output.key)["Body"]
        .read()
        .decode()
        .splitlines()
    )
    assert picked[7].startswith('{"amount":1.50,"id":7,"prediction":')
    values = [json.loads(line)["prediction"] for line in picked]
    assert np.max(np.abs(np.array(values) - binary_model.predict(x))) <= 1e-12


def test_a_models_defaults_apply_and_a_files_metadata_overrides_them_key_by_key(
    scoring_stack: Client, binary_model: Any
) -> None:
    name = unique("defaults").replace("-", "_")
    version = scoring_stack.publish_model(
        binary_model.model_to_string().encode(),
        name=name,
        columns="id",
        scores="prediction,reasons:1",
        threshold=0.7,
    )
    x = rows(200, 4)
    bucket = scoring_stack.outputs["InputBucketName"]

    plain = submit(scoring_stack, f"{name}/plain.csv", csv_bytes(x, FEATURES))
    key = f"{name}/{unique('raw')}.csv"
    etag = scoring_stack.s3.put_object(  # what `aws s3 cp --metadata scores=label` sets
        Bucket=bucket, Key=key, Body=csv_bytes(x, FEATURES), Metadata={"scores": "label"}
    )["ETag"].strip('"')
    overridden = scoring_stack.wait(Submission(bucket, key, etag), timeout=60)

    assert scoring_stack.models.record(version.ref).defaults.scores == ["prediction", "reasons:1"]
    assert output(scoring_stack, plain).column_names == [
        "id", "prediction", "reason_1", "reason_1_contrib"
    ]  # fmt: skip
    table = output(scoring_stack, overridden)
    assert table.column_names == ["id", "label"]
    assert overridden.output.options.threshold == 0.7
    expected = (binary_model.predict(x) > 0.7).astype(float)
    assert np.array_equal(column(table, "label"), expected)


@pytest.mark.parametrize(
    ("options", "extra", "message"),
    [
        ({"scores": "prediction,shap"}, "", "unknown score kind 'shap'"),
        ({"threshold": 2}, "", "option 'threshold' is '2'"),
        ({"num_iteration": 26}, "", "'num-iteration' is 26; the model has 25 iteration(s)"),
        ({"scores": "reasons:5"}, "", "more reasons than the model's 4 feature(s)"),
        ({"columns": "id,customer"}, "", "names 1 column(s) the file does not have: customer"),
        ({"scores": "label"}, "label", "already has column(s) named label, which the output"),
    ],
    ids=["kind", "threshold", "iterations", "reasons", "lacking", "collision"],
)
def test_a_bad_option_fails_the_file_at_once_naming_the_option_and_value(
    scoring_stack: Client, options: dict[str, Any], extra: str, message: str
) -> None:
    key = f"churn/{unique('bad')}.csv"
    bucket = scoring_stack.outputs["InputBucketName"]
    metadata = {k.replace("_", "-"): str(v) for k, v in options.items()}
    body = csv_bytes(rows(20, 5), FEATURES, extra)
    etag = scoring_stack.s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata)[
        "ETag"
    ].strip('"')

    note = scoring_stack.wait(Submission(bucket, key, etag), timeout=60)

    assert note.status == "failed"
    assert note.error is not None
    assert note.error.code == "bad_option"
    assert message in note.error.message
    assert key in note.error.message


def test_a_collision_is_avoided_by_dropping_the_column(scoring_stack: Client) -> None:
    body = csv_bytes(rows(20, 6), FEATURES, "label")

    note = submit(
        scoring_stack, f"churn/{unique('drop')}.csv", body, scores="label", drop_columns="label"
    )

    assert note.status == "succeeded", note.error
    assert output(scoring_stack, note).column_names[-1] == "label"


def test_the_client_refuses_a_bad_option_before_uploading(scoring_stack: Client) -> None:
    key = unique("never")

    with pytest.raises(BadOption, match="unknown score kind 'probability'"):
        scoring_stack.submit(b"id\n1\n", model="churn", key=f"{key}.csv", scores="probability")

    listed = scoring_stack.s3.list_objects_v2(
        Bucket=scoring_stack.outputs["InputBucketName"], Prefix=f"churn/{key}"
    )
    assert listed["KeyCount"] == 0
