"""What the quality report costs: the 1M-row CSV of ``bench/e2e.py``, its model published
with a baseline (50,000 training-like rows), through the local stack with one solo worker.

Prints, per run (median of 3 runs): the worker's started -> finished, and what the report
cost the worker (``QualitySeconds`` in its metrics line: the CPU seconds of
``QualityCounter`` inside the features and predict stages, plus the seconds writing the
report and its page); the target is <= 10% of the worker's time. Also the counting alone,
in process, over the same rows in 8,192-row chunks.

    .venv/bin/python bench/quality.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from e2e import FEATURES, encode, table, train, worker_seconds
from explain import submit

from pipeline.client.api import Client
from pipeline.client.log_reader import local_lines
from pipeline.local.stack import LocalStack
from pipeline.messages import ModelRef
from pipeline.scoring.engine import compiler
from pipeline.scoring.model import LoadedModel
from pipeline.scoring.quality import QualityCounter, baseline_of


class Stack:
    """The shape ``explain.submit`` takes: a stack's clients and outputs."""

    def __init__(self, stack: LocalStack, client: Client) -> None:
        self.stack, self.s3, self.sqs, self.out = stack, client.s3, client.sqs, stack.outputs


def _quality_seconds(logs: Path, job_id: str) -> float:
    """``QualitySeconds`` from the job's metrics line (logged just after it is announced)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in local_lines(logs):
            if line.get("job_id") == job_id and "QualitySeconds" in line:
                return float(line["QualitySeconds"])
        time.sleep(0.5)
    raise AssertionError(f"no metrics line for job {job_id}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    booster = train()
    text = booster.model_to_string()
    big = table(args.rows, seed=1)
    body = encode(big, "csv")
    with tempfile.TemporaryDirectory() as folder:
        sample = Path(folder) / "train.parquet"
        pq.write_table(table(50_000, seed=5), sample)
        stack = LocalStack(stack_name="bench-quality", sink=lambda _l: None).start()
        try:
            client = Client.from_local(stack)
            version = client.publish_model(text.encode(), name="bench", baseline=sample)
            target = compiler.host_target()
            assert target is not None
            deadline = time.monotonic() + 300
            while client.models.engine(version.sha256, compiler.compiler_id(), target.name) is None:
                assert time.monotonic() < deadline, "the compile job did not finish"
                time.sleep(0.2)
            runs = []
            for i in range(3):
                seconds, note = submit(Stack(stack, client), f"bench/q-{i}.csv", body)
                counted = _quality_seconds(Path(stack.outputs["LogsFolder"]), note.job_id)
                runs.append((seconds, worker_seconds(note), counted, note))
        finally:
            stack.stop()
        model = LoadedModel.from_text(ModelRef(name="bench", version=1), text)
        baseline = baseline_of(model, pq.ParquetFile(sample).iter_batches(), str(sample))
    x = np.asfortranarray(np.column_stack([big.column(f).to_numpy() for f in FEATURES]))
    predictions = booster.predict(x).reshape(-1, 1)
    counter = QualityCounter(model.features, baseline)
    started = time.perf_counter()
    for begin in range(0, len(x), 8192):
        rows = slice(begin, begin + 8192)
        counter.add_features(big.slice(begin, 8192).to_batches()[0], x[rows])
        counter.add_predictions(predictions[rows])
    alone = time.perf_counter() - started

    mb = len(body) / 1e6
    print(f"\n{args.rows:,}-row CSV ({mb:.0f} MB), 33 features, baseline of 50,000 rows\n")
    print("| run | upload -> notification | worker | counting the report | share |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for i, (seconds, worker, counted, _) in enumerate(runs, 1):
        print(f"| {i} | {seconds:.2f} s | {worker:.2f} s | {counted:.2f} s | "
              f"{counted / worker:.1%} |")  # fmt: skip
    share = statistics.median(c / w for _, w, c, _ in runs)
    drift = runs[-1][3].quality.max_psi
    print(
        f"\nmedian share of the worker's time: {share:.1%} (target <= 10%); counting alone "
        f"in process: {alone:.2f} s; the file's largest PSI {drift:.3f}"
    )


if __name__ == "__main__":
    main()
