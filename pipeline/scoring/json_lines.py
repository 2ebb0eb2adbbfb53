"""JSON lines: records passed through verbatim, predictions appended to each.

Arrow has no JSON writer, and re-serializing records would change what users
wrote (number spellings, key order, fields Arrow cannot type). So the reader
keeps each record's bytes, Arrow parses a chunk of them only to get the
feature values, and the writer appends the added keys (``"prediction": …``)
inside each record's closing brace. A job that carries only some keys
(``columns``, ``drop-columns``) rewrites the record with those, numbers
spelled as they were. Blank lines are skipped; rows are counted in records,
and parse errors name the file's line number. A key a record repeats keeps
its first value.

Where the first chunk's keys all hold numbers or booleans, later chunks are
parsed by polars, in about half Arrow's CPU, with the first chunk's kinds. A
chunk polars refuses or might read otherwise (see ``_parsed_by_polars``)
goes to Arrow, and so does every chunk after it. Before polars,
``plain_numbers``' compiled pass reads chunks, as polars would, while every
record is a flat object of those keys in the first chunk's order.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Collection, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from pipeline.errors import BadValue, EmptyFile, UnreadableFile
from pipeline.scoring import plain_numbers
from pipeline.scoring.codec import DEFAULT_MAX_LINE_BYTES, ByteSink, Chunk, ObjectSource, Reader
from pipeline.scoring.lines import Lines, values
from pipeline.scoring.splits import ByteRanges
from pipeline.scoring.streams import byte_count, decompressed, output_stream

#: The file is read this much at a time, and its lines split out of it at once.
_BLOCK_BYTES = 4 * 1024 * 1024
#: JSON's whitespace, which may stand before a record's closing brace.
_WHITESPACE = pa.array([b" ", b"\t", b"\r", b"\n"], pa.binary())
#: What a blank line's first byte can be (its newline, or other whitespace).
_BLANK_STARTS = np.frombuffer(b" \t\r\n", np.uint8)
#: The compiled pass's name for each kind polars reads a key as.
_COMPILED_KINDS = {pl.Float64: "double", pl.Int64: "int64", pl.Boolean: "bool"}
#: Arrow parses a chunk's records in blocks of this size, in parallel.
_PARSE_BLOCK = 1024 * 1024


class JsonLinesReader:
    def __init__(
        self,
        lines: io.BufferedReader,
        where: str,
        batch_rows: int,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        *,
        numbers: Collection[str] = (),
        features: Collection[str] | None = None,
    ) -> None:
        self._where, self._batch_rows = where, batch_rows
        #: The keys the model reads (None: any may be); the others only pass through.
        self._features = None if features is None else frozenset(features)
        self._kinds: dict[str, pl.DataType] | None = None
        #: The compiled pass's kinds of the keys, until it declines a chunk.
        self._compiled: dict[str, str] | None = None
        self._max_line_bytes = max_line_bytes
        self._record_number = 0
        self._lines = Lines(
            lines,
            block_bytes=_BLOCK_BYTES,
            max_line_bytes=max_line_bytes,
            blank=_blank,
            too_long=self._too_long,
        )
        self._first = self._next_chunk()
        if self._first is None:
            raise EmptyFile(f"{where} holds no JSON records")
        self.columns: list[str] = list(self._first.batch.schema.names)
        self._kinds = _polars_kinds(self._first.batch.schema, set(numbers))
        if self._kinds is not None:
            self._compiled = {name: _COMPILED_KINDS[type(k)] for name, k in self._kinds.items()}

    def __iter__(self) -> Iterator[Chunk]:
        chunk = self._first
        while chunk is not None:
            yield chunk
            chunk = self._next_chunk()

    def _next_chunk(self) -> Chunk | None:
        """The next ``batch_rows`` records, as one Arrow array of their lines."""
        self._lines.fill(self._batch_rows)
        taken = self._lines.take(self._batch_rows)
        if taken is None:
            return None
        records, lines = taken
        first = self._record_number + 1
        self._record_number += len(records)
        text = values(records)
        return Chunk(
            batch=self._parse(text, records, lines),
            first_row=first,
            records=records,
            source_bytes=text.size,
        )

    def _too_long(self, line: int) -> UnreadableFile:
        return UnreadableFile(
            f"{self._where}: line {line} is longer than {self._max_line_bytes:,} bytes, the "
            "longest record this pipeline reads (PIPELINE_MAX_LINE_BYTES)",
            line=line,
        )

    def _parse(
        self, text: pa.Buffer, records: pa.Array, lines: npt.NDArray[np.int64]
    ) -> pa.RecordBatch:
        if self._compiled is not None:
            batch = plain_numbers.json_chunk(text, len(records), self._compiled)
            if batch is not None:
                return batch
            self._compiled = None  # records of other shapes or spellings: polars from here on
        if self._kinds is not None:
            batch = _parsed_by_polars(text, self._kinds)
            if batch is not None:
                return batch
            self._kinds = None  # a file with values of other kinds: Arrow from here on
        try:
            # Blocks of about a MiB parse on every core (one block would be one thread);
            # a key's kind is unified across them as within one.
            table = pa_json.read_json(
                pa.BufferReader(text),
                read_options=pa_json.ReadOptions(use_threads=True, block_size=_PARSE_BLOCK),
            )
            # Arrow does not check that keys are UTF-8; a name that is not fails here.
            return _one_batch(table)
        except (pa.ArrowInvalid, UnicodeDecodeError):
            return self._parse_slowly(records.to_pylist(), lines.tolist())

    def _parse_slowly(self, records: list[bytes], lines: list[int]) -> pa.RecordBatch:
        """The records through Python's JSON reader, where Arrow's refused them.

        Arrow refuses numbers a double cannot hold (``1e400``, which Python
        reads as infinity, as LightGBM would take it), integers past int64,
        a key whose values change kind between records, and a repeated key.
        Here those read as Python reads them (a repeated key keeping its first
        value); a nested value among plain ones is named by line and key where
        the model reads the key (elsewhere it is read as its JSON text, as the
        record passes through as it came), and a line that is not a JSON object
        by its line.
        """
        rows: list[dict[str, Any]] = []
        for record, line in zip(records, lines, strict=True):
            try:
                value = json.loads(record, object_pairs_hook=_first_of_each)
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
        read = self._features is None or name in self._features
        if nested and len(kinds) > 1 and read:
            line = lines[nested[0]]
            kind = "object" if isinstance(values[nested[0]], dict) else "array"
            raise BadValue(
                f"{self._where}: line {line}, key {name!r}: a JSON {kind} where other "
                "records have a single value",
                line=line,
            )
        if nested and len(kinds) == 1:
            try:
                return pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                return pa.array([None if v is None else json.dumps(v) for v in values])
        # Text mixed with numbers, booleans or (in a key the model does not read)
        # nesting: each as its JSON spelling, read as text.
        return pa.array(
            [v if isinstance(v, str) or v is None else json.dumps(v) for v in values], pa.string()
        )


def _polars_kinds(schema: pa.Schema, numbers: set[str]) -> dict[str, pl.DataType] | None:
    """What polars reads each key as: the first chunk's kinds (a model's numbers as
    doubles, whole or not). None where a key holds text, nesting or only nulls."""
    kinds: dict[str, pl.DataType] = {}
    for field in schema:
        if pa.types.is_floating(field.type) or (
            pa.types.is_integer(field.type) and field.name in numbers
        ):
            kinds[field.name] = pl.Float64()
        elif pa.types.is_integer(field.type):
            kinds[field.name] = pl.Int64()
        elif pa.types.is_boolean(field.type):
            kinds[field.name] = pl.Boolean()
        else:
            return None
    return kinds or None


def _parsed_by_polars(text: pa.Buffer, kinds: dict[str, pl.DataType]) -> pa.RecordBatch | None:
    """The chunk's records as ``kinds`` say, or None where Arrow's parse could differ.

    Polars refuses a value that is not of its key's kind (text, nesting, a
    fraction where whole numbers were, a number no double holds) and a line
    that is not a JSON object, and keeps the first of a repeated key, as the
    rest of this reader does. It skips keys it was not told of, so the chunk is
    taken only if its text accounts for every quote: no array, no object but
    the records, and two quotes for each non-null value and each ``null``
    (the key's). A key of its own, or text, would bring more.
    """
    try:
        frame = pl.read_ndjson(text.to_pybytes(), schema=kinds)
    except (pl.exceptions.PolarsError, ValueError):
        return None
    data = np.frombuffer(text, np.uint8)
    if byte_count(data, b"[") or byte_count(data, b"{") != frame.height:
        return None
    n = np.flatnonzero(data[:-3] == ord("n"))
    nulls = np.count_nonzero(
        (data[n + 1] == ord("u")) & (data[n + 2] == ord("l")) & (data[n + 3] == ord("l"))
    )
    values = frame.width * frame.height - sum(frame.null_count().row(0))
    if byte_count(data, b'"') != 2 * (values + nulls):
        return None
    # column by column: a frame's ``to_arrow`` gives each parsing thread's chunk apart,
    # to be combined again (2.3 ms for 8,192 records of 33 numbers, against 0.35)
    columns = [frame.get_column(name).to_arrow() for name in frame.columns]
    return pa.RecordBatch.from_arrays(columns, names=frame.columns)


def _first_of_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose repeated key keeps its first value (JSON leaves that open;
    Python keeps the last, polars and this reader the first)."""
    kept: dict[str, Any] = {}
    for key, value in pairs:
        kept.setdefault(key, value)
    return kept


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


def _one_batch(table: pa.Table) -> pa.RecordBatch:
    """A parsed chunk as one batch (a table of no rows has no batch to give)."""
    if not table.num_rows:
        return pa.RecordBatch.from_pylist([], schema=table.schema)
    return table.combine_chunks().to_batches()[0]


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
        """Every record's line built at once by Arrow's string kernels, written as one buffer."""
        if chunk.records is None or not len(chunk.records):
            return
        if self._carried is None:
            bodies = _open_bodies(chunk.records)
            if bodies is None:  # not UTF-8: JSON allows it only as Python reads it
                self._write_slowly(chunk, added)
                return
        else:
            records = chunk.records.to_pylist()
            bodies = pa.array([_carried_only(r, self._carried) for r in records], pa.binary())
        last = pc.binary_slice(bodies, -1)
        pieces: list[Any] = [bodies]
        if self._keys:
            empty = pc.equal(last, pa.scalar(b"{"))  # an empty object takes no comma
            pieces.append(pc.if_else(empty, pa.scalar(b""), pa.scalar(b",")))
            for i, (key, column) in enumerate(zip(self._keys, added, strict=True)):
                pieces += [pa.scalar(key if i == 0 else b"," + key), _encoded(column)]
        pieces.append(pa.scalar(b"}\n"))
        lines = pc.binary_join_element_wise(*[_binary(p) for p in pieces], b"")
        self._out.write(memoryview(values(lines)))

    def _write_slowly(self, chunk: Chunk, added: Sequence[pa.Array]) -> None:
        """Record by record, for records Arrow's string kernels cannot take."""
        records = [] if chunk.records is None else chunk.records.to_pylist()
        columns = [
            [key + value for value in _encoded(column).cast(pa.binary()).to_pylist()]
            for key, column in zip(self._keys, added, strict=True)
        ]
        rows = zip(*columns, strict=True) if columns else ([] for _ in records)
        lines = []
        for record, fields in zip(records, rows, strict=True):
            body = record.rstrip()[:-1].rstrip()
            separator = b"" if body.endswith(b"{") or not fields else b","
            lines.append(body + separator + b",".join(fields) + b"}\n")
        self._out.write(b"".join(lines))

    def close(self) -> None:
        self._out.close()


def _open_bodies(records: pa.Array) -> Any:
    """Each record without its closing brace and line end: ready for more keys.

    None if some record is not UTF-8 (and has whitespace to trim).
    """
    if pc.all(pc.equal(pc.binary_slice(records, -2), pa.scalar(b"}\n"))).as_py():
        bodies = pc.binary_slice(records, 0, -2)
        if not pc.any(pc.is_in(pc.binary_slice(bodies, -1), _WHITESPACE)).as_py():
            return bodies
    # Rare: whitespace before the line's end (``\r\n``) or the closing brace (``1 }``).
    try:
        text = records.cast(pa.string())
    except pa.ArrowInvalid:
        return None
    closed = pc.ascii_rtrim_whitespace(text).cast(pa.binary())
    return pc.ascii_rtrim_whitespace(pc.binary_slice(closed, 0, -1).cast(pa.string())).cast(
        pa.binary()
    )


def _blank(
    block: npt.NDArray[np.uint8], starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64]
) -> npt.NDArray[np.bool_]:
    """Lines of whitespace alone: few start with whitespace, so only those are looked at."""
    blank = np.zeros(len(starts), dtype=bool)
    for i in np.flatnonzero(np.isin(block[starts], _BLANK_STARTS)).tolist():
        blank[i] = not block[starts[i] : ends[i]].tobytes().strip()
    return blank


def _binary(piece: Any) -> Any:
    return piece.cast(pa.binary()) if piece.type != pa.binary() else piece


def _encoded(column: pa.Array) -> Any:
    """Each value as JSON text: numbers as Python's ``repr`` spells them (NaN and infinity,
    which JSON lacks, as null), text quoted; an Arrow array."""
    if pa.types.is_floating(column.type):
        return _numbers(column)
    if pa.types.is_integer(column.type):
        return pc.cast(column, pa.string())
    return pa.array([json.dumps(v, ensure_ascii=False) for v in column.to_pylist()], pa.string())


#: Where Arrow's shortest round-trip text of a double is exactly Python's ``repr``: both
#: give the shortest digits, and both write them plainly (no exponent) in this range.
#: Outside it (and for whole numbers, which ``repr`` ends in ``.0``), ``repr`` itself.
_PLAIN = (1e-4, 1e10)


def _numbers(column: pa.Array) -> Any:
    values = column.to_numpy(zero_copy_only=False)
    magnitude = np.abs(values)
    plain = (magnitude >= _PLAIN[0]) & (magnitude < _PLAIN[1]) & (values != np.floor(values))
    text = pc.cast(column, pa.string())
    if plain.all():
        return text
    others = np.flatnonzero(~plain)
    spelled = pa.array([_number(v) for v in values[others].tolist()], pa.string())
    return pc.replace_with_mask(text, pa.array(~plain), spelled)


def _number(value: float) -> str:
    """Shortest round-trip text; JSON has no NaN or infinity, so those are null."""
    return repr(value) if math.isfinite(value) else "null"


class _Verbatim(str):
    """A JSON number or constant as the record spelled it."""

    __slots__ = ()


def _carried_only(record: bytes, keys: Sequence[str]) -> bytes:
    """The record's object, open at its end, with only ``keys`` (in their order).

    Values are written back from what was parsed: numbers exactly as the record
    spelled them, text and nesting as equal JSON.
    """
    value = json.loads(
        record,
        parse_float=_Verbatim,
        parse_int=_Verbatim,
        parse_constant=_Verbatim,
        object_pairs_hook=_first_of_each,
    )
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
        *,
        numbers: Collection[str] = (),
        features: Collection[str] | None = None,
    ) -> Reader:
        return JsonLinesReader(
            decompressed(source.stream(), compression),
            where,
            batch_rows,
            max_line_bytes,
            numbers=numbers,
            features=features,
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
