"""File formats: telling them apart, reading them in batches, writing the same format back.

Every reader yields Arrow record batches and knows its schema before the first
batch (a header-only file still has columns); every writer takes batches.

CSV columns are read as text, not inferred: an ID column ``007`` must come back
``007``, not ``7``, and a column that is numeric in the first block but not
later must not fail the file. Features are parsed from that text separately
(``features.py``), where a bad value can be reported by column and row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa
import pyarrow.csv as pa_csv

from pipeline.errors import EmptyFile, SchemaMismatch, UnreadableFile, UnsupportedFormat

#: pyarrow's streaming CSV reader buffers many blocks ahead; small blocks keep
#: that read-ahead (and so the worker's memory) small.
_CSV_BLOCK_BYTES = 1 << 20
_HEADER_PEEK_BYTES = 1 << 16


class ByteSource(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class ByteSink(Protocol):
    def write(self, data: bytes, /) -> int: ...


class BatchReader(Protocol):
    @property
    def schema(self) -> pa.Schema: ...

    def __iter__(self) -> Iterator[pa.RecordBatch]: ...


class BatchWriter(Protocol):
    def write(self, batch: pa.RecordBatch) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Format:
    name: str
    suffixes: tuple[str, ...]
    compression: str | None
    content_type: str

    def suffix_of(self, key: str) -> str:
        """The suffix of ``key`` that named this format, in the key's own case."""
        lower = key.lower()
        for suffix in sorted(self.suffixes, key=len, reverse=True):
            if lower.endswith(suffix):
                return key[-len(suffix) :]
        return self.suffixes[0]

    def open(self, stream: ByteSource, where: str) -> BatchReader:
        source = _decompressed(stream, self.compression)
        return _CsvReader(source, where)

    def writer(self, sink: ByteSink, schema: pa.Schema) -> BatchWriter:
        out = pa.PythonFile(sink, mode="w")
        if self.compression:
            out = pa.CompressedOutputStream(out, self.compression)
        return _CsvWriter(out, schema)


FORMATS: tuple[Format, ...] = (
    Format("csv", (".csv",), None, "text/csv"),
    Format("csv.gz", (".csv.gz",), "gzip", "application/gzip"),
)
ACCEPTED_SUFFIXES = tuple(s for f in FORMATS for s in f.suffixes)


def detect(key: str) -> Format:
    """The format a key's extension names."""
    lower = key.lower()
    matches = [f for f in FORMATS if any(lower.endswith(s) for s in f.suffixes)]
    if not matches:
        raise UnsupportedFormat(
            f"cannot tell the format of {key!r} from its extension; "
            f"accepted extensions: {', '.join(ACCEPTED_SUFFIXES)}"
        )
    return max(matches, key=lambda f: max(len(s) for s in f.suffixes if lower.endswith(s)))


def _decompressed(stream: ByteSource, compression: str | None) -> ByteSource:
    if compression is None:
        return stream
    native = pa.CompressedInputStream(pa.PythonFile(stream, mode="r"), compression)
    return _NativeReader(native)


class _NativeReader(io.RawIOBase):
    """A Python file over an Arrow input stream, so headers can be peeked uniformly."""

    def __init__(self, native: pa.NativeFile) -> None:
        super().__init__()
        self._native = native

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        try:
            data = self._native.read(len(buffer))
        except (OSError, pa.ArrowException) as exc:
            raise UnreadableFile(f"the file cannot be decompressed: {exc}") from exc
        buffer[: len(data)] = data
        return len(data)


class _Prefixed(io.RawIOBase):
    """``head`` followed by the rest of ``stream``: a peek that gives nothing back."""

    def __init__(self, head: bytes, stream: ByteSource) -> None:
        super().__init__()
        self._head, self._stream = memoryview(head), stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _read_header(stream: ByteSource, where: str) -> tuple[list[str], ByteSource]:
    head = b""
    while True:
        chunk = stream.read(_HEADER_PEEK_BYTES)
        head += chunk
        if not chunk or b"\n" in chunk:
            break
    if not head.strip():
        raise EmptyFile(f"{where} is empty: a CSV file needs at least a header row")
    first_line = head.split(b"\n", 1)[0]
    try:
        text = first_line.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"{where}: the header row is not UTF-8 text ({exc})") from exc
    names = next(csv.reader([text.rstrip("\r")]))
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SchemaMismatch(f"{where}: the header repeats column(s) {', '.join(duplicates)}")
    if any(not n for n in names):
        raise SchemaMismatch(f"{where}: the header has an empty column name")
    return names, io.BufferedReader(_Prefixed(head, stream))


class _CsvReader:
    """Streaming CSV reader; single-threaded so a bad row is reported by its line number."""

    def __init__(self, stream: ByteSource, where: str) -> None:
        names, source = _read_header(stream, where)
        self._where = where
        self._invalid: list[pa_csv.InvalidRow] = []
        try:
            self._reader = pa_csv.open_csv(
                source,
                read_options=pa_csv.ReadOptions(block_size=_CSV_BLOCK_BYTES, use_threads=False),
                parse_options=pa_csv.ParseOptions(invalid_row_handler=self._on_invalid),
                convert_options=pa_csv.ConvertOptions(
                    column_types={name: pa.string() for name in names},
                    strings_can_be_null=False,
                ),
            )
        except pa.ArrowInvalid as exc:
            raise self._unreadable(exc, 0) from exc
        self.schema: pa.Schema = self._reader.schema

    def _on_invalid(self, row: pa_csv.InvalidRow) -> str:
        self._invalid.append(row)
        return "error"

    def _unreadable(self, exc: Exception, rows: int) -> UnreadableFile:
        if self._invalid:
            row = self._invalid[0]
            line = "a line" if row.number is None else f"line {row.number}"
            text = row.text if len(row.text) <= 80 else row.text[:80] + "…"
            return UnreadableFile(
                f"{self._where}: {line} has {row.actual_columns} field(s) where the header "
                f"has {row.expected_columns}: {text!r}"
            )
        return UnreadableFile(
            f"{self._where}: the CSV cannot be parsed after data row {rows}: {exc}"
        )

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        rows = 0
        while True:
            try:
                batch = self._reader.read_next_batch()
            except StopIteration:
                return
            except pa.ArrowInvalid as exc:
                raise self._unreadable(exc, rows) from exc
            rows += batch.num_rows
            yield batch


class _CsvWriter:
    def __init__(self, out: pa.NativeFile, schema: pa.Schema) -> None:
        self._out = out
        self._writer = pa_csv.CSVWriter(out, schema)

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def close(self) -> None:
        self._writer.close()
        self._out.close()
