"""A shard's records: ranges cut anywhere meet exactly at line boundaries."""

from __future__ import annotations

import io
import itertools
import random

import pytest

from pipeline.scoring.streams import RecordRange


def _shards(data: bytes, cuts: list[int], block: int) -> list[RecordRange]:
    return [
        RecordRange(io.BytesIO(data[max(start - 1, 0) :]), start, end, block_bytes=block)
        for start, end in itertools.pairwise(cuts)
        if start < end
    ]


@pytest.mark.parametrize("seed", range(5))
def test_ranges_cut_anywhere_give_each_line_to_exactly_one_shard(seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    for _ in range(300):
        lines = [b"x" * rng.randint(0, 12) + b"\n" for _ in range(rng.randint(0, 25))]
        if lines and rng.random() < 0.3:
            lines[-1] = lines[-1].rstrip(b"\n")  # no line end at the end of the file
        data = b"".join(lines)
        cuts = sorted({0, len(data), *(rng.randint(0, len(data)) for _ in range(4))})
        shards = _shards(data, cuts, rng.randint(1, 9))

        pieces = [shard.read() for shard in shards]

        assert b"".join(pieces) == data
        filled = [piece for piece in pieces if piece]
        assert all(piece.endswith(b"\n") for piece in filled[:-1])  # whole lines only
        assert sum(s.lines for s in shards) == data.count(b"\n")


def test_a_line_longer_than_a_range_leaves_that_range_empty() -> None:
    data = b"a\n" + b"b" * 50 + b"\nc\n"
    first, middle, last = _shards(data, [0, 10, 20, len(data)], 4)

    assert (first.read(), middle.read(), last.read()) == (b"a\n" + b"b" * 50 + b"\n", b"", b"c\n")


def test_quotes_are_counted_for_the_csv_boundary_check() -> None:
    data = b'1,"x"\n2,"y\nz"\n'
    (whole,) = _shards(data, [0, len(data)], 3)
    whole.read()

    assert (whole.quotes, whole.lines) == (4, 3)
