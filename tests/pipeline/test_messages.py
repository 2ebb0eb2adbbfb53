import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from pipeline.messages import ErrorInfo, ModelRef, Notification, ObjectRef, ScoreRequest, failed

WHEN = datetime(2026, 11, 21, 7, 0, tzinfo=UTC)
OBJ = ObjectRef(bucket="in", key="churn/é.csv", etag="e", size=3)


def test_a_request_round_trips_through_json() -> None:
    request = ScoreRequest(
        job_id="j", input=OBJ, model=ModelRef(name="churn", version=1), received_at=WHEN
    )
    wire = json.loads(request.model_dump_json())
    assert wire["schema_version"] == 1
    assert ScoreRequest.model_validate(wire) == request


def test_a_request_of_another_version_or_shape_is_refused() -> None:
    wire = {
        "job_id": "j",
        "input": OBJ.model_dump(),
        "model": {"name": "m", "version": 1},
        "received_at": WHEN.isoformat(),
    }
    with pytest.raises(ValidationError):
        ScoreRequest.model_validate({**wire, "schema_version": 2})
    with pytest.raises(ValidationError):
        ScoreRequest.model_validate({**wire, "surprise": True})


def test_a_failure_notification_carries_the_error_and_no_output() -> None:
    note = failed(
        job_id="j", input=OBJ, error=ErrorInfo(code="bad_value", message="row 3"), received_at=WHEN
    )
    wire = json.loads(note.model_dump_json())
    assert wire["status"] == "failed"
    assert wire["error"] == {"code": "bad_value", "message": "row 3"}
    assert wire["output"] is None
    assert wire["started_at"] is None
    assert Notification.model_validate_json(note.model_dump_json()) == note


def test_a_notification_too_big_for_sns_is_shortened_where_its_error_says_so() -> None:
    long = Notification(
        job_id="j",
        status="failed",
        input=None,
        error=ErrorInfo(code="schema_mismatch", message="x" * 400_000),
        received_at=datetime.now(UTC),
        finished_at=datetime.now(UTC),
    )

    short = long.bounded()

    assert len(short.model_dump_json().encode()) <= 64 * 1024
    assert short.error is not None
    assert short.error.message.startswith("xxx")
    assert short.error.message.endswith("more characters)")
    assert long.bounded(limit=10**6) is long
