"""One big file, many workers: the plan, each shard's result, and the verdict.

A file larger than ``shard_bytes`` is split without being read whole. CSV and
JSON lines by byte ranges: a shard scores the records that begin in its range
(the first begins after the first line end at or after the range's start, the
last runs past the range's end to its own line end), so neighbouring shards
meet at a record boundary without talking to each other. Parquet by row
groups. A gzip stream cannot be entered in the middle: it stays one job.

CSV has one trap: a quoted field may hold a line end, and a range that begins
inside such a field would begin mid-record. A line end is a record boundary
exactly when the quotes before it are even in number, so each shard counts
the quotes in its records, and the shard that finishes last checks every
boundary before it trusts the split; a wrong one (rare: a quoted line end at a
range's edge) makes the file run again as one job. Nothing is guessed.

Each shard writes its output straight into the file's one multipart upload,
as parts numbered in a range of its own; what is too small to be a part (its
first 5 MiB, its tail) it keeps aside for the finisher to join with its
neighbours'. Every shard's result goes into the ledger with a conditional
put, so duplicates collapse; the shard that completes the set is the one to
finish the file (``conclude``), once, and the file gets one notification.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

from pipeline.messages import ErrorInfo
from pipeline.records import ShardPlan, ShardResult
from pipeline.scoring import formats

#: Most shards of one file: each needs part numbers of its own.
MAX_SHARDS = 1000


class Verdict(BaseModel):
    """What the file's outcome is, once every shard has a result."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["succeeded", "failed", "resplit"]
    rows: int = 0
    error: ErrorInfo | None = None
    reason: str = ""


def conclude(plan: ShardPlan, results: dict[int, ShardResult], where: str) -> Verdict:
    """The file's verdict from all its shards' results, read in file order.

    A boundary that is not a record boundary means the split was wrong: the
    file runs again whole. That covers a failed shard's own end, since a wrong
    end is enough to fail it (a failed CSV shard counts its quotes to its
    end). Else the first failed shard fails the file, its error located from
    the start of the file. Shards after a failed one were stopped; none
    before it can have been.
    """
    quotes = rows = lines = 0
    quoted = formats.BY_NAME[plan.format].codec.shards.quoted_line_ends
    for index in range(plan.count):
        result = results[index]
        if quoted and quotes % 2:
            return _resplit(index)
        if result.status == "stopped":
            return Verdict(kind="resplit", reason=f"shard {index + 1} was stopped")
        if result.status == "failed":
            if quoted and (quotes + result.quotes) % 2 and index + 1 < plan.count:
                return _resplit(index + 1)
            assert result.error is not None  # noqa: S101 - a failed result carries its error
            return Verdict(
                kind="failed",
                error=ErrorInfo(
                    code=result.error.code,
                    message=relocated(result, rows, lines + _header_lines(plan), where),
                ),
            )
        quotes += result.quotes
        rows += result.rows + result.bad_rows
        lines += result.lines
    return Verdict(kind="succeeded", rows=rows)


def _resplit(index: int) -> Verdict:
    return Verdict(
        kind="resplit",
        reason=f"shard {index + 1} would begin inside a quoted field that holds a line end: "
        "the file runs again as one job",
    )


def _header_lines(plan: ShardPlan) -> int:
    return 1 if plan.header else 0


def relocated(result: ShardResult, rows_before: int, lines_before: int, where: str) -> str:
    """A shard's error message with its row and line counted from the start of the file."""
    assert result.error is not None  # noqa: S101
    message = result.error.message
    if result.error_row is not None:
        row = rows_before + result.error_row
        line = (
            f" (line {lines_before + result.error_line})" if result.error_line is not None else ""
        )
        message = re.sub(rf"\brow {result.error_row}\b", f"row {row}{line}", message, count=1)
    elif result.error_line is not None:
        message = re.sub(
            rf"\bline {result.error_line}\b",
            f"line {lines_before + result.error_line}",
            message,
            count=1,
        )
    return message if where in message else f"{where}: {message}"
