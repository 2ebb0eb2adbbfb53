"""Parquet: read one row group at a time through ranged S3 reads, written back with Arrow.

A Parquet file's footer is at its end, so it cannot be read as a stream; the
reader seeks within the S3 object instead. Reading the whole file through
``iter_batches`` makes Arrow read ahead across row groups, so row groups are
read one by one: the largest row group, not the file, sets the memory floor.
"""

from __future__ import annotations

import io
from collections.abc import Collection, Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import SchemaMismatch, UnreadableFile
from pipeline.scoring import parquet_footer
from pipeline.scoring.batches import ArrowBatchWriter, output_schema
from pipeline.scoring.codec import (
    DEFAULT_MAX_LINE_BYTES,
    ByteSink,
    CannotJoin,
    Chunk,
    ObjectSource,
    Reader,
    ShardCut,
)
from pipeline.scoring.splits import group_row_groups


class ParquetReader:
    def __init__(self, source: ObjectSource, where: str, batch_rows: int) -> None:
        self._where, self._batch_rows = where, batch_rows
        self._groups = source.row_groups
        try:
            self._file = pq.ParquetFile(source.random_access(), pre_buffer=False)
        except (pa.ArrowInvalid, OSError) as exc:
            raise UnreadableFile(f"{where} is not a readable Parquet file: {exc}") from exc
        self.schema: pa.Schema = self._file.schema_arrow
        self.columns: list[str] = list(self.schema.names)
        repeated = sorted({n for n in self.columns if self.columns.count(n) > 1})
        if repeated:
            raise SchemaMismatch(f"{where}: the file repeats column(s) {', '.join(repeated)}")

    def __iter__(self) -> Iterator[Chunk]:
        first = 1
        groups = range(self._file.num_row_groups) if self._groups is None else self._groups
        for group in groups:
            try:
                batches = list(
                    self._file.iter_batches(
                        batch_size=self._batch_rows, row_groups=[group], use_threads=False
                    )
                )
            except (pa.ArrowInvalid, OSError) as exc:
                raise UnreadableFile(
                    f"{self._where}: row group {group + 1} (from data row {first}) cannot be "
                    f"read: {exc}"
                ) from exc
            # The row group's size in the file, shared among its batches by rows.
            meta = self._file.metadata.row_group(group)
            stored = sum(meta.column(c).total_compressed_size for c in range(meta.num_columns))
            rows = sum(b.num_rows for b in batches) or 1
            for batch in batches:
                if batch.num_rows:
                    share = stored * batch.num_rows // rows
                    yield Chunk(batch=batch, first_row=first, source_bytes=share)
                    first += batch.num_rows


class RowGroups:
    """Parquet: consecutive row groups per shard, each shard's output a Parquet file.

    The joined file keeps the first shard's leading magic, and ends with one
    footer merged from all of theirs, their row groups' offsets moved to
    where each shard's bytes begin.
    """

    skip = len(parquet_footer.MAGIC)
    #: A shard holds back at least this much, where its footer is written (a
    #: bigger footer, from thousands of columns, makes the file run whole).
    hold = 2 * 1024 * 1024
    quoted_line_ends = False

    def cut(
        self, source: ObjectSource, size: int, shard_bytes: int, where: str, max_line_bytes: int
    ) -> ShardCut:
        metadata = pq.ParquetFile(source.random_access(), pre_buffer=False).metadata
        sizes = [
            sum(g.column(c).total_compressed_size for c in range(g.num_columns))
            for g in map(metadata.row_group, range(metadata.num_row_groups))
        ]
        return ShardCut(row_groups=group_row_groups(sizes, shard_bytes))

    def line_of_row(self, records: io.RawIOBase, row: int) -> int:
        return row  # no lines: a row is where it is

    def joiner(self) -> _Footers:
        return _Footers()


class _Footers:
    def __init__(self) -> None:
        self._footers: list[bytes] = []
        self._starts: list[int] = []

    def take(
        self, index: int, head: bytes, tail: bytes, has_parts: bool, at: int
    ) -> tuple[bytes, bytes]:
        # The footer ends the shard's output: in its tail, or (no parts) in head and tail.
        if not has_parts:
            head, tail = b"", head + tail
        length = parquet_footer.footer_length(tail)
        if length > len(tail):
            raise CannotJoin(f"shard {index + 1}'s Parquet footer is larger than expected")
        self._footers.append(tail[-length:-8])
        self._starts.append(at + (len(parquet_footer.MAGIC) if not index else 0))
        return head, tail[:-length]

    def end(self) -> bytes:
        return parquet_footer.merged_footer(self._footers, self._starts)


class _Codec:
    shards = RowGroups()

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
        return ParquetReader(source, where, batch_rows)

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
        assert isinstance(reader, ParquetReader)  # noqa: S101 - a codec writes what it read
        schema = output_schema(reader.schema, carried, added)
        return ArrowBatchWriter(sink, None, schema, pq.ParquetWriter)


CODEC = _Codec()
