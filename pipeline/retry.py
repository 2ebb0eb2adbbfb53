"""Bounded retries with exponential backoff and full jitter, for transient errors only."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from pipeline.errors import TransientError

T = TypeVar("T")


def with_retries(
    action: Callable[[], T],
    attempts: int,
    base_seconds: float,
    max_seconds: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``action``; on ``TransientError`` wait and run it again, ``attempts`` times in all."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except TransientError:
            if attempt == attempts:
                raise
            sleep(random.uniform(0, min(max_seconds, base_seconds * 2 ** (attempt - 1))))  # noqa: S311
    raise AssertionError("unreachable")
