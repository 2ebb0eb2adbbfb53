"""A time limit for one file, because the solo pool enforces none.

Celery's ``time_limit`` is not applied under ``--pool=solo`` (celery issue
8395). The solo pool runs tasks in the worker's main thread, so a real-time
interval timer (``SIGALRM``) can interrupt the job there: the handler raises
``JobTimeout`` at the next Python instruction, which is at most one batch's
LightGBM call away.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Self

from pipeline.errors import JobTimeout


class Watchdog:
    def __init__(self, seconds: float, what: str) -> None:
        self._seconds, self._what = seconds, what
        self._armed = False

    def __enter__(self) -> Self:
        if self._seconds > 0 and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGALRM, self._expire)
            signal.setitimer(signal.ITIMER_REAL, self._seconds)
            self._armed = True
        return self

    def _expire(self, signum: int, frame: FrameType | None) -> None:
        raise JobTimeout(f"{self._what} was still running after {self._seconds:g} s, the job limit")

    def __exit__(self, *exc_info: object) -> None:
        if self._armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous)
