"""How a format is cut into shards, and how the shards' outputs join into one file.

Each codec names its way (``Codec.shards``); the worker's sharding asks it and
never branches on the format, so a new format is one codec and one
registration. Two ways exist:

* ``ByteRanges`` (CSV, JSON lines): a shard scores the records that begin in
  its byte range, the header (if the format has one) given to every shard;
  outputs join by concatenation.
* ``parquet_files.RowGroups``: consecutive row groups per shard; every
  shard's output is a Parquet file of its own, and the joined file keeps the
  first one's leading magic and one footer merged from all of theirs.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

from pipeline.scoring.codec import ByteSource, Joiner, ObjectSource, ShardCut


class _Concatenated:
    def take(
        self, index: int, head: bytes, tail: bytes, has_parts: bool, at: int
    ) -> tuple[bytes, bytes]:
        return head, tail

    def end(self) -> bytes:
        return b""


class ByteRanges:
    """Text formats: byte ranges, each shard's records those that begin in its range."""

    skip = 0
    hold = 0

    def __init__(
        self,
        header: Callable[[ByteSource, str, int], bytes] | None = None,
        *,
        quoted_line_ends: bool = False,
    ) -> None:
        self._header, self.quoted_line_ends = header, quoted_line_ends

    def cut(
        self, source: ObjectSource, size: int, shard_bytes: int, where: str, max_line_bytes: int
    ) -> ShardCut:
        header = b""
        if self._header is not None:
            head = self._header(source.random_access(), where, max_line_bytes)
            line, newline, _ = head.partition(b"\n")
            header = line + newline
        return ShardCut(ranges=byte_ranges(len(header), size, shard_bytes), header=header)

    def line_of_row(self, records: io.RawIOBase, row: int) -> int:
        """Read again, only on an error's path: a quoted field may hold line ends."""
        text = io.TextIOWrapper(io.BufferedReader(records), encoding="utf-8", newline="")
        if self.quoted_line_ends:
            reader = csv.reader(text)
            for _ in range(row - 1):
                next(reader, None)
            return reader.line_num + 1
        line = seen = 0
        for raw in text:
            line += 1
            seen += bool(raw.strip())
            if seen == row:
                return line
        return line

    def joiner(self) -> Joiner:
        return _Concatenated()


def byte_ranges(start: int, size: int, shard_bytes: int) -> list[tuple[int, int]]:
    """``[start, size)`` cut into ranges of about ``shard_bytes``, the last one no smaller than
    half of that (a short tail joins its neighbour)."""
    ranges = []
    position = start
    while position < size:
        end = min(size, position + shard_bytes)
        if size - end < shard_bytes // 2:
            end = size
        ranges.append((position, end))
        position = end
    return ranges


def group_row_groups(sizes: list[int], shard_bytes: int) -> list[list[int]]:
    """Consecutive row groups gathered into shards of about ``shard_bytes`` stored bytes."""
    shards: list[list[int]] = []
    current: list[int] = []
    stored = 0
    for index, size in enumerate(sizes):
        current.append(index)
        stored += size
        if stored >= shard_bytes:
            shards.append(current)
            current, stored = [], 0
    if current:
        if shards and stored < shard_bytes // 2:
            shards[-1].extend(current)
        else:
            shards.append(current)
    return shards
