"""Peak memory and speed of scoring files of growing size: streamed vs read whole.

For each size, the same CSV is scored twice in fresh child processes, so each
peak RSS is that run's own:

* ``streamed``: the worker's path (``score_object``): S3 stream in, chunks
  through LightGBM, multipart upload out;
* ``whole``: the baseline a first version would write: download the object,
  parse it all, predict all rows, write the whole output, upload it.

The emulator runs in this process; the children reach it over HTTP like the
worker does. Target: streamed peak RSS at the largest size within 1.2x of the
smallest.

    .venv/bin/python bench/memory.py                  # 100k, 1M, 5M rows
    .venv/bin/python bench/memory.py --rows 100000 1000000
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from pipeline import naming
from pipeline.local import emulator
from pipeline.messages import ModelRef, ObjectRef, ScoreRequest
from pipeline.scoring.engine import compile_jobs
from pipeline.scoring.engine.cache import ModelCache
from pipeline.scoring.run import score_object
from pipeline.settings import Settings, child_environment, set_process_environment
from pipeline.stores import aws
from pipeline.stores.model_store import ModelStore

REGION = "us-east-1"
FEATURES = 20


def make_model() -> lgb.Booster:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20_000, FEATURES))
    y = (x[:, 0] + x[:, 1] * x[:, 2] + rng.normal(size=len(x)) > 0).astype(int)
    names = [f"f{i}" for i in range(FEATURES)]
    params = {"objective": "binary", "num_leaves": 31, "verbose": -1}
    return lgb.train(params, lgb.Dataset(x, y, feature_name=names), num_boost_round=100)


def write_csv(path: Path, rows: int) -> None:
    """A CSV of ``rows`` rows, written in slices so generating it stays small too."""
    rng = np.random.default_rng(rows)
    with path.open("wb") as out:
        for start in range(0, rows, 500_000):
            n = min(500_000, rows - start)
            columns = {"id": pa.array([f"row{i:09d}" for i in range(start, start + n)])}
            for j in range(FEATURES):
                columns[f"f{j}"] = pa.array(np.round(rng.normal(size=n), 6))
            buffer = io.BytesIO()
            pa_csv.write_csv(
                pa.table(columns), buffer, pa_csv.WriteOptions(include_header=start == 0)
            )
            out.write(buffer.getvalue())


def peak_rss_mb() -> float:
    """This process's peak RSS.

    Not ``getrusage``: Linux carries ``ru_maxrss`` over fork and exec, so a
    child would report the parent's peak (here, the emulator's stored files).
    ``VmHWM`` belongs to the address space ``exec`` created.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(mode: str, spec: dict[str, str]) -> None:
    """Score one file in this process; print seconds and peak RSS as JSON."""
    s3 = aws.s3_client(REGION)
    settings = Settings(
        output_bucket=spec["bucket"],
        model_bucket=spec["bucket"],
        batch_rows=int(spec["batch_rows"]),
    )
    models = ModelCache(ModelStore(s3, spec["bucket"]))
    model_ref = ModelRef(name="bench", version=1)
    models.get(model_ref)  # load before timing: both modes pay it once
    head = s3.head_object(Bucket=spec["bucket"], Key=spec["key"])
    obj = ObjectRef(
        bucket=spec["bucket"],
        key=spec["key"],
        etag=head["ETag"].strip('"'),
        size=head["ContentLength"],
    )
    started = time.perf_counter()
    if mode == "streamed":
        request = ScoreRequest(
            job_id=naming.job_id(obj, model_ref),
            input=obj,
            model=model_ref,
            received_at=datetime.now(UTC),
        )
        rows = score_object(request, s3, models, settings).output.rows
    else:
        body = s3.get_object(Bucket=obj.bucket, Key=obj.key)["Body"].read()
        table = pa_csv.read_csv(io.BytesIO(body))
        model = models.get(model_ref)
        x = np.column_stack([table.column(n).to_numpy() for n in model.feature_names])
        table = table.append_column("prediction", pa.array(model.booster.predict(x)))
        out = io.BytesIO()
        pa_csv.write_csv(table, out)
        s3.put_object(Bucket=obj.bucket, Key=obj.key + ".whole.csv", Body=out.getvalue())
        rows = table.num_rows
    seconds = time.perf_counter() - started
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000, 5_000_000])
    parser.add_argument("--batch-rows", type=int, default=Settings().batch_rows)
    parser.add_argument("--modes", nargs="+", default=["streamed", "whole"])
    parser.add_argument("--child", choices=["streamed", "whole"])
    parser.add_argument("--spec")
    args = parser.parse_args()
    if args.child:
        child(args.child, json.loads(args.spec))
        return

    server = emulator.Emulator().start()
    env = emulator.environment(server.url, REGION)
    set_process_environment(env)
    s3 = aws.s3_client(REGION)
    bucket = "bench-memory"
    s3.create_bucket(Bucket=bucket)
    store = ModelStore(s3, bucket)
    version = store.publish("bench", make_model().model_to_string().encode(), "m")
    # What a worker scores with once the compile job is done (no compile runs mid-measurement).
    engine = compile_jobs.compile_version(version.ref, store)
    print(f"engine: {engine.status} ({engine.reason})")
    cores = Path("/proc/cpuinfo").read_text().count("processor")
    print(
        f"model: 100 trees, 31 leaves, {FEATURES} features; {cores} cores; "
        f"batches of {args.batch_rows:,} rows"
    )
    header = (
        f"{'rows':>10} {'file MB':>8} {'mode':>9} {'seconds':>8} {'rows/s':>9} {'peak RSS MB':>12}"
    )
    print(header)
    results: dict[tuple[int, str], dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            path = Path(tmp) / f"{rows}.csv"
            write_csv(path, rows)
            key = f"bench/{rows}.csv"
            s3.upload_file(str(path), bucket, key)
            size_mb = path.stat().st_size / 1e6
            path.unlink()
            for mode in args.modes:
                spec = json.dumps({"bucket": bucket, "key": key, "batch_rows": args.batch_rows})
                done = subprocess.run(
                    [sys.executable, __file__, "--child", mode, "--spec", spec],
                    env=child_environment(env),
                    capture_output=True,
                    text=True,
                    check=True,
                )
                result = json.loads(done.stdout.strip().splitlines()[-1])
                results[(rows, mode)] = result
                print(
                    f"{rows:>10,} {size_mb:>8.0f} {mode:>9} {result['seconds']:>8.1f} "
                    f"{result['rows'] / result['seconds']:>9,.0f} {result['peak_rss_mb']:>12.0f}",
                    flush=True,
                )
            s3.delete_object(Bucket=bucket, Key=key)
    smallest, largest = min(args.rows), max(args.rows)
    for mode in args.modes:
        ratio = results[(largest, mode)]["peak_rss_mb"] / results[(smallest, mode)]["peak_rss_mb"]
        print(f"{mode}: peak RSS at {largest:,} rows is {ratio:.2f}x that at {smallest:,} rows")
    server.stop()


if __name__ == "__main__":
    main()
