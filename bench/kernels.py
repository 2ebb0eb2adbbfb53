"""Candidate exact prediction kernels for the compiled engine, measured side by side.

Generated as C from the forest (compiled with the machine's gcc; the product's
engine emits LLVM IR, so these are measurements, not an engine), on the
200-tree x 63-leaf model and rows of ``bench/e2e.py``, one thread, raw scores:

* ``quickscorer``: QuickScorer (SIGIR 2015): a 64-bit leaf mask per tree,
  each feature's thresholds scanned in ascending order while below the row's
  value, ANDing the masks of the nodes that test false; NaN and zero take
  precomputed masks (missing types, default directions); the exit leaf is the
  lowest set bit, its value added in LightGBM's tree order;
* ``bitvector-ranks``: 32 rows a block, every node's "goes left" as a 32-bit row
  mask (AVX2 compares of the rows' uint16 threshold ranks), reach masks top
  down without a branch (children and leaves share one array), leaves added in
  tree order; ranks by binary search;
* ``bitvector-doubles``: the same with the rows' doubles compared directly;
* ``bitvector-doubles-64-masked``: that in 64-row blocks (64-bit masks), adding
  leaf values to all 64 rows at once, the value where a row reached the leaf
  and +0.0 elsewhere (exact: a running sum from +0.0 is never -0.0), instead of
  a loop over each leaf's rows whose length the branch predictor cannot guess.

Each is checked bit for bit against ``Booster.predict(raw_score=True)``; the
table gives rows/s and the ratio to today's compiled forest.

    .venv/bin/python bench/kernels.py [--rows 200000]
"""

from __future__ import annotations

import argparse
import bisect
import ctypes
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from e2e import FEATURES, table, train

from pipeline.scoring.engine import compiler
from pipeline.scoring.engine.forest import Forest, Tree, parse
from pipeline.scoring.engine.native import NativeForest

_ALL = (1 << 64) - 1
_HEADER = "#include <stdint.h>\n#include <math.h>\n#include <string.h>\n#include <immintrin.h>\n"
_ZERO = "1.0000000180025095e-35"


def _array(name: str, kind: str, values: list[str] | list[int]) -> str:
    listed = ",".join(map(str, values)) or "0"
    return f"static const {kind} {name}[{max(1, len(values))}] = {{{listed}}};\n"


def _leaves_in_order(tree: Tree, node: int = 0) -> list[int]:
    if node < 0:
        return [~node]
    split = tree.nodes[node]
    return _leaves_in_order(tree, split.left) + _leaves_in_order(tree, split.right)


def _goes_left_special(
    threshold: float, missing_type: int, default_left: bool
) -> tuple[bool, bool]:
    """(for NaN, for 0.0): the compiled engine's numerical rule at those values."""
    at_nan = default_left if missing_type in (1, 2) else threshold >= 0.0
    at_zero = default_left if missing_type == 1 else threshold >= 0.0
    return at_nan, at_zero


def quickscorer(forest: Forest) -> str:
    features = forest.num_features
    scans: list[list[tuple[float, int, int]]] = [[] for _ in range(features)]
    special: list[list[dict[int, int]]] = [[{} for _ in range(features)] for _ in range(2)]
    values: list[str] = []
    for t, tree in enumerate(forest.trees):
        position = (
            {leaf: p for p, leaf in enumerate(_leaves_in_order(tree))} if tree.nodes else {0: 0}
        )
        row = ["0.0"] * 64
        for leaf, p in position.items():
            row[p] = repr(tree.leaves[leaf])
        values += row
        for node in tree.nodes:
            mask = _ALL
            for leaf in _leaves_in_order(tree, node.left):
                mask &= ~(1 << position[leaf])
            scans[node.feature].append((node.threshold, t, mask))
            lefts = _goes_left_special(node.threshold, node.missing_type, node.default_left)
            for which, left in enumerate(lefts):
                if not left:
                    masks = special[which][node.feature]
                    masks[t] = masks.get(t, _ALL) & mask
    thresholds, trees, masks, starts = [], [], [], [0]
    for f in range(features):
        for threshold, t, mask in sorted(scans[f]):
            thresholds.append(repr(threshold))
            trees.append(t)
            masks.append(f"{mask}ULL")
        starts.append(len(thresholds))
    source = _HEADER + _array("THR", "double", thresholds) + _array("TREE", "uint16_t", trees)
    source += _array("MASK", "uint64_t", masks) + _array("START", "int32_t", starts)
    for which, name in enumerate(("N", "Z")):
        first, owners, kept = [0], [], []
        for per_feature in special[which]:
            for t, mask in sorted(per_feature.items()):
                owners.append(t)
                kept.append(f"{mask}ULL")
            first.append(len(owners))
        source += _array(f"{name}S", "int32_t", first) + _array(f"{name}T", "uint16_t", owners)
        source += _array(f"{name}M", "uint64_t", kept)
    source += _array("LV", "double", values)
    return (
        source
        + f"""
void predict(const double* x, long rs, long cs, double* out, long begin, long end) {{
  uint64_t lm[{len(forest.trees)}];
  for (long r = begin; r < end; r++) {{
    memset(lm, 0xff, sizeof lm);
    for (int f = 0; f < {features}; f++) {{
      double v = x[r*rs + f*cs];
      if (fabs(v) <= {_ZERO}) v = 0.0;
      if (v != v) {{ for (int i = NS[f]; i < NS[f+1]; i++) lm[NT[i]] &= NM[i]; }}
      else if (v == 0.0) {{ for (int i = ZS[f]; i < ZS[f+1]; i++) lm[ZT[i]] &= ZM[i]; }}
      else {{ int i = START[f], e = START[f+1];
             while (i < e && THR[i] < v) {{ lm[TREE[i]] &= MASK[i]; i++; }} }}
    }}
    double acc[{forest.num_class}] = {{0}};
    for (int t = 0; t < {len(forest.trees)}; t++)
      acc[t % {forest.num_class}] += LV[t*64 + __builtin_ctzll(lm[t])];
    for (int k = 0; k < {forest.num_class}; k++) out[r*{forest.num_class} + k] = acc[k];
  }}
}}
"""
    )


def bitvector(forest: Forest, ranks: bool) -> str:
    features, k = forest.num_features, forest.num_class
    uniques = [
        sorted({n.threshold for tree in forest.trees for n in tree.nodes if n.feature == f})
        for f in range(features)
    ]
    starts, flat = [0], []
    for unique in uniques:
        flat += [repr(v) for v in unique]
        starts.append(len(flat))
    nodes: list[tuple[int, ...]] = []
    tree_starts, leaves, leaf_starts = [0], [], [0]
    for tree in forest.trees:
        for n in tree.nodes:
            at_nan, at_zero = _goes_left_special(n.threshold, n.missing_type, n.default_left)
            rank = bisect.bisect_left(uniques[n.feature], n.threshold)
            left = n.left if n.left >= 0 else 64 + ~n.left
            right = n.right if n.right >= 0 else 64 + ~n.right
            nodes.append((n.feature, rank, left, right, int(at_nan), int(at_zero)))
        tree_starts.append(len(nodes))
        leaves += [repr(v) for v in tree.leaves]
        leaf_starts.append(len(leaves))
    source = _HEADER + _array("U", "double", flat) + _array("US", "int32_t", starts)
    for i, (name, kind) in enumerate(
        (("NF", "uint16_t"), ("NJ", "uint16_t"), ("NL", "uint8_t"), ("NR", "uint8_t"),
         ("NNAN", "uint8_t"), ("NZERO", "uint8_t"))
    ):  # fmt: skip
        source += _array(name, kind, [n[i] for n in nodes])
    source += _array("TS", "int32_t", tree_starts) + _array("LS", "int32_t", leaf_starts)
    source += _array("LV", "double", leaves)
    if ranks:
        block = "uint16_t xs[F][32] __attribute__((aligned(32)));"
        store = "xs[f][r] = rank(U + US[f], US[f+1] - US[f], v);"
        left = """__m256i jj = _mm256_set1_epi16((short)NJ[i]);
        const __m256i* b = (const __m256i*)xs[f];
        __m256i g = _mm256_permute4x64_epi64(_mm256_packs_epi16(
            _mm256_cmpgt_epi16(b[0], jj), _mm256_cmpgt_epi16(b[1], jj)), 0xD8);
        uint32_t le = ~(uint32_t)_mm256_movemask_epi8(g);"""
    else:
        block = "double xs[F][32] __attribute__((aligned(32)));"
        store = "xs[f][r] = v;"
        left = """__m256d th = _mm256_set1_pd(U[US[f] + NJ[i]]);
        uint32_t le = 0;
        for (int q = 0; q < 8; q++) le |= (uint32_t)_mm256_movemask_pd(
            _mm256_cmp_pd(_mm256_load_pd(xs[f] + 4*q), th, _CMP_LE_OQ)) << (4*q);"""
    return (
        source
        + f"""
#define F {features}
static inline uint16_t rank(const double* u, int n, double x) {{
  int lo = 0, hi = n;
  while (lo < hi) {{ int mid = (lo + hi) >> 1; if (u[mid] < x) lo = mid + 1; else hi = mid; }}
  return (uint16_t)lo;
}}
void predict(const double* x, long rs, long cs, double* out, long begin, long end) {{
  {block}
  uint32_t nanm[F], zerom[F], reach[128];
  for (long r0 = begin; r0 < end; r0 += 32) {{
    int n = (end - r0) < 32 ? (int)(end - r0) : 32;
    for (int f = 0; f < F; f++) {{
      uint32_t nm = 0, zm = 0;
      for (int r = 0; r < 32; r++) {{
        double v = r < n ? x[(r0 + r)*rs + f*cs] : 0.0;
        if (fabs(v) <= {_ZERO}) v = 0.0;
        if (v != v) {{ nm |= 1u << r; v = 0.0; }} else if (v == 0.0) zm |= 1u << r;
        {store}
      }}
      nanm[f] = nm; zerom[f] = zm;
    }}
    double acc[32][{k}];
    memset(acc, 0, sizeof acc);
    for (int t = 0; t < {len(forest.trees)}; t++) {{
      int first = TS[t], last = TS[t+1], kk = t % {k};
      if (first == last) {{ for (int r = 0; r < n; r++) acc[r][kk] += LV[LS[t]]; continue; }}
      reach[0] = 0xffffffffu;
      for (int i = first; i < last; i++) {{
        int f = NF[i];
        {left}
        uint32_t special = nanm[f] | zerom[f];
        uint32_t goes = (le & ~special) | (NNAN[i] ? nanm[f] : 0) | (NZERO[i] ? zerom[f] : 0);
        uint32_t here = reach[i - first];
        reach[NL[i]] = here & goes;  /* a child node's slot, or 64 + its leaf */
        reach[NR[i]] = here & ~goes;
      }}
      for (int l = 0; l < LS[t+1] - LS[t]; l++) {{
        uint32_t m = reach[64 + l];
        while (m) {{ int r = __builtin_ctz(m); m &= m - 1; acc[r][kk] += LV[LS[t] + l]; }}
      }}
    }}
    for (int r = 0; r < n; r++) for (int c = 0; c < {k}; c++) out[(r0 + r)*{k} + c] = acc[r][c];
  }}
}}
"""
    )


def bitvector_masked(forest: Forest) -> str:
    """``bitvector`` on doubles in 64-row blocks, leaf values added to the block's rows as
    masked vectors."""
    features, k = forest.num_features, forest.num_class
    uniques = [
        sorted({n.threshold for tree in forest.trees for n in tree.nodes if n.feature == f})
        for f in range(features)
    ]
    starts, flat = [0], []
    for unique in uniques:
        flat += [repr(v) for v in unique]
        starts.append(len(flat))
    nodes: list[tuple[int, ...]] = []
    tree_starts, leaves, leaf_starts = [0], [], [0]
    for tree in forest.trees:
        for n in tree.nodes:
            at_nan, at_zero = _goes_left_special(n.threshold, n.missing_type, n.default_left)
            rank = bisect.bisect_left(uniques[n.feature], n.threshold)
            left = n.left if n.left >= 0 else 64 + ~n.left
            right = n.right if n.right >= 0 else 64 + ~n.right
            nodes.append((n.feature, rank, left, right, int(at_nan), int(at_zero)))
        tree_starts.append(len(nodes))
        leaves += [repr(v) for v in tree.leaves]
        leaf_starts.append(len(leaves))
    source = _HEADER + _array("U", "double", flat) + _array("US", "int32_t", starts)
    for i, (name, kind) in enumerate(
        (("NF", "uint16_t"), ("NJ", "uint16_t"), ("NL", "uint8_t"), ("NR", "uint8_t"),
         ("NNAN", "uint8_t"), ("NZERO", "uint8_t"))
    ):  # fmt: skip
        source += _array(name, kind, [n[i] for n in nodes])
    source += _array("TS", "int32_t", tree_starts) + _array("LS", "int32_t", leaf_starts)
    source += _array("LV", "double", leaves)
    block = "double xs[F][64] __attribute__((aligned(32)));"
    store = "xs[f][r] = v;"
    left = """__m256d th = _mm256_set1_pd(U[US[f] + NJ[i]]);
    uint64_t le = 0;
    for (int q = 0; q < 16; q++) le |= (uint64_t)_mm256_movemask_pd(
        _mm256_cmp_pd(_mm256_load_pd(xs[f] + 4*q), th, _CMP_LE_OQ)) << (4*q);"""
    return (
        source
        + f"""
#define F {features}
static __m256d EXPAND[16];
__attribute__((constructor)) static void expand(void) {{
  for (int b = 0; b < 16; b++) {{
    int64_t lanes[4];
    for (int j = 0; j < 4; j++) lanes[j] = (b >> j) & 1 ? -1 : 0;
    EXPAND[b] = _mm256_castsi256_pd(_mm256_loadu_si256((const __m256i*)lanes));
  }}
}}
void predict(const double* x, long rs, long cs, double* out, long begin, long end) {{
  {block}
  uint64_t nanm[F], zerom[F], reach[128];
  for (long r0 = begin; r0 < end; r0 += 64) {{
    int n = (end - r0) < 64 ? (int)(end - r0) : 64;
    for (int f = 0; f < F; f++) {{
      uint64_t nm = 0, zm = 0;
      for (int r = 0; r < 64; r++) {{
        double v = r < n ? x[(r0 + r)*rs + f*cs] : 0.0;
        if (fabs(v) <= {_ZERO}) v = 0.0;
        if (v != v) {{ nm |= 1ull << r; v = 0.0; }} else if (v == 0.0) zm |= 1ull << r;
        {store}
      }}
      nanm[f] = nm; zerom[f] = zm;
    }}
    __m256d acc[{k}][16];
    for (int c = 0; c < {k}; c++) for (int q = 0; q < 16; q++) acc[c][q] = _mm256_setzero_pd();
    for (int t = 0; t < {len(forest.trees)}; t++) {{
      int first = TS[t], last = TS[t+1], kk = t % {k};
      if (first == last) {{ __m256d one = _mm256_set1_pd(LV[LS[t]]);
        for (int q = 0; q < 16; q++) acc[kk][q] = _mm256_add_pd(acc[kk][q], one); continue; }}
      reach[0] = ~0ull;
      for (int i = first; i < last; i++) {{
        int f = NF[i];
        {left}
        uint64_t special = nanm[f] | zerom[f];
        uint64_t goes = (le & ~special) | (NNAN[i] ? nanm[f] : 0) | (NZERO[i] ? zerom[f] : 0);
        uint64_t here = reach[i - first];
        reach[NL[i]] = here & goes;  /* a child node's slot, or 64 + its leaf */
        reach[NR[i]] = here & ~goes;
      }}
      for (int l = 0; l < LS[t+1] - LS[t]; l++) {{
        uint64_t m = reach[64 + l];
        if (!m) continue;
        __m256d value = _mm256_set1_pd(LV[LS[t] + l]);
        /* every row adds its leaf's value, the others +0.0: exact, as acc is never -0.0 */
        for (int q = 0; q < 16; q++)
          acc[kk][q] = _mm256_add_pd(acc[kk][q], _mm256_and_pd(EXPAND[(m >> (4*q)) & 15], value));
      }}
    }}
    for (int c = 0; c < {k}; c++) {{
      double lanes[64] __attribute__((aligned(32)));
      for (int q = 0; q < 16; q++) _mm256_store_pd(lanes + 4*q, acc[c][q]);
      for (int r = 0; r < n; r++) out[(r0 + r)*{k} + c] = lanes[r];
    }}
  }}
}}
"""
    )


def _load(source: str, march: str, folder: Path) -> Callable[..., None]:
    c, library = folder / "kernel.c", folder / f"kernel-{march}-{len(source)}.so"
    c.write_text(source)
    gcc = shutil.which("gcc")
    if gcc is None:
        raise SystemExit("bench/kernels.py compiles its candidates with gcc, which is not here")
    subprocess.run([gcc, "-O3", f"-march={march}", "-shared", "-fPIC", "-o", str(library),
                    str(c)], check=True)  # fmt: skip
    pointer = ctypes.POINTER(ctypes.c_double)
    function = ctypes.CDLL(str(library)).predict
    function.argtypes = [
        pointer,
        ctypes.c_long,
        ctypes.c_long,
        pointer,
        ctypes.c_long,
        ctypes.c_long,
    ]
    return function  # type: ignore[no-any-return]


def _rate(rows: int, run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return rows / best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    booster = train()
    forest = parse(booster.model_to_string())
    target = compiler.host_target()
    assert target is not None
    native = NativeForest(compiler.compile_object(forest, target), 1, len(FEATURES))
    data = table(args.rows, seed=1)
    x = np.ascontiguousarray(np.column_stack([data.column(f).to_numpy() for f in FEATURES]))
    expected = booster.predict(x, raw_score=True, num_threads=1)
    rates = {
        "LightGBM": _rate(len(x), lambda: booster.predict(x, raw_score=True, num_threads=1)),
        "compiled (today)": _rate(len(x), lambda: native.predict(x, 1, True)),
    }
    pointer = ctypes.POINTER(ctypes.c_double)
    with tempfile.TemporaryDirectory() as folder:
        for name, source, march in (
            ("quickscorer", quickscorer(forest), "x86-64-v2"),
            ("bitvector-ranks", bitvector(forest, ranks=True), "x86-64-v3"),
            ("bitvector-doubles", bitvector(forest, ranks=False), "x86-64-v3"),
            ("bitvector-doubles-64-masked", bitvector_masked(forest), "x86-64-v3"),
        ):
            function = _load(source, march, Path(folder))
            out = np.zeros(len(x))

            def run(f: Callable[..., None] = function, o: np.ndarray = out) -> None:
                f(x.ctypes.data_as(pointer), x.shape[1], 1, o.ctypes.data_as(pointer), 0, len(x))

            rates[name] = _rate(len(x), run)
            assert np.array_equal(out, expected), f"{name} is not exact"
    print(f"\n{args.rows:,} rows, 200 trees x 63 leaves, one thread, raw scores (all exact)\n")
    print("| kernel | rows/s | vs compiled |\n| --- | ---: | ---: |")
    for name, rate in rates.items():
        print(f"| {name} | {rate:,.0f} | {rate / rates['compiled (today)']:.2f}x |")


if __name__ == "__main__":
    main()
