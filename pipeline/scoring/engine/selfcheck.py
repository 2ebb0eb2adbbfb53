"""``python -m pipeline.scoring.engine.selfcheck``: can this machine compile and run exact forests?

Both kernels (branches and bitvector) are compiled for this machine's target
and gated, and the readers' compiled number pass (``plain_numbers``) reads a
row of hard cases.

The worker image runs it at build time, so an image that lacks what the
compiled engine needs (llvmlite's LLVM, the CPU target, libm's ``exp``) fails
to build instead of quietly scoring everything with LightGBM.
"""

from __future__ import annotations

import sys

import lightgbm as lgb
import numpy as np
import pyarrow as pa

from pipeline.scoring import plain_numbers
from pipeline.scoring.engine import compiler, forest, gate
from pipeline.scoring.engine.native import NativeForest

#: A CSV row the number pass must read (Clinger, Eisel-Lemire, a tie, a missing value).
_NUMBERS = b"1.5,-2.5e-3,0.30000000000000004,9007199254740993,\n"
_EXPECTED = [1.5, -2.5e-3, 0.30000000000000004, 9007199254740992.0, None]


def check() -> gate.Verdict:
    target = compiler.host_target()
    if target is None:
        return gate.Verdict(False, 0, float("inf"), "no compile target for this architecture")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 4))
    x[:, 3] = rng.integers(0, 6, 600)
    x[rng.random(x.shape) < 0.05] = np.nan
    booster = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1, "min_data_per_group": 5},
        lgb.Dataset(x, rng.integers(0, 3, 600), categorical_feature=[3]),
        num_boost_round=4,
    )
    parsed = forest.parse(booster.model_to_string())
    verdict = gate.Verdict(False, 0, float("inf"), "no kernel was checked")
    kernels = compiler.kernels_for(parsed, target)
    for kernel in kernels:
        artifact = compiler.compile_object(parsed, target, kernel)
        native = NativeForest(artifact, parsed.num_class, parsed.num_features)
        verdict = gate.verify(native, booster, parsed)
        if not verdict.passed:
            return gate.Verdict(
                False, verdict.rows, verdict.max_difference, f"{kernel}: {verdict.reason}"
            )
    reason = f"{' and '.join(kernels)} kernels on {target.name}: {verdict.reason}"
    columns = [f"c{i}" for i in range(len(_EXPECTED))]
    numbers = plain_numbers.csv_chunk(pa.py_buffer(_NUMBERS), 1, columns, columns)
    if numbers is None or [column[0].as_py() for column in numbers.columns] != _EXPECTED:
        return gate.Verdict(False, verdict.rows, 0.0, f"the CSV number pass misread {_NUMBERS!r}")
    return gate.Verdict(True, verdict.rows, verdict.max_difference, f"{reason}; number pass read")


if __name__ == "__main__":
    verdict = check()
    print(f"compiled engine ({compiler.compiler_id()}): {verdict.reason}")
    sys.exit(0 if verdict.passed else 1)
