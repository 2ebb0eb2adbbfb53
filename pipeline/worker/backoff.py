"""Bounded retries with exponential backoff and full jitter, for transient errors only."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from pipeline.errors import TransientError

T = TypeVar("T")
log = logging.getLogger(__name__)


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
        except TransientError as exc:
            if attempt == attempts:
                raise
            wait = random.uniform(0, min(max_seconds, base_seconds * 2 ** (attempt - 1)))  # noqa: S311
            log.warning(
                "attempt %d of %d failed, again in %.2f s: %s", attempt, attempts, wait, exc
            )
            sleep(wait)
    raise AssertionError("unreachable")
