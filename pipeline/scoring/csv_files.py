"""CSV: every column read as text, written back through Arrow.

Columns are not type-inferred: an ID column ``007`` must come back ``007``, not
``7``, and a column that looks numeric in the first block but not later must
not fail the file. Features are parsed from the text in ``features.py``, where
a bad value can be reported by column and row. Parsing runs single-threaded so
that a row that does not fit the header is reported by its line number.

Text fields are written back unquoted for as long as the input has shown no
double quote: until then no field can hold a comma, a quote or a line end, so
each row goes out as it came in (plus its predictions), and the output is no
larger than it must be. From the first quote on, every text field is quoted;
so too from the first added text (a reason code's feature name) that needs it.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from pipeline.errors import EmptyFile, SchemaMismatch, UnreadableFile, names_list
from pipeline.scoring.batches import ArrowBatchWriter, output_schema, rebatch
from pipeline.scoring.codec import (
    DEFAULT_MAX_LINE_BYTES,
    ByteSink,
    ByteSource,
    Chunk,
    ObjectSource,
    Reader,
)
from pipeline.scoring.splits import ByteRanges
from pipeline.scoring.streams import Prefixed, decompressed

#: pyarrow's streaming CSV reader buffers many blocks ahead; small blocks keep
#: that read-ahead (and so the worker's memory) small.
_BLOCK_BYTES = 1 << 20
_HEADER_PEEK_BYTES = 1 << 16
#: What a CSV field cannot hold unquoted.
_QUOTED = re.compile(r'[",\r\n]')


class CsvReader:
    def __init__(
        self,
        stream: ByteSource,
        where: str,
        batch_rows: int,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    ) -> None:
        names, source, header_bytes, line = _read_header(stream, where, max_line_bytes)
        self._watch = _QuoteWatch(source, skip=header_bytes, max_line_bytes=max_line_bytes)
        self.columns: list[str] = names
        #: The header line as the file spelled it (no BOM, no line end): written back so.
        self.header_line = line
        self._where, self._batch_rows = where, batch_rows
        self._invalid: list[pa_csv.InvalidRow] = []
        # Arrow needs every line within one block: a block at least as long as
        # the longest line allowed.
        block = max(_BLOCK_BYTES, max_line_bytes + 1)
        try:
            self._reader = pa_csv.open_csv(
                self._watch,
                read_options=pa_csv.ReadOptions(block_size=block, use_threads=False),
                parse_options=pa_csv.ParseOptions(invalid_row_handler=self._on_invalid),
                convert_options=pa_csv.ConvertOptions(
                    column_types={name: pa.string() for name in names},
                    strings_can_be_null=False,
                ),
            )
        except pa.ArrowInvalid as exc:
            raise self._unreadable(exc, 0) from exc
        self.schema: pa.Schema = self._reader.schema

    @property
    def quotes_seen(self) -> bool:
        """Whether a double quote was in the bytes parsed so far (all of every batch given)."""
        return self._watch.seen

    def _on_invalid(self, row: pa_csv.InvalidRow) -> str:
        self._invalid.append(row)
        return "error"

    def _unreadable(self, exc: Exception, rows: int) -> UnreadableFile:
        if self._watch.long_line is not None:
            return line_too_long(self._where, self._watch.long_line, self._watch.max_line_bytes)
        if self._invalid:
            row = self._invalid[0]
            line = "a line" if row.number is None else f"line {row.number}"
            text = row.text if len(row.text) <= 80 else row.text[:80] + "…"
            return UnreadableFile(
                f"{self._where}: {line} has {row.actual_columns} field(s) where the header "
                f"has {row.expected_columns}: {text!r}",
                line=row.number,
            )
        return UnreadableFile(
            f"{self._where}: the CSV cannot be parsed after data row {rows}: {exc}", row=rows
        )

    def _batches(self) -> Iterator[pa.RecordBatch]:
        rows = 0
        last: pa.RecordBatch | None = None
        while True:
            try:
                batch = self._reader.read_next_batch()
            except StopIteration:
                self._check_quotes_closed(last, rows)
                return
            except pa.ArrowInvalid as exc:
                raise self._unreadable(exc, rows) from exc
            rows += batch.num_rows
            if batch.num_rows:
                last = batch
            yield batch

    def _check_quotes_closed(self, last: pa.RecordBatch | None, rows: int) -> None:
        """A quoted field that opens and never closes swallows every line after it into
        one value; the parser takes that as the file's last field. Refuse it, naming
        the line where the quote opened, instead of scoring one row for many."""
        if not self._watch.odd_quotes or last is None:
            return
        # A quote opened before the last column leaves the row short, which the parser
        # refuses itself; so it is the last column's value that runs to the end.
        column = last.schema.names[-1]
        if "\n" not in (last.column(column)[-1].as_py() or ""):
            return
        row = [last.column(name)[-1].as_py() or "" for name in last.schema.names]
        inside = sum(value.count("\n") for value in row)
        line = self._watch.line_ends + 1 - inside + 1  # the header's line end is line 1's
        raise UnreadableFile(
            f"{self._where}: line {line}, column {column!r}: a quoted field opens "
            "there and never closes, so it would run to the end of the file",
            line=line,
        )

    def __iter__(self) -> Iterator[Chunk]:
        first = 1
        for batch in rebatch(self._batches(), self._batch_rows):
            yield Chunk(batch=batch, first_row=first, source_bytes=_text_bytes(batch))
            first += batch.num_rows


def _text_bytes(batch: pa.RecordBatch) -> int:
    """The rows' size as CSV text: every column is text, plus a separator per field."""
    text = sum(int(pc.sum(pc.binary_length(column)).as_py() or 0) for column in batch.columns)
    return text + int(batch.num_rows) * int(batch.num_columns)


class _QuoteWatch(io.RawIOBase):
    """The parser's bytes, noting the first double quote after the header line,
    and the first line longer than the limit.

    Header names are written quoted whatever the input did (Arrow's writer
    quotes them), so quotes there say nothing about the rows. Arrow fails a
    line longer than its block with its own jargon ("straddles two block
    boundaries", "Empty CSV file or block"); the line's number is known here.
    """

    def __init__(self, stream: io.RawIOBase, skip: int, max_line_bytes: int) -> None:
        super().__init__()
        self._stream, self._skip = stream, skip
        self.seen = False
        self.max_line_bytes = max_line_bytes
        self.long_line: int | None = None
        #: Whether the rows' double quotes so far are odd in number, and their line ends.
        self.odd_quotes = False
        self.line_ends = 0
        self._line, self._run = 2, 0  # the header is line 1, skipped

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = self._stream.readinto(buffer) or 0
        skipped = min(self._skip, n)
        self._skip -= skipped
        data = memoryview(buffer)[skipped:n].tobytes()
        if not self.seen and b'"' in data:
            self.seen = True
        if self.seen:
            self.odd_quotes ^= bool(data.count(b'"') & 1)
        self.line_ends += data.count(b"\n")
        if self.long_line is None:
            self._measure(data)
        return n

    def _measure(self, data: bytes) -> None:
        """Count lines at C speed; only the runs that cross this buffer's ends can be long,
        unless the buffer itself is longer than the limit (then every line is looked at)."""
        first = data.find(b"\n")
        if first < 0:
            self._run += len(data)
            if self._run > self.max_line_bytes:
                self.long_line = self._line
            return
        if self._run + first > self.max_line_bytes:
            self.long_line = self._line
            return
        if len(data) > self.max_line_bytes:
            start = first + 1
            line = self._line + 1
            while (end := data.find(b"\n", start)) >= 0:
                if end - start > self.max_line_bytes:
                    self.long_line = line
                    return
                line, start = line + 1, end + 1
        last = data.rfind(b"\n")
        self._line += data.count(b"\n")
        self._run = len(data) - last - 1
        if self._run > self.max_line_bytes:
            self.long_line = self._line


def line_too_long(where: str, line: int, limit: int) -> UnreadableFile:
    return UnreadableFile(
        f"{where}: line {line} is longer than {limit:,} bytes, the longest line this "
        "pipeline reads (PIPELINE_MAX_LINE_BYTES; a file missing its line ends, or "
        "wider than that setting allows?)",
        line=line,
    )


class _CsvFileWriter:
    """Arrow's CSV writer, unquoted until the reader has seen a double quote, quoted after."""

    def __init__(
        self,
        out: pa.NativeFile,
        schema: pa.Schema,
        header: bool,
        reader: CsvReader,
        *,
        added: Sequence[str] = (),
        texts: Sequence[int] = (),
    ) -> None:
        self._out, self._schema, self._reader = out, schema, reader
        #: Added text columns (reason codes: feature names), which may need quotes
        #: the input never had.
        self._texts = texts
        self._added = list(added)
        self._writers: list[pa_csv.CSVWriter] = []
        self._quoted = True
        if header:  # as the input spelled it (Arrow's writer quotes every name)
            self._out.write(self._header())
        self._switch()  # the header goes out even when no row follows

    def _header(self) -> bytes:
        names = self._schema.names
        carried = names[: len(names) - len(self._added)]
        if carried == list(self._reader.columns):
            kept = self._reader.header_line
        else:
            kept = _csv_line(carried)
        added = _csv_line(self._added)
        return (kept + b"," + added if kept else added) + b"\n"

    def _needs_quotes(self, batch: pa.RecordBatch | None = None) -> bool:
        if self._reader.quotes_seen:
            return True
        names = self._schema.names if batch is None else []
        texts = [batch.column(i) for i in self._texts] if batch is not None else []
        return any(_QUOTED.search(name) for name in names) or any(
            pc.any(pc.match_substring_regex(text, _QUOTED.pattern)).as_py() for text in texts
        )

    def _switch(self) -> None:
        self._quoted = self._needs_quotes()
        options = pa_csv.WriteOptions(
            include_header=False, quoting_style="needed" if self._quoted else "none"
        )
        self._writers.append(pa_csv.CSVWriter(self._out, self._schema, write_options=options))

    def write_batch(self, batch: pa.RecordBatch) -> None:
        if not self._quoted and self._needs_quotes(batch):
            self._switch()
        self._writers[-1].write_batch(batch)

    def close(self) -> None:
        for writer in self._writers:
            writer.close()


def peek_first_line(
    stream: ByteSource, where: str = "the file", max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
) -> bytes:
    """The stream's first bytes, read in blocks until they hold a line end (or it ends).

    ``UnreadableFile`` once they pass ``max_line_bytes`` with no line end.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(_HEADER_PEEK_BYTES)
        chunks.append(chunk)
        size += len(chunk)
        if not chunk or b"\n" in chunk:
            return b"".join(chunks)
        if size > max_line_bytes:
            raise line_too_long(where, 1, max_line_bytes)


def _csv_line(names: Sequence[str]) -> bytes:
    """Names joined as CSV, each quoted only if it must be."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(names)
    return out.getvalue().encode()


def _read_header(
    stream: ByteSource, where: str, max_line_bytes: int
) -> tuple[list[str], Prefixed, int, bytes]:
    """The column names, the whole stream again, the header line's length in bytes, and
    the line itself as spelled (no BOM, no line end)."""
    head = peek_first_line(stream, where, max_line_bytes)
    if not head.strip():
        raise EmptyFile(f"{where} is empty: a CSV file needs at least a header row")
    if b"\n" not in head:  # the header alone, with no line end: a file of no rows, as with one
        head += b"\n"
    first_line = head.split(b"\n", 1)[0]
    if len(first_line) > max_line_bytes:
        raise line_too_long(where, 1, max_line_bytes)
    try:
        text = first_line.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"{where}: the header row is not UTF-8 text ({exc})") from exc
    csv.field_size_limit(max(csv.field_size_limit(), max_line_bytes))
    names = next(csv.reader([text.rstrip("\r")]))
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates:
        raise SchemaMismatch(
            f"{where}: the header repeats {len(duplicates)} column name(s): "
            + names_list(duplicates)
        )
    if any(not n for n in names):
        raise SchemaMismatch(f"{where}: the header has an empty column name")
    line = first_line.rstrip(b"\r").removeprefix(b"\xef\xbb\xbf")
    return names, Prefixed(head, stream), len(first_line) + 1, line


class _Codec:
    #: A quoted field may hold a line end, so a byte range may begin mid-record.
    shards = ByteRanges(peek_first_line, quoted_line_ends=True)

    def open(
        self,
        source: ObjectSource,
        compression: str | None,
        where: str,
        batch_rows: int,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    ) -> Reader:
        return CsvReader(
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
    ) -> ArrowBatchWriter:
        assert isinstance(reader, CsvReader)  # noqa: S101 - a codec writes what it read
        schema = output_schema(reader.schema, carried, added)
        texts = [
            len(schema) - len(added) + i
            for i, field in enumerate(added)
            if pa.types.is_string(field.type)
        ]

        def open_writer(out: pa.NativeFile, schema: pa.Schema) -> _CsvFileWriter:
            return _CsvFileWriter(out, schema, header, reader, added=added.names, texts=texts)

        return ArrowBatchWriter(sink, compression, schema, open_writer)


CODEC = _Codec()
