"""Explanations at scale, side by side with LightGBM's own, in one run.

The 200-tree x 63-leaf binary model of ``bench/e2e.py`` (33 features):

* the SHAP kernel against ``Booster.predict(pred_contrib=True)``, rows/s on
  1 and 2 threads, in process (medians of 3 for the kernel; LightGBM once,
  it is slow and steady);
* a 20,000-row CSV with ``scores=contrib``: upload -> notification through
  the local stack (one solo worker, model compiled, kernel gated by a warm-up
  file), median of 3, against ``pred_contrib`` on the same rows in process
  on the same 2 cores (target: >= 10x faster);
* a 1M-row CSV with ``columns=id`` and ``scores=prediction,reasons:3``
  (target: under 5 minutes), beside the same file with the default output
  (plain prediction, no slower than before).

    .venv/bin/python bench/explain.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
import pyarrow as pa
from e2e import FEATURES, Pipeline, encode, table, train, worker_seconds

from pipeline.client import consumer
from pipeline.messages import Notification
from pipeline.scoring.engine import forest
from pipeline.scoring.engine.explainer import Explainer
from pipeline.scoring.engine.shap_tables import tables


def timed(run: Any, repeat: int = 3) -> float:
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def submit(
    pipeline: Pipeline, key: str, body: bytes, **metadata: str
) -> tuple[float, Notification]:
    put = pipeline.s3.put_object(
        Bucket=pipeline.out["InputBucketName"], Key=key, Body=body, Metadata=metadata
    )
    uploaded = time.monotonic()
    etag = put["ETag"].strip('"')
    note = consumer.wait_for(
        pipeline.sqs,
        pipeline.out["NotificationQueueUrl"],
        lambda n: n.is_for(key, etag),
        timeout=1800,
    )
    assert note is not None, f"no notification for {key}"
    assert note.status == "succeeded", note.error
    return time.monotonic() - uploaded, note


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    booster = train()
    model = booster.model_to_string().encode()
    rows_20k = table(20_000, seed=3)
    x = np.asfortranarray(np.column_stack([rows_20k.column(f).to_numpy() for f in FEATURES]))

    print("the kernel in process…", flush=True)
    started = time.perf_counter()
    kernel = Explainer(tables(forest.parse(booster.model_to_string())))
    setup = time.perf_counter() - started
    lines = []
    for threads in (1, 2):
        rows = 4000 * threads
        ours = rows / timed(lambda r=rows, t=threads: kernel.contributions(x[:r], t))
        theirs_rows = 500 * threads
        started = time.perf_counter()
        booster.predict(x[:theirs_rows], pred_contrib=True, num_threads=threads)
        theirs = theirs_rows / (time.perf_counter() - started)
        lines.append(f"| {threads} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.0f}x |")
    got = kernel.contributions(x[:500])
    difference = np.max(np.abs(got - booster.predict(x[:500], pred_contrib=True)))

    print("LightGBM pred_contrib on the 20,000 rows, 2 threads…", flush=True)
    started = time.perf_counter()
    booster.predict(x, pred_contrib=True, num_threads=2)
    lightgbm_20k = time.perf_counter() - started

    body_20k = encode(rows_20k, "csv")
    data = table(args.rows, seed=1)
    big = encode(data.add_column(0, "id", pa.array(np.arange(args.rows))), "csv")
    pipeline = Pipeline("bench-explain", model, {})
    try:
        submit(pipeline, "bench/warm.csv", encode(table(1000, seed=9), "csv"), scores="contrib")
        runs = [submit(pipeline, f"bench/c-{i}.csv", body_20k, scores="contrib") for i in range(3)]
        contrib_20k = statistics.median(seconds for seconds, _ in runs)
        plain, plain_note = submit(pipeline, "bench/plain.csv", big)
        reasons, reasons_note = submit(
            pipeline, "bench/reasons.csv", big, columns="id", scores="prediction,reasons:3"
        )
    finally:
        pipeline.stop()

    print(f"\nkernel: tables and compile {setup:.2f} s; max |difference| from pred_contrib "
          f"{difference:.1e}\n")  # fmt: skip
    print("| threads | kernel rows/s | LightGBM pred_contrib rows/s | ratio |")
    print("| ---: | ---: | ---: | ---: |")
    print("\n".join(lines))
    print("\n| run | seconds | |\n| --- | ---: | --- |")
    print(f"| LightGBM pred_contrib, 20,000 rows in process, 2 threads | {lightgbm_20k:.1f} | |")
    print(
        f"| pipeline, 20,000-row CSV, scores=contrib (median of 3) | {contrib_20k:.2f} | "
        f"{lightgbm_20k / contrib_20k:.1f}x faster (target >= 10x) |"
    )
    mb = len(big) / 1e6
    print(f"| pipeline, {args.rows:,}-row CSV ({mb:.0f} MB), default output | {plain:.1f} | "
          f"worker {worker_seconds(plain_note):.1f} s |")  # fmt: skip
    print(
        f"| pipeline, same file, columns=id, scores=prediction,reasons:3 | {reasons:.1f} | "
        f"worker {worker_seconds(reasons_note):.1f} s (target < 300 s) |"
    )


if __name__ == "__main__":
    main()
