"""Rows set aside: their unreadable values listed, the rest of the file scored.

With ``max-bad-rows`` N above 0, a chunk whose features cannot all be read
is not the file's end: every unreadable cell of it is found (the slow path,
only for such chunks), its rows are left out of the output, and the cells
go to an errors CSV beside it (``row``, the 1-based data row, the header not
counted; ``column``; ``value``; ``reason``). Past N rows the file fails with
``bad_value`` as before, naming the first ones.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from pipeline.errors import BadValue
from pipeline.scoring.codec import Chunk
from pipeline.scoring.features import Feature, feature_matrix, unreadable

#: Cells named in the message of a file failed for too many bad rows.
_NAMED = 5
_SHOWN_VALUE_CHARS = 40
ERRORS_SUFFIX = ".errors.csv"
#: A cell: its 1-based data row, column, value and why it cannot be read.
Cell = tuple[int, str, str, str]


@dataclass
class BadRows:
    limit: int
    where: str
    #: Rows set aside so far, and their cells (in file order).
    rows: int = 0
    cells: list[Cell] = field(default_factory=list)

    def set_aside(
        self, chunk: Chunk, features: Sequence[Feature]
    ) -> tuple[Chunk, npt.NDArray[np.float64]]:
        """The chunk without its unreadable rows, and their features; past the limit,
        ``BadValue``."""
        batch = chunk.batch
        bad = np.zeros(batch.num_rows, dtype=bool)
        found: list[tuple[int, int, str, str]] = []  # (index in chunk, feature, value, reason)
        for j, feature in enumerate(features):
            if feature.name not in batch.schema.names:
                continue
            column = batch.column(feature.name)
            cells, reason = unreadable(column, feature)
            if not cells.any():
                continue
            bad |= cells
            values = column.to_pylist()
            found += [(int(i), j, _text(values[i]), reason) for i in np.flatnonzero(cells)]
        found.sort()
        self.rows += int(bad.sum())
        self.cells += [
            (chunk.first_row + i, features[j].name, value, reason) for i, j, value, reason in found
        ]
        if self.rows > self.limit:
            raise self.too_many()
        keep = ~bad
        kept = Chunk(
            batch=batch.filter(pa.array(keep)),
            first_row=chunk.first_row,
            records=None if chunk.records is None else chunk.records.filter(pa.array(keep)),
            source_bytes=chunk.source_bytes,
            row_numbers=np.flatnonzero(keep).astype(np.int64) + chunk.first_row,
        )
        return kept, feature_matrix(kept.batch, features, chunk.first_row, self.where)

    def too_many(self, rows: int | None = None, cells: Sequence[Cell] | None = None) -> BadValue:
        rows = self.rows if rows is None else rows
        cells = self.cells if cells is None else cells
        named = "; ".join(
            f"row {row}, column {column!r}: {_shown(value)!r} is {reason}"
            for row, column, value, reason in cells[:_NAMED]
        )
        first = cells[0][0] if cells else None
        return BadValue(
            f"{self.where}: {rows:,} or more rows have values that cannot be read, more than "
            f"max-bad-rows {self.limit:,}: {named}",
            row=first,
        )


def errors_csv(cells: Sequence[Cell]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["row", "column", "value", "reason"])
    writer.writerows(cells)
    return out.getvalue().encode()


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _shown(text: str) -> str:
    return text if len(text) <= _SHOWN_VALUE_CHARS else text[:_SHOWN_VALUE_CHARS] + "…"
