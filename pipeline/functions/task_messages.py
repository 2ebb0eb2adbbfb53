"""Task messages on the task queue, written and read with boto3 alone.

Only workers consume tasks, and they do it with Celery. Everything else only
sends them (the upload function, ``pipeline retry``, publishing a model) or
reads dead ones (the dead-letter function), and neither needs Celery: the
function's cold start saves importing it, and a client install has no
Celery at all. The wire format is Celery's message protocol 2 inside kombu's
SQS envelope, exactly as ``Celery.send_task`` writes it with our transport
options (``sqs_base64_encoding=False``: the envelope is plain JSON, its
``body`` base64); a test holds the two equal.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

#: The queue's name as Celery knows it; the worker maps it to the URL.
SCORE_QUEUE = "score"
SCORE_TASK = "pipeline.score"
COMPILE_TASK = "pipeline.compile"

_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def envelope(task: str, argument: Any, task_id: str | None = None) -> str:
    """The SQS message body of a call of ``task`` with one JSON argument."""
    task_id = task_id or str(uuid.uuid4())
    body = json.dumps([[argument], {}, _EMBED])
    headers: dict[str, Any] = {
        "lang": "py",
        "task": task,
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": repr([argument]),
        "kwargsrepr": "{}",
        "origin": f"gen{os.getpid()}@{socket.gethostname()}",
        "ignore_result": None,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }
    properties = {
        "correlation_id": task_id,
        "reply_to": "",
        "delivery_mode": 2,
        "delivery_info": {"exchange": "", "routing_key": SCORE_QUEUE},
        "priority": 0,
        "body_encoding": "base64",
        "delivery_tag": str(uuid.uuid4()),
    }
    return json.dumps(
        {
            "body": base64.b64encode(body.encode()).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": headers,
            "properties": properties,
        }
    )


def send(sqs: SQSClient, queue_url: str, task: str, argument: Any) -> str:
    """Put one task on the queue; its task id."""
    task_id = str(uuid.uuid4())
    sqs.send_message(QueueUrl=queue_url, MessageBody=envelope(task, argument, task_id))
    return task_id


def task_argument(body: str) -> Any:
    """The first argument of the task message in an SQS body, or None if there is none.

    The envelope's ``body`` is the JSON-encoded ``[args, kwargs, embed]``,
    base64-encoded when the envelope says so.
    """
    try:
        message = json.loads(body)
        payload = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            payload = base64.b64decode(payload)
        return json.loads(payload)[0][0]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
