"""Reading notifications from the notification queue, as a consumer would.

The queue is subscribed to the topic with raw delivery, so each message body
is one ``Notification``. ``wait_for`` takes only the notification it looks
for and hands every other one straight back (visibility 0), so waiting for one
file never hides another file's notification from other consumers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from pipeline.messages import Notification

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


def receive(sqs: SQSClient, queue_url: str, wait_seconds: int = 5) -> Iterator[Notification]:
    """Notifications as they arrive; each is deleted once yielded."""
    response = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
    )
    for message in response.get("Messages", []):
        yield Notification.model_validate_json(message["Body"])
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def wait_for(
    sqs: SQSClient,
    queue_url: str,
    match: Callable[[Notification], bool],
    timeout: float,
    wait_seconds: int = 2,
) -> Notification | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
        )
        found = None
        for message in response.get("Messages", []):
            notification = Notification.model_validate_json(message["Body"])
            if found is None and match(notification):
                found = notification
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            else:
                sqs.change_message_visibility(
                    QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
        if found is not None:
            return found
    return None
