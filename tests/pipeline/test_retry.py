import pytest

from pipeline.errors import BadValue, TransientError
from pipeline.worker.backoff import with_retries


def test_transient_errors_are_retried_with_growing_waits_until_success() -> None:
    calls, waits = [], []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TransientError("503")
        return "ok"

    assert with_retries(flaky, attempts=4, base_seconds=1.0, sleep=waits.append) == "ok"
    assert len(calls) == 3
    assert 0 <= waits[0] <= 1.0
    assert 0 <= waits[1] <= 2.0


def test_retries_are_bounded() -> None:
    calls = []

    def down() -> None:
        calls.append(1)
        raise TransientError("503")

    with pytest.raises(TransientError):
        with_retries(down, attempts=3, base_seconds=0.0, sleep=lambda _s: None)
    assert len(calls) == 3


def test_other_errors_are_not_retried() -> None:
    calls = []

    def bad() -> None:
        calls.append(1)
        raise BadValue("row 3")

    with pytest.raises(BadValue):
        with_retries(bad, attempts=5, base_seconds=0.0, sleep=lambda _s: None)
    assert calls == [1]


def test_each_retry_is_logged_with_its_cause(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    def flaky() -> int:
        calls.append(1)
        if len(calls) < 3:
            raise TransientError(f"503 number {len(calls)}")
        return 7

    with caplog.at_level("WARNING", logger="pipeline.worker.backoff"):
        assert with_retries(flaky, attempts=3, base_seconds=0.0, sleep=lambda _: None) == 7

    assert [r.getMessage().split(":", 1)[1].strip() for r in caplog.records] == [
        "503 number 1",
        "503 number 2",
    ]
    assert caplog.records[0].getMessage().startswith("attempt 1 of 3 failed")
