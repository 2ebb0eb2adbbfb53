"""The bitvector kernel against Booster.predict: scores bit for bit, exit leaves as pred_leaf."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest

from pipeline.messages import ModelRef
from pipeline.scoring.engine import bitvector, compiler, forest, gate
from pipeline.scoring.engine.compile_jobs import choose_kernel
from pipeline.scoring.engine.native import NativeForest
from pipeline.scoring.model import LoadedModel
from tests.pipeline.scoring.test_compiler import MODELS, compile_booster, random_rows, train

TARGET = compiler.host_target()
pytestmark = pytest.mark.skipif(
    TARGET is None or TARGET.arch != "x86_64", reason="categorical splits: x86-64 only"
)


def compile_bitvector(booster: lgb.Booster) -> tuple[NativeForest, forest.Forest]:
    native, parsed = compile_booster(booster, "bitvector")
    assert TARGET is not None
    assert bitvector.refusal(parsed, TARGET.arch) is None
    return native, parsed


def assert_exact(native: NativeForest, booster: lgb.Booster, rows: np.ndarray) -> None:
    for raw in (True, False):
        expected = np.asarray(booster.predict(rows, raw_score=raw)).reshape(len(rows), -1)
        for ordered in (np.ascontiguousarray(rows), np.asfortranarray(rows)):
            for threads in (1, 2):
                actual = native.predict(ordered, threads=threads, raw=raw)
                np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("name", list(MODELS))
def test_scores_and_exit_leaves_are_lightgbms_own(name: str) -> None:
    """Every objective and missing-value rule, with NaN, zeros, tiny values and categories."""
    params, label = MODELS[name]
    booster = train(params, **({"label": label} if label else {}))
    native, parsed = compile_bitvector(booster)
    rows = np.vstack([gate.check_rows(parsed), random_rows(3_000, 6)])

    assert native.kernel == "bitvector"
    assert gate.verify(native, booster, parsed).passed
    assert_exact(native, booster, rows)
    leaves = native.leaves(rows, len(parsed.trees), threads=2)
    np.testing.assert_array_equal(leaves, booster.predict(rows, pred_leaf=True))


@pytest.mark.parametrize("count", [1, 255, 256, 257, 1_000])
def test_blocks_that_are_not_full_score_every_row(count: int) -> None:
    booster = train({"objective": "binary"})
    native, _ = compile_bitvector(booster)
    assert_exact(native, booster, random_rows(count, 6))


def test_trees_of_255_leaves_take_a_leaf_byte_each() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20_000, 5))
    x[rng.random(x.shape) < 0.05] = np.nan
    booster = lgb.train(
        {"objective": "regression", "num_leaves": 255, "min_data_in_leaf": 5, "verbose": -1},
        lgb.Dataset(x, x[:, 0] * x[:, 1] + np.sin(x[:, 2])),
        num_boost_round=4,
    )
    native, parsed = compile_bitvector(booster)
    rows = np.vstack([gate.check_rows(parsed), rng.normal(size=(2_000, 5))])

    assert max(len(tree.leaves) for tree in parsed.trees) == 255
    assert_exact(native, booster, rows)
    leaves = native.leaves(rows, len(parsed.trees))
    np.testing.assert_array_equal(leaves, booster.predict(rows, pred_leaf=True))


def refusal_of(params: dict[str, Any], x: np.ndarray, rounds: int) -> str | None:
    booster = lgb.train(
        {"verbose": -1, "objective": "regression", **params},
        lgb.Dataset(x, x[:, 0] + np.sin(3 * x[:, 0])),
        num_boost_round=rounds,
    )
    return bitvector.refusal(forest.parse(booster.model_to_string()))


def test_what_the_kernel_cannot_hold_is_refused_with_the_reason() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(20_000, 2))

    many_leaves = refusal_of({"num_leaves": 300, "min_data_in_leaf": 2}, x, 1)
    many_thresholds = refusal_of({"num_leaves": 63, "max_bin": 1023}, x, 30)

    assert many_leaves == "tree 0 has 300 leaves (at most 256)"
    assert many_thresholds is not None
    assert many_thresholds.startswith("feature 0 has ")
    assert many_thresholds.endswith("thresholds (at most 255)")


def test_categorical_splits_are_x86_only_for_now() -> None:
    parsed = forest.parse(train({"objective": "binary"}).model_to_string())

    assert bitvector.refusal(parsed, "x86_64") is None
    assert bitvector.refusal(parsed, "aarch64") == (
        "categorical splits are decided the x86-64 way only (not aarch64)"
    )


def test_the_faster_kernel_that_passes_the_gate_is_chosen_and_says_so() -> None:
    assert TARGET is not None
    booster = train({"objective": "binary"}, rounds=40)
    parsed = forest.parse(booster.model_to_string())

    kernel, artifact, verdict = choose_kernel(parsed, TARGET, booster)

    assert verdict.passed
    assert kernel in {"bitvector", "branches"}
    assert artifact is not None
    assert NativeForest(artifact, 1, parsed.num_features).kernel == kernel
    rates = dict(
        part.split(" ")
        for part in verdict.reason.split("rows/s a thread here: ")[1].split("; ")[0].split(", ")
    )
    assert set(rates) == {"bitvector", "branches"}
    faster = max(rates, key=lambda name: float(rates[name].replace(",", "")))
    assert kernel == faster


def test_a_forest_past_the_kernels_limits_stays_on_branches_with_the_reason() -> None:
    assert TARGET is not None
    rng = np.random.default_rng(6)
    x = rng.normal(size=(5_000, 2))
    booster = lgb.train(
        {"objective": "regression", "num_leaves": 300, "min_data_in_leaf": 2, "verbose": -1},
        lgb.Dataset(x, x[:, 0] * x[:, 1]),
        num_boost_round=2,
    )

    kernel, _, verdict = choose_kernel(forest.parse(booster.model_to_string()), TARGET, booster)

    assert kernel == "branches"
    assert verdict.passed
    assert "no bitvector kernel: tree 0 has 300 leaves (at most 256)" in verdict.reason


def test_a_loaded_model_takes_exit_leaves_from_the_kernel_for_whole_iterations() -> None:
    booster = train(
        {"objective": "multiclass", "num_class": 3}, label=lambda s: np.digitize(s, [0])
    )
    native, parsed = compile_bitvector(booster)
    model = replace(
        LoadedModel.from_text(ModelRef(name="m", version=1), booster.model_to_string()),
        compiled=native,
    )
    rows = random_rows(1_000, 6)

    whole = model.leaves(rows, threads=2)
    first_two = model.leaves(rows, num_iteration=2)

    np.testing.assert_array_equal(whole, booster.predict(rows, pred_leaf=True))
    np.testing.assert_array_equal(first_two, booster.predict(rows, pred_leaf=True, num_iteration=2))
    assert "(exit leaves too)" in gate.verify(native, booster, parsed).reason


def test_a_second_kernel_gets_only_the_budget_left_and_the_first_is_kept() -> None:
    assert TARGET is not None
    booster = train({"objective": "binary"}, rounds=40)
    parsed = forest.parse(booster.model_to_string())

    out_of_time = choose_kernel(parsed, TARGET, booster, deadline=time.monotonic() + 5)
    in_time = choose_kernel(parsed, TARGET, booster, deadline=time.monotonic() + 120)

    assert out_of_time[0] == "bitvector"
    assert "the branches kernel was not compiled within the compile budget" in out_of_time[2].reason
    assert "rows/s a thread here: " in in_time[2].reason
    assert "branches " in in_time[2].reason  # compiled in its own process, gated and timed
