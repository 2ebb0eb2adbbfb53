"""A text file's whole lines, a block at a time, as Arrow binary arrays.

The line-oriented codecs (JSON lines, and CSV while no field is quoted) keep
each record's bytes: Arrow parses a chunk of them where they lie, and the
writer passes them through. numpy finds the newlines: no Python object a line.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from pipeline.scoring.codec import ByteSource

_NEWLINE = ord("\n")

#: Which of a block's lines are blank (skipped): ``(block, starts, ends)`` -> a mask.
Blank = Callable[[npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.int64]], "Mask"]
Mask = npt.NDArray[np.bool_]
Numbers = npt.NDArray[np.int64]


class Lines:
    """The stream's lines, read ahead a block at a time and taken a chunk at a time.

    Each record keeps its line's end, so records laid end to end are the
    file's text without its blank lines; ``numbers`` are their 1-based line
    numbers in the file (``first_line`` is the first line the stream holds).
    A stream that does not end with a line end gets one.
    """

    def __init__(
        self,
        stream: ByteSource,
        *,
        block_bytes: int,
        max_line_bytes: int,
        blank: Blank,
        too_long: Callable[[int], Exception],
        first_line: int = 1,
    ) -> None:
        self._stream, self._block_bytes = stream, block_bytes
        self._max_line_bytes, self._blank, self._too_long = max_line_bytes, blank, too_long
        #: The number of the last line read (into a block).
        self.line = first_line - 1
        self._pending: deque[tuple[pa.Array, Numbers]] = deque()
        self.pending_rows = 0
        self._rest = b""
        self.ended = False

    def next_block(self) -> bytes:
        """The next whole lines read (b"" at the end, or when a read ended mid-line)."""
        block = self._stream.read(self._block_bytes)
        if not block:
            self.ended = True
            block, self._rest = self._rest, b""
            return block + b"\n" if block else b""
        block = self._rest + block
        cut = block.rfind(b"\n") + 1
        block, self._rest = block[:cut], block[cut:]
        if len(self._rest) > self._max_line_bytes:
            raise self._too_long(self.line + block.count(b"\n") + 1)
        return block

    def add(self, block: bytes) -> None:
        """Queue ``block``'s lines (whole ones, as ``next_block`` gives), blank ones skipped."""
        if not block:
            return
        data = np.frombuffer(block, np.uint8)
        ends = np.flatnonzero(data == _NEWLINE) + 1
        starts = np.concatenate(([0], ends[:-1]))
        long = np.flatnonzero(ends - starts - 1 > self._max_line_bytes + 1)
        if len(long):
            raise self._too_long(self.line + int(long[0]) + 1)
        numbers = np.arange(self.line + 1, self.line + 1 + len(ends))
        self.line += len(ends)
        offsets = pa.py_buffer(np.concatenate(([0], ends)).astype(np.int32))
        records = pa.Array.from_buffers(
            pa.binary(), len(ends), [None, offsets, pa.py_buffer(block)]
        )
        blank = self._blank(data, starts, ends)
        if blank.any():
            keep = ~blank
            records, numbers = records.filter(pa.array(keep)), numbers[keep]
        if len(records):
            self._pending.append((records, numbers))
            self.pending_rows += len(records)

    def fill(self, rows: int) -> None:
        """Read until ``rows`` records are queued, or the stream ends."""
        while self.pending_rows < rows and not self.ended:
            self.add(self.next_block())

    def take(self, rows: int) -> tuple[pa.Array, Numbers] | None:
        """Up to ``rows`` queued records, as one array, and their line numbers."""
        taken: list[tuple[pa.Array, Numbers]] = []
        wanted = rows
        while self._pending and wanted:
            records, numbers = self._pending.popleft()
            if len(records) > wanted:
                self._pending.appendleft((records.slice(wanted), numbers[wanted:]))
                records, numbers = records.slice(0, wanted), numbers[:wanted]
            taken.append((records, numbers))
            wanted -= len(records)
        if not taken:
            return None
        records = taken[0][0] if len(taken) == 1 else pa.concat_arrays([r for r, _ in taken])
        self.pending_rows -= len(records)
        return records, np.concatenate([n for _, n in taken])

    def remainder(self) -> bytes:
        """The bytes read past the last whole line, handed over (to a reader taking the rest)."""
        rest, self._rest = self._rest, b""
        return rest


def values(array: pa.Array) -> pa.Buffer:
    """The values of a binary array laid end to end: its data buffer's used part."""
    _, offsets, data = array.buffers()
    bounds = np.frombuffer(offsets, np.int32)
    start, end = int(bounds[array.offset]), int(bounds[array.offset + len(array)])
    return data.slice(start, end - start)
