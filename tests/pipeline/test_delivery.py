import time
from typing import Any

import pytest

from pipeline.worker.delivery import Delivery, Heartbeat, redelivery_delay
from tests.conftest import unique


def test_a_delivery_is_read_from_kombu_message_properties() -> None:
    properties = {
        "delivery_info": {
            "sqs_queue": "http://q",
            "sqs_message": {"ReceiptHandle": "rh", "Attributes": {"ApproximateReceiveCount": "3"}},
        }
    }
    assert Delivery.from_properties(properties) == Delivery("http://q", "rh", 3)
    assert Delivery.from_properties({}) is None
    assert Delivery.from_properties(None) is None


@pytest.mark.parametrize(
    ("count", "low", "high"), [(1, 5, 10), (2, 10, 20), (3, 20, 40), (20, 450, 900)]
)
def test_redelivery_backs_off_exponentially_with_jitter_and_a_cap(
    count: int, low: int, high: int
) -> None:
    delays = {redelivery_delay(count, 10.0) for _ in range(200)}
    assert min(delays) >= low
    assert max(delays) <= high
    assert len(delays) > 1


def test_a_heartbeat_keeps_the_message_from_other_consumers(sqs: Any) -> None:
    url = sqs.create_queue(QueueName=unique("hb"), Attributes={"VisibilityTimeout": "3"})[
        "QueueUrl"
    ]
    sqs.send_message(QueueUrl=url, MessageBody="file")
    (message,) = sqs.receive_message(
        QueueUrl=url, AttributeNames=["ApproximateReceiveCount"], WaitTimeSeconds=1
    )["Messages"]
    delivery = Delivery(url, message["ReceiptHandle"], 1)
    try:
        with Heartbeat(sqs, delivery, visibility_seconds=3) as heartbeat:
            deadline = time.monotonic() + 7  # more than twice the visibility timeout
            while time.monotonic() < deadline:
                assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages") is None
        assert heartbeat.beats >= 5
        # Once the heartbeat stops, the message comes back within the timeout.
        again = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5).get("Messages")
        assert again is not None
        assert again[0]["Body"] == "file"
    finally:
        sqs.delete_queue(QueueUrl=url)
