"""Task messages written without Celery are the messages Celery writes."""

from __future__ import annotations

import json
from typing import Any

from pipeline.functions import task_messages
from pipeline.settings import Settings
from pipeline.worker.app import create_app
from tests.conftest import unique

#: What differs from one message to the next, whoever writes it.
_PER_MESSAGE = {"id", "root_id", "origin", "correlation_id", "reply_to", "delivery_tag"}


def _without_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_ids(v) for k, v in value.items() if k not in _PER_MESSAGE}
    return value


def test_a_task_message_is_the_one_celery_sends(sqs: Any) -> None:
    url = sqs.create_queue(QueueName=unique("tasks"))["QueueUrl"]
    try:
        argument = {"schema_version": 1, "job_id": "j-1", "nested": [1, 2.5, None, "é"]}
        create_app(Settings(task_queue_url=url)).send_task(
            task_messages.SCORE_TASK, args=[argument], queue=task_messages.SCORE_QUEUE
        )
        task_messages.send(sqs, url, task_messages.SCORE_TASK, argument)
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        celery_body, ours_body = (m["Body"] for m in received["Messages"])
    finally:
        sqs.delete_queue(QueueUrl=url)

    celery, ours = json.loads(celery_body), json.loads(ours_body)
    assert _without_ids(ours) == _without_ids(celery)
    assert ours["headers"]["id"] == ours["headers"]["root_id"]
    assert ours["properties"]["correlation_id"] == ours["headers"]["id"]
    assert task_messages.task_argument(ours_body) == argument


def test_a_body_that_is_no_task_message_has_no_argument() -> None:
    assert task_messages.task_argument("{}") is None
    assert task_messages.task_argument("not json") is None
    assert task_messages.task_argument(json.dumps({"body": "[[], {}, {}]"})) is None
