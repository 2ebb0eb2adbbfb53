"""Publishing notifications to the SNS topic.

The body is the notification's JSON; ``status``, ``job_id`` and ``model`` also
travel as message attributes so subscribers can filter with an SNS filter
policy without parsing bodies. ``announce`` is how every component answers
for a file: it settles the outcome in the ledger first, then publishes the
settled one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.messages import Notification
from pipeline.stores.aws import translated
from pipeline.stores.ledger import Ledger

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sns.type_defs import MessageAttributeValueTypeDef


def publish(sns: SNSClient, topic_arn: str, notification: Notification) -> None:
    notification = notification.bounded()
    attributes: dict[str, MessageAttributeValueTypeDef] = {
        "status": {"DataType": "String", "StringValue": notification.status},
        "job_id": {"DataType": "String", "StringValue": notification.job_id},
    }
    if notification.model is not None:
        attributes["model"] = {"DataType": "String", "StringValue": notification.model.name}
    with translated(f"publishing the notification of job {notification.job_id}"):
        sns.publish(
            TopicArn=topic_arn,
            Message=notification.model_dump_json(),
            MessageAttributes=attributes,
        )


def announce(
    ledger: Ledger, sns: SNSClient, topic_arn: str, notification: Notification
) -> Notification:
    """Settle the job's outcome and publish it; return what was published."""
    outcome = ledger.settle(notification.bounded())
    publish(sns, topic_arn, outcome)
    if outcome is notification:  # settled by this call, not a replay
        ledger.mark_recent(outcome)
    return outcome
