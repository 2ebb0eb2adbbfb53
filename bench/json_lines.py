"""JSON lines end to end: the 1M rows of ``bench/e2e.py`` as JSON lines through the local
stack (one solo worker, the compiled 200 x 63 model), beside the naive scripts on the same
rows in one run: pandas reading the CSV (the README's baseline) and pandas reading the
JSON lines (``read_json(lines=True)`` -> predict -> ``to_json(lines=True)``).

Prints each path's seconds (median of ``--runs`` for the pipeline) and the ratios; the
target is the pipeline >= 5x faster than the naive script on the same rows.

    .venv/bin/python bench/json_lines.py [--rows 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from e2e import NAIVE, Pipeline, encode, table, train, worker_seconds

NAIVE_JSONL = """
import sys, lightgbm as lgb, pandas as pd
booster = lgb.Booster(model_file=sys.argv[1])
frame = pd.read_json(sys.argv[2], lines=True)
frame["prediction"] = booster.predict(frame[booster.feature_name()])
frame.to_json(sys.argv[3], orient="records", lines=True)
"""


def naive(script: str, model: Path, source: Path, out: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", script, str(model), str(source), str(out)], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    booster = train()
    model = booster.model_to_string().encode()
    data = table(args.rows)
    bodies = {kind: encode(data, kind) for kind in ("csv", "jsonl")}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / "model.txt").write_bytes(model)
        for kind, body in bodies.items():
            (work / f"in.{kind}").write_bytes(body)
        naive_csv = naive(NAIVE, work / "model.txt", work / "in.csv", work / "out.csv")
        naive_jsonl = naive(NAIVE_JSONL, work / "model.txt", work / "in.jsonl", work / "o.jsonl")
    pipeline = Pipeline("bench-jsonl", model, {"predict_engine": "auto"})
    try:
        runs = [pipeline.score(f"bench/j-{i}.jsonl", bodies["jsonl"]) for i in range(args.runs)]
    finally:
        pipeline.stop()
    seconds = statistics.median(s for s, _ in runs)
    worker = statistics.median(worker_seconds(n) for _, n in runs)
    mb = len(bodies["jsonl"]) / 1e6
    print(f"\n{args.rows:,} rows; JSON lines {mb:.0f} MB, CSV {len(bodies['csv']) / 1e6:.0f} MB\n")
    print("| path | seconds | |\n| --- | ---: | --- |")
    print(f"| naive script, CSV (pandas, local file) | {naive_csv:.1f} | |")
    print(f"| naive script, JSON lines (pandas, local file) | {naive_jsonl:.1f} | |")
    for i, (s, note) in enumerate(runs, 1):
        print(f"| pipeline jsonl, run {i} | {s:.1f} | worker {worker_seconds(note):.1f} s |")
    print(
        f"\npipeline jsonl median {seconds:.1f} s (worker {worker:.1f} s): "
        f"{naive_csv / seconds:.1f}x the CSV naive script, "
        f"{naive_jsonl / seconds:.1f}x the JSON lines one (target >= 5x)"
    )


if __name__ == "__main__":
    main()
