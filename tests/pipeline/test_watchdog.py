import time
from collections.abc import Callable

import pytest

from pipeline.errors import JobTimeout
from pipeline.worker.watchdog import Watchdog


def guarded(seconds: float, body: Callable[[], None], what: str = "f") -> None:
    with Watchdog(seconds, what):
        body()


def spin() -> None:
    while True:
        time.sleep(0.01)


def test_a_job_over_its_limit_is_interrupted() -> None:
    started = time.monotonic()
    with pytest.raises(JobTimeout, match=r"s3://in/m/a.csv was still running after 0.3 s"):
        guarded(0.3, spin, "s3://in/m/a.csv")
    assert time.monotonic() - started < 2


def test_a_job_within_its_limit_is_left_alone_and_the_timer_is_cleared() -> None:
    guarded(0.3, lambda: time.sleep(0.05))
    time.sleep(0.5)  # no alarm may fire after the block


def test_zero_means_no_limit() -> None:
    guarded(0, lambda: time.sleep(0.05))


def test_a_timeout_swallowed_once_comes_again() -> None:
    swallowed = []

    def swallow_twice() -> None:
        while True:
            try:
                time.sleep(0.01)
            except JobTimeout:
                swallowed.append(1)  # as botocore does with an exception raised in a request
                if len(swallowed) > 2:
                    raise

    with pytest.raises(JobTimeout):
        guarded(0.2, swallow_twice)
    assert len(swallowed) == 3


def test_an_error_that_wraps_the_timeout_is_the_timeout() -> None:
    def wrap() -> None:
        try:
            spin()
        except JobTimeout as exc:
            raise RuntimeError("An HTTP Client raised an unhandled exception") from exc

    with pytest.raises(JobTimeout) as caught:
        guarded(0.2, wrap)
    assert isinstance(caught.value.__cause__, RuntimeError)
