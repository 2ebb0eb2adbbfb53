"""Arrow record batches on their way through: merged for LightGBM, extended, written."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

import pyarrow as pa

from pipeline.scoring.codec import ByteSink, Chunk
from pipeline.scoring.streams import output_stream


def rebatch(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Batches of at least ``rows`` rows (but the last), in order, none empty."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield _merge(pending)
            pending, count = [], 0
    if pending:
        yield _merge(pending)


def _merge(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]


def output_schema(schema: pa.Schema, carried: Sequence[str] | None, added: pa.Schema) -> pa.Schema:
    """The input's fields that are carried, in order, then the added ones."""
    kept = list(schema) if carried is None else [schema.field(name) for name in carried]
    return pa.schema([*kept, *added])


class _ArrowFileWriter(Protocol):
    def write_batch(self, batch: pa.RecordBatch) -> None: ...

    def close(self) -> None: ...


class ArrowBatchWriter:
    """Writes each chunk's columns plus its predictions with an Arrow file writer."""

    def __init__(
        self,
        sink: ByteSink,
        compression: str | None,
        schema: pa.Schema,
        open_writer: Callable[[pa.NativeFile, pa.Schema], _ArrowFileWriter],
    ) -> None:
        self._out = output_stream(sink, compression)
        self._schema = schema
        self._writer = open_writer(self._out, schema)

    def write(self, chunk: Chunk, added: Sequence[pa.Array]) -> None:
        kept = self._schema.names[: len(self._schema) - len(added)]
        columns = [*(chunk.batch.column(name) for name in kept), *added]
        self._writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=self._schema))

    def close(self) -> None:
        self._writer.close()
        self._out.close()
