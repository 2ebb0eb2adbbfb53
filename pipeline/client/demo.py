"""Generated data for ``pipeline demo``: a small binary model and a CSV to score.

Nothing is downloaded: the model is trained here, in about a second, on
numbers drawn from a fixed seed.
"""

from __future__ import annotations

import io

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

FEATURES = ("tenure_months", "monthly_spend", "support_calls", "discount")


def features(rows: int, seed: int) -> npt.NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    return np.column_stack(
        [
            rng.integers(1, 72, rows).astype(np.float64),
            rng.gamma(4.0, 20.0, rows),
            rng.poisson(1.5, rows).astype(np.float64),
            rng.uniform(0, 0.3, rows),
        ]
    )


def train(rows: int = 2000, seed: int = 7) -> lgb.Booster:
    x = features(rows, seed)
    churn_score = -0.04 * x[:, 0] + 0.01 * x[:, 1] + 0.6 * x[:, 2] - 3 * x[:, 3]
    labels = (churn_score + np.random.default_rng(seed + 1).normal(0, 0.5, rows) > 0.5).astype(int)
    data = lgb.Dataset(x, labels, feature_name=list(FEATURES), free_raw_data=False)
    params = {"objective": "binary", "num_leaves": 15, "verbose": -1, "seed": seed}
    return lgb.train(params, data, num_boost_round=30)


def csv_bytes(rows: int = 1000, seed: int = 11) -> bytes:
    x = features(rows, seed)
    out = io.StringIO()
    out.write("customer_id," + ",".join(FEATURES) + "\n")
    for i, row in enumerate(x):
        out.write(f"C{i:06d}," + ",".join(repr(float(v)) for v in row) + "\n")
    return out.getvalue().encode()
