"""Splitting and concluding a file in shards: the pure rules."""

from __future__ import annotations

from datetime import UTC, datetime

from pipeline.messages import ErrorInfo
from pipeline.records import ShardPlan, ShardResult
from pipeline.scoring.splits import byte_ranges, group_row_groups
from pipeline.worker.sharding.rules import conclude

WHERE = "s3://in/m/big.csv"


def _plan(count: int, header: str = "a,b\n") -> ShardPlan:
    return ShardPlan(
        format="csv" if header else "jsonl",
        output_key="m/big/j.csv",
        size=count * 100,
        ranges=[(i * 100, (i + 1) * 100) for i in range(count)],
        header=header,
        created_at=datetime(2026, 11, 22, tzinfo=UTC),
    )


def _scored(index: int, rows: int, lines: int | None = None, quotes: int = 0) -> ShardResult:
    return ShardResult(
        index=index,
        status="scored",
        rows=rows,
        lines=rows if lines is None else lines,
        quotes=quotes,
    )


def test_ranges_cover_the_file_once_and_a_short_tail_joins_its_neighbour() -> None:
    assert byte_ranges(10, 100, 30) == [(10, 40), (40, 70), (70, 100)]
    assert byte_ranges(10, 105, 30) == [(10, 40), (40, 70), (70, 105)]
    assert byte_ranges(0, 20, 30) == [(0, 20)]


def test_row_groups_are_gathered_in_order_to_about_the_shard_size() -> None:
    assert group_row_groups([10, 10, 10, 10, 5], 20) == [[0, 1], [2, 3, 4]]
    assert group_row_groups([10, 10, 10, 10, 10], 20) == [[0, 1], [2, 3], [4]]
    assert group_row_groups([50, 5, 50], 20) == [[0], [1, 2]]


def test_all_scored_is_a_success_with_every_row() -> None:
    verdict = conclude(_plan(3), {i: _scored(i, 10) for i in range(3)}, WHERE)

    assert (verdict.kind, verdict.rows) == ("succeeded", 30)


def test_an_error_is_located_from_the_start_of_the_file() -> None:
    results = {
        0: _scored(0, 10),
        1: _scored(1, 12, lines=14),  # a quoted field held two line ends
        2: ShardResult(
            index=2,
            status="failed",
            error=ErrorInfo(
                code="bad_value", message=f"{WHERE}: column 'a', row 3: 'x' is not a number"
            ),
            error_row=3,
            error_line=3,
        ),
        3: ShardResult(index=3, status="stopped"),
    }

    verdict = conclude(_plan(4), results, WHERE)

    # 22 rows before it; the header and 24 line ends before it.
    assert verdict.kind == "failed"
    assert verdict.error is not None
    assert verdict.error.message == f"{WHERE}: column 'a', row 25 (line 28): 'x' is not a number"


def test_a_parse_error_by_line_is_moved_by_the_lines_before_its_shard() -> None:
    results = {
        0: _scored(0, 10),
        1: ShardResult(
            index=1,
            status="failed",
            error=ErrorInfo(code="unreadable_file", message=f"{WHERE}: line 4 is not valid JSON"),
            error_line=4,
        ),
    }

    verdict = conclude(_plan(2, header=""), results, WHERE)

    assert verdict.error is not None
    assert verdict.error.message == f"{WHERE}: line 14 is not valid JSON"


def test_a_boundary_inside_a_quoted_field_runs_the_file_whole() -> None:
    results = {0: _scored(0, 10, quotes=3), 1: _scored(1, 10, quotes=1)}

    verdict = conclude(_plan(2), results, WHERE)

    assert verdict.kind == "resplit"
    assert "quoted field" in verdict.reason


def test_a_shard_failed_by_a_wrong_end_runs_the_file_whole_instead_of_failing_it() -> None:
    """Its last record was cut inside a quoted field: the next boundary is odd."""
    results = {
        0: ShardResult(
            index=0,
            status="failed",
            quotes=1,
            error=ErrorInfo(code="unreadable_file", message=f"{WHERE}: line 9 has 1 field(s)"),
            error_line=9,
        ),
        1: ShardResult(index=1, status="stopped"),
    }

    assert conclude(_plan(2), results, WHERE).kind == "resplit"
