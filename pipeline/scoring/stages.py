"""Running the stages of scoring a file at the same time, in order, with bounded hand-offs.

Reading and parsing, building features and predicting each run in a thread
of their own, handing items on through small queues; the caller consumes the
last stage (encoding and uploading). pyarrow, LightGBM and the compiled
forest release the GIL, so the slowest stage sets the pace instead of the sum
of all. Each stage is one thread, so order is kept; each queue holds
``depth`` items (one by default: every item in flight is memory), so
memory stays bounded whatever the file's size.

An exception in any stage reaches the caller from ``next()``; leaving the
iterator early (an error, the watchdog's ``JobTimeout``) stops every stage.
An input of a chunk or so has nothing to overlap: its stages run in turn in
the caller's thread (``staged``).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_POLL_SECONDS = 0.1
_JOIN_SECONDS = 10.0
_DONE = object()

#: Inputs up to this size are a chunk or two: their stages run in the caller's thread.
IN_TURN_BYTES = 1 << 20


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def staged(source: Iterable[Any], steps: list[Callable[[Any], Any]], size: int) -> Iterator[Any]:
    """``overlapped``, or for an input of ``size`` up to ``IN_TURN_BYTES``, ``in_turn``."""
    return in_turn(source, steps) if size <= IN_TURN_BYTES else overlapped(source, steps)


def in_turn(source: Iterable[Any], steps: list[Callable[[Any], Any]]) -> Iterator[Any]:
    """What ``overlapped`` yields, each item through every stage in the caller's thread.

    A 1,000-row file is one chunk: there is nothing to overlap, and starting a
    thread a stage and handing the chunk from one to the next, the threads
    waking each other on two busy cores, cost its trip from upload to
    notification about 3 ms at the median (55.4-55.5 -> 51.4-53.0 ms, runs
    alternating) and the worker 2 CPU-ms.
    """
    for item in source:
        result = item
        for step in steps:
            result = step(result)
        yield result


def overlapped(
    source: Iterable[Any], steps: list[Callable[[Any], Any]], depth: int = 1
) -> Iterator[Any]:
    """``step_n(...step_1(item))`` for each item of ``source``, stages running concurrently."""
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def put(out: queue.Queue[Any], item: Any) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=_POLL_SECONDS)
            except queue.Full:
                continue
            return True
        return False

    def get(inbox: queue.Queue[Any]) -> Any:
        while not stop.is_set():
            try:
                return inbox.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue
        return _DONE

    def produce(out: queue.Queue[Any]) -> None:
        try:
            for item in source:
                if not put(out, item):
                    return
            put(out, _DONE)
        except BaseException as exc:
            put(out, _Failed(exc))

    def transform(
        step: Callable[[Any], Any], inbox: queue.Queue[Any], out: queue.Queue[Any]
    ) -> None:
        while True:
            item = get(inbox)
            if item is _DONE or isinstance(item, _Failed):
                put(out, item)
                return
            try:
                result = step(item)
            except BaseException as exc:
                put(out, _Failed(exc))
                return
            del item  # hold the output alone while waiting to hand it on
            if not put(out, result):
                return
            del result

    inbox: queue.Queue[Any] = queue.Queue(depth)
    threads.append(threading.Thread(target=produce, args=(inbox,), name="stage-read"))
    for index, step in enumerate(steps):
        out: queue.Queue[Any] = queue.Queue(depth)
        threads.append(
            threading.Thread(target=transform, args=(step, inbox, out), name=f"stage-{index + 1}")
        )
        inbox = out
    for thread in threads:
        thread.daemon = True
        thread.start()
    try:
        while True:
            item = inbox.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        for thread in threads:
            # A stage inside a long read sees the stop when it returns; it is a
            # daemon, so a stuck one cannot keep the worker from its next file.
            thread.join(timeout=_JOIN_SECONDS)
