"""A stream's whole lines, a block at a time, as Arrow arrays."""

import io

import numpy as np
import pytest

from pipeline.scoring.lines import Lines, values


def empty(block: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    return ends - starts == 1


def lines_of(data: bytes, block_bytes: int, max_line_bytes: int = 100) -> Lines:
    return Lines(
        io.BytesIO(data),
        block_bytes=block_bytes,
        max_line_bytes=max_line_bytes,
        blank=empty,
        too_long=lambda line: ValueError(f"line {line} is too long"),
        first_line=2,
    )


@pytest.mark.parametrize("block_bytes", [1, 3, 7, 64])
def test_records_keep_their_line_ends_and_numbers_across_blocks(block_bytes: int) -> None:
    lines = lines_of(b"a,1\n\nbb,22\r\n\nccc,3", block_bytes)
    lines.fill(10)
    assert lines.ended
    taken = lines.take(2)
    assert taken is not None
    records, numbers = taken
    assert records.to_pylist() == [b"a,1\n", b"bb,22\r\n"]
    assert numbers.tolist() == [2, 4]  # the blank line 3 is skipped, and counted
    assert values(records).to_pybytes() == b"a,1\nbb,22\r\n"
    rest = lines.take(2)
    assert rest is not None
    assert rest[0].to_pylist() == [b"ccc,3\n"]  # the last line gets its line end
    assert rest[1].tolist() == [6]
    assert lines.take(2) is None


def test_a_chunk_spans_blocks_and_a_block_spans_chunks() -> None:
    lines = lines_of(b"".join(b"%d\n" % i for i in range(10)), block_bytes=5)
    lines.fill(4)
    assert not lines.ended
    assert 4 <= lines.pending_rows < 10
    taken = lines.take(4)
    assert taken is not None
    assert taken[0].to_pylist() == [b"0\n", b"1\n", b"2\n", b"3\n"]
    lines.fill(100)
    rest = lines.take(100)
    assert rest is not None
    assert rest[0].to_pylist() == [b"%d\n" % i for i in range(4, 10)]
    assert rest[1].tolist() == list(range(6, 12))


@pytest.mark.parametrize("block_bytes", [4, 1000])
def test_a_line_past_the_limit_is_named(block_bytes: int) -> None:
    lines = lines_of(b"ok\n" + b"x" * 30 + b"\nok\n", block_bytes, max_line_bytes=10)
    with pytest.raises(ValueError, match="line 3 is too long"):
        lines.fill(10)


def test_what_follows_the_last_whole_line_is_handed_over() -> None:
    lines = lines_of(b"1\n2\n34", block_bytes=5)
    assert lines.next_block() == b"1\n2\n"
    assert lines.remainder() == b"3"
    assert lines.remainder() == b""
