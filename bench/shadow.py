"""What shadow scoring adds to a file: the 1M-row CSV of ``bench/e2e.py`` through the local
stack with one solo worker, its champion (v1, 200 trees x 63 leaves) alone and then with a
shadow (v2, the same shape trained on other data) in the same pass, runs interleaved.

Prints, per run, upload -> notification and the worker's started -> finished; then the
median worker time without and with the shadow, the difference, and the shadow's own
prediction time (``ShadowSeconds`` in the worker's metrics line, and v2's compiled forest
predicting the same rows in process). The target: the shadow adds no more than its own
prediction time.

    .venv/bin/python bench/shadow.py [--rows 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
from e2e import FEATURES, encode, table, train, worker_seconds
from explain import submit
from quality import Stack

from pipeline.client.api import Client
from pipeline.client.log_reader import local_lines
from pipeline.local.stack import LocalStack
from pipeline.scoring.engine import compiler
from pipeline.scoring.engine.cache import ModelCache
from pipeline.shadow import ShadowRef


def challenger() -> lgb.Booster:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(50_000, len(FEATURES)))
    y = (x[:, :6].sum(axis=1) + 0.6 * rng.normal(size=len(x)) > 0).astype(int)
    return lgb.train(
        {"objective": "binary", "num_leaves": 63, "verbose": -1, "seed": 2},
        lgb.Dataset(x, y, feature_name=FEATURES),
        num_boost_round=200,
    )


def metric(logs: Path, job_id: str, name: str) -> float:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in local_lines(logs):
            if line.get("job_id") == job_id and name in line:
                return float(line[name])
        time.sleep(0.5)
    raise AssertionError(f"no {name} for job {job_id}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    big = table(args.rows, seed=1)
    body = encode(big, "csv")
    stack = LocalStack(stack_name="bench-shadow", sink=lambda _l: None).start()
    try:
        client = Client.from_local(stack)
        target = compiler.host_target()
        assert target is not None
        for booster in (train(), challenger()):
            version = client.publish_model(booster.model_to_string().encode(), name="bench")
            deadline = time.monotonic() + 600
            while client.models.engine(version.sha256, compiler.compiler_id(), target.name) is None:
                assert time.monotonic() < deadline, "the compile job did not finish"
                time.sleep(0.5)
        client.set_alias("bench", "champion", 1)
        logs = Path(stack.outputs["LogsFolder"])
        runs: list[tuple[str, float, float, float]] = []
        for i in range(args.runs):
            for shadowed in (False, True):
                if shadowed:
                    client.set_shadow("bench", 2)
                else:
                    client.stop_shadow("bench")
                seconds, note = submit(Stack(stack, client), f"bench/s-{i}-{shadowed}.csv", body)
                own = metric(logs, note.job_id, "ShadowSeconds")
                assert shadowed == (note.shadow is not None), note.shadow
                label = "with shadow" if shadowed else "alone"
                runs.append((label, seconds, worker_seconds(note), own))
        last = note.shadow
        # v2 predicting the same rows in process, on the engine the worker used.
        cache = ModelCache(client.models)
        shadow_model = cache.get(client.models.resolve("bench", 2))
        x = np.asfortranarray(np.column_stack([big.column(f).to_numpy() for f in FEATURES]))
        alone_predict: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(3):
            for threads, times in alone_predict.items():
                started = time.perf_counter()
                for begin in range(0, len(x), 65_536):
                    shadow_model.predict(x[begin : begin + 65_536], threads)
                times.append(time.perf_counter() - started)
    finally:
        stack.stop()

    summary(runs, alone_predict, shadow_model.engine, last)
    print(f"{args.rows:,}-row CSV ({len(body) / 1e6:.0f} MB), 33 features, v1 and v2 200 x 63")


def summary(
    runs: list[tuple[str, float, float, float]],
    alone_predict: dict[int, list[float]],
    engine: str,
    last: ShadowRef | None,
) -> None:
    print("\n| run | upload -> notification | worker | shadow's own seconds |")
    print("| --- | ---: | ---: | ---: |")
    for label, seconds, worker, own in runs:
        print(f"| {label} | {seconds:.2f} s | {worker:.2f} s | {own:.2f} s |")
    alone = statistics.median(w for label, _, w, _ in runs if label == "alone")
    shadowed = statistics.median(w for label, _, w, _ in runs if label != "alone")
    own = statistics.median(o for label, _, _, o in runs if label != "alone")
    one, two = (statistics.median(alone_predict[t]) for t in (1, 2))
    print(
        f"\nworker median: alone {alone:.2f} s, with shadow {shadowed:.2f} s: adds "
        f"{shadowed - alone:.2f} s; the shadow's own seconds in the worker {own:.2f} s; "
        f"v2 predicting the rows in process ({engine}): {one:.2f} s on 1 thread "
        f"(as the worker runs it beside the primary), {two:.2f} s on 2"
    )
    if last is not None:
        print(
            f"last comparison: max |diff| {last.max_abs_diff:.4f}, mean {last.mean_abs_diff:.4f}, "
            f"Spearman {last.rank_correlation:.4f}, flips {last.flips:,}"
        )


if __name__ == "__main__":
    main()
