"""Each format read and written back, with an in-memory object in place of S3."""

import csv
import gzip
import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.errors import BadValue, EmptyFile, SchemaMismatch, UnreadableFile, UnsupportedFormat
from pipeline.scoring import codec, csv_files, formats, json_lines, plain_numbers
from pipeline.scoring.features import Feature, feature_matrix


class InMemory:
    """An ObjectSource over bytes."""

    row_groups: tuple[int, ...] | None = None

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self) -> io.BytesIO:
        return io.BytesIO(self.data)

    def random_access(self) -> io.BytesIO:
        return io.BytesIO(self.data)

    def head(self, size: int) -> bytes:
        return self.data[:size]


def read(name: str, data: bytes, batch_rows: int = 65536) -> tuple[codec.Reader, list]:
    reader = formats.BY_NAME[name].open(InMemory(data), f"m/f.{name}", batch_rows)
    return reader, list(reader)


def read_limited(name: str, data: bytes, max_line_bytes: int) -> tuple[list[str], int]:
    """The columns and the number of rows read with a line limit."""
    reader = formats.BY_NAME[name].open(InMemory(data), f"m/f.{name}", 65536, max_line_bytes)
    rows = sum(chunk.num_rows for chunk in reader)
    return list(reader.columns), rows


def roundtrip(
    name: str,
    data: bytes,
    outputs: tuple[str, ...] = ("prediction",),
    max_line_bytes: int = codec.DEFAULT_MAX_LINE_BYTES,
    batch_rows: int = 2,
) -> bytes:
    """Read, 'predict' row number + 0.5 for each output, write: the output bytes."""
    fmt = formats.BY_NAME[name]
    reader = fmt.open(InMemory(data), "f", batch_rows, max_line_bytes)
    sink = io.BytesIO()
    sink.close = lambda: None  # type: ignore[method-assign]  # Arrow closes its sink; keep ours
    writer = fmt.writer(sink, reader, None, pa.schema([(o, pa.float64()) for o in outputs]))
    for chunk in reader:
        rows = np.arange(chunk.first_row, chunk.first_row + chunk.num_rows, dtype=np.float64)
        writer.write(chunk, [pa.array(rows + 0.5 + k) for k in range(len(outputs))])
    writer.close()
    return sink.getvalue()


def parquet_bytes(table: pa.Table, row_group_size: int) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=row_group_size)
    return out.getvalue()


# ---- telling formats apart ---------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "name"),
    [
        pytest.param("m/a.csv", "csv", id="csv"),
        pytest.param("m/a.CSV", "csv", id="upper"),
        pytest.param("m/a.csv.gz", "csv.gz", id="csv-gz"),
        pytest.param("m/a.parquet", "parquet", id="parquet"),
        pytest.param("m/a.pq", "parquet", id="pq"),
        pytest.param("m/a.jsonl", "jsonl", id="jsonl"),
        pytest.param("m/a.ndjson", "jsonl", id="ndjson"),
        pytest.param("m/a.jsonl.gz", "jsonl.gz", id="jsonl-gz"),
        pytest.param("m/a.ndjson.gz", "jsonl.gz", id="ndjson-gz"),
    ],
)
def test_formats_are_told_by_extension(key: str, name: str) -> None:
    assert formats.detect(key, b"").name == name


@pytest.mark.parametrize(
    ("head", "name"),
    [
        pytest.param(b"PAR1\x15\x04", "parquet", id="parquet"),
        pytest.param(b"id,x\n1,2\n", "csv", id="csv"),
        pytest.param(b'\n{"x": 1}\n', "jsonl", id="jsonl"),
        pytest.param(gzip.compress(b"id,x\n1,2\n"), "csv.gz", id="csv-gz"),
        pytest.param(gzip.compress(b'{"x": 1}\n'), "jsonl.gz", id="jsonl-gz"),
    ],
)
def test_without_a_known_extension_the_content_decides(head: bytes, name: str) -> None:
    assert formats.detect("m/export", head).name == name
    assert formats.detect("m/export.gz", head).name == name


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"PK\x03\x04\x14\x00", id="zip"),
        pytest.param(b"\x00\x01\x02\x03", id="binary"),
        pytest.param(b"just some words\n", id="prose"),
        pytest.param(b"\x1f\x8b\x08\x00broken", id="broken-gzip"),
    ],
)
def test_an_untellable_file_names_the_accepted_extensions(head: bytes) -> None:
    with pytest.raises(
        UnsupportedFormat, match=r"accepted extensions: \.csv, \.csv\.gz, \.parquet"
    ):
        formats.detect("m/a.xlsx", head)


@pytest.mark.parametrize(
    ("key", "name", "stem", "suffix"),
    [
        pytest.param("m/a.CSV.GZ", "csv.gz", "m/a", ".CSV.GZ", id="keeps-case"),
        pytest.param("m/export", "jsonl", "m/export", ".jsonl", id="sniffed"),
        pytest.param("m/export.gz", "csv.gz", "m/export", ".csv.gz", id="sniffed-gz"),
    ],
)
def test_output_names_follow_the_input(key: str, name: str, stem: str, suffix: str) -> None:
    fmt = formats.BY_NAME[name]
    assert (fmt.stem(key), fmt.output_suffix(key)) == (stem, suffix)


# ---- CSV -----------------------------------------------------------------------------


def test_csv_columns_are_read_as_text_exactly() -> None:
    reader, chunks = read("csv", b'id,x,note\n007,1.50,"a,b"\n010,,\n')
    assert reader.columns == ["id", "x", "note"]
    assert chunks[0].batch.to_pydict() == {
        "id": ["007", "010"],
        "x": ["1.50", ""],
        "note": ["a,b", ""],
    }


def test_csv_chunks_are_numbered_by_data_row() -> None:
    _, chunks = read("csv", b"x\n" + b"1\n" * 10, batch_rows=4)
    assert [(c.first_row, c.num_rows) for c in chunks] == [(1, 4), (5, 4), (9, 2)]
    data = b"x\n" + b"1234567\n" * 400_000  # several 1 MiB blocks
    _, chunks = read("csv", data, batch_rows=150_000)
    assert [c.first_row for c in chunks][:2] == [1, chunks[0].num_rows + 1]
    assert sum(c.num_rows for c in chunks) == 400_000


def test_gzip_csv_round_trips_gzipped() -> None:
    out = roundtrip("csv.gz", gzip.compress(b"id,x\n007,1\n008,2\n009,3\n"))
    assert gzip.decompress(out).decode().splitlines() == [
        "id,x,prediction",
        "007,1,1.5",
        "008,2,2.5",
        "009,3,3.5",
    ]


def test_csv_rows_go_out_as_they_came_until_a_quote_is_seen_then_quoted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Unquoted input stays byte for byte; from the block of lines that holds the first
    double quote on, every text field is quoted. Small blocks here, so that the quote
    comes after some rows went out."""
    monkeypatch.setattr(csv_files, "_LINES_BLOCK_BYTES", 64 * 1024)
    plain = [f"{i:07d},1.{i % 10}0,note" for i in range(400_000)]  # 8 MB: many 1 MiB blocks
    later = ['0400000,2.5,"a,b"', '0400001,,"say ""hi"""', "0400002,3,x"]
    data = ("id,x,note\n" + "\n".join(plain + later) + "\n").encode()

    lines = roundtrip("csv", data, max_line_bytes=1000, batch_rows=8192).decode().splitlines()[1:]

    quoted = next(i for i, line in enumerate(lines) if line.startswith('"'))
    assert 100_000 < quoted < len(plain)  # the first blocks went out before the quote was read
    assert lines[:quoted] == [f"{line},{i + 1.5!r}" for i, line in enumerate(plain[:quoted])]
    assert all(line.startswith('"') for line in lines[quoted:])
    assert lines[-3:] == [
        '"0400000","2.5","a,b",400001.5',
        '"0400001","","say ""hi""",400002.5',
        '"0400002","3","x",400003.5',
    ]
    assert [row[:3] for row in csv.reader(lines)] == list(csv.reader(plain + later))


def scored_csv(
    data: bytes, numbers: tuple[str, ...], batch_rows: int = 2
) -> tuple[bytes, np.ndarray, list[pa.Schema]]:
    """Read with ``numbers`` for features x and y, write every column back plus a
    prediction (row + 0.5): the output, the feature matrix and each chunk's schema."""
    fmt = formats.BY_NAME["csv"]
    reader = fmt.open(InMemory(data), "f.csv", batch_rows, numbers=numbers)
    sink = io.BytesIO()
    sink.close = lambda: None  # type: ignore[method-assign]
    writer = fmt.writer(sink, reader, None, pa.schema([("prediction", pa.float64())]))
    wanted = [Feature("x"), Feature("y")]
    matrices, schemas = [], []
    for chunk in reader:
        matrices.append(feature_matrix(chunk.batch, wanted, chunk.first_row, "f.csv"))
        schemas.append(chunk.batch.schema)
        rows = np.arange(chunk.first_row, chunk.first_row + chunk.num_rows, dtype=np.float64)
        writer.write(chunk, [pa.array(rows + 0.5)])
    writer.close()
    return sink.getvalue(), np.concatenate(matrices), schemas


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (  # missing tokens, spaces, an overflow, a CRLF line and a blank one, no last line end
            b"id,x,y\n007,1.50,\n008,NA,2\r\n\r\n009, 3 ,1e400\n010,nan,-0\n011,-inf,.5",
            "id,x,y,prediction\n007,1.50,,1.5\n008,NA,2,2.5\n009, 3 ,1e400,3.5\n"
            "010,nan,-0,4.5\n011,-inf,.5,5.5\n",
        ),
        (  # a carriage return alone ends a line too: read by the streaming reader
            b"id,x,y\n1,2,3\r4,5,6\n7,8,9\n",
            "id,x,y,prediction\n1,2,3,1.5\n4,5,6,2.5\n7,8,9,3.5\n",
        ),
        (  # a quote: the streaming reader, every text field quoted
            b'id,x,y\n1,2,"3"\n4,5,6\n',
            '"id","x","y",prediction\n"1","2","3",1.5\n"4","5","6",2.5\n'.replace(
                '"id","x","y"', "id,x,y"
            ),
        ),
    ],
)
def test_csv_features_read_as_numbers_score_and_write_as_read_as_text(
    data: bytes, expected: str
) -> None:
    """Where records pass through, features are parsed as numbers where the rows are read;
    the matrix is the one the text gives, bit for bit (NaN's bits too), and every row
    goes out as it came."""
    out, typed, schemas = scored_csv(data, ("x", "y"))
    _, text, text_schemas = scored_csv(data, ())
    assert out.decode() == expected
    assert np.array_equal(typed.view(np.int64), text.view(np.int64))
    assert all(pa.types.is_string(t) for s in text_schemas for t in s.types)
    if b'"' not in data and b"\r4" not in data:  # the lines path, not the streaming reader
        # a chunk with a value that is not a plain number ("NA") is read as text
        assert {s.field("x").type for s in schemas} == {pa.float64(), pa.string()}


def test_plain_numbers_go_to_the_compiled_pass_until_a_chunk_it_declines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Chunks of plain numbers are parsed by ``plain_numbers``; from the first chunk it
    declines (a number of 20 digits), Arrow parses the rest. The matrix is the text's."""
    answers: list[bool] = []
    parsed = plain_numbers.csv_chunk

    def watched(*args: object, **kwargs: object) -> pa.RecordBatch | None:
        batch = parsed(*args, **kwargs)  # type: ignore[arg-type]
        answers.append(batch is not None)
        return batch

    monkeypatch.setattr(plain_numbers, "csv_chunk", watched)
    rows = [f"id{i},{i}.25,{-i}e-3" for i in range(6)] + ["id6,0.12345678901234567891,1", "id7,8,9"]
    data = ("id,x,y\n" + "\n".join(rows) + "\n").encode()
    out, typed, schemas = scored_csv(data, ("x", "y"))
    _, text, _ = scored_csv(data, ())
    assert answers == [True, True, True, False]
    assert np.array_equal(typed.view(np.int64), text.view(np.int64))
    assert [s.field("x").type for s in schemas] == [pa.float64()] * 4
    assert out.decode().splitlines()[1:] == [f"{row},{i + 1.5}" for i, row in enumerate(rows)]


def test_csv_lines_and_the_streaming_reader_take_turns_in_one_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Blocks of lines go out as they came; from the block with the first quote, the
    streaming reader reads the rest (a quoted line end too), numbered on from there."""
    monkeypatch.setattr(csv_files, "_LINES_BLOCK_BYTES", 64)
    plain = [f"{i},{i}.5,{i % 3}" for i in range(40)]
    data = ("id,x,y\n" + "\n".join([*plain, '40,"1\n",2', "41,7,8"]) + "\n").encode()
    out, matrix, schemas = scored_csv(data, ("x", "y"), batch_rows=3)
    lines = out.decode().split("\n")
    assert lines[1:4] == ["0,0.5,0,1.5", "1,1.5,1,2.5", "2,2.5,2,3.5"]
    rows = list(csv.reader(io.StringIO(out.decode())))
    later = [["40", "1\n", "2"], ["41", "7", "8"]]
    assert [row[:3] for row in rows[1:]] == [*csv.reader(plain), *later]
    assert [row[3] for row in rows[1:]] == [f"{i + 1.5}" for i in range(42)]
    assert matrix[:, 0].tolist() == [i + 0.5 for i in range(40)] + [1.0, 7.0]
    assert pa.types.is_float64(schemas[0].field("x").type)
    assert pa.types.is_string(schemas[-1].field("x").type)
    assert out.decode().endswith('"41","7","8",42.5\n')


def test_an_added_text_that_needs_quotes_quotes_every_row_from_its_chunk_on() -> None:
    """A reason code naming a feature with a comma in its name: from its chunk on, every
    text field is quoted (rows before went out as they came)."""
    fmt = formats.BY_NAME["csv"]
    reader = fmt.open(InMemory(b"id,x,y\n1,2,3\n4,5,6\n7,8,9\n"), "f.csv", 2, numbers=("x",))
    sink = io.BytesIO()
    sink.close = lambda: None  # type: ignore[method-assign]
    writer = fmt.writer(sink, reader, None, pa.schema([("reason", pa.string()), ("p", pa.int64())]))
    for chunk in reader:
        reasons = ["a" if chunk.first_row == 1 else "b,c"] * chunk.num_rows
        writer.write(chunk, [pa.array(reasons), pa.array([chunk.first_row] * chunk.num_rows)])
    writer.close()
    assert sink.getvalue().decode() == (
        'id,x,y,reason,p\n1,2,3,a,1\n4,5,6,a,1\n"7","8","9","b,c",3\n'
    )


def test_a_csv_row_that_does_not_fit_the_header_is_named_by_its_line_past_blank_lines() -> None:
    with pytest.raises(UnreadableFile, match=r"line 6 has 3 field\(s\) where the header has 2"):
        scored_csv(b"x,y\n\n1,2\r\n\r\n3,4\n5,6,7\n", ("x", "y"))


def test_the_header_goes_out_as_it_came_and_a_quoted_one_does_not_quote_the_rows() -> None:
    """The header is written as the input spelled it (Arrow's writer would quote every
    name); the added names are quoted only where they must be."""
    assert roundtrip("csv", b'"id","x"\n007,1\n').decode().splitlines() == [
        '"id","x",prediction',
        "007,1,1.5",
    ]
    assert roundtrip("csv", b"\xef\xbb\xbfid,x\r\n007,1\r\n").decode().splitlines()[0] == (
        "id,x,prediction"
    )
    assert roundtrip("csv", b"id,x\n007,1\n", ("a,b",)).decode().splitlines()[0] == 'id,x,"a,b"'
    assert roundtrip("csv", b'id,x\n007,"1"\n').decode().splitlines()[1] == '"007","1",1.5'


def test_a_header_only_csv_has_columns_and_no_rows() -> None:
    reader, chunks = read("csv", b"a,b\n")
    assert reader.columns == ["a", "b"]
    assert chunks == []
    assert roundtrip("csv", b"a,b\n").decode().splitlines() == ["a,b,prediction"]


def test_an_empty_csv_is_refused() -> None:
    with pytest.raises(EmptyFile):
        read("csv", b"\n\n")


def test_a_truncated_gzip_is_unreadable() -> None:
    data = gzip.compress(b"x\n" + b"1\n" * 100_000)
    with pytest.raises(UnreadableFile, match="cannot be decompressed"):
        read("csv.gz", data[: len(data) // 2])


def test_a_ragged_row_is_reported_by_line() -> None:
    with pytest.raises(
        UnreadableFile, match=r"line 3 has 1 field\(s\) where the header has 2: '3'"
    ):
        read("csv", b"a,b\n1,2\n3\n")


def test_a_ragged_row_far_into_the_file_is_reported_by_line() -> None:
    with pytest.raises(UnreadableFile, match="line 300002 has 3 field"):
        read("csv", b"a,b\n" + b"1,2\n" * 300_000 + b"1,2,3\n")


def test_a_repeated_header_column_is_refused() -> None:
    with pytest.raises(SchemaMismatch, match="repeats 1 column name"):
        read("csv", b"a,b,a\n1,2,3\n")


def test_many_repeated_names_are_found_at_once_and_listed_briefly() -> None:
    """200,000 columns, each name twice: counted in linear time, the message bounded."""
    names = [f"c{i}" for i in range(100_000)] * 2
    header = ",".join(names).encode() + b"\n"

    with pytest.raises(SchemaMismatch) as caught:
        read_limited("csv", header + b"1\n", max_line_bytes=4 * 1024**2)

    assert "repeats 100000 column name(s): c0, c1" in str(caught.value)
    assert str(caught.value).endswith("and 99980 more")


@pytest.mark.parametrize(
    "data",
    [
        b"x" * 3_000_000,
        b"a,b\n" + b"1," + b"2" * 3_000_000 + b"\n",
        b"a,b\n1,2\n" + b"3" * 3_000_000,
    ],
    ids=["one-line-no-newline", "long-row", "long-last-line"],
)
def test_a_line_past_the_limit_is_refused_by_number_in_plain_words(data: bytes) -> None:
    with pytest.raises(UnreadableFile, match=r"line \d is longer than 1,048,576 bytes"):
        read_limited("csv", data, max_line_bytes=1024**2)


def test_a_wide_header_reads_once_the_limit_allows_it() -> None:
    names = [f"column_{i}" for i in range(200_000)]
    data = ",".join(names).encode() + b"\n" + ",".join("1" for _ in names).encode() + b"\n"

    with pytest.raises(UnreadableFile, match="line 1 is longer than 1,048,576 bytes"):
        read_limited("csv", data, max_line_bytes=1024**2)
    columns, rows = read_limited("csv", data, max_line_bytes=4 * 1024**2)

    assert (len(columns), rows) == (200_000, 1)


def test_a_json_record_past_the_limit_is_refused_naming_its_line() -> None:
    data = b'{"a": 1}\n{"a": "' + b"x" * 2_000_000 + b'"}\n'

    with pytest.raises(UnreadableFile, match="line 2 is longer than 1,048,576 bytes"):
        read_limited("jsonl", data, max_line_bytes=1024**2)


def test_json_numbers_arrow_refuses_read_as_python_and_lightgbm_read_them() -> None:
    data = (
        b'{"a": 1}\n{"a": 1e400}\n{"a": 123456789012345678901234567890}\n'
        b'{"a": -' + b"9" * 400 + b"}\n"
    )

    reader = formats.BY_NAME["jsonl"].open(InMemory(data), "f.jsonl", 100)
    values = [v for chunk in reader for v in chunk.batch.column("a").to_pylist()]

    assert values == [1.0, float("inf"), 1.2345678901234568e29, float("-inf")]


def test_a_key_whose_values_change_kind_is_read_as_their_text() -> None:
    """A number beside text: each as written, so a feature reports its bad cell by row."""
    _, chunks = read("jsonl", b'{"x": 1}\n{"x": "a"}\n{"x": true}\n')

    assert chunks[0].batch.column("x").to_pylist() == ["1", "a", "true"]


@pytest.mark.parametrize(
    "features", [pytest.param(None, id="any-key-read"), pytest.param(("a",), id="key-read")]
)
def test_a_json_object_among_plain_values_is_a_bad_value_naming_line_and_key(
    features: tuple[str, ...] | None,
) -> None:
    data = b'{"a": "red"}\n\n{"a": {"k": 1}}\n'

    with pytest.raises(BadValue, match=r"f.jsonl: line 3, key 'a': a JSON object"):
        list(formats.BY_NAME["jsonl"].open(InMemory(data), "f.jsonl", 100, features=features))


def test_nesting_among_plain_values_in_a_key_no_model_reads_is_read_as_its_json_text() -> None:
    """The record passes through as it came; the key's column is only what it holds."""
    data = b'{"a": 1, "meta": "red"}\n{"a": 2, "meta": {"k": [1, null]}}\n{"a": 3, "meta": 4}\n'

    reader = formats.BY_NAME["jsonl"].open(InMemory(data), "f.jsonl", 100, features=("a",))

    assert next(iter(reader)).batch.column("meta").to_pylist() == ["red", '{"k": [1, null]}', "4"]


def _json_columns(data: bytes, numbers: tuple[str, ...], batch_rows: int) -> dict[str, list]:
    reader = formats.BY_NAME["jsonl"].open(InMemory(data), "f.jsonl", batch_rows, numbers=numbers)
    chunks = list(reader)
    names = dict.fromkeys(n for c in chunks for n in c.batch.schema.names)
    columns: dict[str, list] = {}
    for name in names:
        for c in chunks:
            column = c.batch.column(name) if name in c.batch.schema.names else None
            values = [None] * c.num_rows if column is None else column.to_pylist()
            columns.setdefault(name, []).extend(values)
    return columns


def _polars_taken(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    taken: list[bool] = []
    parse = json_lines._parsed_by_polars

    def spy(text: pa.Buffer, kinds: dict) -> pa.RecordBatch | None:
        batch = parse(text, kinds)
        taken.append(batch is not None)
        return batch

    monkeypatch.setattr(json_lines, "_parsed_by_polars", spy)
    return taken


def test_json_chunks_polars_reads_hold_what_arrow_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nulls, missing keys, whole numbers among fractions, integers past 2**53 and
    doubles' hard cases, booleans, a key's spacing: the same values, bit for bit."""
    rng = np.random.default_rng(3)
    hard = ["5e-324", "1.7976931348623157e308", "9007199254740993", "0.1", "-0.0", "2.5e-8"]
    lines = []
    for i in range(600):
        x = "null" if i % 7 == 0 else repr(float(rng.normal() * 10.0 ** rng.integers(-30, 30)))
        n = hard[i % len(hard)] if i % 3 else str(int(rng.integers(-(2**62), 2**62)))
        cat = "" if i % 5 == 0 else f', "c":{i % 4}'
        lines.append(f'{{"x": {x}, "n":{n}, "flag": {str(i % 2 == 0).lower()}{cat}}}')
    data = ("\n".join(lines) + "\n").encode()
    taken = _polars_taken(monkeypatch)

    fast = _json_columns(data, ("x", "n"), batch_rows=64)
    monkeypatch.setattr(json_lines, "_polars_kinds", lambda schema, numbers: None)
    slow = _json_columns(data, ("x", "n"), batch_rows=64)

    assert len(taken) == 9  # every chunk after the first (600 rows, 64 a chunk)
    assert all(taken)
    assert list(fast) == list(slow) == ["x", "n", "flag", "c"]
    for name in ("x", "n"):
        a, b = np.array(fast[name], float), np.array(slow[name], float)
        assert np.array_equal(a.view(np.int64), b.view(np.int64)), name
    assert fast["flag"] == slow["flag"]
    assert fast["c"] == slow["c"]  # a category's whole numbers stay whole


def test_json_chunks_of_plain_numbers_go_to_the_compiled_pass_then_polars(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Flat records of plain numbers, whole numbers and booleans are read by
    ``plain_numbers``; from the first chunk it declines (a number of 20 digits), polars
    reads them. The values are Arrow's."""
    answers: list[bool] = []
    parse = plain_numbers.json_chunk

    def watched(*args: object) -> pa.RecordBatch | None:
        batch = parse(*args)  # type: ignore[arg-type]
        answers.append(batch is not None)
        return batch

    monkeypatch.setattr(plain_numbers, "json_chunk", watched)
    lines = [
        f'{{"id": {i - 3}, "x": {i}.25, "y": {-i}e-3, "z": {"null" if i % 2 else i}, '
        f'"ok": {"true" if i % 3 else "false"}}}'
        for i in range(10)
    ]
    lines[6] = '{"id": 3, "x": 0.12345678901234567891, "y": 1, "z": -0, "ok": null}'
    data = ("\n".join(lines) + "\n").encode()
    polars = _polars_taken(monkeypatch)

    fast = _json_columns(data, ("x", "y", "z"), batch_rows=2)
    monkeypatch.setattr(json_lines, "_polars_kinds", lambda schema, numbers: None)
    slow = _json_columns(data, ("x", "y", "z"), batch_rows=2)

    assert answers == [True, True, False]  # the first chunk is Arrow's, as ever
    assert polars == [True, True]
    for name in ("x", "y", "z"):
        a, b = np.array(fast[name], float), np.array(slow[name], float)
        assert np.array_equal(a.view(np.int64), b.view(np.int64)), name
    assert fast["id"] == slow["id"] == list(range(-3, 7))  # whole numbers stay whole
    assert fast["ok"] == slow["ok"]


@pytest.mark.parametrize(
    ("record", "why"),
    [
        pytest.param(b'{"x": 1, "prediction": 0.5}', "a key the first chunk lacked", id="new-key"),
        pytest.param(b'{"x": 1, "id": "a"}', "text under a new key", id="text"),
        pytest.param(b'{"x": "1"}', "text where numbers were", id="number-as-text"),
        pytest.param(b'{"x": 1, "y": [1, 2]}', "an array", id="array"),
        pytest.param(b'{"x": 1, "y": [null]}', "an array of nulls", id="array-of-nulls"),
        pytest.param(b'{"x": 1, "y": {"z": 1}}', "a nested object", id="object"),
        pytest.param(b'{"x": null, "x": 2}', "a key twice, null first", id="twice"),
        pytest.param(b'{"x": 1e400}', "a number no double holds", id="huge"),
        pytest.param(b'{"x": true}', "a boolean where numbers were", id="boolean"),
    ],
)
def test_json_chunks_polars_could_read_otherwise_go_to_arrow(
    monkeypatch: pytest.MonkeyPatch, record: bytes, why: str
) -> None:
    data = b'{"x": 0.5}\n' * 4 + record + b"\n" + b'{"x": 2.5}\n' * 4
    taken = _polars_taken(monkeypatch)

    fast = _json_columns(data, ("x",), batch_rows=4)
    monkeypatch.setattr(json_lines, "_polars_kinds", lambda schema, numbers: None)
    slow = _json_columns(data, ("x",), batch_rows=4)

    assert taken == [False], why  # and the chunk after it goes straight to Arrow
    assert fast == slow


def test_a_json_key_given_twice_keeps_its_first_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """JSON leaves a repeated key open; every path here keeps the first, as polars does."""
    data = b'{"x": 0.5}\n' * 2 + b'{"x": 1, "x": 2}\n{"x": 3, "x": null}\n'
    taken = _polars_taken(monkeypatch)

    assert _json_columns(data, ("x",), batch_rows=2)["x"] == [0.5, 0.5, 1.0, 3.0]
    assert _json_columns(data, ("x",), batch_rows=10)["x"] == [0.5, 0.5, 1.0, 3.0]
    assert taken == [False]  # the second chunk: two quotes too many for polars
    assert roundtrip("jsonl", data.replace(b"0.5", b"7"), batch_rows=10).count(b'"x"') == 6


# ---- Parquet -------------------------------------------------------------------------


def test_parquet_is_read_row_group_by_row_group_and_keeps_types() -> None:
    table = pa.table(
        {
            "id": pa.array([1, 2, 3, 4, 5], pa.int64()),
            "color": pa.array(list("rgbrg")).dictionary_encode(),
        }
    )
    reader, chunks = read("parquet", parquet_bytes(table, row_group_size=2))
    assert reader.columns == ["id", "color"]
    assert [(c.first_row, c.num_rows) for c in chunks] == [(1, 2), (3, 2), (5, 1)]

    out = pq.read_table(io.BytesIO(roundtrip("parquet", parquet_bytes(table, 2))))
    assert out.schema.field("id").type == pa.int64()
    assert out.column("id").to_pylist() == [1, 2, 3, 4, 5]
    assert out.column("color").to_pylist() == list("rgbrg")
    assert out.column("prediction").to_pylist() == [1.5, 2.5, 3.5, 4.5, 5.5]


def test_an_empty_parquet_file_succeeds_with_zero_rows() -> None:
    empty = pa.table({"x": pa.array([], pa.float64())})
    reader, chunks = read("parquet", parquet_bytes(empty, 10))
    assert (reader.columns, chunks) == (["x"], [])


def test_a_file_that_is_not_parquet_is_unreadable() -> None:
    with pytest.raises(UnreadableFile, match="not a readable Parquet file"):
        read("parquet", b"x,y\n1,2\n")


# ---- JSON lines ----------------------------------------------------------------------


def test_json_records_pass_through_verbatim_with_predictions_appended() -> None:
    data = b'{"id": "007", "x": 1.50, "tags": ["a"]}\n\n{}\r\n{"x":2,"nested":{"k":null}}\n'
    out = roundtrip("jsonl", data, outputs=("prediction_0", "prediction_1")).decode()
    assert out.splitlines() == [
        '{"id": "007", "x": 1.50, "tags": ["a"],"prediction_0":1.5,"prediction_1":2.5}',
        '{"prediction_0":2.5,"prediction_1":3.5}',
        '{"x":2,"nested":{"k":null},"prediction_0":3.5,"prediction_1":4.5}',
    ]
    assert [json.loads(line)["prediction_0"] for line in out.splitlines()] == [1.5, 2.5, 3.5]


def test_json_columns_are_the_keys_of_the_first_records() -> None:
    reader, chunks = read("jsonl", b'{"a": 1, "b": "x"}\n{"a": 2, "c": true}\n')
    assert reader.columns == ["a", "b", "c"]
    assert chunks[0].batch.column("a").to_pylist() == [1, 2]


def test_gzip_json_lines_round_trip_gzipped() -> None:
    out = roundtrip("jsonl.gz", gzip.compress(b'{"x": 1}\n'))
    assert gzip.decompress(out) == b'{"x": 1,"prediction":1.5}\n'


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b'{"x": 1}\n\n{"x" 2}\n', "line 3 is not valid JSON", id="syntax"),
        pytest.param(b'{"x": 1}\n[1, 2]\n', "line 2 is not a JSON object", id="array"),
        # Arrow takes a key that is not UTF-8, and only naming its column fails.
        pytest.param(b'{"x": 1}\n{"\xff": 2}\n', "line 2 is not valid JSON", id="key-not-utf8"),
    ],
)
def test_bad_json_lines_are_reported_by_line(data: bytes, message: str) -> None:
    with pytest.raises(UnreadableFile, match=message):
        read("jsonl", data)


def test_json_lines_without_records_are_empty() -> None:
    with pytest.raises(EmptyFile, match="holds no JSON records"):
        read("jsonl", b"\n  \n")


@pytest.mark.parametrize("data", [b"a,b\n", b"a,b", b"a,b\r\n"], ids=["newline", "none", "crlf"])
def test_a_header_only_csv_has_no_rows_with_or_without_its_line_end(data: bytes) -> None:
    reader, chunks = read("csv", data)

    assert list(reader.columns) == ["a", "b"]
    assert sum(chunk.num_rows for chunk in chunks) == 0


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (b'a,b,c\n1,x,"red\n2,y,blue\n', 2),
        (b'a,b,c\n0,q,z\n1,x,"red\n2,y,blue\n3,z,w\n', 3),
        (b'a,b,c\n0,q,"z\nz"\n1,x,"red\n2,y,blue', 4),
    ],
    ids=["second-row", "later-row", "after-a-closed-multiline-field"],
)
def test_a_quote_that_never_closes_is_refused_naming_its_line(data: bytes, line: int) -> None:
    """It swallowed the rest of the file into one value, and the file 'succeeded' with 1 row."""
    with pytest.raises(UnreadableFile, match=rf"line {line}, column 'c': a quoted field opens"):
        read("csv", data)


def test_closed_quotes_and_a_literal_quote_mid_field_still_read() -> None:
    _, chunks = read("csv", b'a,b,c\n1,5" tv,x\n2,"ok\nfine",y\n3,"a,""b""",z\n')

    assert sum(chunk.num_rows for chunk in chunks) == 3


def test_a_gzip_csv_whose_header_never_ends_is_refused_without_reading_it_all() -> None:
    data = gzip.compress(b"x" * 50_000_000)  # 50 MB of one line, a few kB compressed

    with pytest.raises(UnreadableFile, match="line 1 is longer than 1,048,576 bytes"):
        read_limited("csv.gz", data, max_line_bytes=1024**2)


def test_json_lines_spell_every_number_as_python_does() -> None:
    """The writer spells most numbers with Arrow's kernel; each must read as ``repr`` reads."""
    import math

    import numpy as np
    import pyarrow as pa

    from pipeline.scoring.json_lines import _encoded

    rng = np.random.default_rng(8)
    values = np.concatenate(
        [
            rng.random(200_000),
            1 / (1 + np.exp(-rng.normal(size=100_000) * 20)),  # probabilities near 0 and 1
            rng.normal(size=100_000) * 10.0 ** rng.integers(-12, 20, 100_000),
            np.floor(rng.normal(size=1000) * 1e6),
            [0.0, -0.0, 1.0, -1.0, 1e-4, 9.999999999999999e-05, 1e10, 9999999999.999998,
             1e16, 5e-324, 1.7976931348623157e308, math.nan, math.inf, -math.inf],
        ]
    )  # fmt: skip
    spelled = _encoded(pa.array(values)).to_pylist()
    expected = [repr(v) if math.isfinite(v) else "null" for v in values.tolist()]
    assert spelled == expected
    assert _encoded(pa.array([-5, 0, 2**40], pa.int64())).to_pylist() == [
        "-5",
        "0",
        "1099511627776",
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            b'{"a": 1}\n{"b": 2}\n{"c": 3}\n',
            b'{"a": 1,"prediction":1.5}\n{"b": 2,"prediction":2.5}\n{"c": 3,"prediction":3.5}\n',
            id="plain",
        ),
        pytest.param(
            b'{"a": 1 }\r\n\n{}\n{"b": "\xc3\xa9" \t}\n',
            b'{"a": 1,"prediction":1.5}\n{"prediction":2.5}\n{"b": "\xc3\xa9","prediction":3.5}\n',
            id="spaces-empty-blank-crlf",
        ),
    ],
)
def test_json_lines_gain_their_keys_inside_each_record(data: bytes, expected: bytes) -> None:
    assert roundtrip("jsonl", data) == expected


def test_json_lines_across_blocks_keep_every_record_and_line_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Records split over the reader's blocks, blank and indented lines, spaces before
    braces, CRLF and a last line without its newline: each record once, in order."""
    monkeypatch.setattr(json_lines, "_BLOCK_BYTES", 64)
    lines = [f'{{"x": {i}, "pad": "{"p" * (i % 7)}"}}' for i in range(40)]
    lines[3], lines[9], lines[17] = "   ", '\t{"x": 9 }', ""
    lines[22] = '{"x": 22}\r'
    data = ("\n".join(lines)).encode()
    records = [line.rstrip() for line in lines if line.strip()]  # leading space is kept

    out = roundtrip("jsonl", data).decode().splitlines()
    with pytest.raises(UnreadableFile, match="line 31 is not valid JSON"):
        read("jsonl", data.replace(b'{"x": 30,', b'{"x" 30,'), batch_rows=4)

    assert len(out) == len(records)
    for row, (written, record) in enumerate(zip(out, records, strict=True), 1):
        assert written == record[:-1].rstrip() + f',"prediction":{row + 0.5}}}'
