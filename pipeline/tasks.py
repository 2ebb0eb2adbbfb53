"""The Celery task: parse the request, hand it to one function, report.

Like a web view, the task holds no scoring logic; ``pipeline.worker.process``
does the work and is tested directly, never through eager mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Celery

from pipeline.celery_app import SCORE_TASK
from pipeline.messages import Notification, ScoreRequest


def register(app: Celery, process: Callable[[ScoreRequest], Notification]) -> None:
    @app.task(name=SCORE_TASK, acks_late=True)  # type: ignore[untyped-decorator]
    def score(request: dict[str, Any]) -> dict[str, str]:
        notification = process(ScoreRequest.model_validate(request))
        return {"job_id": notification.job_id, "status": notification.status}
