"""Parquet: read one row group at a time through ranged S3 reads, written back with Arrow.

A Parquet file's footer is at its end, so it cannot be read as a stream; the
reader seeks within the S3 object instead. Reading the whole file through
``iter_batches`` makes Arrow read ahead across row groups, so row groups are
read one by one: the largest row group, not the file, sets the memory floor.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import SchemaMismatch, UnreadableFile
from pipeline.scoring.batches import ArrowBatchWriter, output_schema
from pipeline.scoring.codec import DEFAULT_MAX_LINE_BYTES, ByteSink, Chunk, ObjectSource, Reader


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


class _Codec:
    def open(
        self,
        source: ObjectSource,
        compression: str | None,
        where: str,
        batch_rows: int,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    ) -> Reader:
        return ParquetReader(source, where, batch_rows)

    def writer(
        self,
        sink: ByteSink,
        compression: str | None,
        reader: Reader,
        outputs: Sequence[str],
        header: bool = True,
    ) -> ArrowBatchWriter:
        assert isinstance(reader, ParquetReader)  # noqa: S101 - a codec writes what it read
        schema = output_schema(reader.schema, outputs)
        return ArrowBatchWriter(sink, None, schema, pq.ParquetWriter)


CODEC = _Codec()
