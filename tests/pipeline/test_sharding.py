"""One big file on two real workers: split, scored in parallel, joined, announced once."""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from pipeline.client import consumer
from pipeline.client.api import Client
from pipeline.local.stack import LocalStack
from pipeline.messages import Notification
from pipeline.stores.ledger import Ledger
from tests.conftest import REGION, TEST_SETTINGS, publish, queue_depth, unique
from tests.faults import FaultProxy

SHARD_BYTES = 1024 * 1024
FEATURES = ["age", "income", "score", "balance"]


@pytest.fixture(scope="module")
def proxy(aws_endpoint: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(aws_endpoint).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def stack(aws_endpoint: str, proxy: FaultProxy, binary_model: Any) -> Iterator[LocalStack]:
    """Two solo workers, one prediction thread each, 1 MiB shards: set as ``pipeline dev``
    would take them from its own environment."""
    stack = LocalStack(
        stack_name=unique("shards"),
        region=REGION,
        endpoint_url=aws_endpoint,
        worker_endpoint_url=proxy.url,
        workers=2,
        settings={**TEST_SETTINGS, "progress_seconds": 0.2},
        environment={
            "PIPELINE_SHARD_BYTES": str(SHARD_BYTES),
            "PIPELINE_PREDICT_THREADS": "1",
        },
        parameters={"TaskVisibilityTimeout": "4"},
        sink=lambda _line: None,
    ).start()
    publish(stack, binary_model)
    yield stack
    stack.stop()


@pytest.fixture
def slow_reads(proxy: FaultProxy, request: pytest.FixtureRequest) -> Iterator[None]:
    """Reads of small shards take a while, so they overlap (Parquet's big row groups do anyway)."""
    if "[parquet]" not in request.node.name:
        proxy.delays.append(
            lambda method, path: 0.4 if method == "GET" and "/churn/" in path else 0.0
        )
    yield
    proxy.delays.clear()


class BusyWatch:
    """The most workers busy at once while a file runs, sampled every few milliseconds."""

    def __init__(self, stack: LocalStack) -> None:
        self._stack, self.most = stack, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            busy = sum(1 for w in self._stack.workers if w.busy)
            self.most = max(self.most, busy)

    def __enter__(self) -> BusyWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, len(FEATURES)))


def csv_bytes(x: np.ndarray) -> bytes:
    lines = ["id," + ",".join(FEATURES) + "\n"]
    lines += [f"{i}," + ",".join(repr(float(v)) for v in r) + "\n" for i, r in enumerate(x)]
    return "".join(lines).encode()


def jsonl_bytes(x: np.ndarray) -> bytes:
    records = (
        json.dumps({"id": i, **{f: float(v) for f, v in zip(FEATURES, r, strict=True)}})
        for i, r in enumerate(x)
    )
    return "".join(record + "\n" for record in records).encode()


def parquet_bytes(x: np.ndarray) -> bytes:
    """Row groups big enough that each shard's output goes up in parts of its own."""
    table = pa.table({"id": np.arange(len(x)), **{f: x[:, j] for j, f in enumerate(FEATURES)}})
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=300_000)
    return out.getvalue()


def scored(s3: Any, note: Notification) -> tuple[list[int], np.ndarray]:
    """The output's ids and predictions, in the order they are in the file."""
    assert note.output is not None
    data = s3.get_object(Bucket=note.output.bucket, Key=note.output.key)["Body"].read()
    if note.output.format == "parquet":
        table = pq.read_table(io.BytesIO(data))
    elif note.output.format == "jsonl":
        table = pa.Table.from_pylist([json.loads(line) for line in data.splitlines()])
    else:
        table = pa_csv.read_csv(io.BytesIO(data))
    return [int(i) for i in table.column("id").to_pylist()], table.column("prediction").to_numpy()


def answers(stack: LocalStack, sqs: Any, job_id: str, settle: float = 1.0) -> list[Notification]:
    """Every notification of ``job_id`` on the stack's queue, waiting ``settle`` s for late ones."""
    found: list[Notification] = []
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        found += [
            n
            for n in consumer.take_from(sqs, stack.outputs["NotificationQueueUrl"], 1)
            if n.job_id == job_id
        ]
    return found


@pytest.mark.parametrize(
    ("suffix", "encode", "rows_count"),
    [
        pytest.param(".csv", csv_bytes, 40_000, id="csv"),
        pytest.param(".jsonl", jsonl_bytes, 30_000, id="jsonl"),
        pytest.param(".parquet", parquet_bytes, 900_000, id="parquet"),
    ],
)
def test_a_big_file_is_scored_by_two_workers_at_once_exactly_and_in_order(
    stack: LocalStack,
    s3: Any,
    sqs: Any,
    binary_model: Any,
    slow_reads: None,
    suffix: str,
    encode: Any,
    rows_count: int,
) -> None:
    x = rows(rows_count, len(suffix))
    data = encode(x)
    assert len(data) > 2.5 * SHARD_BYTES

    with Client.from_local(stack) as client, BusyWatch(stack) as busy:
        note = client.submit(data, model="churn", key=f"{unique('big')}{suffix}", timeout=120)

    assert note.status == "succeeded", note.error
    plan = Ledger(s3, stack.outputs["OutputBucketName"]).plan(note.job_id)
    assert plan is not None
    assert plan.count >= 3
    assert busy.most == 2
    ids, predictions = scored(s3, note)
    assert ids == list(range(rows_count))
    assert np.array_equal(predictions, binary_model.predict(x))
    assert note.output is not None
    assert note.output.rows == rows_count
    assert len(answers(stack, sqs, note.job_id)) == 1
    left = s3.list_objects_v2(Bucket=stack.outputs["OutputBucketName"], Prefix="_shards/")
    assert left["KeyCount"] == 0
    if suffix == ".parquet":  # shards this big put parts of their own into the output
        etag = s3.head_object(Bucket=note.output.bucket, Key=note.output.key)["ETag"]
        assert int(etag.strip('"').rsplit("-", 1)[1]) > plan.count


def test_a_retried_file_is_split_like_a_first_run(
    stack: LocalStack, s3: Any, sqs: Any, binary_model: Any
) -> None:
    """Uploaded before its model: refused whole at intake. Retried once the model is
    published: the new run is planned, split and joined like any big file."""
    name = unique("late").replace("-", "_")
    x = rows(40_000, 11)

    with Client.from_local(stack) as client:
        first = client.submit(csv_bytes(x), model=name, key=f"{name}.csv", timeout=60, force=True)
        assert first.status == "failed"
        assert first.error is not None
        assert first.error.code == "unknown_model"
        publish(stack, binary_model, name)
        request = client.retry(first.job_id)
        assert request is not None
        note = client.wait(request.job_id, timeout=120)

    assert note.status == "succeeded", note.error
    assert note.run == 1
    plan = Ledger(s3, stack.outputs["OutputBucketName"]).plan(note.job_id)
    assert plan is not None
    assert plan.count >= 3
    ids, predictions = scored(s3, note)
    assert ids == list(range(len(x)))
    assert np.array_equal(predictions, binary_model.predict(x))
    assert len(answers(stack, sqs, note.job_id)) == 1


def test_an_error_in_the_third_shard_is_located_in_the_whole_file(
    stack: LocalStack, s3: Any, sqs: Any
) -> None:
    x = rows(40_000, 7)
    data = csv_bytes(x)
    header = data.index(b"\n") + 1
    # The first row that begins well inside the third shard's byte range.
    starts = np.cumsum([header, *(len(line) + 1 for line in data[header:].split(b"\n")[:-1])])
    bad = int(np.searchsorted(starts, header + 2 * SHARD_BYTES + 5000))  # 0-based data row
    lines = data.split(b"\n")
    fields = lines[bad + 1].split(b",")
    fields[2] = b"twelve"  # income
    lines[bad + 1] = b",".join(fields)
    broken = b"\n".join(lines)

    with Client.from_local(stack) as client:
        note = client.submit(broken, model="churn", key=f"{unique('bad')}.csv", timeout=120)

    assert note.status == "failed"
    assert note.error is not None
    assert note.error.code == "bad_value"
    assert f"column 'income', row {bad + 1} (line {bad + 2}): 'twelve'" in note.error.message
    assert len(answers(stack, sqs, note.job_id)) == 1


def test_a_split_inside_a_quoted_field_runs_the_file_again_whole(
    stack: LocalStack, s3: Any, sqs: Any, binary_model: Any
) -> None:
    x = rows(30_000, 8)
    lines = ["id," + ",".join(FEATURES) + ",note\n"]
    size = len(lines[0])
    for i, r in enumerate(x):
        # The row that crosses the first shard boundary holds a quoted field of many lines.
        spans = size < SHARD_BYTES + len(lines[0]) < size + 4000
        note_text = '"' + "a line\n" * 500 + '"' if spans else f"n{i}"
        lines.append(f"{i}," + ",".join(repr(float(v)) for v in r) + f",{note_text}\n")
        size += len(lines[-1])
    data = "".join(lines).encode()

    with Client.from_local(stack) as client:
        note = client.submit(data, model="churn", key=f"{unique('quoted')}.csv", timeout=120)

    assert note.status == "succeeded", note.error
    assert Ledger(s3, stack.outputs["OutputBucketName"]).is_unsplit(note.job_id)
    ids, predictions = scored(s3, note)
    assert ids == list(range(len(x)))
    assert np.array_equal(predictions, binary_model.predict(x))
    assert len(answers(stack, sqs, note.job_id)) == 1


def test_a_gzip_file_is_never_split(stack: LocalStack, s3: Any, binary_model: Any) -> None:
    x = rows(40_000, 9)
    data = gzip.compress(csv_bytes(x), compresslevel=1)
    assert len(data) > 1.5 * SHARD_BYTES

    with Client.from_local(stack) as client:
        note = client.submit(data, model="churn", key=f"{unique('zipped')}.csv.gz", timeout=120)

    assert note.status == "succeeded", note.error
    assert Ledger(s3, stack.outputs["OutputBucketName"]).plan(note.job_id) is None
    assert note.output is not None
    assert note.output.rows == len(x)


def test_a_worker_killed_mid_shard_loses_only_that_shard(
    stack: LocalStack, s3: Any, sqs: Any, binary_model: Any, proxy: FaultProxy
) -> None:
    proxy.delays.append(lambda method, path: 1.5 if method == "GET" and "/churn/" in path else 0)
    x = rows(40_000, 10)
    supervisor = stack.supervisor
    assert supervisor is not None
    restarts = supervisor.restarts
    try:
        with Client.from_local(stack) as client:
            submission = client.submit(
                csv_bytes(x), model="churn", key=f"{unique('killed')}.csv", wait=False
            )
            deadline = time.monotonic() + 60
            while sum(1 for w in stack.workers if w.busy) < 2:  # both on shards
                assert time.monotonic() < deadline, "the shards never ran side by side"
                time.sleep(0.02)
            victim = next(w for w in stack.workers if w.busy)
            assert victim.pid is not None
            os.kill(victim.pid, signal.SIGKILL)
            note = client.wait(submission, timeout=180)
    finally:
        proxy.delays.clear()

    assert note.status == "succeeded", note.error
    assert supervisor.restarts > restarts
    ids, predictions = scored(s3, note)
    assert ids == list(range(len(x)))
    assert np.array_equal(predictions, binary_model.predict(x))
    assert len(answers(stack, sqs, note.job_id)) == 1
    deadline = time.monotonic() + 30
    while queue_depth(sqs, stack.outputs["TaskQueueUrl"]):
        assert time.monotonic() < deadline, "shard tasks left on the queue"
        time.sleep(0.2)
    assert queue_depth(sqs, stack.outputs["TaskDeadLetterQueueUrl"]) == 0


@pytest.mark.parametrize(
    ("suffix", "encode", "rows_count", "options"),
    [
        pytest.param(".csv", csv_bytes, 40_000, {"columns": "id", "scores": "contrib,reasons:2"},
                     id="csv"),
        pytest.param(".jsonl", jsonl_bytes, 30_000, {"columns": "id,age", "scores": "contrib"},
                     id="jsonl"),
        pytest.param(".parquet", parquet_bytes, 900_000,
                     {"drop_columns": "income", "scores": "raw_score,leaf"}, id="parquet"),
    ],
)  # fmt: skip
def test_a_split_file_gets_the_options_columns_exactly(
    stack: LocalStack,
    s3: Any,
    binary_model: Any,
    suffix: str,
    encode: Any,
    rows_count: int,
    options: dict[str, str],
) -> None:
    x = rows(rows_count, 20 + len(suffix))

    with Client.from_local(stack) as client:
        key = f"{unique('opts')}{suffix}"
        note = client.submit(encode(x), model="churn", key=key, timeout=240, **options)

    assert note.status == "succeeded", note.error
    plan = Ledger(s3, stack.outputs["OutputBucketName"]).plan(note.job_id)
    assert plan is not None
    assert plan.count >= 3
    assert note.output is not None
    assert note.quality is not None  # the shards' counts, merged into one report
    with Client.from_local(stack) as client:
        report = client.report(note.job_id)
    assert report.rows == rows_count
    assert report.prediction.mean == pytest.approx(binary_model.predict(x).mean())
    data = s3.get_object(Bucket=note.output.bucket, Key=note.output.key)["Body"].read()
    if suffix == ".parquet":
        table = pq.read_table(io.BytesIO(data))
        assert table.column_names[:4] == ["id", "age", "score", "balance"]
        raw = table.column("raw_score").to_numpy()
        assert np.max(np.abs(raw - binary_model.predict(x, raw_score=True))) <= 1e-12
        leaves = np.column_stack(
            [table.column(f"leaf_{t}").to_numpy() for t in range(binary_model.num_trees())]
        )
        assert np.array_equal(leaves, binary_model.predict(x, pred_leaf=True))
        return
    if suffix == ".jsonl":
        records = [json.loads(line) for line in data.splitlines()]
        assert list(records[0])[:2] == ["id", "age"]
        table = pa.Table.from_pylist(records)
    else:
        table = pa_csv.read_csv(io.BytesIO(data))
    assert table.column("id").to_pylist() == list(range(rows_count))
    names = [f"contrib_{f}" for f in [*FEATURES, "bias"]]
    contributions = np.column_stack([table.column(n).to_numpy() for n in names])
    assert np.max(np.abs(contributions - binary_model.predict(x, pred_contrib=True))) <= 1e-9
    if "reasons:2" in options["scores"]:
        top = np.argmax(contributions[:, :4], axis=1)
        assert table.column("reason_1").to_pylist() == [FEATURES[i] for i in top]


def test_rows_set_aside_in_several_shards_are_listed_by_their_rows_in_the_file(
    stack: LocalStack, s3: Any, binary_model: Any
) -> None:
    x = rows(40_000, 31)
    bad_rows = {5, 15_000, 35_000}
    text = csv_bytes(x).decode().splitlines()
    for row in bad_rows:  # the data row's line is row + 2 (the header is line 1)
        cells = text[row + 1].split(",")
        cells[2] = "oops"  # income
        text[row + 1] = ",".join(cells)
    body = ("\n".join(text) + "\n").encode()

    with Client.from_local(stack) as client:
        note = client.submit(
            body, model="churn", key=f"{unique('aside')}.csv", timeout=120, max_bad_rows=5
        )

    assert note.status == "succeeded", note.error
    plan = Ledger(s3, stack.outputs["OutputBucketName"]).plan(note.job_id)
    assert plan is not None
    assert plan.count >= 3
    assert note.output is not None
    assert note.output.bad_rows == 3
    assert note.output.errors is not None
    listed = s3.get_object(Bucket=note.output.errors.bucket, Key=note.output.errors.key)["Body"]
    assert listed.read().decode().splitlines()[1:] == [
        f"{row + 1},income,oops,not a number" for row in sorted(bad_rows)
    ]
    ids, predictions = scored(s3, note)
    kept = [i for i in range(len(x)) if i not in bad_rows]
    assert ids == kept
    assert np.array_equal(predictions, binary_model.predict(x[kept]))


def test_a_split_file_compares_its_shadow_over_all_shards_as_one_file(
    stack: LocalStack, s3: Any, binary_model: Any, challenger_model: Any
) -> None:
    """Rank correlation needs every row at once: the shards hand theirs to the finisher."""
    from scipy.stats import spearmanr

    challenger = challenger_model
    name = unique("shadow")
    publish(stack, binary_model, name)
    publish(stack, challenger, name)
    x = rows(40_000, 42)
    x[123] = np.nan  # a row of missing values: both predict it
    with Client.from_local(stack) as client:
        client.set_alias(name, "champion", 1)
        client.set_shadow(name, 2)
        note = client.submit(csv_bytes(x), model=name, key="big.csv", timeout=180)
        report = client.shadow_report(note.job_id)

    assert note.status == "succeeded", note.error
    plan = Ledger(s3, stack.outputs["OutputBucketName"]).plan(note.job_id)
    assert plan is not None
    assert plan.count >= 3
    primary, shadow = binary_model.predict(x), challenger.predict(x)
    diff = np.abs(shadow - primary)
    assert note.shadow is not None
    assert note.shadow.rows == 40_000
    assert note.shadow.max_abs_diff == diff.max()
    assert note.shadow.rank_correlation == pytest.approx(
        spearmanr(primary, shadow).statistic, rel=1e-12
    )
    assert note.shadow.flips == int(((primary > 0.5) != (shadow > 0.5)).sum())
    top = np.argsort(-diff, kind="stable")[:20]
    assert [r.row for r in report.largest] == [int(i) + 1 for i in top]
    # The shards' kept predictions are removed once the file is answered (just after).
    deadline = time.monotonic() + 10
    while True:
        left = s3.list_objects_v2(Bucket=stack.outputs["OutputBucketName"], Prefix="_shards/")
        kept = [o["Key"] for o in left.get("Contents", []) if note.job_id in o["Key"]]
        if not kept or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert kept == []
