"""``score_object``, the worker's scoring path, against S3 on the emulator."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import naming
from pipeline.errors import BadOption, BadValue, FileTooLarge
from pipeline.local import template
from pipeline.local.provision import provision
from pipeline.messages import ModelRef, ObjectRef, ScoreRequest
from pipeline.scoring.engine.cache import ModelCache
from pipeline.scoring.run import score_object
from pipeline.settings import Settings
from pipeline.stores import aws
from pipeline.stores.model_store import ModelStore
from pipeline.stores.storage import RangeReader
from tests.conftest import REGION, unique


@pytest.fixture
def stack(aws_endpoint: str, s3: Any, binary_model: Any) -> Any:
    created = provision(template.load(), unique("r"), REGION)
    store = ModelStore(s3, created.outputs["ModelBucketName"])
    store.publish("churn", binary_model.model_to_string().encode(), "m")
    yield created
    created.destroy()


def settings_for(stack: Any, **changes: Any) -> Settings:
    return Settings(
        output_bucket=stack.outputs["OutputBucketName"],
        model_bucket=stack.outputs["ModelBucketName"],
        **changes,
    )


def put(s3: Any, stack: Any, key: str, body: bytes) -> ScoreRequest:
    bucket = stack.outputs["InputBucketName"]
    etag = s3.put_object(Bucket=bucket, Key=key, Body=body)["ETag"].strip('"')
    obj = ObjectRef(bucket=bucket, key=key, etag=etag, size=len(body))
    model = ModelRef(name="churn", version=1)
    return ScoreRequest(
        job_id=naming.job_id(obj, model), input=obj, model=model, received_at=datetime.now(UTC)
    )


def models(s3: Any, stack: Any) -> ModelCache:
    return ModelCache(ModelStore(s3, stack.outputs["ModelBucketName"]), engine="lightgbm")


def big_csv(rows: int, bad_row: int | None = None) -> bytes:
    lines = [b"age,income,score,balance"]
    for i in range(1, rows + 1):
        lines.append(b"oops,1,2,3" if i == bad_row else b"0.25,1.5,-2,3.125")
    return b"\n".join(lines) + b"\n"


def test_a_file_over_the_limit_fails_before_a_byte_is_read(stack: Any, s3: Any) -> None:
    request = put(s3, stack, "churn/big.csv", big_csv(10))
    settings = settings_for(stack, max_input_bytes=100)

    with pytest.raises(FileTooLarge, match=r"churn/big.csv is 205 bytes; the limit is 100 bytes"):
        score_object(request, s3, models(s3, stack), settings)


def test_a_file_failing_late_leaves_no_output_and_no_upload(stack: Any, s3: Any) -> None:
    """A bad value after several 8 MiB parts were uploaded: the upload is aborted."""
    request = put(s3, stack, "churn/late.csv", big_csv(600_000, bad_row=590_001))
    out_bucket = stack.outputs["OutputBucketName"]

    with pytest.raises(BadValue, match="column 'age', row 590001: 'oops'"):
        score_object(request, s3, models(s3, stack), settings_for(stack))

    assert s3.list_objects_v2(Bucket=out_bucket).get("KeyCount", 0) == 0
    assert s3.list_multipart_uploads(Bucket=out_bucket).get("Uploads", []) == []


def test_a_large_file_is_written_in_parts(stack: Any, s3: Any) -> None:
    request = put(s3, stack, "churn/large.csv", big_csv(600_000))

    output = score_object(request, s3, models(s3, stack), settings_for(stack)).output

    head = s3.head_object(Bucket=output.bucket, Key=output.key, PartNumber=1)
    assert head["PartsCount"] >= 2
    assert output.rows == 600_000


def test_parquet_is_read_with_a_few_ranged_requests(stack: Any, s3: Any, binary_model: Any) -> None:
    x = np.random.default_rng(1).normal(size=(50_000, 4))
    table = pa.table({n: x[:, j] for j, n in enumerate(binary_model.feature_name())})
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=10_000)
    request = put(s3, stack, "churn/p.parquet", out.getvalue())

    reader = RangeReader(s3, request.input)
    file = pq.ParquetFile(reader, pre_buffer=False)
    sum(b.num_rows for g in range(file.num_row_groups) for b in file.iter_batches(row_groups=[g]))
    output = score_object(request, s3, models(s3, stack), settings_for(stack)).output

    assert reader.requests <= 3  # a 1.6 MB file fits one 8 MiB block (+ footer reads)
    scored = pq.read_table(
        io.BytesIO(s3.get_object(Bucket=output.bucket, Key=output.key)["Body"].read())
    )
    assert np.max(np.abs(scored.column("prediction").to_numpy() - binary_model.predict(x))) <= 1e-9


def test_the_model_is_loaded_once_for_many_files(stack: Any, s3: Any) -> None:
    cache = models(s3, stack)
    for n in range(3):
        score_object(put(s3, stack, f"churn/{n}.csv", big_csv(5)), s3, cache, settings_for(stack))
    assert cache.loads == 1


def test_a_small_output_is_one_put_and_no_multipart_upload(stack: Any, s3: Any) -> None:
    """Small files are most files: their output costs one request, not three (beside the
    two of its quality report and page)."""
    request = put(s3, stack, f"churn/{unique('small')}.csv", big_csv(100))
    settings = settings_for(stack)
    client = aws.s3_client(REGION)
    calls: list[str] = []
    client.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name))

    out = score_object(request, client, models(s3, stack), settings)

    assert out.rows == 100
    assert [c for c in calls if c != "GetObject"] == ["PutObject"] * 3


def test_json_records_whose_other_keys_change_shape_are_scored_as_they_came(
    stack: Any, s3: Any
) -> None:
    """A key the model does not read may hold an object in one record, text in the next."""
    records = [
        b'{"age": 1, "income": 2, "score": 3, "balance": 4, "meta": {"tags": ["a"]}}',
        b'{"age": 5, "income": 6, "score": 7, "balance": 8, "meta": "none"}',
        b'{"meta": [1, {"x": null}], "age": 9, "income": 1, "score": 2, "balance": 3}',
    ]
    request = put(s3, stack, f"churn/{unique('shape')}.jsonl", b"\n".join(records) + b"\n")

    output = score_object(request, s3, models(s3, stack), settings_for(stack)).output

    lines = s3.get_object(Bucket=output.bucket, Key=output.key)["Body"].read().splitlines()
    assert [line[: line.rindex(b',"prediction":')] for line in lines] == [
        record[:-1] for record in records
    ]


def test_a_json_record_far_into_the_file_with_a_prediction_field_is_refused(
    stack: Any, s3: Any
) -> None:
    """The header check sees only the first records; this one comes in a later chunk."""
    records = [b'{"age": 1, "income": 2, "score": 3, "balance": 4}'] * 30
    records[24] = b'{"age": 1, "income": 2, "score": 3, "balance": 4, "prediction": 0.5}'
    request = put(s3, stack, f"churn/{unique('pred')}.jsonl", b"\n".join(records) + b"\n")

    with pytest.raises(BadOption, match=r"row 25 already has a field named 'prediction'"):
        score_object(request, s3, models(s3, stack), settings_for(stack, batch_rows=10))
