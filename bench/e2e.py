"""Upload to notification through the local stack, beside the in-process bounds, in one run.

A 1M-row CSV (33 numeric features) and a 200-tree x 63-leaf binary model:

* the naive script: pandas ``read_csv`` -> ``Booster.predict`` -> ``to_csv``, local file;
* the in-process bounds: pyarrow reads the whole file, the model predicts
  (stock ``Booster.predict``, or the compiled forest), pyarrow writes it;
* the pipeline (the machinery ``pipeline dev`` runs, one solo worker): upload
  done -> notification, and the worker's started -> finished; with the
  compiled forest and with ``PIPELINE_PREDICT_ENGINE=lightgbm``; the same rows
  as Parquet and as JSON lines too;
* small files: SMALL uploads of a 1,000-row CSV one after another, percentiles
  of upload -> notification and where the time goes.

    .venv/bin/python bench/e2e.py [--rows 1000000] [--small 40]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from pipeline.client import consumer
from pipeline.client.api import Client
from pipeline.local.stack import LocalStack
from pipeline.messages import Notification
from pipeline.scoring.engine import compiler, forest
from pipeline.scoring.engine.native import NativeForest
from pipeline.stores import aws
from pipeline.stores.model_store import ModelStore
from pipeline.stores.uploads import PART_BYTES, MultipartWriter

FEATURES = [f"f{i:02d}" for i in range(33)]
NAIVE = """
import sys, lightgbm as lgb, pandas as pd
booster = lgb.Booster(model_file=sys.argv[1])
frame = pd.read_csv(sys.argv[2])
frame["prediction"] = booster.predict(frame[booster.feature_name()])
frame.to_csv(sys.argv[3], index=False)
"""


def train() -> lgb.Booster:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50_000, len(FEATURES)))
    y = (x[:, :5].sum(axis=1) + 0.5 * rng.normal(size=len(x)) > 0).astype(int)
    return lgb.train(
        {"objective": "binary", "num_leaves": 63, "verbose": -1, "seed": 1},
        lgb.Dataset(x, y, feature_name=FEATURES),
        num_boost_round=200,
    )


def table(rows: int, seed: int = 1) -> pa.Table:
    x = np.round(np.random.default_rng(seed).normal(size=(rows, len(FEATURES))), 6)
    x[np.random.default_rng(seed + 1).random(x.shape) < 0.02] = np.nan
    return pa.table({name: x[:, j] for j, name in enumerate(FEATURES)})


def encode(data: pa.Table, kind: str) -> bytes:
    out = io.BytesIO()
    if kind == "csv":
        pa_csv.write_csv(data, out)
    elif kind == "parquet":
        pq.write_table(data, out, row_group_size=65_536)
    else:
        for batch in data.to_batches(65_536):
            lines = (json.dumps(r, allow_nan=False) for r in _finite(batch.to_pylist()))
            out.write(("\n".join(lines) + "\n").encode())
    return out.getvalue()


def _finite(records: list[dict[str, float]]) -> list[dict[str, float | None]]:
    return [{k: (None if math.isnan(v) else v) for k, v in r.items()} for r in records]


def in_process(path: Path, predict: Any) -> float:
    """The bound: read the whole file with pyarrow, predict, write with pyarrow."""
    started = time.perf_counter()
    data = pa_csv.read_csv(path)
    matrix = np.column_stack([data.column(n).to_numpy() for n in FEATURES]).astype(np.float64)
    scored = data.append_column("prediction", pa.array(predict(np.asfortranarray(matrix))))
    pa_csv.write_csv(scored, path.with_suffix(".scored.csv"))
    return time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a process and its waited-for children, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def local_runs(
    model: bytes, body: bytes, booster: lgb.Booster, native: NativeForest
) -> tuple[float, float, float, float]:
    """Seconds for the naive script and the two in-process bounds, on a local copy,
    and the naive script's CPU-seconds."""
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / "model.txt").write_bytes(model)
        (work / "in.csv").write_bytes(body)
        started, cpu = time.perf_counter(), children_cpu()
        subprocess.run(
            [sys.executable, "-c", NAIVE, str(work / "model.txt"), str(work / "in.csv"),
             str(work / "naive.csv")],
            check=True,
        )  # fmt: skip
        naive, naive_cpu = time.perf_counter() - started, children_cpu() - cpu
        stock = in_process(work / "in.csv", booster.predict)
        bound = in_process(work / "in.csv", lambda m: native.predict(m)[:, 0])
    return naive, stock, bound, naive_cpu


class Pipeline:
    def __init__(
        self, name: str, model: bytes, settings: dict[str, Any], endpoint_url: str | None = None
    ) -> None:
        """``endpoint_url``: the caller's emulator; else the stack's own, as in ``pipeline dev``."""
        self.stack = LocalStack(
            stack_name=name, settings=settings, sink=lambda _l: None, endpoint_url=endpoint_url
        ).start()
        self.s3, self.sqs = aws.s3_client(), aws.sqs_client()
        self.out = self.stack.outputs
        self.cpu = (0.0, 0.0)  # the last file's (worker, the rest) CPU-seconds
        store = ModelStore(self.s3, self.out["ModelBucketName"])
        version = store.publish("bench", model, "bench")
        Client(self.out).request_compile(version)
        target = compiler.host_target()
        assert target is not None
        deadline = time.monotonic() + 300
        while store.engine(version.sha256, compiler.compiler_id(), target.name) is None:
            assert time.monotonic() < deadline, "the compile job did not finish"
            time.sleep(0.2)

    def worker_cpu(self) -> float:
        return sum(cpu_seconds(w.pid) for w in self.stack.workers if w.pid is not None)

    def rest_cpu(self) -> float:
        """This process (the poller, the handler, the bench's clients) and the emulator's."""
        pid = self.stack.emulator_pid
        return time.process_time() + (cpu_seconds(pid) if pid is not None else 0.0)

    def score(self, key: str, body: bytes) -> tuple[float, Notification]:
        """Seconds from upload done to notification; CPU-seconds the worker and the rest
        (the emulator, the poller, the handler) spent are kept in ``cpu``."""
        worker, rest = self.worker_cpu(), self.rest_cpu()
        put = self.s3.put_object(Bucket=self.out["InputBucketName"], Key=key, Body=body)
        uploaded = time.monotonic()
        etag = put["ETag"].strip('"')
        note = consumer.wait_for(
            self.sqs, self.out["NotificationQueueUrl"], lambda n: n.is_for(key, etag), timeout=900
        )
        assert note is not None, f"no notification for {key}"
        assert note.status == "succeeded", note.error
        seconds = time.monotonic() - uploaded
        self.cpu = (self.worker_cpu() - worker, self.rest_cpu() - rest)
        return seconds, note

    def small_files(
        self, body: bytes, count: int, spacing: float
    ) -> tuple[list[tuple[float, Notification]], list[tuple[float, Notification]]]:
        """Latencies uploading one after another, then with ``spacing`` seconds between."""
        self.score("bench/small-warm.csv", body)  # loads and gates the model
        back_to_back = [self.score(f"bench/small-{i}.csv", body) for i in range(count)]
        spaced = []
        for i in range(count):
            time.sleep(spacing)
            spaced.append(self.score(f"bench/spaced-{i}.csv", body))
        return back_to_back, spaced

    def upload_floor(self, note: Notification) -> float:
        """Seconds the emulator takes to accept an output of this size in 8 MiB parts.

        moto concatenates and re-hashes every part in Python at completion; S3
        does that server-side. This is the part of the pipeline's time that
        belongs to the local emulator, not to the worker.
        """
        assert note.output is not None
        size = self.s3.head_object(Bucket=note.output.bucket, Key=note.output.key)["ContentLength"]
        part = b"x" * PART_BYTES
        started = time.perf_counter()
        with MultipartWriter(self.s3, note.output.bucket, "bench/floor", "text/csv") as sink:
            for _ in range(size // PART_BYTES):
                sink.write(part)
            sink.write(part[: size % PART_BYTES])
            sink.complete()
        return time.perf_counter() - started

    def stop(self) -> None:
        self.stack.stop()


def worker_seconds(note: Notification) -> float:
    assert note.started_at is not None
    return (note.finished_at - note.started_at).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=40)
    parser.add_argument(
        "--spacing", type=float, default=0.5, help="seconds between spaced small uploads"
    )
    args = parser.parse_args()

    print(f"training the model, writing {args.rows:,} rows…", flush=True)
    booster = train()
    model = booster.model_to_string().encode()
    data = table(args.rows)
    bodies = {kind: encode(data, kind) for kind in ("csv", "parquet", "jsonl")}
    small = encode(table(1000, seed=7), "csv")
    target = compiler.host_target()
    assert target is not None
    parsed = forest.parse(booster.model_to_string())
    kernel = compiler.kernels_for(parsed, target)[0]  # the faster where both apply
    native = NativeForest(compiler.compile_object(parsed, target, kernel), 1, len(FEATURES))
    rows: list[tuple[str, float, str]] = []

    naive, stock, bound, naive_cpu = local_runs(model, bodies["csv"], booster, native)
    rows.append(("naive script (pandas, local file)", naive, f"{naive_cpu:.1f} CPU-s"))
    rows.append(("in-process bound, stock LightGBM", stock, ""))
    rows.append(("in-process bound, compiled", bound, ""))

    mb = len(bodies["csv"]) / 1e6
    pipeline_csv: tuple[float, Notification] | None = None
    csv_cpu = (0.0, 0.0)
    latencies: list[tuple[float, Notification]] = []
    spaced: list[tuple[float, Notification]] = []  # filled on the compiled stack
    for engine in ("auto", "lightgbm"):
        pipeline = Pipeline(f"bench-{engine[:4]}", model, {"predict_engine": engine})
        try:
            if engine == "auto":  # on a fresh emulator, before large files fill its memory
                latencies, spaced = pipeline.small_files(small, args.small, args.spacing)
            kinds = ("csv", "parquet", "jsonl") if engine == "auto" else ("csv",)
            for kind in kinds:
                seconds, note = pipeline.score(f"bench/big-{engine}.{kind}", bodies[kind])
                assert note.output is not None
                label = f"pipeline {kind}, {note.output.engine} ({len(bodies[kind]) / 1e6:.0f} MB)"
                worker_cpu, rest_cpu = pipeline.cpu
                spent = f"worker {worker_seconds(note):.1f} s, {worker_cpu:.1f} CPU-s"
                rows.append(
                    (label, seconds, f"{spent}; emulator and the rest {rest_cpu:.1f} CPU-s")
                )
                if pipeline_csv is None:
                    pipeline_csv, csv_cpu = (seconds, note), pipeline.cpu
                    floor = pipeline.upload_floor(note)
                    rows.append(("emulator alone: multipart upload of that output", floor, ""))
        finally:
            pipeline.stop()

    assert pipeline_csv is not None
    _report(rows, f"{args.rows:,}-row CSV ({mb:.0f} MB)", (naive, naive_cpu), pipeline_csv, csv_cpu)
    _small_table(latencies, "one after another: each upload as the previous notification arrives")
    _small_table(spaced, f"spaced: {args.spacing:g} s between a notification and the next upload")


def _report(
    rows: list[tuple[str, float, str]],
    what: str,
    naive_run: tuple[float, float],
    pipeline_csv: tuple[float, Notification],
    csv_cpu: tuple[float, float],
) -> None:
    naive, naive_cpu = naive_run
    print(f"\n{what}, 200 trees x 63 leaves, 2 cores\n")
    print("| path | seconds | vs naive | |\n| --- | ---: | ---: | --- |")
    for label, seconds, extra in rows:
        print(f"| {label} | {seconds:.1f} | {naive / seconds:.1f}x | {extra} |")
    seconds, _ = pipeline_csv
    print(
        f"\nupload->notification vs naive: {naive / seconds:.1f}x faster (target >= 12x); "
        f"worker CPU {csv_cpu[0]:.1f} s vs the naive script's {naive_cpu:.1f} s: "
        f"{naive_cpu / csv_cpu[0]:.1f}x fewer (target >= 10x); emulator, poller and handler "
        f"{csv_cpu[1]:.1f} CPU-s"
    )


def _small_table(latencies: list[tuple[float, Notification]], pattern: str) -> None:
    totals = sorted(s for s, _ in latencies)
    hops: dict[str, list[float]] = {
        "upload -> worker start": [],
        "worker": [],
        "worker done -> received": [],
    }
    for seconds, note in latencies:
        assert note.started_at is not None
        hops["upload -> worker start"].append((note.started_at - note.received_at).total_seconds())
        hops["worker"].append(worker_seconds(note))
        done = seconds - (note.finished_at - note.received_at).total_seconds()
        hops["worker done -> received"].append(done)
    p = statistics.quantiles(totals, n=20)
    print(f"\n{len(totals)} files of 1,000 rows, {pattern}; upload -> notification (ms)\n")
    print("| | p50 | p95 |\n| --- | ---: | ---: |")
    print(f"| total | {statistics.median(totals) * 1e3:.0f} | {p[18] * 1e3:.0f} |")
    for hop, values in hops.items():
        q = statistics.quantiles(values, n=20)
        print(f"| {hop} | {statistics.median(values) * 1e3:.0f} | {q[18] * 1e3:.0f} |")


if __name__ == "__main__":
    main()
