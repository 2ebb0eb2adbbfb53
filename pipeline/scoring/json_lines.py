"""JSON lines: records passed through verbatim, predictions appended to each.

Arrow has no JSON writer, and re-serializing records would change what users
wrote (number spellings, key order, fields Arrow cannot type). So the reader
keeps each record's bytes, Arrow parses a chunk of them only to get the
feature values, and the writer appends ``"prediction": …`` inside each
record's closing brace. Blank lines are skipped; rows are counted in records,
and parse errors name the file's line number.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.json as pa_json

from pipeline.errors import EmptyFile, UnreadableFile
from pipeline.scoring.codec import ByteSink, Chunk, ObjectSource, Reader
from pipeline.scoring.streams import decompressed, output_stream


class JsonLinesReader:
    def __init__(self, lines: io.BufferedReader, where: str, batch_rows: int) -> None:
        self._lines = lines
        self._where, self._batch_rows = where, batch_rows
        self._line_number = 0
        self._record_number = 0
        self._first = self._next_chunk()
        if self._first is None:
            raise EmptyFile(f"{where} holds no JSON records")
        self.columns: list[str] = list(self._first.batch.schema.names)

    def __iter__(self) -> Iterator[Chunk]:
        chunk = self._first
        while chunk is not None:
            yield chunk
            chunk = self._next_chunk()

    def _next_chunk(self) -> Chunk | None:
        records: list[bytes] = []
        lines: list[int] = []
        for raw in self._lines:
            self._line_number += 1
            record = raw.rstrip(b"\r\n \t")
            if not record:
                continue
            records.append(record)
            lines.append(self._line_number)
            if len(records) >= self._batch_rows:
                break
        if not records:
            return None
        first = self._record_number + 1
        self._record_number += len(records)
        return Chunk(
            batch=self._parse(records, lines),
            first_row=first,
            records=records,
            source_bytes=sum(len(r) + 1 for r in records),
        )

    def _parse(self, records: list[bytes], lines: list[int]) -> pa.RecordBatch:
        data = b"\n".join(records) + b"\n"
        try:
            table = pa_json.read_json(
                io.BytesIO(data),
                read_options=pa_json.ReadOptions(use_threads=False, block_size=len(data) + 1),
            )
        except pa.ArrowInvalid as exc:
            raise self._explain(records, lines, exc) from exc
        return table.combine_chunks().to_batches()[0] if table.num_rows else _empty(table)

    def _explain(self, records: list[bytes], lines: list[int], exc: Exception) -> UnreadableFile:
        for record, line in zip(records, lines, strict=True):
            try:
                value = json.loads(record)
            except ValueError as bad:
                return UnreadableFile(
                    f"{self._where}: line {line} is not valid JSON: {bad}", line=line
                )
            if not isinstance(value, dict):
                return UnreadableFile(f"{self._where}: line {line} is not a JSON object", line=line)
        return UnreadableFile(
            f"{self._where}: lines {lines[0]}-{lines[-1]} cannot be read as records of one "
            f"shape: {exc}"
        )


def _empty(table: pa.Table) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([], schema=table.schema)


class JsonLinesWriter:
    def __init__(self, sink: ByteSink, compression: str | None, outputs: Sequence[str]) -> None:
        self._out = output_stream(sink, compression)
        self._keys = [json.dumps(name).encode() + b":" for name in outputs]

    def write(self, chunk: Chunk, predictions: npt.NDArray[np.float64]) -> None:
        lines = []
        for record, row in zip(chunk.records, predictions.tolist(), strict=True):
            fields = b",".join(k + _number(v) for k, v in zip(self._keys, row, strict=True))
            body = record[:-1].rstrip()
            separator = b"" if body.endswith(b"{") else b","
            lines.append(body + separator + fields + b"}\n")
        self._out.write(b"".join(lines))

    def close(self) -> None:
        self._out.close()


def _number(value: float) -> bytes:
    """Shortest round-trip text; JSON has no NaN or infinity, so those are null."""
    return repr(value).encode() if math.isfinite(value) else b"null"


class _Codec:
    def open(
        self, source: ObjectSource, compression: str | None, where: str, batch_rows: int
    ) -> Reader:
        return JsonLinesReader(decompressed(source.stream(), compression), where, batch_rows)

    def writer(
        self,
        sink: ByteSink,
        compression: str | None,
        reader: Reader,
        outputs: Sequence[str],
        header: bool = True,
    ) -> JsonLinesWriter:
        return JsonLinesWriter(sink, compression, outputs)


CODEC = _Codec()
