"""Scoring one file: S3 stream in, batches through LightGBM, multipart stream out.

Memory stays flat whatever the file size: the reader holds a few small blocks,
batches are merged up to ``batch_rows`` rows before each LightGBM call (small
batches waste calls, large ones waste memory), and the output leaves in 8 MiB
parts. The output object appears only when the last row is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from pipeline import jobs
from pipeline.errors import FileTooLarge
from pipeline.messages import OutputRef, ScoreRequest
from pipeline.scoring import features, formats
from pipeline.scoring.model import LoadedModel, ModelCache
from pipeline.storage import MultipartWriter, open_object

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from pipeline.settings import Settings


def score_object(
    request: ScoreRequest, s3: S3Client, models: ModelCache, settings: Settings
) -> OutputRef:
    """Score the request's file and write the result; return where it went."""
    obj = request.input
    where = f"s3://{obj.bucket}/{obj.key}"
    if obj.size > settings.max_input_bytes:
        raise FileTooLarge(
            f"{where} is {obj.size:,} bytes; the limit is {settings.max_input_bytes:,} bytes"
        )
    fmt = formats.detect(obj.key)
    model = models.get(request.model)
    key = jobs.output_key(obj.key, request.job_id, fmt.suffix_of(obj.key))
    with (
        open_object(s3, obj) as body,
        MultipartWriter(s3, settings.output_bucket, key, fmt.content_type) as sink,
    ):
        reader = fmt.open(body, where)
        features.check_columns(
            reader.schema.names, model.feature_names, model.output_columns, where
        )
        schema = _output_schema(reader.schema, model)
        writer = fmt.writer(sink, schema)
        rows = 0
        for batch in _rebatch(reader, settings.batch_rows):
            matrix = features.feature_matrix(batch, model.feature_names, rows + 1, where)
            predictions = model.predict(matrix, settings.predict_threads)
            writer.write(_with_predictions(batch, predictions, schema))
            rows += batch.num_rows
        writer.close()
        sink.complete()
    return OutputRef(bucket=settings.output_bucket, key=key, rows=rows, format=fmt.name)


def _output_schema(schema: pa.Schema, model: LoadedModel) -> pa.Schema:
    for name in model.output_columns:
        schema = schema.append(pa.field(name, pa.float64()))
    return schema


def _with_predictions(
    batch: pa.RecordBatch, predictions: npt.NDArray[np.float64], schema: pa.Schema
) -> pa.RecordBatch:
    outputs = [pa.array(predictions[:, k]) for k in range(predictions.shape[1])]
    return pa.RecordBatch.from_arrays([*batch.columns, *outputs], schema=schema)


def _rebatch(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Batches of about ``rows`` rows, merged from the reader's smaller ones."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield _merge(pending)
            pending, count = [], 0
    if pending:
        yield _merge(pending)


def _merge(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]
