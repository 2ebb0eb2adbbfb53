"""Overlapped stages: order kept, errors surfaced, nothing left running."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from pipeline.scoring.stages import IN_TURN_BYTES, overlapped, staged


def stage_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("stage-")]


def test_items_come_out_in_order_through_every_step() -> None:
    def slow_square(x: int) -> int:
        time.sleep(0.001 * (x % 3))
        return x * x

    result = list(overlapped(range(200), [slow_square, lambda x: x + 1]))

    assert result == [x * x + 1 for x in range(200)]
    assert stage_threads() == []


def test_the_stages_run_at_the_same_time() -> None:
    """While one stage works on an item, the others work on theirs."""
    lock = threading.Lock()
    active = 0
    most = 0

    def busy(x: int) -> int:
        nonlocal active, most
        with lock:
            active += 1
            most = max(most, active)
        time.sleep(0.02)
        with lock:
            active -= 1
        return x

    def source() -> Iterator[int]:
        for i in range(20):
            yield busy(i)

    assert list(overlapped(source(), [busy, busy])) == list(range(20))
    assert most == 3


@pytest.mark.parametrize("where", ["source", "step"])
def test_an_error_in_any_stage_reaches_the_consumer(where: str) -> None:
    def source() -> Iterator[int]:
        yield from range(5)
        if where == "source":
            raise ValueError("bad row 6")
        yield from range(5, 10)

    def step(x: int) -> int:
        if where == "step" and x == 7:
            raise ValueError("bad row 8")
        return x

    seen: list[int] = []
    with pytest.raises(ValueError, match="bad row"):
        seen.extend(overlapped(source(), [step]))

    assert seen == list(range(5 if where == "source" else 7))
    assert stage_threads() == []


def test_leaving_early_stops_every_stage() -> None:
    produced = []

    def endless() -> Iterator[int]:
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    for item in overlapped(endless(), [lambda x: x], depth=2):
        if item == 3:
            break

    assert stage_threads() == []
    assert len(produced) < 20  # bounded hand-offs: the source never ran far ahead


@pytest.mark.parametrize(
    ("size", "in_the_callers_thread"),
    [(0, True), (IN_TURN_BYTES, True), (IN_TURN_BYTES + 1, False)],
)
def test_a_small_inputs_stages_run_in_the_callers_thread(
    size: int, in_the_callers_thread: bool
) -> None:
    """A chunk or two: no thread to start, no hand-off; the same items either way."""
    seen: list[int | None] = []

    def note(x: int) -> int:
        seen.append(threading.get_ident())
        return x * 2

    result = list(staged(range(5), [note, lambda x: x + 1], size))

    assert result == [x * 2 + 1 for x in range(5)]
    assert (set(seen) == {threading.get_ident()}) is in_the_callers_thread


def test_an_error_in_a_small_inputs_stage_reaches_the_consumer() -> None:
    def fail_on_three(x: int) -> int:
        if x == 3:
            raise ValueError("row 3 is bad")
        return x

    items = staged(range(10), [fail_on_three], size=100)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match="row 3"):
        next(items)
