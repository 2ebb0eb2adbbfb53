"""The Celery app, configured for SQS and one solo worker per container.

Choices, each measured (see the README's "Broker settings"):

* ``predefined_queues``: kombu never creates, lists or re-configures queues;
  the queue, its visibility timeout and its dead-letter queue belong to
  ``template.yaml``.
* long polling (``wait_time_seconds``) with ``polling_interval=0``: a task
  starts within milliseconds of being sent. kombu's default interval of 1 s
  also sleeps after every task.
* prefetch 1 and late acks: a solo worker holds one message at a time, so a
  long file never makes another file wait behind it, and a worker that dies
  mid-file leaves its message to reappear for another worker.
* failures are not acked, so they reach the dead-letter queue; see ``process``.
* JSON only. Pickle is never accepted.
* kombu's event loop naps at most 2 ms, not 100 ms, when no socket is open
  (``brief_naps``): a solo worker closes its receive's socket as a task
  ends, so the next receive waited out that nap after every task.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from typing import Any

from celery import Celery
from kombu.asynchronous.hub import Hub

from pipeline.functions.task_messages import COMPILE_TASK, SCORE_QUEUE, SCORE_TASK
from pipeline.settings import Settings

__all__ = [
    "COMPILE_TASK",
    "SCORE_QUEUE",
    "SCORE_TASK",
    "brief_naps",
    "broker_options",
    "create_app",
]

#: The longest the event loop sleeps while it has no socket to wait on.
NAP_SECONDS = 0.002


def broker_options(settings: Settings) -> dict[str, object]:
    return {
        "predefined_queues": {SCORE_QUEUE: {"url": settings.task_queue_url}},
        "wait_time_seconds": settings.broker_wait_seconds,
        "polling_interval": 0,
        # JSON only, so the envelope needs no extra base64 layer: messages on
        # the task and dead-letter queues stay readable.
        "sqs_base64_encoding": False,
    }


def create_app(settings: Settings) -> Celery:
    app = Celery("pipeline", set_as_current=False)
    app.conf.update(
        broker_url="sqs://",
        broker_transport_options=broker_options(settings),
        broker_connection_retry_on_startup=True,
        task_default_queue=SCORE_QUEUE,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        # A failed task is rejected, not acked: SQS redelivers it after a
        # backoff and, after maxReceiveCount, moves it to the dead-letter queue.
        task_acks_on_failure_or_timeout=False,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_enable_remote_control=False,
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
        enable_utc=True,
    )
    return app


def brief_naps(create_loop: Callable[..., Iterator[None]]) -> Callable[..., Iterator[None]]:
    """kombu's loop with its no-socket sleep cut from up to 100 ms to ``NAP_SECONDS``.

    With no socket registered, ``Hub.create_loop`` sleeps ``min(timeout, 0.1)``,
    assuming start-up. The SQS transport hits that branch after every task:
    the emulator (like any server that closes the connection) leaves no socket
    between one receive and the next. Measured on 1,000-row files sent as each
    answer arrived, upload -> notification p50 135-147 -> 79-81 ms. Idle, a
    receive's long poll holds a socket, so the loop does not spin.
    """

    @functools.wraps(create_loop)
    def wrapped(hub: Hub, *args: Any, **kwargs: Any) -> Iterator[None]:
        kwargs.setdefault("sleep", _nap)
        return create_loop(hub, *args, **kwargs)

    return wrapped


def _nap(seconds: float) -> None:
    time.sleep(min(seconds, NAP_SECONDS))


if not hasattr(Hub.create_loop, "__wrapped__"):
    Hub.create_loop = brief_naps(Hub.create_loop)  # type: ignore[method-assign]
