"""The readers' number parsing, chunk by chunk: the compiled pass beside what it replaces.

One chunk of the reader's size (``--rows``, 8,192 as ``PIPELINE_BATCH_ROWS``) of the
bench's 33 features, in three spellings, parsed alternately by each path ``--runs``
times; prints the median CPU and wall milliseconds of each and their ratio:

* CSV, numbers of 6 decimals (``bench/e2e.py``'s file): Arrow's typed read (two
  threads, as ``CsvReader`` asks) against ``plain_numbers.csv_chunk`` (Clinger's path);
* CSV, doubles as ``repr`` spells them (pandas' ``to_csv``): the same (Eisel-Lemire);
* JSON lines as ``json.dumps`` writes them: polars (``_parsed_by_polars``) against
  ``plain_numbers.json_chunk``.

Each pair is checked to give the same values, bit for bit, before it is timed.

    .venv/bin/python bench/number_parsing.py [--rows 8192] [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np
import polars as pl
import pyarrow as pa
from e2e import encode, table

from pipeline.scoring import csv_files, plain_numbers
from pipeline.scoring.json_lines import _parsed_by_polars


def arrow_reader(columns: list[str]) -> csv_files.CsvReader:
    """A CSV reader whose typed read is called directly (no stream: only ``_read``)."""
    reader = csv_files.CsvReader.__new__(csv_files.CsvReader)
    reader.columns = columns
    reader._max_line_bytes = csv_files.DEFAULT_MAX_LINE_BYTES
    return reader


def timed(parse: Callable[[], pa.RecordBatch | None]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    parse()
    return (time.perf_counter() - wall) * 1e3, (time.process_time() - cpu) * 1e3


def same(a: pa.RecordBatch | None, b: pa.RecordBatch | None) -> None:
    assert a is not None
    assert b is not None
    for x, y in zip(a.columns, b.columns, strict=True):
        assert x.is_valid().equals(y.is_valid())
        bits = x.fill_null(0).to_numpy().view(np.uint64)
        assert np.array_equal(bits, y.fill_null(0).to_numpy().view(np.uint64))


def compare(
    label: str, size: int, theirs: Callable[[], object], ours: Callable[[], object], runs: int
) -> None:
    same(theirs(), ours())  # type: ignore[arg-type]
    pairs = [(timed(theirs), timed(ours)) for _ in range(runs)]
    before = [statistics.median(p[0][i] for p in pairs) for i in (0, 1)]
    after = [statistics.median(p[1][i] for p in pairs) for i in (0, 1)]
    print(
        f"| {label} | {size / 1e6:.1f} MB | {before[1]:.1f} ({before[0]:.1f}) | "
        f"{after[1]:.1f} ({after[0]:.1f}) | {before[1] / after[1]:.1f}x |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=8_192)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    plain_numbers.warm()
    rows = args.rows
    data = table(rows, seed=7)
    columns = data.schema.names
    numbers = np.arange(rows)
    reader = arrow_reader(columns)

    print(f"{rows:,} rows of {len(columns)} numbers, median of {args.runs} alternations:")
    print("CPU-ms (wall ms) a chunk\n")
    print("| chunk | size | before | compiled pass | CPU ratio |")
    print("| --- | ---: | ---: | ---: | ---: |")
    short = pa.py_buffer(encode(data, "csv").split(b"\n", 1)[1])
    compare(
        "CSV, 6 decimals: Arrow",
        short.size,
        lambda: reader._read(short, numbers, 1, columns),
        lambda: plain_numbers.csv_chunk(short, rows, columns, columns),
        args.runs,
    )
    doubles = np.random.default_rng(1).standard_normal((rows, len(columns)))
    spelled = "\n".join(",".join(repr(x) for x in row) for row in doubles.tolist()) + "\n"
    long = pa.py_buffer(spelled.encode())
    compare(
        "CSV, `repr` doubles: Arrow",
        long.size,
        lambda: reader._read(long, numbers, 1, columns),
        lambda: plain_numbers.csv_chunk(long, rows, columns, columns),
        args.runs,
    )
    records = [json.dumps(dict(zip(columns, row, strict=True))) for row in doubles.tolist()]
    lines = pa.py_buffer(("\n".join(records) + "\n").encode())
    kinds: dict[str, pl.DataType] = {name: pl.Float64() for name in columns}
    compare(
        "JSON lines, `repr` doubles: polars",
        lines.size,
        lambda: _parsed_by_polars(lines, kinds),
        lambda: plain_numbers.json_chunk(lines, rows, dict.fromkeys(columns, "double")),
        args.runs,
    )


if __name__ == "__main__":
    main()
