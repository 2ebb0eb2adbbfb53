"""Rows set aside: unreadable rows listed beside the output, the rest scored exactly."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import numpy as np
import pyarrow.csv as pa_csv

from pipeline.client.api import Client
from tests.conftest import submit, unique

FEATURES = ["age", "income", "score", "balance"]


def rows(n: int, seed: int) -> np.ndarray:
    return np.round(np.random.default_rng(seed).normal(size=(n, 4)), 4)


def csv_with_bad_cells(x: np.ndarray, bad: dict[tuple[int, int], str]) -> bytes:
    """``bad``: (0-based row, feature index) -> the text in that cell."""
    lines = ["id," + ",".join(FEATURES)]
    for i, r in enumerate(x):
        cells = [bad.get((i, j), repr(float(v))) for j, v in enumerate(r)]
        lines.append(f"{i}," + ",".join(cells))
    return ("\n".join(lines) + "\n").encode()


def errors(client: Client, note: Any) -> list[list[str]]:
    where = note.output.errors
    body = client.s3.get_object(Bucket=where.bucket, Key=where.key)["Body"].read().decode()
    return list(csv.reader(body.splitlines()))


def test_unreadable_rows_are_left_out_and_listed(scoring_stack: Client, binary_model: Any) -> None:
    x = rows(1000, 1)
    bad = {(9, 1): "abc", (9, 3): "1,5", (499, 0): "N.A.", (998, 2): "--"}
    body = csv_with_bad_cells(x, bad).replace(b"1,5", b'"1,5"')

    note = submit(scoring_stack, f"churn/{unique('aside')}.csv", body, max_bad_rows=3)

    assert note.status == "succeeded", note.error
    assert note.output.bad_rows == 3
    assert note.output.options.max_bad_rows == 3
    assert note.output.errors.key.endswith(f"/{note.job_id}.errors.csv")
    assert errors(scoring_stack, note) == [
        ["row", "column", "value", "reason"],
        ["10", "income", "abc", "not a number"],
        ["10", "balance", "1,5", "not a number"],
        ["500", "age", "N.A.", "not a number"],
        ["999", "score", "--", "not a number"],
    ]
    data = scoring_stack.s3.get_object(Bucket=note.output.bucket, Key=note.output.key)["Body"]
    table = pa_csv.read_csv(io.BytesIO(data.read()))
    kept = [i for i in range(1000) if i not in {9, 499, 998}]
    assert table.column("id").to_pylist() == kept
    assert note.output.rows == len(kept)
    expected = binary_model.predict(x[kept])
    assert np.max(np.abs(table.column("prediction").to_numpy() - expected)) <= 1e-12
    assert scoring_stack.report(note.job_id).rows == len(kept)


def test_more_bad_rows_than_allowed_fail_the_file_naming_the_first(
    scoring_stack: Client,
) -> None:
    x = rows(200, 2)
    bad = {(i, 0): f"x{i}" for i in (3, 50, 51, 120)}

    note = submit(
        scoring_stack, f"churn/{unique('many')}.csv", csv_with_bad_cells(x, bad), max_bad_rows=2
    )
    today = submit(scoring_stack, f"churn/{unique('none')}.csv", csv_with_bad_cells(x, bad))

    assert note.status == "failed"
    assert note.error.code == "bad_value"
    assert "more than max-bad-rows 2" in note.error.message
    assert "row 4, column 'age': 'x3' is not a number; row 51, column 'age'" in note.error.message
    assert today.error.code == "bad_value"
    assert "column 'age', row 4: 'x3' is not a number" in today.error.message


def test_a_json_record_with_text_for_a_number_is_set_aside_by_the_models_default(
    scoring_stack: Client, binary_model: Any
) -> None:
    name = unique("lenient").replace("-", "_")
    scoring_stack.publish_model(binary_model.model_to_string().encode(), name=name, max_bad_rows=10)
    x = rows(50, 3)
    records = [
        {"id": i, **{f: float(v) for f, v in zip(FEATURES, r, strict=True)}}
        for i, r in enumerate(x)
    ]
    records[7]["score"] = "n/a!"
    body = "".join(json.dumps(r) + "\n" for r in records).encode()

    note = submit(scoring_stack, f"{name}/f.jsonl", body)

    assert note.status == "succeeded", note.error
    assert note.output.bad_rows == 1
    assert errors(scoring_stack, note)[1] == ["8", "score", "n/a!", "not a number"]
    out = scoring_stack.s3.get_object(Bucket=note.output.bucket, Key=note.output.key)["Body"]
    ids = [json.loads(line)["id"] for line in out.read().splitlines()]
    assert ids == [i for i in range(50) if i != 7]
