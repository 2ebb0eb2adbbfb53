"""How long the compiled engine takes to build, and to prove, each kind of model.

Trains each model here (numeric 200 x 63 and 100 x 255, 2,000 x 7, and 100 x 31
with a 40-category feature split one-hot and a 150-category feature split by
bitsets), then times the compile a worker runs beside itself, under
``PIPELINE_COMPILE_TIMEOUT_SECONDS``: both kernels generated, compiled by LLVM,
gated and timed, the faster kept (``choose_kernel``); then the exactness gate
of the kept one with its leaf reach, and its rows/s against
``Booster.predict`` on one thread. Each model runs in a child process with a
time limit, so a compile that blows up shows as "over LIMIT s" rather than
hanging the table.

    .venv/bin/python bench/compile_times.py [--only NAME] [--limit 600]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

import lightgbm as lgb
import numpy as np

from pipeline.scoring.engine import compiler, forest, gate
from pipeline.scoring.engine.compile_jobs import choose_kernel
from pipeline.scoring.engine.native import NativeForest

MODELS: dict[str, dict[str, Any]] = {
    "200x63": {"trees": 200, "leaves": 63},
    "100x255": {"trees": 100, "leaves": 255},
    "2000x7": {"trees": 2000, "leaves": 7},
    "100x31, 40 categories one-hot": {
        "trees": 100,
        "leaves": 31,
        "categories": 40,
        "max_cat_to_onehot": 64,
    },
    "100x31, 150 categories bitset": {
        "trees": 100,
        "leaves": 31,
        "categories": 150,
        "max_cat_to_onehot": 4,
    },
}


def measure(name: str) -> dict[str, Any]:
    spec = MODELS[name]
    rng = np.random.default_rng(0)
    rows = 6000 if "categories" in spec else 50_000
    x = rng.normal(size=(rows, 12))
    signal = x[:, :4].sum(axis=1)
    params: dict[str, Any] = {
        "objective": "binary",
        "num_leaves": spec["leaves"],
        "min_data_in_leaf": 5,
        "verbose": -1,
    }
    categorical: list[int] = []
    if "categories" in spec:
        x[:, 11] = rng.integers(0, spec["categories"], rows)
        signal = signal + (x[:, 11] % 7 < 3)
        params |= {"max_cat_to_onehot": spec["max_cat_to_onehot"], "min_data_per_group": 5}
        params |= {"cat_smooth": 1}
        categorical = [11]
    y = (signal + rng.normal(size=rows) > 0).astype(int)
    booster = lgb.train(
        params, lgb.Dataset(x, y, categorical_feature=categorical or "auto"), spec["trees"]
    )
    target = compiler.host_target()
    assert target is not None
    parsed = forest.parse(booster.model_to_string())
    started = time.perf_counter()
    kernel, artifact, _ = choose_kernel(parsed, target, booster)  # as a compile job does
    compile_seconds = time.perf_counter() - started
    assert artifact is not None, "no kernel passed the gate"
    native = NativeForest(artifact, parsed.num_class, parsed.num_features)
    started = time.perf_counter()
    verdict = gate.verify(native, booster, parsed)
    gate_seconds = time.perf_counter() - started
    test = rng.normal(size=(50_000, 12))
    if categorical:
        test[:, 11] = rng.integers(0, spec["categories"], len(test))
    started = time.perf_counter()
    booster.predict(test, num_threads=1)
    stock = len(test) / (time.perf_counter() - started)
    started = time.perf_counter()
    native.predict(np.asfortranarray(test), threads=1)
    compiled = len(test) / (time.perf_counter() - started)
    return {
        "kernel": kernel,
        "compile_s": compile_seconds,
        "gate_s": gate_seconds,
        "verdict": verdict.reason,
        "passed": verdict.passed,
        "lightgbm_rows_s": stock,
        "compiled_rows_s": compiled,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=list(MODELS))
    parser.add_argument("--limit", type=float, default=600.0, help="seconds per model")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return
    print(
        f"{'model':32} {'kernel':>10} {'compile s':>10} {'gate s':>8} {'LightGBM rows/s':>16} "
        f"{'compiled rows/s':>16}  gate (1 thread each)"
    )
    for name in [args.only] if args.only else MODELS:
        command = [sys.executable, __file__, "--child", name]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=args.limit, check=True
            )
        except subprocess.TimeoutExpired:
            print(f"{name:32} {'over ' + format(args.limit, 'g') + ' s':>10}")
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"{name:32} {r['kernel']:>10} {r['compile_s']:10.1f} {r['gate_s']:8.1f} "
            f"{r['lightgbm_rows_s']:16,.0f} "
            f"{r['compiled_rows_s']:16,.0f}  {r['verdict']}"
        )


if __name__ == "__main__":
    main()
