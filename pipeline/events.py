"""Parsing the events that reach the upload handler.

Lambda's SQS event source hands the handler a batch of SQS records; each
record's body is an S3 event notification (or the ``s3:TestEvent`` that S3
sends once when notifications are configured). This module turns that into
typed values and is the one place object keys are URL-decoded: S3 encodes them
with ``+`` for spaces (``incoming%2Fa+b%2Bc.csv``), and decoding twice, or not
at all, silently points at the wrong object.

Pure: no I/O, no AWS clients.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.messages import ObjectRef


class SqsRecord(BaseModel):
    """One record of a Lambda SQS event (the fields we use)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    message_id: str = Field(alias="messageId")
    receipt_handle: str = Field(default="", alias="receiptHandle")
    body: str
    attributes: dict[str, str] = Field(default_factory=dict)
    event_source_arn: str = Field(default="", alias="eventSourceARN")


class SqsEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    records: list[SqsRecord] = Field(alias="Records")


class ObjectCreated(BaseModel):
    """An ``ObjectCreated:*`` record, key decoded."""

    model_config = ConfigDict(frozen=True)

    event_name: str
    event_time: datetime
    object: ObjectRef


class TestEvent(BaseModel):
    """The ``s3:TestEvent`` S3 sends when a notification is configured: nothing to do."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["test"] = "test"


class MalformedEvent(ValueError):
    """A record body that is not an S3 event we understand."""


def parse_sqs_event(event: dict[str, Any]) -> SqsEvent:
    return SqsEvent.model_validate(event)


def parse_s3_body(body: str) -> list[ObjectCreated] | TestEvent:
    """The S3 records inside one SQS message body.

    Raises ``MalformedEvent`` with the reason when the body is not S3's shape.
    Records other than ``ObjectCreated:*`` are dropped: the bucket is configured
    to send only those, and anything else has nothing to score.
    """
    try:
        document = json.loads(body)
    except json.JSONDecodeError as exc:
        raise MalformedEvent(f"message body is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise MalformedEvent("message body is not a JSON object")
    if document.get("Event") == "s3:TestEvent":
        return TestEvent()
    records = document.get("Records")
    if not isinstance(records, list):
        raise MalformedEvent("message body has no 'Records' list")
    created = []
    for index, record in enumerate(records):
        try:
            if not str(record["eventName"]).startswith("ObjectCreated:"):
                continue
            s3 = record["s3"]
            created.append(
                ObjectCreated(
                    event_name=record["eventName"],
                    event_time=record["eventTime"],
                    object=ObjectRef(
                        bucket=s3["bucket"]["name"],
                        key=decode_key(s3["object"]["key"]),
                        etag=normalize_etag(s3["object"].get("eTag", "")),
                        size=s3["object"].get("size", 0),
                    ),
                )
            )
        except (KeyError, TypeError, ValidationError) as exc:
            raise MalformedEvent(f"record {index} is not an S3 object event: {exc!r}") from exc
    return created


def decode_key(raw: str) -> str:
    """An S3 event's object key as the object's real key."""
    return unquote_plus(raw)


def normalize_etag(etag: str) -> str:
    """ETags arrive quoted from the S3 API and bare in events; we carry them bare."""
    return etag.strip('"')
