"""CSV: columns read as text (features as numbers where nothing needs their text),
rows written back as they came.

Columns are not type-inferred: an ID column ``007`` must come back ``007``, not
``7``, and a column that looks numeric in the first block but not later must
not fail the file. The model's numerical features are the exception when every
column goes out as the file spelled it: they are parsed as numbers while the
rows are read (by ``plain_numbers``' compiled pass, or where it declines, by
Arrow), and a chunk holding anything but plain numbers there is read as text,
its features parsed in ``features.py``, where a bad value is reported by
column and row. Arrow parses a chunk on every core; one that fails parses again
on one thread, where Arrow numbers the rows, so that a row that does not fit
the header is reported by its line number.

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
from collections.abc import Collection, Iterator, Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from pipeline.errors import EmptyFile, SchemaMismatch, UnreadableFile, names_list
from pipeline.scoring import plain_numbers
from pipeline.scoring.batches import output_schema, rebatch
from pipeline.scoring.codec import (
    DEFAULT_MAX_LINE_BYTES,
    ByteSink,
    ByteSource,
    Chunk,
    ObjectSource,
    Reader,
)
from pipeline.scoring.lines import Lines, values
from pipeline.scoring.splits import ByteRanges
from pipeline.scoring.streams import Prefixed, decompressed, output_stream

#: pyarrow's streaming CSV reader buffers many blocks ahead; small blocks keep
#: that read-ahead (and so the worker's memory) small.
_BLOCK_BYTES = 1 << 20
#: Lines are read this much at a time.
_LINES_BLOCK_BYTES = 4 << 20
_CR, _NEWLINE = ord("\r"), ord("\n")
_COMMA, _LINE_END = pa.scalar(b",", pa.binary()), pa.scalar(b"\n", pa.binary())
#: How Arrow names the row a conversion failed at (counted from its input's first).
_ROW = re.compile(r"Row #(\d+)")
_HEADER_PEEK_BYTES = 1 << 16
#: What a CSV field cannot hold unquoted.
_QUOTED = re.compile(r'[",\r\n]')


class CsvReader:
    """A CSV file's rows, a chunk at a time.

    While no field is quoted, the file is read as lines (``Lines``): each
    chunk keeps its rows' bytes, which the writer passes through, and Arrow
    parses the chunk's text where it lies. Once records pass through whole
    (``pass_records_through``), the model's numerical features are parsed
    as numbers there, not as text to be cast: by ``plain_numbers``' compiled
    pass while every number is spelled as it takes them, then by Arrow. A
    chunk holding a value that is not a plain number is read as text, as
    every other column is, and its features are parsed from that text in
    ``features.py``.

    A quoted field may hold a line end, and a lone carriage return ends a
    line too: from the first block of the file that holds either, the rest is
    read by Arrow's streaming reader, every column as text.
    """

    def __init__(
        self,
        stream: ByteSource,
        where: str,
        batch_rows: int,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        numbers: Collection[str] = (),
    ) -> None:
        names, source, header_bytes, line = _read_header(stream, where, max_line_bytes)
        self._source, self._header_bytes = source, header_bytes
        self.columns: list[str] = names
        #: The header line as the file spelled it (no BOM, no line end): written back so.
        self.header_line = line
        self._where, self._batch_rows = where, batch_rows
        self._max_line_bytes = max_line_bytes
        self._invalid: list[pa_csv.InvalidRow] = []
        self.schema = pa.schema([(name, pa.string()) for name in names])
        wanted = set(numbers)
        self._numbers = [name for name in names if name in wanted]
        self._typed = False
        #: Whether typed chunks go to the compiled pass first (until it declines one).
        self._compiled = True
        #: The streaming reader's watch, once it reads the rest of the file.
        self._watch: _QuoteWatch | None = None
        #: Lines of the file before the streaming reader's first data line, less one.
        self._line_offset = 0

    def pass_records_through(self) -> None:
        """The writer writes every column as the file spelled it (``Chunk.records``):
        the features' text is not needed, so they may be parsed as numbers."""
        self._typed = True

    @property
    def quotes_seen(self) -> bool:
        """Whether a double quote was in the bytes parsed so far (all of every batch given)."""
        return self._watch is not None and self._watch.seen

    def __iter__(self) -> Iterator[Chunk]:
        _skip(self._source, self._header_bytes)
        lines = Lines(
            self._source,
            block_bytes=_LINES_BLOCK_BYTES,
            max_line_bytes=self._max_line_bytes,
            blank=_empty_lines,
            too_long=lambda line: line_too_long(self._where, line, self._max_line_bytes),
            first_line=2,
        )
        first = 1
        while True:
            handover = self._fill(lines)
            while (taken := lines.take(self._batch_rows)) is not None:
                records, numbers = taken
                text = values(records)
                batch = self._parse(text, numbers, first, typed=self._typed)
                yield Chunk(batch=batch, first_row=first, records=records, source_bytes=text.size)
                first += len(records)
                if handover is None and not lines.ended:
                    break  # read on before the next chunk
            if handover is not None:
                rest, line = handover
                yield from self._streamed(Prefixed(rest, self._source), line, first)
                return
            if lines.ended and not lines.pending_rows:
                return

    def _fill(self, lines: Lines) -> tuple[bytes, int] | None:
        """Queue a chunk's lines; where lines stop being rows, the bytes from there on
        (the rest goes to the streaming reader) and the line they start at."""
        while lines.pending_rows < self._batch_rows and not lines.ended:
            line = lines.line + 1
            block = lines.next_block()
            if _not_lines(block):
                return block + lines.remainder(), line
            lines.add(block)
        return None

    def as_text(self, chunk: Chunk) -> pa.RecordBatch:
        """A chunk's rows with every column as text (its features may have been numbers)."""
        if chunk.records is None or all(pa.types.is_string(t) for t in chunk.batch.schema.types):
            return chunk.batch
        numbers = np.arange(chunk.num_rows, dtype=np.int64)
        return self._parse(values(chunk.records), numbers, chunk.first_row, typed=False)

    def _parse(
        self, text: pa.Buffer, numbers: npt.NDArray[np.int64], first: int, *, typed: bool
    ) -> pa.RecordBatch:
        """A chunk's lines as columns; ``numbers``: their line numbers, ``first``: the
        first one's data row number (for errors)."""
        if typed and self._numbers:
            if self._compiled:
                batch = plain_numbers.csv_chunk(text, len(numbers), self.columns, self._numbers)
                if batch is not None:
                    return batch
                self._compiled = False  # numbers of other spellings: Arrow from here on
            try:
                return self._read(text, numbers, first, self._numbers)
            except _NotPlainNumbers:
                pass  # its features are parsed from their text, which names a bad value
        return self._read(text, numbers, first, ())

    def _read(
        self,
        text: pa.Buffer,
        numbers: npt.NDArray[np.int64],
        first: int,
        typed: Sequence[str],
        *,
        threads: bool = True,
    ) -> pa.RecordBatch:
        """The chunk parsed on every core, in two blocks (no line is longer than one);
        a chunk Arrow refuses is parsed again on one thread, where it numbers the rows."""
        types = {name: pa.string() for name in self.columns} | dict.fromkeys(typed, pa.float64())
        block = max(text.size // 2, self._max_line_bytes) + 1 if threads else text.size + 1
        # this call's own: the writer's thread may parse a chunk (``as_text``) meanwhile
        invalid: list[pa_csv.InvalidRow] = []

        def on_invalid(row: pa_csv.InvalidRow) -> str:
            invalid.append(row)
            return "error"

        try:
            table = pa_csv.read_csv(
                pa.BufferReader(text),
                read_options=pa_csv.ReadOptions(
                    column_names=self.columns, use_threads=threads, block_size=block
                ),
                parse_options=pa_csv.ParseOptions(invalid_row_handler=on_invalid),
                convert_options=pa_csv.ConvertOptions(
                    column_types=types,
                    strings_can_be_null=False,
                    null_values=[""],  # an empty field is a missing number
                    quoted_strings_can_be_null=False,
                ),
            )
        except pa.ArrowInvalid as exc:
            if typed and not invalid:
                raise _NotPlainNumbers from exc
            if threads:
                return self._read(text, numbers, first, typed, threads=False)
            if invalid:
                row = invalid[0]
                line = None if row.number is None else int(numbers[row.number - 1])
                raise self._mismatch(row, line) from exc
            # Arrow counts rows from the chunk's first: say the file's line instead.
            message = _ROW.sub(lambda m: f"line {numbers[int(m[1]) - 1]}", str(exc))
            raise self._unreadable(pa.ArrowInvalid(message), first - 1) from exc
        if table.num_rows != len(numbers):  # a blank line Arrow skipped and ``Lines`` kept
            raise UnreadableFile(
                f"{self._where}: lines {numbers[0]}-{numbers[-1]} hold {table.num_rows} rows "
                f"where {len(numbers)} were expected",
                line=int(numbers[0]),
            )
        return table.combine_chunks().to_batches()[0]

    def _streamed(self, rest: Prefixed, line: int, first: int) -> Iterator[Chunk]:
        """The rest of the file, from its line ``line``, through Arrow's streaming reader."""
        self._watch = _QuoteWatch(
            Prefixed(self.header_line + b"\n", rest),
            skip=len(self.header_line) + 1,
            max_line_bytes=self._max_line_bytes,
            first_line=line,
        )
        self._line_offset = line - 2
        # Arrow needs every line within one block: a block at least as long as
        # the longest line allowed.
        block = max(_BLOCK_BYTES, self._max_line_bytes + 1)
        try:
            reader = pa_csv.open_csv(
                self._watch,
                read_options=pa_csv.ReadOptions(block_size=block, use_threads=False),
                parse_options=pa_csv.ParseOptions(invalid_row_handler=self._on_invalid),
                convert_options=pa_csv.ConvertOptions(
                    column_types={name: pa.string() for name in self.columns},
                    strings_can_be_null=False,
                ),
            )
        except pa.ArrowInvalid as exc:
            raise self._unreadable(exc, first - 1) from exc
        for batch in rebatch(self._batches(reader, first - 1), self._batch_rows):
            yield Chunk(batch=batch, first_row=first, source_bytes=_text_bytes(batch))
            first += batch.num_rows

    def _on_invalid(self, row: pa_csv.InvalidRow) -> str:
        self._invalid.append(row)
        return "error"

    def _mismatch(self, row: pa_csv.InvalidRow, line: int | None) -> UnreadableFile:
        where = "a line" if line is None else f"line {line}"
        text = row.text if len(row.text) <= 80 else row.text[:80] + "…"
        return UnreadableFile(
            f"{self._where}: {where} has {row.actual_columns} field(s) where the header "
            f"has {row.expected_columns}: {text!r}",
            line=line,
        )

    def _unreadable(self, exc: Exception, rows: int) -> UnreadableFile:
        watch = self._watch
        if watch is not None and watch.long_line is not None:
            return line_too_long(self._where, watch.long_line, watch.max_line_bytes)
        if self._invalid:
            row = self._invalid[0]
            line = None if row.number is None else row.number + self._line_offset
            return self._mismatch(row, line)
        return UnreadableFile(
            f"{self._where}: the CSV cannot be parsed after data row {rows}: {exc}", row=rows
        )

    def _batches(self, reader: pa_csv.CSVStreamingReader, rows: int) -> Iterator[pa.RecordBatch]:
        last: pa.RecordBatch | None = None
        while True:
            try:
                batch = reader.read_next_batch()
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
        watch = self._watch
        if watch is None or not watch.odd_quotes or last is None:
            return
        # A quote opened before the last column leaves the row short, which the parser
        # refuses itself; so it is the last column's value that runs to the end.
        column = last.schema.names[-1]
        if "\n" not in (last.column(column)[-1].as_py() or ""):
            return
        row = [last.column(name)[-1].as_py() or "" for name in last.schema.names]
        inside = sum(value.count("\n") for value in row)
        line = watch.line_ends + 1 - inside + 1  # the header's line end is line 1's
        raise UnreadableFile(
            f"{self._where}: line {line}, column {column!r}: a quoted field opens "
            "there and never closes, so it would run to the end of the file",
            line=line,
        )


class _NotPlainNumbers(Exception):
    """A feature's field in the chunk is not a plain number (or empty): read it as text."""


def _skip(stream: ByteSource, size: int) -> None:
    while size > 0:
        data = stream.read(size)
        if not data:
            return
        size -= len(data)


def _empty_lines(
    block: npt.NDArray[np.uint8], starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64]
) -> npt.NDArray[np.bool_]:
    """Lines with nothing before their end, which Arrow's parser skips."""
    length = ends - starts
    empty: npt.NDArray[np.bool_] = (length == 1) | ((length == 2) & (block[starts] == _CR))
    return empty


def _not_lines(block: bytes) -> bool:
    """Whether a line end may not end a row here: a quote (a field may hold a line end),
    or a carriage return that is not part of a line end (one on its own ends a line)."""
    if b'"' in block:
        return True
    if b"\r" not in block:
        return False
    data = np.frombuffer(block, np.uint8)
    after = np.flatnonzero(data == _CR) + 1
    return bool(after[-1] >= len(data) or (data[after] != _NEWLINE).any())


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

    def __init__(
        self, stream: io.RawIOBase, skip: int, max_line_bytes: int, first_line: int = 2
    ) -> None:
        """``first_line``: the file's line the stream's first data line is."""
        super().__init__()
        self._stream, self._skip = stream, skip
        self.seen = False
        self.max_line_bytes = max_line_bytes
        self.long_line: int | None = None
        #: Whether the rows' double quotes so far are odd in number, and their line ends.
        self.odd_quotes = False
        self.line_ends = first_line - 2  # the header's line end is not counted
        self._line, self._run = first_line, 0

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


class CsvWriter:
    """Rows as the file spelled them, plus the added fields; unquoted until the reader has
    seen a double quote (or an added text needs quotes), quoted after.

    A chunk whose records pass through (every column carried, no quoting yet)
    is its lines with the added fields appended, which is what Arrow's writer
    would write for its columns, without formatting them again. Any other
    chunk goes through Arrow's writer, as text.
    """

    def __init__(
        self,
        sink: ByteSink,
        compression: str | None,
        schema: pa.Schema,
        header: bool,
        reader: CsvReader,
        *,
        added: pa.Schema,
        whole: bool,
    ) -> None:
        self._out = output_stream(sink, compression)
        self._schema, self._reader, self._added = schema, reader, added
        #: Whether every input column is carried, in order: records can pass through.
        self._whole = whole
        #: Added text columns (reason codes: feature names), which may need quotes
        #: the input never had.
        self._texts = [i for i, field in enumerate(added) if pa.types.is_string(field.type)]
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
        added = _csv_line(self._added.names)
        return (kept + b"," + added if kept else added) + b"\n"

    def _needs_quotes(self, added: Sequence[pa.Array] | None = None) -> bool:
        if self._reader.quotes_seen:
            return True
        names = self._schema.names if added is None else []
        texts = [added[i] for i in self._texts] if added is not None else []
        return any(_QUOTED.search(name) for name in names) or any(
            pc.any(pc.match_substring_regex(text, _QUOTED.pattern)).as_py() for text in texts
        )

    def _switch(self, *, quoted: bool = False) -> None:
        self._quoted = quoted or self._needs_quotes()
        options = pa_csv.WriteOptions(
            include_header=False, quoting_style="needed" if self._quoted else "none"
        )
        self._writers.append(pa_csv.CSVWriter(self._out, self._schema, write_options=options))

    def write(self, chunk: Chunk, added: Sequence[pa.Array]) -> None:
        if not chunk.num_rows:
            return
        if not self._quoted and self._needs_quotes(added):
            self._switch(quoted=True)
        passes = self._whole and chunk.records is not None
        if passes and not self._quoted and all(_spelled_by_cast(c.type) for c in added):
            self._out.write(memoryview(values(self._passed_through(chunk.records, added))))
            return
        batch = self._reader.as_text(chunk)
        kept = self._schema.names[: len(self._schema) - len(added)]
        columns = [*(batch.column(name) for name in kept), *added]
        self._writers[-1].write_batch(pa.RecordBatch.from_arrays(columns, schema=self._schema))

    def _passed_through(self, records: pa.Array, added: Sequence[pa.Array]) -> pa.Array:
        """Each record without its line end, then a comma and each added field, as Arrow's
        writer spells it (its text cast: the same spelling), one copy for all of them."""
        pieces: list[pa.Array | pa.Scalar] = [_without_line_ends(records)]
        for column in added:
            text = column if pa.types.is_string(column.type) else pc.cast(column, pa.string())
            pieces += [_COMMA, text.cast(pa.binary())]
        pieces.append(_LINE_END)
        # a missing value is an empty field, as Arrow's writer leaves it
        options = pc.JoinOptions(null_handling="replace", null_replacement="")
        return pc.binary_join_element_wise(*pieces, b"", options=options)

    def close(self) -> None:
        for writer in self._writers:
            writer.close()
        self._out.close()


def _spelled_by_cast(kind: pa.DataType) -> bool:
    """Types whose text cast is what Arrow's CSV writer writes (checked for each)."""
    return bool(
        pa.types.is_floating(kind)
        or pa.types.is_integer(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_string(kind)
    )


def _without_line_ends(records: pa.Array) -> pa.Array:
    if not (np.frombuffer(values(records), np.uint8) == _CR).any():
        return pc.binary_slice(records, 0, -1)
    trimmed = pc.utf8_rtrim(records.cast(pa.string()), characters="\r\n")
    return trimmed.cast(pa.binary())


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
        *,
        numbers: Collection[str] = (),
        features: Collection[str] | None = None,
    ) -> Reader:
        stream = decompressed(source.stream(), compression)
        return CsvReader(stream, where, batch_rows, max_line_bytes, numbers)

    def writer(
        self,
        sink: ByteSink,
        compression: str | None,
        reader: Reader,
        carried: Sequence[str] | None,
        added: pa.Schema,
        *,
        header: bool = True,
    ) -> CsvWriter:
        assert isinstance(reader, CsvReader)  # noqa: S101 - a codec writes what it read
        whole = carried is None or list(carried) == reader.columns
        if whole:
            reader.pass_records_through()
        schema = output_schema(reader.schema, carried, added)
        return CsvWriter(sink, compression, schema, header, reader, added=added, whole=whole)


CODEC = _Codec()
