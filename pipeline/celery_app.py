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
* failures are not acked, so they reach the dead-letter queue; see ``worker``.
* JSON only. Pickle is never accepted.
"""

from __future__ import annotations

from celery import Celery

from pipeline.settings import Settings
from pipeline.task_messages import COMPILE_TASK, SCORE_QUEUE, SCORE_TASK

__all__ = ["COMPILE_TASK", "SCORE_QUEUE", "SCORE_TASK", "broker_options", "create_app"]


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
