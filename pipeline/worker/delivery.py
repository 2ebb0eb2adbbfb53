"""The task message a worker holds, and keeping it held while a file runs.

Celery does nothing about SQS visibility: a task that outlives the queue's
visibility timeout is handed to a second worker while the first still runs.
``Heartbeat`` extends the message's visibility every third of the timeout for
as long as the file runs, so the timeout can be short and a dead worker's
file comes back within it. After a failed delivery, ``delay_redelivery`` sets
when SQS hands the message out again: exponential backoff across deliveries,
until ``maxReceiveCount`` sends it to the dead-letter queue.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)

_MAX_VISIBILITY = 43_200  # SQS's limit, 12 hours
_MAX_REDELIVERY_DELAY = 900.0


@dataclass(frozen=True)
class Delivery:
    queue_url: str
    receipt_handle: str
    #: 1 for the first delivery of the message, 2 for the second, ...
    receive_count: int
    #: SQS's id of the message: the same on every delivery of it.
    message_id: str = ""

    @classmethod
    def from_properties(cls, properties: dict[str, Any] | None) -> Delivery | None:
        """The SQS delivery kombu records in a Celery request's message properties."""
        info = (properties or {}).get("delivery_info") or {}
        message = info.get("sqs_message") or {}
        if not message.get("ReceiptHandle") or not info.get("sqs_queue"):
            return None
        count = message.get("Attributes", {}).get("ApproximateReceiveCount", "1")
        return cls(
            info["sqs_queue"], message["ReceiptHandle"], int(count), message.get("MessageId", "")
        )

    def set_visibility(self, sqs: SQSClient, seconds: int) -> bool:
        try:
            sqs.change_message_visibility(
                QueueUrl=self.queue_url,
                ReceiptHandle=self.receipt_handle,
                VisibilityTimeout=max(0, min(_MAX_VISIBILITY, seconds)),
            )
        except (ClientError, BotoCoreError) as exc:
            log.warning("could not change the visibility of the task message: %s", exc)
            return False
        return True


def redelivery_delay(receive_count: int, base_seconds: float) -> int:
    """Seconds until the next delivery: exponential in deliveries so far, with jitter."""
    ceiling = min(_MAX_REDELIVERY_DELAY, base_seconds * 2 ** max(0, receive_count - 1))
    return round(random.uniform(ceiling / 2, ceiling))  # noqa: S311 - jitter, not secrets


class Heartbeat:
    """Keeps a delivery invisible to other workers while the ``with`` block runs."""

    def __init__(self, sqs: SQSClient, delivery: Delivery | None, visibility_seconds: int) -> None:
        self._sqs, self._delivery, self._visibility = sqs, delivery, visibility_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.beats = 0

    def __enter__(self) -> Self:
        if self._delivery is not None:
            self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        assert self._delivery is not None  # noqa: S101 - started only with a delivery
        interval = max(1.0, self._visibility / 3)
        while not self._stop.wait(interval):
            if self._delivery.set_visibility(self._sqs, self._visibility):
                self.beats += 1

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
