from datetime import UTC, datetime

import pytest

from pipeline import events
from tests.conftest import load_event


def test_a_put_event_becomes_a_decoded_object() -> None:
    event = events.parse_sqs_event(load_event("sqs_s3_put"))

    (record,) = event.records
    (created,) = events.parse_s3_body(record.body)  # type: ignore[misc]

    assert created.event_name == "ObjectCreated:Put"
    assert created.event_time == datetime(2026, 11, 21, 6, 52, 42, 558000, tzinfo=UTC)
    assert created.object.bucket == "pipeline-input-123456789012-us-east-1"
    assert created.object.key == "churn/2026/Jan report + extra été.csv"
    assert created.object.etag == "d41d8cd98f00b204e9800998ecf8427e"
    assert created.object.size == 1024


def test_the_test_event_is_recognised() -> None:
    (record,) = events.parse_sqs_event(load_event("sqs_s3_test_event")).records
    assert isinstance(events.parse_s3_body(record.body), events.TestEvent)


def test_a_malformed_body_is_reported_and_removals_are_dropped() -> None:
    bad, multipart = events.parse_sqs_event(load_event("sqs_mixed_batch")).records

    with pytest.raises(events.MalformedEvent, match="not JSON"):
        events.parse_s3_body(bad.body)
    created = events.parse_s3_body(multipart.body)
    assert isinstance(created, list)
    assert [c.object.key for c in created] == ["fraud/big.csv"]
    assert created[0].object.etag == "b4e0cb1a5f6c9f0e2a8e0a5b4c3d2e1f-10"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param("[1, 2]", "not a JSON object", id="array"),
        pytest.param('{"Message": "hi"}', "no 'Records' list", id="no-records"),
        pytest.param('{"Records": [{"eventName": "ObjectCreated:Put"}]}', "record 0", id="no-s3"),
    ],
)
def test_bodies_that_are_not_s3_events(body: str, reason: str) -> None:
    with pytest.raises(events.MalformedEvent, match=reason):
        events.parse_s3_body(body)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        pytest.param("a+b.csv", "a b.csv", id="plus-is-space"),
        pytest.param("a%2Bb.csv", "a+b.csv", id="encoded-plus"),
        pytest.param("m%2Fdir%2Ff.csv", "m/dir/f.csv", id="slashes"),
        pytest.param("m/%E6%97%A5%E6%9C%AC.csv", "m/日本.csv", id="non-ascii"),
        pytest.param("m/100%25.csv", "m/100%.csv", id="percent"),
    ],
)
def test_keys_are_decoded_once(raw: str, key: str) -> None:
    assert events.decode_key(raw) == key


def test_etags_lose_their_quotes() -> None:
    assert events.normalize_etag('"abc"') == "abc"
    assert events.normalize_etag("abc") == "abc"
