"""The prediction kernels side by side: rows/s a thread, exact, on three models.

For each model (the 200-tree x 63-leaf model of ``bench/e2e.py``, and the
same data fitted as 1,000 trees x 31 leaves and 100 trees x 255 leaves), on
the rows of ``bench/e2e.py`` (2% NaN), one thread:

* ``LightGBM``: ``Booster.predict``;
* ``branches``: the compiled branch kernel (``compiler``: a branch per split);
* ``bitvector v3`` / ``bitvector v2``: the bitvector kernel (``bitvector``)
  built for x86-64-v3 (AVX2) and for the x86-64-v2 baseline;
* ``kept``: the kernel a compile job keeps for the model (``choose_kernel``).

Every compiled kernel's raw scores are checked bit for bit against
``Booster.predict(raw_score=True)`` and the bitvector kernel's exit leaves
against ``pred_leaf=True`` before its rate counts. Rates are medians of
``--repeats`` runs, interleaved, so the ratios come from the same minutes.

``--quickscorer`` adds QuickScorer (SIGIR 2015) as generated C (the machine's
gcc), the algorithm the bitvector kernel was measured against: a 64-bit leaf
mask per tree, each feature's thresholds scanned in ascending order, the exit
leaf the lowest set bit. It decides a row at a time and was slower than the
branch kernel here (0.66-0.78x).

    .venv/bin/python bench/kernels.py [--rows 100000] [--repeats 5] [--quickscorer]
"""

from __future__ import annotations

import argparse
import ctypes
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
from e2e import FEATURES, table

from pipeline.scoring.engine import bitvector, compiler
from pipeline.scoring.engine.compile_jobs import choose_kernel
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
            lefts = bitvector.special_ways(node)  # (NaN goes left, 0.0 goes left)
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


def _rate(rows: int, seconds: list[float]) -> float:
    return rows / statistics.median(seconds)


MODELS = {"200 x 63": (200, 63), "1,000 x 31": (1000, 31), "100 x 255": (100, 255)}


def train(trees: int, leaves: int) -> lgb.Booster:
    """The data of ``bench/e2e.py``'s model, fitted to ``trees`` of ``leaves``."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50_000, len(FEATURES)))
    y = (x[:, :5].sum(axis=1) + 0.5 * rng.normal(size=len(x)) > 0).astype(int)
    return lgb.train(
        {"objective": "binary", "num_leaves": leaves, "verbose": -1, "seed": 1},
        lgb.Dataset(x, y, feature_name=FEATURES),
        num_boost_round=trees,
    )


def measure(
    name: str, booster: lgb.Booster, x: np.ndarray, args: argparse.Namespace
) -> dict[str, Any]:
    forest = parse(booster.model_to_string())
    expected = booster.predict(x, raw_score=True, num_threads=1)
    runs: dict[str, Callable[[], object]] = {
        "LightGBM": lambda: booster.predict(x, raw_score=True, num_threads=1)
    }
    v2 = compiler.BASELINES["x86_64"]
    targets = {"branches": (v2, "branches")}
    if bitvector.refusal(forest) is None:
        targets["bitvector v3"] = (compiler.X86_64_V3, "bitvector")
        targets["bitvector v2"] = (v2, "bitvector")
    for label, (target, kernel) in targets.items():
        native = NativeForest(
            compiler.compile_object(forest, target, kernel), 1, forest.num_features
        )
        assert np.array_equal(native.predict(x, 1, True)[:, 0], expected), f"{label} not exact"
        if kernel == "bitvector":
            leaves = native.leaves(x[:20_000], len(forest.trees), 1)
            assert np.array_equal(leaves, booster.predict(x[:20_000], pred_leaf=True))
        runs[label] = lambda n=native: n.predict(x, 1, True)
    if args.quickscorer and max(len(t.leaves) for t in forest.trees) <= 64:
        runs["quickscorer (C)"] = _quickscorer(forest, x, expected)
    seconds: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(args.repeats):
        for label, run in runs.items():
            started = time.perf_counter()
            run()
            seconds[label].append(time.perf_counter() - started)
    rates = {label: _rate(len(x), s) for label, s in seconds.items()}
    host = compiler.host_target()
    assert host is not None
    kept, _, _ = choose_kernel(forest, host, booster)
    return {"model": name, "rates": rates, "kept": f"{kept} ({host.cpu})"}


def _quickscorer(forest: Forest, x: np.ndarray, expected: np.ndarray) -> Callable[[], object]:
    folder = tempfile.mkdtemp()
    function = _load(quickscorer(forest), "x86-64-v2", Path(folder))
    pointer = ctypes.POINTER(ctypes.c_double)
    out = np.zeros(len(x))

    def run() -> None:
        function(x.ctypes.data_as(pointer), x.shape[1], 1, out.ctypes.data_as(pointer), 0, len(x))

    run()
    assert np.array_equal(out, expected), "quickscorer is not exact"
    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quickscorer", action="store_true")
    args = parser.parse_args()
    data = table(args.rows, seed=1)
    x = np.ascontiguousarray(np.column_stack([data.column(f).to_numpy() for f in FEATURES]))
    results = [measure(name, train(*shape), x, args) for name, shape in MODELS.items()]
    print(f"\n{args.rows:,} rows, one thread, raw scores, all exact; rows/s (x branches)\n")
    labels = list(dict.fromkeys(label for r in results for label in r["rates"]))
    print("| model | " + " | ".join(labels) + " | kept |")
    print("| --- |" + " ---: |" * len(labels) + " --- |")
    for r in results:
        base = r["rates"]["branches"]
        cells = [
            f"{r['rates'][label]:,.0f} ({r['rates'][label] / base:.2f}x)"
            if label in r["rates"]
            else "refused"
            for label in labels
        ]
        print(f"| {r['model']} | " + " | ".join(cells) + f" | {r['kept']} |")


if __name__ == "__main__":
    main()
