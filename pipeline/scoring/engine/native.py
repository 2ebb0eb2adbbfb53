"""Loading a compiled forest and predicting with it from several threads.

The object file is linked into this process by LLVM's MCJIT (no compiler or
linker on the worker, and loading takes milliseconds); ``exp`` resolves to the
process's libm, the one LightGBM calls. The entry point is called through
ctypes, which releases the GIL, so rows split over threads run in parallel.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from typing import Any

import llvmlite.binding as llvm
import numpy as np
import numpy.typing as npt

from pipeline.scoring.engine.bitvector import LEAVES_ENTRY
from pipeline.scoring.engine.compiler import scratch_doubles
from pipeline.scoring.engine.irgen import ENTRY
from pipeline.scoring.engine.row_split import RowSplitter, checked

#: ``(x, row_stride, column_stride, out, begin, end, ...)``, as both entry points begin.
_ROWS = (
    ctypes.c_void_p,
    ctypes.c_int64,
    ctypes.c_int64,
    ctypes.c_void_p,
    ctypes.c_int64,
    ctypes.c_int64,
)
_SIGNATURE = ctypes.CFUNCTYPE(None, *_ROWS, ctypes.c_int32, ctypes.c_void_p)  # raw, scratch
_LEAVES_SIGNATURE = ctypes.CFUNCTYPE(None, *_ROWS, ctypes.c_void_p)  # scratch
#: Fewer rows than this per thread are not worth a hand-off (1,000 rows of a
#: 200-tree forest on 2 cores: 4.0 ms on one thread, 2.7 ms on two).
_MIN_ROWS_PER_THREAD = 256
_lock = threading.Lock()
_initialized = False


class NativeForest:
    """A compiled forest, callable on float64 matrices of any memory order."""

    def __init__(self, obj: bytes, num_class: int, num_features: int) -> None:
        global _initialized  # noqa: PLW0603 - LLVM's native target is process-wide
        with _lock:
            if not _initialized:
                llvm.initialize_native_target()
                llvm.initialize_native_asmprinter()
                _initialized = True
            machine = llvm.Target.from_default_triple().create_target_machine()
            self._engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), machine)
            self._engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
            self._engine.finalize_object()
            address = self._engine.get_function_address(ENTRY)
            leaves = self._engine.get_function_address(LEAVES_ENTRY)
        if not address:
            raise ValueError(f"the object file has no {ENTRY} function")
        self._function = _SIGNATURE(address)
        #: Only the bitvector kernel finds exit leaves; the branch kernel has no such entry.
        self._leaves = _LEAVES_SIGNATURE(leaves) if leaves else None
        self.kernel = "bitvector" if leaves else "branches"
        self.num_class, self.num_features = num_class, num_features
        self._scratch = scratch_doubles(num_features, num_class)
        self._threads = RowSplitter("predict", _MIN_ROWS_PER_THREAD)

    def predict(
        self, features: npt.NDArray[np.float64], threads: int = 0, raw: bool = False
    ) -> npt.NDArray[np.float64]:
        """Predictions as a (rows, classes) array, as ``Booster.predict`` gives them."""
        out = np.empty((features.shape[0], self.num_class), dtype=np.float64)
        function = self._function
        self._over_rows(
            features, out, threads, lambda *head, scratch: function(*head, int(raw), scratch)
        )
        return out

    def leaves(
        self, features: npt.NDArray[np.float64], num_trees: int, threads: int = 0
    ) -> npt.NDArray[np.int32]:
        """Each tree's exit leaf, (rows, trees), as ``Booster.predict(pred_leaf=True)``."""
        if self._leaves is None:
            raise ValueError("this compiled forest finds no exit leaves (branch kernel)")
        out = np.empty((features.shape[0], num_trees), dtype=np.int32)
        find = self._leaves
        self._over_rows(features, out, threads, lambda *head, scratch: find(*head, scratch))
        return out

    def _over_rows(
        self,
        features: npt.NDArray[np.float64],
        out: npt.NDArray[Any],
        threads: int,
        call: Callable[..., None],
    ) -> None:
        """``call(x, row_stride, column_stride, out, begin, end, scratch=...)`` over row
        ranges split among threads, each with a scratch of its own."""
        checked(features, self.num_features)
        rows = features.shape[0]
        if rows == 0:
            return
        row_stride, column_stride = (s // 8 for s in features.strides)
        x, y = features.ctypes.data, out.ctypes.data

        def run(begin: int, end: int) -> None:
            scratch = np.empty(self._scratch, dtype=np.float64)
            call(x, row_stride, column_stride, y, begin, end, scratch=scratch.ctypes.data)

        self._threads.run(rows, threads, run)
