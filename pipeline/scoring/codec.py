"""The contract every file codec keeps: byte streams in and out, chunks, readers, writers.

A reader yields ``Chunk``s of about ``batch_rows`` rows and knows its columns
before the first one (a header-only CSV still has columns); a writer takes
each chunk with its predictions and writes the same format back, compressed
the same way. Codecs (``csv_files``, ``parquet_files``, ``json_lines``) and
the plumbing they share import this module only, never ``formats``, which
chooses among them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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
    #: The rows as they were in the file, for formats that pass records through verbatim.
    records: list[bytes] = field(default_factory=list)
    #: About how many bytes of the (uncompressed) file these rows took: the
    #: reader's progress, which bytes fetched from S3 are not (readers read ahead).
    source_bytes: int = 0

    @property
    def num_rows(self) -> int:
        return int(self.batch.num_rows)


class Reader(Protocol):
    @property
    def columns(self) -> Sequence[str]: ...

    def __iter__(self) -> Iterator[Chunk]: ...


class Writer(Protocol):
    def write(self, chunk: Chunk, predictions: npt.NDArray[np.float64]) -> None: ...

    def close(self) -> None: ...


class Codec(Protocol):
    """How one kind of file is read and written (see csv_files, parquet_files, json_lines)."""

    def open(
        self,
        source: ObjectSource,
        compression: str | None,
        where: str,
        batch_rows: int,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    ) -> Reader: ...

    def writer(
        self,
        sink: ByteSink,
        compression: str | None,
        reader: Reader,
        outputs: Sequence[str],
        header: bool = True,
    ) -> Writer: ...
