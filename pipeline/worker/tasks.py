"""The Celery tasks: parse the request, hand it to one function, report.

Like a web view, a task holds no scoring logic; ``pipeline.worker.main`` does the
work and is tested directly, never through eager mode. The tasks pass on the
message's properties, where kombu keeps the SQS receipt handle and receive
count the worker needs to hold and pace the message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Celery, Task

from pipeline.messages import Notification
from pipeline.worker.app import COMPILE_TASK, SCORE_TASK

Process = Callable[[dict[str, Any], dict[str, Any] | None], Notification | None]
Compile = Callable[[dict[str, Any], dict[str, Any] | None], str]


def register(app: Celery, process: Process, compile_model: Compile) -> None:
    @app.task(name=SCORE_TASK, bind=True, acks_late=True)  # type: ignore[untyped-decorator]
    def score(self: Task, request: dict[str, Any]) -> dict[str, str]:
        notification = process(request, self.request.properties)
        if notification is None:  # a split file, whose last shard announces it
            return {"job_id": request.get("job_id", ""), "status": "sharded"}
        return {"job_id": notification.job_id, "status": notification.status}

    @app.task(name=COMPILE_TASK, bind=True, acks_late=True)  # type: ignore[untyped-decorator]
    def compile_forest(self: Task, request: dict[str, Any]) -> dict[str, str]:
        return {"status": compile_model(request, self.request.properties)}
