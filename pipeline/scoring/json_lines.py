"""JSON lines: records passed through verbatim, predictions appended to each.

Arrow has no JSON writer, and re-serializing records would change what users
wrote (number spellings, key order, fields Arrow cannot type). So the reader
keeps each record's bytes, Arrow parses a chunk of them only to get the
feature values, and the writer appends the added keys (``"prediction": …``)
inside each record's closing brace. A job that carries only some keys
(``columns``, ``drop-columns``) rewrites the record with those, numbers
spelled as they were. Blank lines are skipped; rows are counted in records,
and parse errors name the file's line number.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.json as pa_json

from pipeline.errors import BadValue, EmptyFile, UnreadableFile
from pipeline.scoring.codec import DEFAULT_MAX_LINE_BYTES, ByteSink, Chunk, ObjectSource, Reader
from pipeline.scoring.splits import ByteRanges
from pipeline.scoring.streams import decompressed, output_stream


class JsonLinesReader:
    def __init__(
        self,
        lines: io.BufferedReader,
        where: str,
        batch_rows: int,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    ) -> None:
        self._lines = lines
        self._where, self._batch_rows = where, batch_rows
        self._max_line_bytes = max_line_bytes
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
        while raw := self._lines.readline(self._max_line_bytes + 2):
            self._line_number += 1
            if len(raw) > self._max_line_bytes and not raw.endswith(b"\n"):
                raise UnreadableFile(
                    f"{self._where}: line {self._line_number} is longer than "
                    f"{self._max_line_bytes:,} bytes, the longest record this pipeline "
                    "reads (PIPELINE_MAX_LINE_BYTES)",
                    line=self._line_number,
                )
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
        except pa.ArrowInvalid:
            return self._parse_slowly(records, lines)
        return table.combine_chunks().to_batches()[0] if table.num_rows else _empty(table)

    def _parse_slowly(self, records: list[bytes], lines: list[int]) -> pa.RecordBatch:
        """The records through Python's JSON reader, where Arrow's refused them.

        Arrow refuses numbers a double cannot hold (``1e400``, which Python
        reads as infinity, as LightGBM would take it), integers past int64,
        and a key whose values change kind between records. Here those read
        as Python reads them; a nested value among plain ones is named by line
        and key, and a line that is not a JSON object by its line.
        """
        rows: list[dict[str, Any]] = []
        for record, line in zip(records, lines, strict=True):
            try:
                value = json.loads(record)
            except ValueError as bad:
                raise UnreadableFile(
                    f"{self._where}: line {line} is not valid JSON: {bad}", line=line
                ) from bad
            if not isinstance(value, dict):
                raise UnreadableFile(f"{self._where}: line {line} is not a JSON object", line=line)
            rows.append(value)
        names = list(dict.fromkeys(key for row in rows for key in row))
        return pa.RecordBatch.from_pydict(
            {name: self._column([row.get(name) for row in rows], name, lines) for name in names}
        )

    def _column(self, values: list[Any], name: str, lines: list[int]) -> pa.Array:
        kinds = {_kind(v) for v in values} - {"null"}
        if kinds <= {"number"}:
            return pa.array([None if v is None else _double(v) for v in values], pa.float64())
        if kinds <= {"bool"}:
            return pa.array(values, pa.bool_())
        nested = [i for i, v in enumerate(values) if _kind(v) == "nested"]
        if nested and len(kinds) > 1:
            line = lines[nested[0]]
            kind = "object" if isinstance(values[nested[0]], dict) else "array"
            raise BadValue(
                f"{self._where}: line {line}, key {name!r}: a JSON {kind} where other "
                "records have a single value",
                line=line,
            )
        if nested:
            try:
                return pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                return pa.array([None if v is None else json.dumps(v) for v in values])
        # Text mixed with numbers or booleans: each as its JSON spelling, read as text.
        return pa.array(
            [v if isinstance(v, str) or v is None else json.dumps(v) for v in values], pa.string()
        )


def _double(value: float) -> float:
    """A JSON number as a double: an integer too large for one is an infinity, as 1e400 is."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, dict | list):
        return "nested"
    return "text"


def _empty(table: pa.Table) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([], schema=table.schema)


class JsonLinesWriter:
    """Each record as it came, or with only the carried keys, plus the added keys."""

    def __init__(
        self,
        sink: ByteSink,
        compression: str | None,
        carried: Sequence[str] | None,
        added: pa.Schema,
    ) -> None:
        self._out = output_stream(sink, compression)
        self._carried = None if carried is None else list(carried)
        self._added = added
        self._keys = [json.dumps(name).encode() + b":" for name in added.names]

    def write(self, chunk: Chunk, added: Sequence[pa.Array]) -> None:
        columns = [
            [key + value for value in _encoded(column)]
            for key, column in zip(self._keys, added, strict=True)
        ]
        rows = zip(*columns, strict=True) if columns else ([] for _ in chunk.records)
        lines = []
        for record, fields in zip(chunk.records, rows, strict=True):
            if self._carried is None:
                body = record[:-1].rstrip()
            else:
                body = _carried_only(record, self._carried)
            separator = b"" if body.endswith(b"{") or not fields else b","
            lines.append(body + separator + b",".join(fields) + b"}\n")
        self._out.write(b"".join(lines))

    def close(self) -> None:
        self._out.close()


def _encoded(column: pa.Array) -> list[bytes]:
    """Each value as JSON text: numbers as short as they round-trip, text quoted."""
    if pa.types.is_floating(column.type):
        return [_number(v) for v in column.to_numpy(zero_copy_only=False).tolist()]
    if pa.types.is_integer(column.type):
        return [str(v).encode() for v in column.to_numpy(zero_copy_only=False).tolist()]
    return [json.dumps(v, ensure_ascii=False).encode() for v in column.to_pylist()]


def _number(value: float) -> bytes:
    """Shortest round-trip text; JSON has no NaN or infinity, so those are null."""
    return repr(value).encode() if math.isfinite(value) else b"null"


class _Verbatim(str):
    """A JSON number or constant as the record spelled it."""

    __slots__ = ()


def _carried_only(record: bytes, keys: Sequence[str]) -> bytes:
    """The record's object, open at its end, with only ``keys`` (in their order).

    Values are written back from what was parsed: numbers exactly as the record
    spelled them, text and nesting as equal JSON.
    """
    value = json.loads(record, parse_float=_Verbatim, parse_int=_Verbatim, parse_constant=_Verbatim)
    fields = [json.dumps(key).encode() + b":" + _dumped(value[key]) for key in keys if key in value]
    return b"{" + b",".join(fields)


def _dumped(value: Any) -> bytes:
    if isinstance(value, _Verbatim):
        return value.encode()
    if isinstance(value, dict):
        inner = b",".join(json.dumps(k).encode() + b":" + _dumped(v) for k, v in value.items())
        return b"{" + inner + b"}"
    if isinstance(value, list):
        return b"[" + b",".join(_dumped(v) for v in value) + b"]"
    return json.dumps(value, ensure_ascii=False).encode()


class _Codec:
    shards = ByteRanges()

    def open(
        self,
        source: ObjectSource,
        compression: str | None,
        where: str,
        batch_rows: int,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    ) -> Reader:
        return JsonLinesReader(
            decompressed(source.stream(), compression), where, batch_rows, max_line_bytes
        )

    def writer(
        self,
        sink: ByteSink,
        compression: str | None,
        reader: Reader,
        carried: Sequence[str] | None,
        added: pa.Schema,
        *,
        header: bool = True,
    ) -> JsonLinesWriter:
        return JsonLinesWriter(sink, compression, carried, added)


CODEC = _Codec()
