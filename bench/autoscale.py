"""Draining a burst with autoscaled solo workers vs one fixed worker.

Uploads SMALL small files and LARGE large ones at once and measures, for a
stack whose supervisor applies the scaling policy (from zero, up to MAX
workers) and for a stack with one fixed worker: the time until every file is
answered, and worker-seconds (workers alive, summed over that time). For the
autoscaled stack it also reports the time to scale back to zero after the
cooldown, and the worker-seconds including that tail.

    .venv/bin/python bench/autoscale.py [--small 200] [--large 10] [--max 2]
"""

from __future__ import annotations

import argparse
import time

import lightgbm as lgb
import numpy as np

from pipeline.client import consumer
from pipeline.local.stack import LocalStack
from pipeline.scaling import Policy
from pipeline.stores import aws
from pipeline.stores.model_store import ModelStore

FEATURES = ["a", "b", "c", "d"]


def csv(rows: int, seed: int) -> bytes:
    x = np.round(np.random.default_rng(seed).normal(size=(rows, 4)), 5)
    return (",".join(FEATURES) + "\n" + "\n".join(",".join(map(str, r)) for r in x)).encode()


def drain(name: str, policy: Policy | None, bodies: list[bytes], model: bytes) -> None:
    stack = LocalStack(
        stack_name=name,
        workers=1,
        scaling=policy,
        settings={"broker_wait_seconds": 5},
        sink=lambda _line: None,
    ).start()
    try:
        s3, sqs = aws.s3_client(), aws.sqs_client()
        out = stack.outputs
        supervisor = stack.supervisor
        assert supervisor is not None
        ModelStore(s3, out["ModelBucketName"]).publish("m", model, "m")
        started = time.monotonic()
        for i, body in enumerate(bodies):
            s3.put_object(Bucket=out["InputBucketName"], Key=f"m/{name}/{i}.csv", Body=body)
        answered, worker_seconds, last = 0, 0.0, started  # uploads count: workers start on them
        while answered < len(bodies):
            answered += sum(1 for _ in consumer.take_from(sqs, out["NotificationQueueUrl"], 1))
            now = time.monotonic()
            worker_seconds += len(supervisor.running) * (now - last)
            last = now
        drained = time.monotonic() - started
        line = (
            f"{name:<10} {drained:>8.1f} s {worker_seconds:>10.1f} worker-s "
            f"peak {supervisor.peak_workers} worker(s)"
        )
        if policy is not None:
            tail = worker_seconds
            while supervisor.running:
                time.sleep(0.2)
                now = time.monotonic()
                tail += len(supervisor.running) * (now - last)
                last = now
            line += f"; back to 0 after {time.monotonic() - started:.1f} s ({tail:.1f} worker-s)"
        print(line, flush=True)
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=10)
    parser.add_argument("--max", type=int, default=2)
    parser.add_argument("--cooldown", type=float, default=15)
    args = parser.parse_args()
    x = np.random.default_rng(0).normal(size=(5000, 4))
    model = (
        lgb.train(
            {"objective": "binary", "verbose": -1},
            lgb.Dataset(x, (x[:, 0] * x[:, 1] > 0).astype(int), feature_name=FEATURES),
            num_boost_round=200,
        )
        .model_to_string()
        .encode()
    )
    bodies = [csv(300_000, i) for i in range(args.large)]
    bodies += [csv(200, 1000 + i) for i in range(args.small)]
    print(f"burst: {args.small} files of 200 rows + {args.large} of 300,000 rows")
    policy = Policy(minimum=0, maximum=args.max, cooldown_seconds=args.cooldown)
    drain("autoscaled", policy, bodies, model)
    drain("fixed-1", None, bodies, model)


if __name__ == "__main__":
    main()
