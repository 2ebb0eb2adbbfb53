"""The compiled engine against Booster.predict: bit for bit, or refused with a reason."""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pytest

from pipeline.scoring.engine import compiler, forest, gate, irgen
from pipeline.scoring.engine.native import NativeForest

TARGET = compiler.host_target()
pytestmark = pytest.mark.skipif(TARGET is None, reason="no compile target for this machine")


def train(params: dict[str, Any], rounds: int = 15, **data: Any) -> lgb.Booster:
    """A small model on data with NaN, exact zeros, tiny values and integer categories."""
    rng = np.random.default_rng(7)
    n = 3000
    x = rng.normal(size=(n, 6))
    x[:, 4] = rng.integers(0, 9, n)  # categorical
    x[rng.random(n) < 0.3, 1] = 0.0  # splits at LightGBM's zero threshold
    x[rng.random(n) < 0.1, 2] = 1e-37
    x[rng.random(x.shape) < 0.05] = np.nan
    signal = np.nan_to_num(x[:, 0] - x[:, 1] + (x[:, 4] == 3) + (x[:, 4] == 6))
    y = data.get("label", lambda s: (s > 0).astype(int))(signal)
    return lgb.train(
        {"verbose": -1, "num_leaves": 15, "min_data_per_group": 5, "seed": 1, **params},
        lgb.Dataset(x, y, categorical_feature=[4]),
        num_boost_round=rounds,
    )


def compile_booster(
    booster: lgb.Booster, kernel: str = "branches"
) -> tuple[NativeForest, forest.Forest]:
    assert TARGET is not None
    parsed = forest.parse(booster.model_to_string())
    native = NativeForest(
        compiler.compile_object(parsed, TARGET, kernel), parsed.num_class, parsed.num_features
    )
    return native, parsed


def random_rows(n: int, features: int) -> np.ndarray:
    rng = np.random.default_rng(11)
    x = rng.normal(scale=2, size=(n, features))
    x[:, 4] = rng.integers(-2, 12, n) + rng.choice([0.0, 0.0, 0.5, -0.5], n)
    x[rng.random(x.shape) < 0.05] = np.nan
    return x


MODELS = {
    "binary": ({"objective": "binary"}, None),
    "binary-sigmoid-0.7": ({"objective": "binary", "sigmoid": 0.7}, None),
    "zero-as-missing": ({"objective": "binary", "zero_as_missing": True}, None),
    "no-missing-handling": ({"objective": "binary", "use_missing": False}, None),
    "multiclass": (
        {"objective": "multiclass", "num_class": 3},
        lambda s: np.digitize(s, [-0.5, 0.5]),
    ),
    "multiclassova": (
        {"objective": "multiclassova", "num_class": 3},
        lambda s: np.digitize(s, [-0.5, 0.5]),
    ),
    "regression": ({"objective": "regression"}, lambda s: 3 * s + 1),
    "regression-sqrt": ({"objective": "regression", "reg_sqrt": True}, lambda s: 3 * s),
    "poisson": ({"objective": "poisson"}, lambda s: np.round(np.exp(s / 2))),
    "cross-entropy": ({"objective": "cross_entropy"}, lambda s: 1 / (1 + np.exp(-s))),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_compiled_predictions_are_bit_identical_to_lightgbm(name: str) -> None:
    params, label = MODELS[name]
    booster = train(params, **({"label": label} if label else {}))
    native, parsed = compile_booster(booster)

    verdict = gate.verify(native, booster, parsed)
    rows = np.asfortranarray(random_rows(20_000, 6))
    for raw in (False, True):
        expected = booster.predict(rows, raw_score=raw).reshape(len(rows), -1)
        actual = native.predict(rows, threads=2, raw=raw)
        np.testing.assert_array_equal(actual, expected)

    assert verdict.passed, verdict.reason
    assert verdict.max_difference == 0.0


def test_check_rows_sit_on_and_beside_every_threshold() -> None:
    booster = train({"objective": "binary"})
    parsed = forest.parse(booster.model_to_string())
    rows = gate.check_rows(parsed)

    for tree in parsed.trees:
        for node in tree.nodes:
            column = rows[:, node.feature]
            if node.categorical:
                for category in node.category_values():
                    assert (column == category).sum() >= 2
            else:
                for value in (node.threshold, np.nextafter(node.threshold, np.inf)):
                    assert (column == value).sum() >= 2
    assert np.isnan(rows).any(axis=0).all()
    assert (np.signbit(rows) & (rows == 0)).any(axis=0).all()  # -0.0 in every column


def test_the_gate_refuses_a_predictor_of_another_model() -> None:
    booster = train({"objective": "binary"})
    other = train({"objective": "binary", "seed": 2, "bagging_fraction": 0.5, "bagging_freq": 1})
    wrong, _ = compile_booster(other)
    parsed = forest.parse(booster.model_to_string())

    verdict = gate.verify(wrong, booster, parsed)

    assert not verdict.passed
    assert "differs from LightGBM by up to" in verdict.reason


def test_the_gate_catches_code_that_forgets_the_zero_threshold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Random rows would pass such code; the check rows do not.

    The rule shows where a split treats zero as missing: 1e-36 is zero to LightGBM.
    """
    booster = train({"objective": "binary", "zero_as_missing": True}, rounds=30)
    parsed = forest.parse(booster.model_to_string())
    monkeypatch.setattr(irgen, "K_ZERO_THRESHOLD", -1.0)  # no value is ever "tiny"
    careless, _ = compile_booster(booster)

    rows = random_rows(5000, 6)
    random_agree = np.array_equal(careless.predict(rows), booster.predict(rows).reshape(-1, 1))
    verdict = gate.verify(careless, booster, parsed)

    assert random_agree
    assert not verdict.passed


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"objective": "regression", "linear_tree": True}, "linear trees"),
        (
            {
                "objective": "binary",
                "boosting": "rf",
                "bagging_fraction": 0.5,
                "bagging_freq": 1,
            },
            "random forest",
        ),
    ],
    ids=["linear-trees", "random-forest"],
)
def test_what_the_engine_cannot_reproduce_is_refused_with_the_reason(
    params: dict[str, Any], reason: str
) -> None:
    booster = train(params, label=lambda s: (s > 0).astype(int))

    with pytest.raises(forest.Unsupported, match=reason):
        forest.parse(booster.model_to_string())


def test_an_unknown_objective_is_refused() -> None:
    booster = train({"objective": "cross_entropy_lambda"}, label=lambda s: 1 / (1 + np.exp(-s)))

    with pytest.raises(forest.Unsupported, match="cross_entropy_lambda"):
        forest.parse(booster.model_to_string())


def test_the_check_rows_reach_every_leaf_so_an_edited_deep_leaf_is_caught() -> None:
    """A 255-leaf model: rows from thresholds alone reached three quarters of its leaves.

    The compiled forest of a copy whose rarest leaf was changed must fail the
    gate against the original, and the verdict says every leaf was reached.
    """
    assert TARGET is not None
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20_000, 8))
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 255, "min_data_in_leaf": 5, "verbose": -1},
        lgb.Dataset(x, (x[:, :4].sum(axis=1) + rng.normal(size=20_000) > 0).astype(int)),
        num_boost_round=20,
    )
    parsed = forest.parse(booster.model_to_string())
    leaves = booster.predict(random_rows(5000, 8), pred_leaf=True)
    tree = 7
    unseen = sorted(set(range(len(parsed.trees[tree].leaves))) - set(leaves[:, tree].tolist()))
    edited = list(parsed.trees[tree].leaves)
    edited[unseen[0]] += 0.84
    trees = list(parsed.trees)
    trees[tree] = forest.Tree(parsed.trees[tree].nodes, tuple(edited))
    wrong = forest.Forest(tuple(trees), 1, 8, parsed.objective, parsed.sigmoid)
    native = NativeForest(compiler.compile_object(wrong, TARGET), 1, 8)

    verdict = gate.verify(native, booster, parsed)
    honest = gate.verify(compile_booster(booster)[0], booster, parsed)

    assert not verdict.passed
    assert honest.passed
    total = sum(len(t.leaves) for t in parsed.trees)
    assert f"reaching {total} of {total} leaves" in honest.reason
