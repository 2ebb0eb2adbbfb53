"""The Celery app the worker command loads, and its two tasks' entry points.

    celery -A pipeline.worker.main worker --pool=solo

A task parses its argument as its contract (or the message is poison and goes
to the dead-letter queue) and calls one function of ``process``.
"""

from __future__ import annotations

import functools
import gc
import logging
from typing import TYPE_CHECKING, Any, TypeVar

from celery import signals
from celery.worker.consumer import Consumer
from pydantic import ValidationError

from pipeline import logs
from pipeline.messages import (
    CompileRequest,
    Notification,
    ScoreRequest,
)
from pipeline.scoring import plain_numbers
from pipeline.settings import Settings
from pipeline.worker import tasks
from pipeline.worker.app import create_app
from pipeline.worker.delivery import Delivery
from pipeline.worker.process import compile_model, process, reject_poison
from pipeline.worker.runtime import WorkerRuntime

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)
Request = TypeVar("Request", ScoreRequest, CompileRequest)


class RejectingConsumer(Consumer):  # type: ignore[misc]
    """Celery's consumer, but an undecodable message is rejected, not acked.

    Celery acks a message it cannot decode, which over SQS deletes it: a poison
    message would vanish without an answer. Rejected, it stays on the queue
    (kombu does not delete rejected messages from a queue with a redrive
    policy) and reaches the dead-letter queue.
    """

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        delivery = Delivery.from_properties(message.properties)
        reject_poison(runtime(), delivery, f"cannot decode: {exc}")
        message.reject(requeue=False)


@functools.cache
def runtime() -> WorkerRuntime:
    return WorkerRuntime.create(Settings())


def _parse(
    kind: type[Request], payload: dict[str, Any], properties: dict[str, Any] | None
) -> tuple[Request, Delivery | None]:
    """A task's argument as its contract, or the message is poison (and raises)."""
    delivery = Delivery.from_properties(properties)
    try:
        return kind.model_validate(payload), delivery
    except ValidationError as exc:
        reject_poison(runtime(), delivery, f"not a {kind.__name__}: {exc.error_count()} error(s)")
        raise


def _run_task(payload: dict[str, Any], properties: dict[str, Any] | None) -> Notification | None:
    request, delivery = _parse(ScoreRequest, payload, properties)
    return process(request, runtime(), delivery)


def _run_compile(payload: dict[str, Any], properties: dict[str, Any] | None) -> str:
    request, _ = _parse(CompileRequest, payload, properties)
    return compile_model(request, runtime())


@signals.setup_logging.connect  # type: ignore[untyped-decorator]
def _json_logs(**_: Any) -> None:
    """Celery leaves logging to us once this is connected: JSON lines on stdout."""
    logs.configure("worker", Settings().log_level)
    # Celery's own per-task lines name its task id, not the job; ours say more.
    for name in ("celery.app.trace", "celery.worker.strategy"):
        logging.getLogger(name).setLevel(logging.WARNING)


@signals.worker_ready.connect  # type: ignore[untyped-decorator]
def _startup_kept(**_: Any) -> None:
    """What the worker loaded to start (celery, boto3, Arrow, polars, the readers'
    compiled number pass) lives as long as it does: out of the collector's sight, a
    full collection does not walk it in the middle of a file."""
    plain_numbers.warm()
    gc.freeze()


app = create_app(Settings())
app.conf.worker_consumer = "pipeline.worker.main:RejectingConsumer"
tasks.register(app, _run_task, _run_compile)
