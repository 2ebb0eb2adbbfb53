"""A time limit for one file, because the solo pool enforces none.

Celery's ``time_limit`` is not applied under ``--pool=solo`` (celery issue
8395). The solo pool runs tasks in the worker's main thread, so a real-time
interval timer (``SIGALRM``) can interrupt the job there: the handler raises
``JobTimeout`` at the next Python instruction, which is at most one batch's
LightGBM call away.

The timer keeps firing every second after the limit: code in between may
catch a ``JobTimeout`` (botocore takes an exception raised inside a request
for a failed request, wraps it and retries), but it cannot catch them all. And
once the limit has passed, whatever error leaves the block is the timeout,
however it was wrapped on the way out.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Self

from pipeline.errors import JobTimeout

_REPEAT_SECONDS = 1.0


class Watchdog:
    def __init__(self, seconds: float, what: str) -> None:
        self._seconds, self._what = seconds, what
        self._armed = False
        self.expired = False

    def __enter__(self) -> Self:
        if self._seconds > 0 and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGALRM, self._expire)
            signal.setitimer(signal.ITIMER_REAL, self._seconds, _REPEAT_SECONDS)
            self._armed = True
        return self

    def _timeout(self) -> JobTimeout:
        return JobTimeout(
            f"{self._what} was still running after {self._seconds:g} s, the job limit"
        )

    def _expire(self, signum: int, frame: FrameType | None) -> None:
        self.expired = True
        raise self._timeout()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: object
    ) -> None:
        if self._armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous)
        if self.expired and isinstance(error, Exception) and not isinstance(error, JobTimeout):
            raise self._timeout() from error
