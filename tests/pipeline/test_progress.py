"""A long file's progress: recorded while it runs, readable by any client, 100% at the end."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.client.status import local_status, render
from pipeline.stores import aws
from pipeline.stores.ledger import Ledger
from tests.conftest import REGION, StackFactory, outputs_file, publish

PIPELINE = [sys.executable, "-m", "pipeline.client.cli"]


def test_a_long_files_progress_is_visible_while_it_runs_and_reaches_100_percent(
    local_stack: StackFactory, sqs: Any, tmp_path: Path
) -> None:
    import lightgbm as lgb

    rng = np.random.default_rng(1)
    train = rng.normal(size=(3000, 4))
    slow = lgb.train(  # enough trees that scoring takes seconds on one thread
        {"objective": "binary", "num_leaves": 31, "verbose": -1, "num_threads": 1},
        lgb.Dataset(
            train, (train[:, 0] > 0).astype(int), feature_name=["age", "income", "score", "balance"]
        ),
        num_boost_round=1500,
    )
    stack = local_stack(
        settings={
            "batch_rows": 2048,
            "progress_seconds": 0.2,
            "predict_engine": "lightgbm",
            "predict_threads": 1,
        },
        parameters={"RunningNotificationSeconds": "0.3"},
    )
    out = stack.outputs
    publish(stack, slow)
    outputs = outputs_file(stack, tmp_path)
    rows = 400_000  # 12 MB: the reader's few MB of read-ahead are a fraction of it
    x = np.round(rng.normal(size=(rows, 4)), 4)
    big = tmp_path / "long.csv"
    big.write_text("age,income,score,balance\n" + "\n".join(",".join(map(str, r)) for r in x))
    ledger = Ledger(aws.s3_client(REGION), out["OutputBucketName"])

    submit = subprocess.Popen(
        [*PIPELINE, "submit", str(big), "--model", "churn", "--wait", "--outputs", str(outputs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[Any] = []
    shown = ""
    deadline = time.monotonic() + 120
    while submit.poll() is None and time.monotonic() < deadline:
        for job_id in ledger.running():
            progress = ledger.progress(job_id)
            if progress is not None:
                seen.append((job_id, progress))
        status = local_status(out, 5, aws.sqs_client(REGION), aws.s3_client(REGION))
        if status.running:
            shown = render(status)
        time.sleep(0.1)
    stdout, stderr = submit.communicate(timeout=30)

    assert submit.returncode == 0, stderr
    answer = json.loads(stdout)
    during = [p for job_id, p in seen if job_id == answer["job_id"]]
    assert any(0 < p.rows < rows and 0 < p.fraction < 1 for p in during), during[-3:]
    final = ledger.progress(answer["job_id"])
    assert final is not None
    assert (final.rows, final.fraction) == (rows, 1.0)
    assert ledger.running() == []
    assert "running:" in shown
    assert "% of" in shown
    received = sqs.receive_message(QueueUrl=out["NotificationQueueUrl"], MaxNumberOfMessages=10)
    statuses = [json.loads(m["Body"])["status"] for m in received.get("Messages", [])]
    assert "running" in statuses
    running = next(
        json.loads(m["Body"])
        for m in received["Messages"]
        if json.loads(m["Body"])["status"] == "running"
    )
    assert running["progress"]["key"] == "churn/long.csv"


def test_submit_wait_prints_each_change_of_progress_once() -> None:
    """Pure logic: off a terminal, a plain line per change; the same progress twice prints once."""
    import contextlib
    import io
    from datetime import UTC, datetime

    from pipeline.client.status import ProgressPrinter
    from pipeline.messages import Progress

    when = datetime(2026, 11, 21, tzinfo=UTC)

    def progress(rows: int, done: int) -> Progress:
        return Progress(
            key="m/a.csv",
            etag="e",
            rows=rows,
            input_bytes=done,
            input_size=100,
            started_at=when,
            updated_at=when,
        )

    printer = ProgressPrinter(bar=False)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        for seen in (progress(10, 25), progress(10, 25), progress(40, 60)):
            printer(seen)
        printer.finish()

    assert err.getvalue().splitlines() == [
        "25% of 100 bytes read, 10 rows scored  m/a.csv",
        "60% of 100 bytes read, 40 rows scored  m/a.csv",
    ]
