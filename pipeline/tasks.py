"""The Celery task: parse the request, hand it to one function, report.

Like a web view, the task holds no scoring logic; ``pipeline.worker.process``
does the work and is tested directly, never through eager mode. The task
passes on the message's properties, where kombu keeps the SQS receipt handle
and receive count the worker needs to hold and pace the message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Celery, Task

from pipeline.celery_app import SCORE_TASK
from pipeline.messages import Notification

Process = Callable[[dict[str, Any], dict[str, Any] | None], Notification]


def register(app: Celery, process: Process) -> None:
    @app.task(name=SCORE_TASK, bind=True, acks_late=True)  # type: ignore[untyped-decorator]
    def score(self: Task, request: dict[str, Any]) -> dict[str, str]:
        notification = process(request, self.request.properties)
        return {"job_id": notification.job_id, "status": notification.status}
