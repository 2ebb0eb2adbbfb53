"""Scoring one file: S3 in, chunks through the model, multipart upload out.

Reading and parsing, building features, predicting, and encoding with
uploading run at the same time (``stages``), so a file takes about as long as
its slowest stage. Memory stays flat whatever the file size: readers hold a
few small blocks (or one Parquet row group), each hand-off holds two chunks
of about ``batch_rows`` rows, and the output leaves in parts. The output
object appears only when the last row is written; any error aborts the upload.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from pipeline import jobs
from pipeline.errors import EmptyFile, FileTooLarge
from pipeline.messages import OutputRef, ScoreRequest
from pipeline.scoring import features, formats
from pipeline.scoring.codec import Chunk
from pipeline.scoring.model import ModelCache
from pipeline.scoring.stages import overlapped
from pipeline.storage import MultipartWriter, S3Object

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from pipeline.settings import Settings

_SNIFF_BYTES = 4096
Scored = tuple[Chunk, npt.NDArray[np.float64]]


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
    if obj.size == 0:
        raise EmptyFile(f"{where} is empty (0 bytes)")
    source = S3Object(s3, obj)
    fmt = formats.by_extension(obj.key) or formats.detect(obj.key, source.head(_SNIFF_BYTES))
    model = models.get(request.model)
    key = jobs.output_key(fmt.stem(obj.key), request.job_id, fmt.output_suffix(obj.key))
    with MultipartWriter(s3, settings.output_bucket, key, fmt.content_type) as sink:
        reader = fmt.open(source, where, settings.batch_rows)
        features.check_columns(reader.columns, model.feature_names, model.output_columns, where)
        writer = fmt.writer(sink, reader, model.output_columns)

        def featurize(chunk: Chunk) -> tuple[Chunk, npt.NDArray[np.float64]]:
            features.check_no_outputs(chunk.batch, model.output_columns, chunk.first_row, where)
            return chunk, features.feature_matrix(
                chunk.batch, model.features, chunk.first_row, where
            )

        def predict(item: tuple[Chunk, npt.NDArray[np.float64]]) -> Scored:
            chunk, matrix = item
            return chunk, model.predict(matrix, settings.predict_threads)

        rows = 0
        for chunk, predictions in overlapped(reader, [featurize, predict]):
            writer.write(chunk, predictions)
            rows += chunk.num_rows
        writer.close()
        sink.complete()
    return OutputRef(
        bucket=settings.output_bucket, key=key, rows=rows, format=fmt.name, engine=model.engine
    )
