"""Per-file metrics as CloudWatch Embedded Metric Format documents in the log lines."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline import metrics
from pipeline.client import consumer
from tests.conftest import StackFactory, publish, unique

#: The units CloudWatch accepts for a metric (PutMetricData's StandardUnit).
UNITS = {
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
    "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
    "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second",
    "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second",
    "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
}  # fmt: skip


def assert_emf(document: dict[str, Any]) -> None:
    """The structure the EMF specification requires of a log event."""
    root = document["_aws"]
    assert isinstance(root["Timestamp"], int)
    assert root["Timestamp"] > 1_600_000_000_000  # milliseconds since the epoch
    (directive,) = root["CloudWatchMetrics"]
    assert isinstance(directive["Namespace"], str)
    assert directive["Namespace"]
    for dimension_set in directive["Dimensions"]:
        assert 1 <= len(dimension_set) <= 30
        for name in dimension_set:
            assert isinstance(document[name], str)
            assert document[name], f"dimension {name} is empty"
    for metric in directive["Metrics"]:
        assert metric["Unit"] in UNITS
        assert isinstance(document[metric["Name"]], int | float)


def test_a_document_names_every_metric_and_dimension_it_declares() -> None:
    document = metrics.document(
        "scoring",
        "succeeded",
        "churn",
        values={"Files": 1, "Rows": 10, "Seconds": 0.5, "RowsPerSecond": 20.0},
        properties={"engine": "compiled"},
        now=1_800_000_000.0,
    )

    assert_emf(document)
    assert document["_aws"]["Timestamp"] == 1_800_000_000_000
    assert document["engine"] == "compiled"


def test_a_metric_without_a_unit_is_refused() -> None:
    with pytest.raises(ValueError, match="no unit for metric"):
        metrics.document("scoring", "failed", "m", values={"Latency": 1}, properties={})


def test_the_worker_and_the_upload_function_log_one_emf_document_per_file(
    local_stack: StackFactory, s3: Any, sqs: Any, binary_model: Any
) -> None:
    stack = local_stack()
    out = stack.outputs
    publish(stack, binary_model)
    bodies = {
        "good": b"age,income,score,balance\n1,2,3,4\n5,6,7,8\n",
        "bad": b"age,income,score,balance\n1,x,3,4\n",
    }
    notes = {}
    for name, body in bodies.items():
        key = f"churn/{unique(name)}.csv"
        etag = s3.put_object(Bucket=out["InputBucketName"], Key=key, Body=body)["ETag"].strip('"')
        notes[name] = consumer.wait_for(
            sqs, out["NotificationQueueUrl"], lambda n, k=key, e=etag: n.is_for(k, e), timeout=60
        )

    def documents_now() -> list[dict[str, Any]]:
        lines = [
            json.loads(line)
            for path in Path(out["LogsFolder"]).glob("*.jsonl")
            for line in path.read_text().splitlines()
        ]
        return [d for d in lines if "_aws" in d]

    # A worker logs the file's answer just after publishing it.
    deadline = time.monotonic() + 10
    while len(documents_now()) < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    documents = documents_now()
    for document in documents:
        assert_emf(document)
    scoring = {d["job_id"]: d for d in documents if d["Stage"] == "scoring"}
    good, bad = scoring[notes["good"].job_id], scoring[notes["bad"].job_id]
    assert (good["Outcome"], good["Rows"], good["Model"]) == ("succeeded", 2, "churn")
    assert good["engine"] in {"compiled", "lightgbm"}
    assert good["PredictSeconds"] >= 0
    assert (bad["Outcome"], bad["ErrorCode"]) == ("failed", "bad_value")
    assert good["ErrorCode"] == "none"
    intake = [d for d in documents if d["Stage"] == "intake"]
    assert sorted(d["job_id"] for d in intake) == sorted(n.job_id for n in notes.values())
    assert {d["Outcome"] for d in intake} == {"accepted"}
