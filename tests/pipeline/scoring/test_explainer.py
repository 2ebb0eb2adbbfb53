"""The compiled SHAP kernel against LightGBM's own ``pred_contrib`` and ``pred_leaf``."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest

from pipeline.scoring.engine import explainer, gate
from pipeline.scoring.engine.forest import Unsupported, parse
from pipeline.scoring.engine.shap_tables import tables


def train(objective: str, **params: Any) -> lgb.Booster:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2000, 5))
    x[:, 4] = rng.integers(0, 6, size=len(x))
    x[rng.random(x.shape) < 0.05] = np.nan
    signal = np.nan_to_num(x[:, 0] - x[:, 1] * x[:, 2]) + (x[:, 4] == 3)
    if objective == "multiclass":
        y = np.digitize(signal, [-0.5, 0.5])
        params["num_class"] = 3
    elif objective == "binary":
        y = (signal > 0).astype(int)
    else:
        y = signal
    data = lgb.Dataset(x, y, categorical_feature=[4])
    base = {"objective": objective, "verbose": -1, "num_leaves": 31, "min_data_in_leaf": 5}
    return lgb.train({**base, **params}, data, num_boost_round=15)


@pytest.mark.parametrize(
    ("objective", "params"),
    [
        ("binary", {}),
        ("multiclass", {}),
        ("regression", {"zero_as_missing": True}),
        ("regression", {"max_depth": 20, "num_leaves": 255, "min_data_in_leaf": 1}),
    ],
    ids=["binary", "multiclass", "zero-as-missing", "deep"],
)
def test_contributions_and_leaves_match_lightgbm_on_the_gates_rows(
    objective: str, params: dict[str, Any]
) -> None:
    booster = train(objective, **params)
    forest = parse(booster.model_to_string())
    kernel = explainer.Explainer(tables(forest))
    rows = gate.check_rows(forest)

    leaves = kernel.leaves(rows)
    sample = rows[:: max(1, len(rows) // 300)]
    contributions = kernel.contributions(np.asfortranarray(sample), threads=2)

    assert np.array_equal(leaves, booster.predict(rows, pred_leaf=True))
    expected = booster.predict(sample, pred_contrib=True)
    assert np.max(np.abs(contributions - expected)) < 1e-9
    raw = booster.predict(sample, raw_score=True).reshape(len(sample), -1)
    width = forest.num_features + 1
    for k in range(forest.num_class):
        sums = contributions[:, k * width : (k + 1) * width].sum(axis=1)
        assert np.max(np.abs(sums - raw[:, k])) < 1e-9


def test_the_first_iterations_alone_match_num_iteration() -> None:
    booster = train("multiclass")
    forest = parse(booster.model_to_string())
    rows = gate.check_rows(forest)[:200]

    kernel = explainer.Explainer(tables(forest, 4 * 3))

    expected = booster.predict(rows, pred_contrib=True, num_iteration=4)
    assert np.max(np.abs(kernel.contributions(rows) - expected)) < 1e-9
    assert np.array_equal(
        kernel.leaves(rows), booster.predict(rows, pred_leaf=True, num_iteration=4)
    )


def test_the_gate_passes_a_true_kernel_and_catches_a_wrong_one() -> None:
    booster = train("binary")
    forest = parse(booster.model_to_string())
    good = tables(forest)

    passed = explainer.verify(explainer.Explainer(good), booster, forest, 15)
    arrays = dict(good.arrays)
    arrays["entry_m"] = good.arrays["entry_m"] * (1 + 1e-6)  # a slightly wrong share
    wrong_shares = explainer.verify(
        explainer.Explainer(replace(good, arrays=arrays)), booster, forest, 15
    )
    arrays = dict(good.arrays)
    arrays["node_threshold"] = np.nextafter(good.arrays["node_threshold"], np.inf)
    wrong_splits = explainer.verify(
        explainer.Explainer(replace(good, arrays=arrays)), booster, forest, 15
    )

    assert passed.passed, passed.reason
    assert not wrong_shares.passed
    assert "contributions differ" in wrong_shares.reason
    assert not wrong_splits.passed
    assert "leaves differ" in wrong_splits.reason


def test_a_model_without_row_counts_is_left_to_lightgbm() -> None:
    forest = parse(train("binary").model_to_string())
    first = replace(forest.trees[0], node_counts=(), leaf_counts=())
    stripped = replace(forest, trees=(first, *forest.trees[1:]))

    with pytest.raises(Unsupported, match="tree 0 has no row counts"):
        tables(stripped)
