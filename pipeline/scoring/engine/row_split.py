"""Running a native kernel over a matrix's rows on several threads.

Kernels are called through ctypes, which releases the GIL, so row ranges
handed to threads run in parallel; each range is a kernel call of its own.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt


def checked(features: npt.NDArray[np.float64], num_features: int) -> npt.NDArray[np.float64]:
    """``features``, if it is a 2-D float64 matrix with the model's number of columns."""
    if features.dtype != np.float64 or features.ndim != 2:
        raise TypeError("features must be a 2-D float64 array")
    if features.shape[1] != num_features:
        raise ValueError(f"{features.shape[1]} feature columns; the model has {num_features}")
    return features


class RowSplitter:
    """Calls ``run(begin, end)`` over ``[0, rows)``, in ranges on up to ``threads`` threads."""

    def __init__(self, name: str, min_rows: int, align: int = 1) -> None:
        #: Fewer rows than ``min_rows`` per thread are not worth a hand-off; ranges
        #: begin at multiples of ``align`` (a kernel's block of rows).
        self._name, self._min_rows, self._align = name, min_rows, align
        self._pool: ThreadPoolExecutor | None = None

    def run(self, rows: int, threads: int, run: Callable[[int, int], None]) -> None:
        parts = max(1, min(threads or os.cpu_count() or 1, rows // self._min_rows))
        if parts == 1:
            run(0, rows)
            return
        if self._pool is None or self._pool._max_workers < parts:
            self._pool = ThreadPoolExecutor(parts, thread_name_prefix=self._name)
        bounds = np.linspace(0, rows // self._align, parts + 1).astype(int) * self._align
        bounds[-1] = rows
        futures = [self._pool.submit(run, int(a), int(b)) for a, b in itertools.pairwise(bounds)]
        for future in futures:
            future.result()
