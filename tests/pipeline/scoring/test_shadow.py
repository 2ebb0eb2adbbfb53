"""The comparison of a shadow's predictions with the primary's: pure counting, no AWS."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy.stats import spearmanr

from pipeline.messages import ModelRef
from pipeline.quality import Location
from pipeline.scoring.codec import Chunk
from pipeline.scoring.shadow import ShadowCounter, spearman

SHADOW = ModelRef(name="churn", version=2, alias="challenger")
PRIMARY = ModelRef(name="churn", version=1)
OUT = Location(bucket="out", key="churn/file/job.csv")


def chunk(first_row: int, n: int, numbers: list[int] | None = None) -> Chunk:
    return Chunk(
        batch=pa.record_batch({"x": np.zeros(n)}),
        first_row=first_row,
        row_numbers=None if numbers is None else np.asarray(numbers, dtype=np.int64),
    )


def test_figures_match_a_direct_computation_over_chunks() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(size=(1000, 1))
    b = np.clip(a + rng.normal(scale=0.05, size=a.shape), 0, 1)
    counter = ShadowCounter(SHADOW, ["prediction"])
    for start in range(0, 1000, 300):
        counter.add(chunk(start + 1, len(a[start : start + 300])), a[start : start + 300],
                    b[start : start + 300])  # fmt: skip

    ref, report = counter.settle("job", PRIMARY, 0.5, OUT)

    diff = np.abs(b - a)[:, 0]
    assert ref.rows == 1000
    assert (ref.version, ref.alias) == (2, "challenger")
    assert ref.max_abs_diff == pytest.approx(diff.max(), abs=0)
    assert ref.mean_abs_diff == pytest.approx(diff.mean(), rel=1e-12)
    assert ref.rank_correlation == pytest.approx(spearmanr(a[:, 0], b[:, 0]).statistic, rel=1e-12)
    assert ref.flips == int(((a[:, 0] > 0.5) != (b[:, 0] > 0.5)).sum())
    assert ref.report == Location(bucket="out", key="churn/file/job.shadow.json")
    assert report is not None
    top = np.argsort(-diff, kind="stable")[:20]
    assert [r.row for r in report.largest] == [int(i) + 1 for i in top]
    assert [r.diff for r in report.largest] == [float((b - a)[i, 0]) for i in top]


def test_ties_in_the_largest_go_to_the_earlier_row_and_set_aside_rows_keep_their_numbers() -> None:
    counter = ShadowCounter(SHADOW, ["prediction"])
    a = np.full((30, 1), 0.2)
    b = np.full((30, 1), 0.3)  # every row differs by the same amount
    counter.add(chunk(1, 30, numbers=[n for n in range(1, 32) if n != 7]), a, b)

    _, report = counter.settle("job", PRIMARY, 0.5, OUT)

    assert report is not None
    assert [r.row for r in report.largest] == [*range(1, 7), *range(8, 22)]
    assert report.overall.rank_correlation is None  # constant: no ranks to correlate


def test_multiclass_gives_each_class_and_the_lowest_correlation() -> None:
    rng = np.random.default_rng(1)
    a = rng.dirichlet([1, 1, 1], size=500)
    b = a.copy()
    b[:, 2] = rng.permutation(b[:, 2])  # class 2 disagrees
    counter = ShadowCounter(SHADOW, ["prediction_0", "prediction_1", "prediction_2"])
    counter.add(chunk(1, 500), a, b)

    ref, report = counter.settle("job", PRIMARY, None, OUT)

    assert report is not None
    assert [c.output for c in report.classes] == ["prediction_0", "prediction_1", "prediction_2"]
    assert report.classes[0].max_abs_diff == 0.0
    assert ref.flips is None
    expected = spearmanr(a[:, 2], b[:, 2]).statistic
    assert ref.rank_correlation == pytest.approx(expected, rel=1e-12)
    assert report.argmax_changes == int((a.argmax(1) != b.argmax(1)).sum())


def test_shards_joined_give_the_figures_of_the_whole_file() -> None:
    rng = np.random.default_rng(2)
    a = rng.uniform(size=(900, 1))
    b = rng.uniform(size=(900, 1))
    whole = ShadowCounter(SHADOW, ["prediction"])
    whole.add(chunk(1, 900), a, b)
    joined = ShadowCounter(SHADOW, ["prediction"])
    before = 0
    for lo, hi in ((0, 250), (250, 600), (600, 900)):
        shard = ShadowCounter(SHADOW, ["prediction"])
        shard.add(chunk(1, hi - lo), a[lo:hi], b[lo:hi])  # rows counted from the shard's start
        joined.extend(shard.to_bytes(), before)
        before += hi - lo

    assert joined.settle("j", PRIMARY, 0.5, OUT) == whole.settle("j", PRIMARY, 0.5, OUT)


def test_a_failed_shadow_says_why_and_gives_no_figures() -> None:
    counter = ShadowCounter(SHADOW, ["prediction"])
    counter.add(chunk(1, 3), np.zeros((3, 1)), np.ones((3, 1)))
    counter.fail("the file lacks 'tenure'")

    ref, report = counter.settle("job", PRIMARY, 0.5, OUT)

    assert report is None
    assert ref.error == "the file lacks 'tenure'"
    assert (ref.rows, ref.max_abs_diff, ref.report) == (0, None, None)


@pytest.mark.parametrize("seed", [3, 4])
def test_spearman_with_ties_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 10, 2000).astype(float)
    b = a + rng.integers(0, 4, 2000)
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, rel=1e-12)
