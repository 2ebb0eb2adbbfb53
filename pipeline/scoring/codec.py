"""The contract every file codec keeps: byte streams in and out, chunks, readers, writers.

A reader yields ``Chunk``s of about ``batch_rows`` rows and knows its columns
before the first one (a header-only CSV still has columns); a writer takes
each chunk with the columns scoring added and writes the same format back,
compressed the same way, keeping the input columns it was told to. Codecs
(``csv_files``, ``parquet_files``, ``json_lines``) and the plumbing they share
import this module only, never ``formats``, which chooses among them.
"""

from __future__ import annotations

import io
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa


class ByteSource(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class ByteSink(Protocol):
    def write(self, data: bytes, /) -> int: ...


class ObjectSource(Protocol):
    """The input object, readable as a stream or with random access.

    A shard's source streams only its records (after the CSV header) and names
    only its Parquet row groups.
    """

    @property
    def row_groups(self) -> tuple[int, ...] | None: ...

    def stream(self) -> ByteSource: ...

    def random_access(self) -> ByteSource: ...

    def head(self, size: int) -> bytes: ...


#: The longest CSV line or JSON record a reader takes unless told otherwise.
DEFAULT_MAX_LINE_BYTES = 1024**2


@dataclass
class Chunk:
    #: The rows' columns as Arrow arrays; features are read from these.
    batch: pa.RecordBatch
    #: 1-based data row number of the chunk's first row.
    first_row: int
    #: The rows as they were in the file (a binary array, each with its line's end), for
    #: formats that pass records through verbatim.
    records: pa.Array | None = None
    #: About how many bytes of the (uncompressed) file these rows took: the
    #: reader's progress, which bytes fetched from S3 are not (readers read ahead).
    source_bytes: int = 0
    #: Each row's 1-based data row number, where they are not consecutive from
    #: ``first_row`` (rows were set aside).
    row_numbers: npt.NDArray[np.int64] | None = None

    @property
    def num_rows(self) -> int:
        return int(self.batch.num_rows)


class Reader(Protocol):
    @property
    def columns(self) -> Sequence[str]: ...

    def __iter__(self) -> Iterator[Chunk]: ...


class Writer(Protocol):
    def write(self, chunk: Chunk, added: Sequence[pa.Array]) -> None:
        """The chunk's carried columns, then ``added`` (the columns of the writer's
        ``added`` schema, for these rows)."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class ShardCut:
    """Where a file's shards are: byte ranges or row groups, and the header they share."""

    ranges: list[tuple[int, int]] = field(default_factory=list)
    row_groups: list[list[int]] = field(default_factory=list)
    header: bytes = b""


class CannotJoin(Exception):
    """The shards' outputs cannot be joined as planned; the file runs again whole."""


class Joiner(Protocol):
    def take(
        self, index: int, head: bytes, tail: bytes, has_parts: bool, at: int
    ) -> tuple[bytes, bytes]:
        """The shard's head and tail as they go into the file, keeping what the end
        needs; ``at`` is where the shard's output begins in the file."""

    def end(self) -> bytes:
        """What closes the joined file."""


class ShardFormat(Protocol):
    #: Bytes every shard but the first leaves out of its output (a leading magic).
    skip: int
    #: Bytes a shard holds back at its end for the joiner (a footer).
    hold: int
    #: Whether a line end inside a quoted field can begin a byte range mid-record:
    #: the shards count their quotes, and an odd count before a boundary resplits.
    quoted_line_ends: bool

    def cut(
        self, source: ObjectSource, size: int, shard_bytes: int, where: str, max_line_bytes: int
    ) -> ShardCut: ...

    def line_of_row(self, records: io.RawIOBase, row: int) -> int:
        """The line, counted in a shard's records, where its data row ``row`` begins."""

    def joiner(self) -> Joiner: ...


class Codec(Protocol):
    """How one kind of file is read and written (see csv_files, parquet_files, json_lines),
    and cut into shards and joined again (``shards``, see ``splits``)."""

    @property
    def shards(self) -> ShardFormat: ...

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
        """A reader of the file's rows; ``numbers``: the columns the model reads as numbers,
        which a codec may parse as such where nothing needs their text; ``features``: every
        column the model reads (None: any may be), the others only passing through."""
        ...

    def writer(
        self,
        sink: ByteSink,
        compression: str | None,
        reader: Reader,
        carried: Sequence[str] | None,
        added: pa.Schema,
        *,
        header: bool = True,
    ) -> Writer:
        """A writer of the output: the input columns ``carried`` (None: every one, as
        the file has them), then the ``added`` ones."""
