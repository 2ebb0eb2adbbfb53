"""What the ledger keeps about a file split into shards: its plan, and each shard's result.

The rules that make and read them are the worker's (``pipeline.worker.sharding``);
the records sit here, below the stores that persist them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.messages import ErrorInfo


class ShardPlan(BaseModel):
    """How one file is split: written once by the worker that took the file's task."""

    model_config = ConfigDict(frozen=True)

    format: str = Field(description="The file's format name (``csv``, ``jsonl``, ``parquet``).")
    output_key: str
    #: The file's size in bytes.
    size: int = Field(ge=0)
    #: When the file was split: its notification's ``started_at``.
    created_at: datetime
    #: CSV and JSON lines: each shard's byte range; its records are those that begin in it.
    ranges: list[tuple[int, int]] = Field(default_factory=list)
    #: Parquet: each shard's row groups.
    row_groups: list[list[int]] = Field(default_factory=list)
    #: CSV: the header line as read once by the planner, given to every shard.
    header: str = ""
    #: The output's multipart upload: shard i writes parts from ``i * stride + 2``
    #: (``i * stride + 1`` is kept for the bytes before them; the last part is 10000).
    upload_id: str = ""
    stride: int = Field(default=0, ge=0)

    @property
    def count(self) -> int:
        return len(self.ranges) or len(self.row_groups)


class ShardResult(BaseModel):
    """What one shard did; the first one recorded for a shard is the one that counts."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(ge=0)
    status: Literal["scored", "failed", "stopped"]
    #: Its output: parts of the file's upload (number, ETag, size, CRC32), and the bytes it
    #: held back (its first 5 MiB, its last part's worth) at ``<key>-head`` and ``<key>-tail``.
    key: str = ""
    parts: list[tuple[int, str, int, str]] = Field(default_factory=list)
    head: int = Field(default=0, ge=0)
    tail: int = Field(default=0, ge=0)
    rows: int = Field(default=0, ge=0)
    #: Line ends and double quotes in its records (text formats).
    lines: int = Field(default=0, ge=0)
    quotes: int = Field(default=0, ge=0)
    engine: Literal["compiled", "lightgbm"] | None = None
    #: Its share of the file's quality report (``QualityCounter.state``), merged at the join.
    quality: dict[str, Any] | None = None
    #: Rows it set aside (``max-bad-rows``), and their cells: (row counted from the
    #: shard's first record, column, value, reason).
    bad_rows: int = Field(default=0, ge=0)
    bad_cells: list[tuple[int, str, str, str]] = Field(default_factory=list)
    #: The shadow's predictions of its rows, beside the primary's (``<key>-shadow``,
    #: ``ShadowCounter.to_bytes``), or why the shadow could not score them.
    shadow: int = Field(default=0, ge=0)
    shadow_error: str | None = None
    error: ErrorInfo | None = None
    #: Where the error is, counted from the shard's first record (1-based).
    error_row: int | None = None
    error_line: int | None = None
