from datetime import UTC, datetime
from typing import Any

import pytest

from pipeline.messages import ErrorInfo, ObjectRef, failed
from pipeline.stores.ledger import AttemptError, Ledger

WHEN = datetime(2026, 11, 21, tzinfo=UTC)
OBJ = ObjectRef(bucket="in", key="m/a.csv", etag="e", size=1)


@pytest.fixture
def ledger(s3: Any, bucket: str) -> Ledger:
    return Ledger(s3, bucket)


def note(code: str) -> Any:
    return failed(
        job_id="j1", input=OBJ, error=ErrorInfo(code=code, message=code), received_at=WHEN
    )


def test_the_first_outcome_settles_the_job(ledger: Ledger) -> None:
    first, second = note("bad_value"), note("exhausted")

    assert ledger.outcome("j1") is None
    assert ledger.settle(first) == first
    assert ledger.settle(second) == first  # the later answer yields to the settled one
    assert ledger.outcome("j1") == first


def test_the_last_error_is_kept_for_the_dead_letter_handler(ledger: Ledger) -> None:
    assert ledger.last_error("j1") is None
    ledger.note_error("j1", AttemptError(code="transient", message="503", delivery=1))
    ledger.note_error("j1", AttemptError(code="internal", message="bug", delivery=2))
    assert ledger.last_error("j1") == AttemptError(code="internal", message="bug", delivery=2)


def test_recent_lists_the_latest_outcomes_newest_first(ledger: Ledger) -> None:
    """Job ids are hashes: listing the ledger itself gives them in no useful order."""
    from datetime import timedelta

    from pipeline.stores.notify import announce

    class NoSns:
        def publish(self, **_: Any) -> None:
            pass

    ids = ["f" * 32, "0" * 32, "a" * 32, "5" * 32]
    for minutes, job_id in enumerate(ids):
        outcome = failed(
            job_id=job_id, input=OBJ, error=ErrorInfo(code="x", message="x"), received_at=WHEN
        ).model_copy(update={"finished_at": WHEN + timedelta(minutes=minutes)})
        announce(ledger, NoSns(), "arn", outcome)  # type: ignore[arg-type]
    announce(ledger, NoSns(), "arn", ledger.outcome(ids[0]))  # type: ignore[arg-type]  # a replay

    assert [n.job_id for n in ledger.recent(3)] == [ids[3], ids[2], ids[1]]
    assert [n.job_id for n in ledger.recent(10)] == ids[::-1]


def test_a_split_files_progress_is_its_shards_summed(ledger: Ledger) -> None:
    from pipeline.messages import Progress
    from pipeline.records import ShardPlan

    when = datetime(2026, 11, 22, tzinfo=UTC)
    ledger.put_plan(
        "j9",
        ShardPlan(
            format="csv",
            output_key="m/a/j9.csv",
            size=300,
            ranges=[(10, 150), (150, 300)],
            header="x\n",
            created_at=when,
        ),
    )
    for shard, (rows, done) in enumerate([(40, 140), (5, 20)]):
        progress = Progress(
            key="m/a.csv",
            etag="e",
            rows=rows,
            input_bytes=done,
            input_size=150,
            started_at=when,
            updated_at=when,
        )
        ledger.record_progress("j9", progress, shard=shard)

    summed = ledger.progress("j9")

    assert summed is not None
    assert (summed.rows, summed.input_bytes, summed.input_size) == (45, 160, 300)


def test_duplicate_shard_results_collapse_and_one_shard_finishes(ledger: Ledger) -> None:
    from pipeline.records import ShardResult

    first = ShardResult(index=0, status="scored", rows=3)
    again = ShardResult(index=0, status="scored", rows=4)

    assert ledger.put_shard_result("j8", first)
    assert not ledger.put_shard_result("j8", again)
    assert ledger.shard_results("j8") == {0: first}
    assert ledger.claim_finish("j8", 1)
    assert ledger.claim_finish("j8", 1)  # its own redelivery may finish again
    assert not ledger.claim_finish("j8", 0)


def test_a_failed_shard_is_found_by_name(ledger: Ledger) -> None:
    from pipeline.records import ShardResult

    error = ErrorInfo(code="bad_value", message="row 2")
    ledger.put_shard_result("j7", ShardResult(index=0, status="scored", rows=3))
    ledger.put_shard_result("j7", ShardResult(index=2, status="failed", error=error))

    assert ledger.failed_shards("j7") == [2]
    assert ledger.has_shard_result("j7", 2)
    assert not ledger.has_shard_result("j7", 1)
    assert sorted(ledger.shard_results("j7")) == [0, 2]
