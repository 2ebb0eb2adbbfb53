"""Chaos at scale: hundreds of files while busy workers are killed every few seconds.

Uploads FILES files (every tenth one large), runs WORKERS solo workers under
the local stack's supervisor, and sends SIGKILL to a busy worker every
KILL_EVERY seconds until every file is answered. Then checks each file: one
output object, a ``succeeded`` notification, one job id. Prints files, kills,
restarts, duplicate notifications seen, lost files (must be 0) and time.

    .venv/bin/python bench/chaos.py [--files 300] [--workers 2] [--kill-every 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from collections import defaultdict

import lightgbm as lgb
import numpy as np

from pipeline.client import consumer
from pipeline.local.stack import LocalStack
from pipeline.messages import Notification
from pipeline.stores import aws
from pipeline.stores.model_store import ModelStore

FEATURES = ["a", "b", "c", "d"]


def model() -> lgb.Booster:
    x = np.random.default_rng(0).normal(size=(5000, 4))
    data = lgb.Dataset(x, (x[:, 0] * x[:, 1] > 0).astype(int), feature_name=FEATURES)
    return lgb.train({"objective": "binary", "verbose": -1}, data, num_boost_round=100)


def csv(rows: int, seed: int) -> bytes:
    x = np.round(np.random.default_rng(seed).normal(size=(rows, 4)), 5)
    return (",".join(FEATURES) + "\n" + "\n".join(",".join(map(str, r)) for r in x)).encode()


def main() -> None:  # noqa: PLR0915 - one scenario, told top to bottom
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill-every", type=float, default=3.0)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()

    stack = LocalStack(
        stack_name="bench-chaos",
        workers=args.workers,
        parameters={"TaskVisibilityTimeout": "6", "TaskMaxReceiveCount": "10"},
        settings={"broker_wait_seconds": 2, "redelivery_base_seconds": 1},
        sink=lambda _line: None,
    ).start()
    try:
        s3, sqs = aws.s3_client(), aws.sqs_client()
        out = stack.outputs
        ModelStore(s3, out["ModelBucketName"]).publish("m", model().model_to_string().encode(), "m")
        started = time.monotonic()
        keys = []
        for i in range(args.files):
            key = f"m/chaos/{'big' if i % 10 == 0 else 'small'}-{i:04d}.csv"
            body = csv(200_000 if i % 10 == 0 else 200, i)
            s3.put_object(Bucket=out["InputBucketName"], Key=key, Body=body)
            keys.append(key)
        notes: dict[str, list[Notification]] = defaultdict(list)
        supervisor = stack.supervisor
        assert supervisor is not None
        kills, last_kill = 0, time.monotonic()
        deadline = started + args.timeout
        while time.monotonic() < deadline:
            for note in consumer.take_from(sqs, out["NotificationQueueUrl"], 1):
                if note.input is not None:
                    notes[note.input.key].append(note)
            if all(any(n.status == "succeeded" for n in notes[k]) for k in keys):
                break
            busy = [w for w in supervisor.workers if w.busy and w.alive() and w.pid]
            if busy and time.monotonic() - last_kill >= args.kill_every:
                os.kill(busy[0].pid or 0, signal.SIGKILL)
                kills, last_kill = kills + 1, time.monotonic()
        elapsed = time.monotonic() - started

        lost, split = [], []
        for key in keys:
            listing = s3.list_objects_v2(
                Bucket=out["OutputBucketName"], Prefix=key.removesuffix(".csv") + "/"
            )
            succeeded = any(n.status == "succeeded" for n in notes[key])
            if not succeeded or listing["KeyCount"] != 1:
                lost.append(key)
            if len({n.job_id for n in notes[key]}) > 1 or len({n.status for n in notes[key]}) > 1:
                split.append(key)
        duplicates = sum(len(n) - 1 for n in notes.values() if n)
        print(f"files:                   {args.files} ({args.files // 10} of 200k rows)")
        print(f"workers:                 {args.workers}")
        print(f"kills (SIGKILL, busy):   {kills}")
        print(f"worker restarts:         {supervisor.restarts}")
        print(f"duplicate notifications: {duplicates} (same job id and outcome)")
        print(f"files with 2 outcomes:   {len(split)}")
        print(f"lost files:              {len(lost)}")
        print(f"total time:              {elapsed:.1f} s")
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
