"""One big file, one worker against two: wall times side by side in one run, then chaos.

A 5M-row CSV (8 numeric features, 200 trees x 63 leaves, compiled forest),
every worker with ``PIPELINE_PREDICT_THREADS=1`` (a one-vCPU worker is the
unit of scale), on the local stack:

* whole: one worker, the file not split (today's one-file-one-worker);
* split, 1 worker: the same file in shards of ``--shard-mib``;
* split, 2 workers: the same shards on two workers.

Each time is upload done -> notification (the file is copied into the input
bucket on S3's side, so each run starts from the same object). Target: two
workers <= 0.6x the one-worker time.

Then the chaos run: ``--chaos-files`` sharded files on two workers while a
busy worker is killed every ``--kill-every`` seconds as long as other tasks
wait (with one shard left, a killer would only ever kill that one); every
file must end in one notification, with every row scored exactly and in order.

    .venv/bin/python bench/shards.py [--rows 5000000] [--shard-mib 48] [--repeat 1]
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import statistics
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from pipeline.client import consumer
from pipeline.client.api import Client, Submission
from pipeline.local.stack import LocalStack
from pipeline.messages import Notification
from pipeline.scoring.engine import compiler

FEATURES = [f"f{i}" for i in range(8)]
MIB = 1024 * 1024


def train() -> lgb.Booster:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50_000, len(FEATURES)))
    y = (x[:, :3].sum(axis=1) + 0.5 * rng.normal(size=len(x)) > 0).astype(int)
    return lgb.train(
        {"objective": "binary", "num_leaves": 63, "verbose": -1, "seed": 1},
        lgb.Dataset(x, y, feature_name=FEATURES),
        num_boost_round=200,
    )


def csv_bytes(rows: int, seed: int) -> tuple[bytes, np.ndarray]:
    x = np.round(np.random.default_rng(seed).normal(size=(rows, len(FEATURES))), 6)
    table = pa.table({"id": np.arange(rows), **{f: x[:, j] for j, f in enumerate(FEATURES)}})
    out = io.BytesIO()
    pa_csv.write_csv(table, out)
    return out.getvalue(), x


class Bench:
    def __init__(self, workers: int, shard_bytes: int, model: lgb.Booster) -> None:
        self.stack = LocalStack(
            stack_name=f"bench-shards-{uuid.uuid4().hex[:6]}",
            workers=workers,
            environment={"PIPELINE_SHARD_BYTES": str(shard_bytes), "PIPELINE_PREDICT_THREADS": "1"},
            parameters={"TaskVisibilityTimeout": "10", "TaskMaxReceiveCount": "30"},
            settings={"broker_wait_seconds": 2, "redelivery_base_seconds": 1},
            sink=lambda _line: None,
        ).start()
        self.client = Client.from_local(self.stack)
        version = self.client.publish_model(model.model_to_string().encode(), name="m")
        target = compiler.host_target()
        assert target is not None
        deadline = time.monotonic() + 300
        while (
            self.client.models.engine(version.sha256, compiler.compiler_id(), target.name) is None
        ):
            assert time.monotonic() < deadline, "the compile job did not finish"
            time.sleep(0.2)
        self.staging = f"{self.stack.stack_name}-staging"
        self.client.s3.create_bucket(Bucket=self.staging)

    def stage(self, name: str, data: bytes) -> None:
        self.client.s3.put_object(Bucket=self.staging, Key=name, Body=data)

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU seconds used so far by the workers, and by the emulator and this process."""
        workers = sum(_cpu(w.pid) for w in self.stack.workers if w.pid is not None)
        emulator = self.stack.emulator_pid
        return workers, _cpu(os.getpid()) + (_cpu(emulator) if emulator is not None else 0.0)

    def score(self, name: str) -> tuple[float, Notification]:
        """Copy a staged file into the input bucket; seconds from then to its notification."""
        key = f"m/{uuid.uuid4().hex[:8]}-{name}"
        self.client.listen()  # before the copy lands
        copied = self.client.s3.copy_object(
            Bucket=self.stack.outputs["InputBucketName"],
            Key=key,
            CopySource={"Bucket": self.staging, "Key": name},
        )
        started = time.monotonic()
        etag = copied["CopyObjectResult"]["ETag"].strip('"')
        bucket = self.stack.outputs["InputBucketName"]
        note = self.client.wait(Submission(bucket=bucket, key=key, etag=etag), timeout=1800)
        return time.monotonic() - started, note

    def backlog(self) -> int:
        """Task messages waiting for a worker."""
        attributes = self.client.sqs.get_queue_attributes(
            QueueUrl=self.stack.outputs["TaskQueueUrl"],
            AttributeNames=["ApproximateNumberOfMessages"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"])

    def stop(self) -> None:
        self.client.close()
        self.stack.stop()


def _cpu(pid: int) -> float:
    """A process's user + system CPU seconds (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def check(client: Client, note: Notification, model: lgb.Booster, x: np.ndarray) -> None:
    assert note.status == "succeeded", note.error
    assert note.output is not None
    data = client.s3.get_object(Bucket=note.output.bucket, Key=note.output.key)["Body"].read()
    table = pa_csv.read_csv(io.BytesIO(data))
    assert table.column("id").to_pylist() == list(range(len(x))), "rows out of order"
    got = table.column("prediction").to_numpy()
    assert np.max(np.abs(got - model.predict(x, num_threads=2))) <= 1e-12, "predictions differ"


def timed_runs(args: argparse.Namespace, model: lgb.Booster, data: bytes, x: np.ndarray) -> None:
    size = len(data)
    runs = [
        ("whole, 1 worker", 1, size + 1),
        ("split, 1 worker", 1, args.shard_mib * MIB),
        ("split, 2 workers", 2, args.shard_mib * MIB),
    ]
    times: dict[str, list[float]] = defaultdict(list)
    for label, workers, shard_bytes in runs:
        bench = Bench(workers, shard_bytes, model)
        try:
            bench.stage("big.csv", data)
            for i in range(args.repeat):
                workers_before, emulator_before = bench.cpu_seconds()
                seconds, note = bench.score("big.csv")
                workers_cpu, emulator_cpu = bench.cpu_seconds()
                workers_cpu -= workers_before
                emulator_cpu -= emulator_before
                if i == 0:
                    check(bench.client, note, model, x)
                times[label].append(seconds)
            shards = -(-size // shard_bytes) if shard_bytes <= size else 1
            print(
                f"{label:<18} {statistics.median(times[label]):7.1f} s  "
                f"(median of {args.repeat}; ~{shards} shard(s); exact, in order; "
                f"CPU: workers {workers_cpu:.0f} s, emulator {emulator_cpu:.0f} s, "
                f"{(workers_cpu + emulator_cpu) / seconds:.2f} of {os.cpu_count()} cores busy)",
                flush=True,
            )
        finally:
            bench.stop()
    one = statistics.median(times["split, 1 worker"])
    two = statistics.median(times["split, 2 workers"])
    whole = statistics.median(times["whole, 1 worker"])
    print(f"ratio 2 workers / 1 worker (split):  {two / one:.2f}   (target <= 0.60)")
    print(f"ratio 2 workers / 1 worker (whole):  {two / whole:.2f}")
    print(f"cost of splitting on 1 worker:       {one / whole:.2f}x")


def chaos(args: argparse.Namespace, model: lgb.Booster) -> None:
    bench = Bench(2, 4 * MIB, model)
    try:
        files = {}
        for i in range(args.chaos_files):
            data, x = csv_bytes(args.chaos_rows, 100 + i)
            key = f"m/chaos-{i}.csv"
            files[key] = x
            bench.client.s3.put_object(
                Bucket=bench.stack.outputs["InputBucketName"], Key=key, Body=data
            )
        supervisor = bench.stack.supervisor
        assert supervisor is not None
        notes: dict[str, list[Notification]] = defaultdict(list)
        done = threading.Event()
        kills = 0

        def killer() -> None:
            """Every ``--kill-every`` seconds, SIGKILL a worker that holds a shard, while
            other tasks wait: once one shard is left, a killer would only ever kill it."""
            nonlocal kills
            while not done.wait(args.kill_every):
                while not done.is_set() and bench.backlog() >= 2:
                    busy = [w for w in supervisor.workers if w.busy and w.alive() and w.pid]
                    if busy and busy[0].pid is not None:
                        os.kill(busy[0].pid, signal.SIGKILL)
                        kills += 1
                        break
                    time.sleep(0.02)

        thread = threading.Thread(target=killer, daemon=True)
        started = time.monotonic()
        thread.start()
        queue = bench.stack.outputs["NotificationQueueUrl"]
        while not all(notes[key] for key in files):
            assert time.monotonic() - started < args.timeout, "files left unanswered"
            for note in consumer.take_from(bench.client.sqs, queue, 1):
                assert note.input is not None
                notes[note.input.key].append(note)
        done.set()
        thread.join()
        time.sleep(3)  # any late duplicate
        for note in consumer.take_from(bench.client.sqs, queue, 1):
            assert note.input is not None
            notes[note.input.key].append(note)
        wrong = 0
        for key, x in files.items():
            try:
                assert len(notes[key]) == 1, f"{len(notes[key])} notifications"
                check(bench.client, notes[key][0], model, x)
            except AssertionError as exc:
                wrong += 1
                errors = [n.error.message[:300] if n.error else n.status for n in notes[key]]
                print(f"  {key}: {exc}; {errors}")
        print(
            f"chaos: {len(files)} files x {args.chaos_rows:,} rows in 4 MiB shards on 2 workers, "
            f"{kills} busy workers killed ({supervisor.restarts} restarts) in "
            f"{time.monotonic() - started:.0f} s: {len(files) - wrong} answered once and exact, "
            f"{wrong} not"
        )
    finally:
        bench.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--shard-mib", type=int, default=48)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--chaos-files", type=int, default=12)
    parser.add_argument("--chaos-rows", type=int, default=400_000)
    parser.add_argument("--kill-every", type=float, default=2.0)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--skip-chaos", action="store_true")
    parser.add_argument("--only-chaos", action="store_true")
    args = parser.parse_args()
    model = train()
    if not args.only_chaos:
        data, x = csv_bytes(args.rows, 1)
        print(f"{args.rows:,}-row CSV, {len(data) / MIB:.0f} MiB; PREDICT_THREADS=1", flush=True)
        timed_runs(args, model, data, x)
    if not args.skip_chaos:
        chaos(args, model)


if __name__ == "__main__":
    main()
