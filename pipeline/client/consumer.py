"""Reading notifications, as a consumer would, without taking them from anyone else.

The stack's notification queue belongs to its consumers. A tool that only
wants to watch (``pipeline submit --wait``, ``pipeline watch``) must never
receive from it: every receive counts towards the queue's ``maxReceiveCount``,
so handing others' notifications back pushes them into the dead-letter queue
within seconds. ``Subscription`` gives such a tool a queue of its own,
subscribed to the topic with raw delivery (and an SNS filter policy where
that narrows what it gets), and removes both on exit, Ctrl-C included.

``take_from`` reads a queue its caller owns outright (a test's own stack, a
benchmark's): everything it receives is deleted.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Self

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from pipeline.messages import Notification

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)

Match = Callable[[Notification], bool]


class Subscription:
    """A temporary queue subscribed to the notification topic; gone when the block ends."""

    def __init__(
        self,
        sqs: SQSClient,
        sns: SNSClient,
        topic_arn: str,
        filter_policy: dict[str, list[str]] | None = None,
        name_prefix: str = "pipeline-listen",
    ) -> None:
        self._sqs, self._sns, self.topic_arn = sqs, sns, topic_arn
        self._filter = filter_policy
        #: Queue names start with it: a stack's listeners are told apart (and granted) by it.
        self.name_prefix = name_prefix[:60]
        self.queue_url = ""
        self._subscription_arn = ""

    def __enter__(self) -> Self:
        name = f"{self.name_prefix}-{uuid.uuid4().hex[:12]}"
        self.queue_url = self._sqs.create_queue(
            QueueName=name,
            Attributes={"SqsManagedSseEnabled": "true", "MessageRetentionPeriod": "3600"},
        )["QueueUrl"]
        try:
            arn = self._sqs.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
            )["Attributes"]["QueueArn"]
            self._sqs.set_queue_attributes(
                QueueUrl=self.queue_url, Attributes={"Policy": _topic_may_send(arn, self.topic_arn)}
            )
            attributes = {"RawMessageDelivery": "true"}
            if self._filter:
                attributes["FilterPolicy"] = json.dumps(self._filter)
            self._subscription_arn = self._sns.subscribe(
                TopicArn=self.topic_arn,
                Protocol="sqs",
                Endpoint=arn,
                Attributes=attributes,
                ReturnSubscriptionArn=True,
            )["SubscriptionArn"]
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._remove()

    def _remove(self) -> None:
        _unclaimed.pop(self.queue_url, None)
        if self._subscription_arn:
            self._sns.unsubscribe(SubscriptionArn=self._subscription_arn)
            self._subscription_arn = ""
        if self.queue_url:
            self._sqs.delete_queue(QueueUrl=self.queue_url)
            self.queue_url = ""

    def notifications(self, wait_seconds: int = 5, most: int = 10) -> Iterator[Notification]:
        """The notifications that arrive within one long poll, at most ``most``."""
        return take_from(self._sqs, self.queue_url, wait_seconds, most)

    def wait_for(self, match: Match, timeout: float, wait_seconds: int = 2) -> Notification | None:
        return wait_for(self._sqs, self.queue_url, match, timeout, wait_seconds)

    def unclaimed(self) -> list[Notification]:
        """The notifications ``wait_for`` received but did not match, handed over once."""
        return _unclaimed.pop(self.queue_url, [])


def _topic_may_send(queue_arn: str, topic_arn: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
                }
            ],
        }
    )


def take_from(
    sqs: SQSClient, queue_url: str, wait_seconds: int = 5, most: int = 10
) -> Iterator[Notification]:
    """Notifications from a queue the caller owns; each is deleted once yielded."""
    for notification, receipt in _receive(sqs, queue_url, wait_seconds, most):
        if notification is not None:
            yield notification
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=receipt)


def _receive(
    sqs: SQSClient, queue_url: str, wait_seconds: int, most: int = 10
) -> list[tuple[Notification | None, str]]:
    """One receive's notifications (None: a message that is not one), with their receipts."""
    response = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=max(1, min(10, most)), WaitTimeSeconds=wait_seconds
    )
    received: list[tuple[Notification | None, str]] = []
    for message in response.get("Messages", []):
        try:
            notification = Notification.model_validate_json(message["Body"])
        except ValidationError as exc:
            # One stray message on the topic must not end a listener: say so, drop it.
            log.warning(
                "skipped a message that is not a notification (%d error(s)): %.200s",
                exc.error_count(),
                message["Body"],
            )
            notification = None
        received.append((notification, message["ReceiptHandle"]))
    return received


def wait_for(
    sqs: SQSClient, queue_url: str, match: Match, timeout: float, wait_seconds: int = 2
) -> Notification | None:
    """The first matching notification on a queue the caller owns.

    Notifications received while waiting are deleted from the queue but kept
    in this process, and a later wait on the same queue looks at them first:
    waiting for one file after another never loses the second's answer.
    """
    kept = _unclaimed.setdefault(queue_url, [])
    for index, notification in enumerate(kept):
        if match(notification):
            return kept.pop(index)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        received = _receive(sqs, queue_url, wait_seconds)
        if not received:
            continue
        # All are taken (kept or returned), in one request beside the caller's work.
        _deletes.submit(_delete, sqs, queue_url, [receipt for _, receipt in received])
        notes = [n for n, _ in received if n is not None]
        for index, notification in enumerate(notes):
            if match(notification):
                kept.extend(notes[index + 1 :])
                return notification
            kept.append(notification)
    return None


_unclaimed: dict[str, list[Notification]] = {}

#: Deletes run beside the caller, who has the notification a round trip sooner; the
#: interpreter's exit waits for them (``concurrent.futures`` joins its threads).
_deletes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="notification-deletes")


def _delete(sqs: SQSClient, queue_url: str, receipts: list[str]) -> None:
    entries = [{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(receipts)]
    try:
        answer = sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)  # type: ignore[arg-type]
    except (BotoCoreError, ClientError) as exc:
        log.warning("notifications were not deleted (they come back): %s", exc)
        return
    for failure in answer.get("Failed", []):
        log.warning("a notification was not deleted (it comes back): %s", failure["Code"])
