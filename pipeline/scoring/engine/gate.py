"""The exactness gate: a compiled forest scores nothing until it matches LightGBM here.

Random rows rarely land where engines disagree, so the check set is built
from the model itself: every split threshold and one float step either side
of it, NaN, 0.0 and -0.0, values around LightGBM's zero threshold, infinities,
every category a split names plus unseen, negative and fractional ones. The
values are spread over rows so each feature meets each of its cases at least
twice, among different values of the other features; then one row takes the
path to each leaf of each tree, so no leaf's value goes unchecked. Raw scores and
transformed predictions, row- and column-ordered input, are all compared
with ``Booster.predict``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.scoring.engine.forest import K_ZERO_THRESHOLD, Forest, Node

#: Largest difference allowed between the engines, on any output.
TOLERANCE = 1e-12
_COMMON = (
    np.nan,
    0.0,
    -0.0,
    1e-36,
    -1e-36,
    K_ZERO_THRESHOLD,
    -K_ZERO_THRESHOLD,
    np.nextafter(K_ZERO_THRESHOLD, np.inf),
    -np.nextafter(K_ZERO_THRESHOLD, np.inf),
    np.inf,
    -np.inf,
    1e300,
    -1e300,
    1.0,
    -1.0,
)
_ODD_CATEGORIES = (-0.5, -1.0, -2.0, 0.5, 2.5, 2147483648.0, 1e10, 4294967296.5)


@dataclass(frozen=True)
class Verdict:
    passed: bool
    rows: int
    max_difference: float
    reason: str


def check_rows(forest: Forest, seed: int = 0) -> npt.NDArray[np.float64]:
    """Rows that put every feature on each of its decisive values, at least twice,
    then one row down every path to every leaf of every tree."""
    cases = _cases(forest)
    longest = max((len(c) for c in cases), default=1)
    rows = 2 * max(longest, 64)
    rng = np.random.default_rng(seed)
    matrix = np.empty((rows, forest.num_features), dtype=np.float64)
    for j, values in enumerate(cases):
        column = np.resize(values, rows)
        matrix[:, j] = rng.permutation(column)
    return np.vstack([matrix, _leaf_rows(forest, matrix)])


def _leaf_rows(forest: Forest, base: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """A row per leaf: the path's features set to values that take it there.

    Random rows reach few leaves of a deep tree (three quarters of a 255-leaf
    model's), and an unreached leaf could hold any value and still pass. Each
    split on a path tests one feature, so a value is chosen per feature among
    the path's thresholds (and one step either side) or categories, checked
    against every split of that feature on the path with LightGBM's rules.
    """
    found: list[npt.NDArray[np.float64]] = []
    for tree in forest.trees:
        if not tree.nodes:
            continue
        pending: list[tuple[int, tuple[tuple[Node, bool], ...]]] = [(0, ())]
        while pending:
            index, path = pending.pop()
            node = tree.nodes[index]
            for child, left in ((node.left, True), (node.right, False)):
                steps = (*path, (node, left))
                if child >= 0:
                    pending.append((child, steps))
                    continue
                row = base[len(found) % len(base)].copy()
                by_feature: dict[int, list[tuple[Node, bool]]] = {}
                for step in steps:
                    by_feature.setdefault(step[0].feature, []).append(step)
                for feature, tests in by_feature.items():
                    value = _value_for(tests)
                    if value is not None:
                        row[feature] = value
                found.append(row)
    if not found:
        return np.empty((0, base.shape[1]))
    return np.vstack(found)


def _value_for(tests: list[tuple[Node, bool]]) -> float | None:
    """A value that goes the given way at every one of these splits of one feature."""
    if not any(node.categorical for node, _ in tests):  # most often: the interval's ends
        high = min((node.threshold for node, left in tests if left), default=math.inf)
        low = max((node.threshold for node, left in tests if not left), default=-math.inf)
        for value in (high, math.nextafter(low, math.inf)):
            if math.isfinite(value) and all(_goes_left(n, value) == left for n, left in tests):
                return value
    candidates: list[float] = []
    for node, _ in tests:
        if node.categorical:
            candidates += [float(c) for c in node.category_values()]
        else:
            t = node.threshold
            candidates += [t, math.nextafter(t, math.inf), math.nextafter(t, -math.inf)]
    categories = [c for node, _ in tests for c in node.category_values()]
    candidates += [float(max(categories, default=-1) + 1), 0.0, np.nan, -1e300, 1e300]
    for value in candidates:
        if all(_goes_left(node, value) == left for node, left in tests):
            return value
    return None


def _goes_left(node: Node, value: float) -> bool:
    """LightGBM's decision at ``node`` (its predictor's zero threshold included)."""
    nan = math.isnan(value)
    if not nan and abs(value) <= K_ZERO_THRESHOLD:
        value = 0.0
    if node.categorical:
        if nan or value < 0 or value >= 2**31:
            return False
        return int(value) in node.category_set
    missing = node.missing_type
    if nan and missing != 2:
        value, nan = 0.0, False
    if (missing == 1 and value == 0.0) or (missing == 2 and nan):
        return node.default_left
    return bool(value <= node.threshold)


def exit_leaves(booster: Any, rows: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Each row's exit leaf in each tree, in LightGBM: (rows, trees)."""
    return np.asarray(booster.predict(rows, pred_leaf=True), dtype=np.int64).reshape(len(rows), -1)


def leaf_reach(leaves: npt.NDArray[np.int64], forest: Forest) -> tuple[int, int]:
    """How many of the forest's leaves the rows of ``leaves`` reach, and how many there are."""
    reached = sum(len(np.unique(leaves[:, t])) for t in range(len(forest.trees)))
    return reached, sum(len(tree.leaves) for tree in forest.trees)


def _cases(forest: Forest) -> list[npt.NDArray[np.float64]]:
    cases = []
    for j in range(forest.num_features):
        values = list(_COMMON)
        for t in forest.thresholds.get(j, ()):
            values += (t, np.nextafter(t, np.inf), np.nextafter(t, -np.inf))
        if j in forest.categories:
            seen = sorted(forest.categories[j])
            values += [float(c) for c in seen]
            values += (float(seen[-1] + 1), *_ODD_CATEGORIES)
            values += [c + 0.5 for c in seen[:32]]
        # Distinct by bit pattern: a set would merge -0.0 into 0.0.
        distinct = {float(v).hex(): float(v) for v in values}
        cases.append(np.array(list(distinct.values()), dtype=np.float64))
    return cases


def verify(compiled: Any, booster: Any, forest: Forest, *, reach: bool = True) -> Verdict:
    """Compare ``compiled.predict`` with ``booster.predict`` on the model's check rows.

    ``reach``: also count the leaves the rows reach, for the verdict a compile
    records; a worker checking an artifact on load has no one to tell.
    """
    rows = check_rows(forest)
    worst = 0.0
    for raw in (False, True):
        expected = np.asarray(booster.predict(rows, raw_score=raw), dtype=np.float64)
        expected = expected.reshape(len(rows), forest.num_class)
        for ordered in (np.ascontiguousarray(rows), np.asfortranarray(rows)):
            actual = compiled.predict(ordered, threads=1, raw=raw)
            worst = max(worst, _difference(expected, actual))
    checked = f"{len(rows)} check rows"
    leaves_too = getattr(compiled, "kernel", None) == "bitvector"  # it gives exit leaves too
    if leaves_too or reach:
        expected_leaves = exit_leaves(booster, rows)
        if leaves_too:
            actual_leaves = compiled.leaves(rows, len(forest.trees), 1)
            wrong = int(np.sum(np.any(actual_leaves != expected_leaves, axis=1)))
            if wrong:
                return Verdict(False, len(rows), worst, f"{wrong} of {checked}' exit leaves differ")
            checked += " (exit leaves too)"
        if reach:
            checked += " reaching {} of {} leaves".format(*leaf_reach(expected_leaves, forest))
    if worst <= TOLERANCE:
        return Verdict(True, len(rows), worst, f"matches LightGBM on {checked}")
    return Verdict(
        False, len(rows), worst, f"differs from LightGBM by up to {worst:.3g} on {checked}"
    )


def _difference(expected: npt.NDArray[np.float64], actual: npt.NDArray[np.float64]) -> float:
    if expected.shape != actual.shape:
        return float("inf")
    same_nan = np.isnan(expected) == np.isnan(actual)
    if not same_nan.all():
        return float("inf")
    both = ~np.isnan(expected)
    with np.errstate(invalid="ignore"):
        diff = np.abs(expected[both] - actual[both])
    diff[np.isnan(diff)] = 0.0  # inf - inf where both are the same infinity
    infinite = np.isinf(expected[both]) | np.isinf(actual[both])
    if (infinite & (expected[both] != actual[both])).any():
        return float("inf")
    return float(diff.max(initial=0.0))
