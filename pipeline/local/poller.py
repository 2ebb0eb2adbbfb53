"""Lambda's SQS event-source mapping, played locally.

Long-polls a queue and calls a handler function with the same event shape
Lambda uses (``Records`` of SQS messages), then deletes every message except
those the function reported in ``batchItemFailures``; those, like everything
when the function raises, reappear after the queue's visibility timeout, as
they would in AWS.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pipeline.stores import aws

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

log = logging.getLogger(__name__)

Function = Callable[[dict[str, Any]], dict[str, Any]]

#: Short waits: moto keeps an abandoned long poll running until it ends, and a
#: message arriving then stays invisible for a whole visibility timeout.
_WAIT_SECONDS = 1


def lambda_event(messages: list[MessageTypeDef], queue_arn: str, region: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


class EventSourceMapping:
    def __init__(
        self,
        name: str,
        queue_url: str,
        function: Function,
        region: str,
        sqs: SQSClient | None = None,
    ) -> None:
        """``sqs``: as the function's role (Lambda polls with it), else this process's."""
        self.name, self.queue_url, self._function, self._region = name, queue_url, function, region
        self._sqs = sqs or aws.sqs_client(region)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"poller-{name}", daemon=True)

    def start(self) -> None:
        arn = self._sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        self._queue_arn = arn["Attributes"]["QueueArn"]
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current poll: no long poll is left running in the emulator."""
        self._stop.set()
        self._thread.join(timeout=_WAIT_SECONDS + 30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("%s: polling failed; trying again", self.name)
                self._stop.wait(1)

    def poll_once(self) -> int:
        received = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=_WAIT_SECONDS,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = received.get("Messages", [])
        if not messages:
            return 0
        try:
            result = self._function(lambda_event(messages, self._queue_arn, self._region))
        except Exception:
            log.exception("%s: the function failed; the batch will be delivered again", self.name)
            return len(messages)
        failed = {f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
                ],
            )
        return len(messages)
