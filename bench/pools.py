"""Solo workers vs one prefork or threads worker: the same CPU-bound load through each.

The design runs one ``--pool=solo`` worker per container and scales
containers. This measures the alternative of one worker with a pool: N solo
workers, one prefork worker with N children, one threads worker with N
threads, each scoring the same FILES files of ROWS rows with a 300-tree model,
LightGBM limited to one thread per prediction so N is the parallelism. Prints
files/s, rows/s and the peak total RSS of each setup's processes.

    .venv/bin/python bench/pools.py [--n 2] [--files 24] [--rows 40000]
"""

from __future__ import annotations

import argparse
import io
import threading
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from pipeline.client import consumer
from pipeline.local import emulator
from pipeline.local.stack import LocalStack
from pipeline.local.workers import WorkerProcess, worker_command
from pipeline.stores import aws
from pipeline.stores.model_store import ModelStore

FEATURES = [f"f{i}" for i in range(10)]


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and all its descendants."""
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
        todo += [int(c) for c in children]
    return total


def csv_bytes(rows: int, seed: int) -> bytes:
    x = np.random.default_rng(seed).normal(size=(rows, len(FEATURES)))
    out = io.BytesIO()
    pa_csv.write_csv(pa.table({n: x[:, i] for i, n in enumerate(FEATURES)}), out)
    return out.getvalue()


def run(stack: LocalStack, setup: str, n: int, files: list[bytes], rows: int) -> None:
    env = {
        **emulator.environment(stack.endpoint_url, stack.region),
        **stack._worker_settings().model_copy(update={"predict_threads": 1}).as_environment(),
    }
    pool, count, concurrency = {
        "solo": ("solo", n, 1),
        "prefork": ("prefork", 1, n),
        "threads": ("threads", 1, n),
    }[setup]
    workers = [
        WorkerProcess(
            f"{setup}-{i}",
            env,
            lambda _line: None,
            command=worker_command(f"{setup}-{i}", "WARNING", pool, concurrency),
        )
        for i in range(count)
    ]
    for worker in workers:
        worker.start()
    time.sleep(8)  # no "ready" line at WARNING: give every worker time to start
    peak = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.2):
            peak = max(peak, sum(tree_rss_mb(w.pid or 0) for w in workers))

    sampler = threading.Thread(target=sample)
    sampler.start()
    s3, sqs = aws.s3_client(), aws.sqs_client()
    out = stack.outputs
    started = time.monotonic()
    keys = set()
    for i, body in enumerate(files):
        key = f"m/{setup}/{i}.csv"
        s3.put_object(Bucket=out["InputBucketName"], Key=key, Body=body)
        keys.add(key)
    answered = 0
    while answered < len(keys):
        for note in consumer.take_from(sqs, out["NotificationQueueUrl"], 1):
            assert note.status == "succeeded", note.error
            answered += 1
    elapsed = time.monotonic() - started
    done.set()
    sampler.join()
    for worker in workers:
        worker.stop(60)
    total_rows = rows * len(files)
    print(
        f"{setup:<8} {count} x {pool}({concurrency}) {len(files) / elapsed:>8.2f} "
        f"{total_rows / elapsed:>10,.0f} {peak:>10.0f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2)
    parser.add_argument("--files", type=int, default=24)
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--wait", type=int, default=20, help="SQS long-poll seconds")
    args = parser.parse_args()
    x = np.random.default_rng(0).normal(size=(20_000, len(FEATURES)))
    model = lgb.train(
        {"objective": "binary", "num_leaves": 63, "verbose": -1},
        lgb.Dataset(x, (x[:, 0] * x[:, 1] > 0).astype(int), feature_name=FEATURES),
        num_boost_round=300,
    )
    files = [csv_bytes(args.rows, seed) for seed in range(args.files)]
    with LocalStack(
        stack_name="bench-pools",
        workers=0,
        settings={"broker_wait_seconds": args.wait},
        sink=lambda _line: None,
    ) as stack:
        ModelStore(aws.s3_client(), stack.outputs["ModelBucketName"]).publish(
            "m",
            model.model_to_string().encode(),
            "m",
        )
        print(f"{args.files} files x {args.rows:,} rows, 300 trees x 63 leaves, N = {args.n}")
        print(f"{'setup':<8} {'processes':<14} {'files/s':>8} {'rows/s':>10} {'peak MB':>10}")
        for setup in ("solo", "prefork", "threads"):
            run(stack, setup, args.n, files, args.rows)


if __name__ == "__main__":
    main()
