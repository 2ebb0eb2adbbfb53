import gzip
import io

import pyarrow as pa
import pytest

from pipeline.errors import EmptyFile, SchemaMismatch, UnreadableFile, UnsupportedFormat
from pipeline.scoring import formats


@pytest.mark.parametrize(
    ("key", "name"),
    [
        pytest.param("m/a.csv", "csv", id="csv"),
        pytest.param("m/a.CSV", "csv", id="upper"),
        pytest.param("m/a.csv.gz", "csv.gz", id="gzip"),
    ],
)
def test_formats_are_told_by_extension(key: str, name: str) -> None:
    assert formats.detect(key).name == name


def test_an_unknown_extension_names_the_accepted_ones() -> None:
    with pytest.raises(UnsupportedFormat, match=r"accepted extensions: \.csv, \.csv\.gz"):
        formats.detect("m/a.xlsx")


def read_all(key: str, data: bytes) -> tuple[pa.Schema, pa.Table]:
    reader = formats.detect(key).open(io.BytesIO(data), key)
    return reader.schema, pa.Table.from_batches(list(reader), schema=reader.schema)


def test_csv_columns_are_read_as_text_exactly() -> None:
    schema, table = read_all("m/a.csv", b'id,x,note\n007,1.50,"a,b"\n010,,\n')
    assert schema.names == ["id", "x", "note"]
    assert table.to_pydict() == {"id": ["007", "010"], "x": ["1.50", ""], "note": ["a,b", ""]}


def test_gzip_csv_is_decompressed_as_it_streams() -> None:
    _, table = read_all("m/a.csv.gz", gzip.compress(b"x\n1\n2\n"))
    assert table.column("x").to_pylist() == ["1", "2"]


def test_a_header_only_file_has_columns_and_no_rows() -> None:
    schema, table = read_all("m/a.csv", b"a,b\n")
    assert schema.names == ["a", "b"]
    assert table.num_rows == 0


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(EmptyFile):
        read_all("m/a.csv", b"")


def test_a_truncated_gzip_is_unreadable() -> None:
    data = gzip.compress(b"x\n" + b"1\n" * 100_000)
    with pytest.raises(UnreadableFile):
        read_all("m/a.csv.gz", data[: len(data) // 2])


def test_a_ragged_row_is_reported_by_line() -> None:
    with pytest.raises(
        UnreadableFile, match=r"line 3 has 1 field\(s\) where the header has 2: '3'"
    ):
        read_all("m/a.csv", b"a,b\n1,2\n3\n")


def test_a_ragged_row_far_into_the_file_is_reported_by_line() -> None:
    data = b"a,b\n" + b"1,2\n" * 300_000 + b"1,2,3\n"
    with pytest.raises(UnreadableFile, match="line 300002 has 3 field"):
        read_all("m/a.csv", data)


def test_a_repeated_header_column_is_refused() -> None:
    with pytest.raises(SchemaMismatch, match="repeats column"):
        read_all("m/a.csv", b"a,b,a\n1,2,3\n")
