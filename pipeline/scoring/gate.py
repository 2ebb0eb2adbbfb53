"""The exactness gate: a compiled forest scores nothing until it matches LightGBM here.

Random rows rarely land where engines disagree, so the check set is built
from the model itself: every split threshold and one float step either side
of it, NaN, 0.0 and -0.0, values around LightGBM's zero threshold, infinities,
every category a split names plus unseen, negative and fractional ones. The
values are spread over rows so each feature meets each of its cases at least
twice, among different values of the other features. Raw scores and
transformed predictions, row- and column-ordered input, are all compared
with ``Booster.predict``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.scoring.forest import K_ZERO_THRESHOLD, Forest

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
    """Rows that put every feature on each of its decisive values, at least twice."""
    cases = _cases(forest)
    longest = max((len(c) for c in cases), default=1)
    rows = 2 * max(longest, 64)
    rng = np.random.default_rng(seed)
    matrix = np.empty((rows, forest.num_features), dtype=np.float64)
    for j, values in enumerate(cases):
        column = np.resize(values, rows)
        matrix[:, j] = rng.permutation(column)
    return matrix


def _cases(forest: Forest) -> list[npt.NDArray[np.float64]]:
    thresholds: list[set[float]] = [set() for _ in range(forest.num_features)]
    categories: list[set[int]] = [set() for _ in range(forest.num_features)]
    for tree in forest.trees:
        for node in tree.nodes:
            if node.categorical:
                categories[node.feature].update(node.category_values())
            else:
                thresholds[node.feature].add(node.threshold)
    cases = []
    for j in range(forest.num_features):
        values = list(_COMMON)
        for t in thresholds[j]:
            values += (t, np.nextafter(t, np.inf), np.nextafter(t, -np.inf))
        if categories[j]:
            seen = sorted(categories[j])
            values += [float(c) for c in seen]
            values += (float(seen[-1] + 1), *_ODD_CATEGORIES)
            values += [c + 0.5 for c in seen[:32]]
        # Distinct by bit pattern: a set would merge -0.0 into 0.0.
        distinct = {float(v).hex(): float(v) for v in values}
        cases.append(np.array(list(distinct.values()), dtype=np.float64))
    return cases


def verify(compiled: Any, booster: Any, forest: Forest) -> Verdict:
    """Compare ``compiled.predict`` with ``booster.predict`` on the model's check rows."""
    rows = check_rows(forest)
    worst = 0.0
    for raw in (False, True):
        expected = np.asarray(booster.predict(rows, raw_score=raw), dtype=np.float64)
        expected = expected.reshape(len(rows), forest.num_class)
        for ordered in (np.ascontiguousarray(rows), np.asfortranarray(rows)):
            actual = compiled.predict(ordered, threads=1, raw=raw)
            worst = max(worst, _difference(expected, actual))
    if worst <= TOLERANCE:
        return Verdict(True, len(rows), worst, f"matches LightGBM on {len(rows)} check rows")
    return Verdict(
        False,
        len(rows),
        worst,
        f"differs from LightGBM by up to {worst:.3g} on {len(rows)} check rows",
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
