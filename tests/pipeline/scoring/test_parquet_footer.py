"""Parquet files joined end to end under one merged footer read back as one file."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.scoring import parquet_footer


def _parquet(table: pa.Table, **options: object) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out, **options)
    return out.getvalue()


def _table(rows: int, offset: int) -> pa.Table:
    rng = np.random.default_rng(offset)
    return pa.table(
        {
            "id": pa.array(np.arange(offset, offset + rows)),
            "x": rng.normal(size=rows),
            "name": pa.array([f"r{i}" for i in range(rows)]),
            "maybe": pa.array([None if i % 7 == 0 else i * 0.5 for i in range(rows)]),
            "color": pa.array(
                ["red", "blue"] * (rows // 2) + ["red"] * (rows % 2)
            ).dictionary_encode(),
        }
    )


def test_a_footer_decodes_and_encodes_to_the_same_bytes() -> None:
    data = _parquet(_table(3000, 0), row_group_size=1000)
    length = parquet_footer.footer_length(data)
    footer = data[-length:-8]

    assert parquet_footer.encode(parquet_footer.decode(footer)) == footer


def test_files_joined_under_a_merged_footer_are_one_file_with_all_rows_in_order() -> None:
    tables = [_table(1000 * (i + 1), 10_000 * i) for i in range(3)]
    files = [_parquet(t, row_group_size=700) for t in tables]
    joined = bytearray()
    footers, starts = [], []
    for index, data in enumerate(files):
        length = parquet_footer.footer_length(data)
        footers.append(data[-length:-8])
        body = data[: len(data) - length] if index == 0 else data[4 : len(data) - length]
        starts.append(len(joined) if index else 4)
        joined += body
    joined += parquet_footer.merged_footer(footers, starts)

    read = pq.ParquetFile(io.BytesIO(bytes(joined)))

    assert read.metadata.num_rows == 6000
    assert read.metadata.num_row_groups == sum(
        pq.ParquetFile(io.BytesIO(f)).metadata.num_row_groups for f in files
    )
    assert read.read().equals(pa.concat_tables(tables))
