"""Exact SHAP values at compiled speed, gated per model against LightGBM.

LightGBM's ``pred_contrib`` walks every tree recursively for every row
(path-dependent TreeSHAP, O(trees x leaves x depth^2) with a heavy constant):
about 170 rows/s per thread on a 200-tree, 63-leaf model, half an hour for
a million rows. The kernel (``shap_kernel``, over ``shap_tables``) computes
the same values by quadrature, rows in SIMD lanes, at about 30 times that.

A model's kernel is trusted only after ``verify``: exit leaves equal to
LightGBM's on every row of the exactness gate's check set (every split
threshold, a float step either side, NaN, zeros, odd categories, a row down
every leaf's path), and contributions within ``TOLERANCE`` of
``pred_contrib`` on a sample of them. A model it does not cover (linear
trees, random forests, no row counts) or that fails stays on LightGBM.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.scoring.engine import gate, shap_kernel
from pipeline.scoring.engine.forest import Forest, Unsupported, parse
from pipeline.scoring.engine.gate import Verdict
from pipeline.scoring.engine.row_split import RowSplitter, checked
from pipeline.scoring.engine.shap_tables import TABLES, Tables, tables
from pipeline.scoring.model import LoadedModel

log = logging.getLogger(__name__)

#: Largest difference from ``pred_contrib`` the gate allows.
TOLERANCE = 1e-9
#: Check rows whose contributions LightGBM computes for the gate (its ``pred_contrib``
#: does about 170 rows/s per thread on a 200-tree model; the leaves check every row).
CONTRIB_CHECK_ROWS = 200
_MIN_ROWS_PER_THREAD = 64


class Explainer:
    """SHAP values and exit leaves of one model's first ``tables.trees`` trees."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables
        self._function = shap_kernel.function()
        self._addresses = np.array(
            [tables.arrays[name].ctypes.data for name, _ in TABLES], dtype=np.int64
        )
        sizes = (
            tables.num_features,
            tables.num_class,
            tables.trees,
            tables.max_entries,
            tables.max_nodes,
        )
        self._sizes = np.array(sizes, dtype=np.int64)
        # Whole blocks of lanes per thread, so no two threads share a block.
        self._threads = RowSplitter("explain", _MIN_ROWS_PER_THREAD, shap_kernel.LANES)

    def contributions(
        self, features: npt.NDArray[np.float64], threads: int = 0
    ) -> npt.NDArray[np.float64]:
        """(rows, classes x (features + 1)), as ``Booster.predict(pred_contrib=True)``."""
        tables = self.tables
        width = tables.num_features + 1
        phi = np.zeros((len(features), tables.num_class * width), dtype=np.float64)
        self._run(features, threads, phi, None)
        for k in range(tables.num_class):
            phi[:, k * width + tables.num_features] += tables.bias[k]
        return phi

    def leaves(self, features: npt.NDArray[np.float64], threads: int = 0) -> npt.NDArray[np.int32]:
        """(rows, trees), as ``Booster.predict(pred_leaf=True)``."""
        out = np.zeros((len(features), self.tables.trees), dtype=np.int32)
        self._run(features, threads, None, out)
        return out

    def _run(
        self,
        features: npt.NDArray[np.float64],
        threads: int,
        phi: npt.NDArray[np.float64] | None,
        leaves: npt.NDArray[np.int32] | None,
    ) -> None:
        tables = self.tables
        rows = checked(features, tables.num_features).shape[0]
        if rows == 0:
            return
        row_stride, column_stride = (s // 8 for s in features.strides)
        flags = (shap_kernel.CONTRIBUTIONS if phi is not None else 0) | (
            shap_kernel.LEAVES if leaves is not None else 0
        )
        lanes = shap_kernel.LANES

        def run(begin: int, end: int) -> None:
            scratch = np.zeros((tables.num_features + tables.max_entries + 1) * lanes)
            scratch8 = np.zeros((tables.max_entries + tables.max_nodes + 1) * lanes, np.uint8)
            self._function(
                features.ctypes.data,
                row_stride,
                column_stride,
                begin,
                end,
                None if phi is None else phi.ctypes.data,
                None if leaves is None else leaves.ctypes.data,
                flags,
                self._addresses.ctypes.data,
                self._sizes.ctypes.data,
                scratch.ctypes.data,
                scratch8.ctypes.data,
            )

        self._threads.run(rows, threads, run)


def verify(explainer: Explainer, booster: Any, forest: Forest, num_iteration: int) -> Verdict:
    """Exit leaves on every check row, and contributions on a sample, against LightGBM."""
    rows = gate.check_rows(forest)
    expected_leaves = np.asarray(
        booster.predict(rows, pred_leaf=True, num_iteration=num_iteration), dtype=np.int64
    ).reshape(len(rows), -1)
    wrong = int(np.sum(np.any(explainer.leaves(rows) != expected_leaves, axis=1)))
    if wrong:
        return Verdict(False, len(rows), np.inf, f"{wrong} of {len(rows)} rows' leaves differ")
    picked = np.random.default_rng(0).choice(
        len(rows), size=min(CONTRIB_CHECK_ROWS, len(rows)), replace=False
    )
    sample = np.ascontiguousarray(rows[np.sort(picked)])
    expected = np.asarray(
        booster.predict(sample, pred_contrib=True, num_iteration=num_iteration), dtype=np.float64
    ).reshape(len(sample), -1)
    difference = float(np.max(np.abs(expected - explainer.contributions(sample)), initial=0.0))
    if not difference <= TOLERANCE:
        reason = f"contributions differ by up to {difference:.3g}"
        return Verdict(False, len(sample), difference, reason)
    reason = (
        f"leaves equal on {len(rows)} rows; contributions within {difference:.1e} on {len(sample)}"
    )
    return Verdict(True, len(rows), difference, reason)


class ForestExplanations:
    """One model's kernels, one per number of iterations asked for, each gated on first use.

    Answers ``None`` for a model the kernel does not cover or that failed its
    gate: LightGBM's ``pred_contrib`` then.
    """

    def __init__(self, model: LoadedModel) -> None:
        self._model = model
        self._lock = threading.Lock()
        self._forest: Forest | None = None
        self._kernels: dict[int, Explainer | None] = {}

    def contributions(
        self, features: npt.NDArray[np.float64], threads: int, num_iteration: int | None
    ) -> npt.NDArray[np.float64] | None:
        whole = self._model.iterations
        iterations = whole if num_iteration is None else min(num_iteration, whole)
        with self._lock:
            if iterations not in self._kernels:
                self._kernels[iterations] = self._build(iterations)
            kernel = self._kernels[iterations]
        return None if kernel is None else kernel.contributions(features, threads)

    def _build(self, iterations: int) -> Explainer | None:
        model = self._model
        where = f"model {model.ref.name!r} version {model.ref.version}"
        started = time.perf_counter()
        try:
            if self._forest is None:
                self._forest = parse(model.written)
            kernel = Explainer(tables(self._forest, iterations * model.num_outputs))
        except Unsupported as exc:
            log.info("%s: contributions by LightGBM: %s", where, exc)
            return None
        verdict = verify(kernel, model.booster, self._forest, iterations)
        if not verdict.passed:
            log.warning("%s: contributions by LightGBM; the kernel: %s", where, verdict.reason)
            return None
        seconds = time.perf_counter() - started
        log.info(
            "%s: contributions compiled, %d iterations, checked in %.2f s: %s",
            where,
            iterations,
            seconds,
            verdict.reason,
        )
        return kernel
