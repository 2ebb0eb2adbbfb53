"""Small files through one stack, two versions interleaved: the A/B the host's drift cannot fake.

Separate runs of ``bench/e2e.py`` moved by a third within minutes on this shared
machine, and the second of two runs was the slower whichever version it ran, so
a change worth a few milliseconds a file cannot be seen run against run. Here
one stack scores rounds of ``--files`` 1,000-row CSVs, switching a module
attribute of this process between two values from round to round, in ABBA
order, and prints each value's latency percentiles and CPU per file. The
stack's poller and handler run here, and so does its emulator (unlike under
``pipeline dev``, where it runs apart), so that its attributes can be switched.

    .venv/bin/python bench/interleaved.py pipeline.local.emulator:_ONE_SEND_BYTES=-1,1048576

Only what this process runs can be switched; the worker is a process of its own.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import statistics

from e2e import Pipeline, encode, table, train

from pipeline.local.emulator import Emulator


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("switch", help="module:attribute=A,B (Python literals)")
    parser.add_argument("--rounds", type=int, default=12, help="rounds of each value")
    parser.add_argument("--files", type=int, default=10, help="files a round")
    args = parser.parse_args()

    where, _, values = args.switch.partition("=")
    module_name, _, attribute = where.partition(":")
    module = importlib.import_module(module_name)
    choices = [ast.literal_eval(v) for v in values.split(",")]
    if len(choices) != 2 or not hasattr(module, attribute):
        parser.error(f"expected module:attribute=A,B with an existing attribute, got {args.switch}")

    body = encode(table(1000, seed=7), "csv")
    model = train().model_to_string().encode()
    server = Emulator().start()
    pipeline = Pipeline("interleaved", model, {"predict_engine": "auto"}, server.url)
    seconds: list[list[float]] = [[], []]
    cpu = [[0.0, 0.0], [0.0, 0.0]]  # worker, the rest (emulator, poller, handler)
    try:
        for i in range(6):
            pipeline.score(f"bench/warm-{i}.csv", body)
        count = 0
        for turn in range(args.rounds):
            for side in (0, 1) if turn % 2 == 0 else (1, 0):
                setattr(module, attribute, choices[side])
                worker, here = pipeline.worker_cpu(), pipeline.rest_cpu()
                for _ in range(args.files):
                    took, _note = pipeline.score(f"bench/f-{count}.csv", body)
                    seconds[side].append(took)
                    count += 1
                cpu[side][0] += pipeline.worker_cpu() - worker
                cpu[side][1] += pipeline.rest_cpu() - here
    finally:
        pipeline.stop()
        server.stop()

    print(f"\n{args.rounds} rounds of {args.files} files each way, interleaved on one stack\n")
    print("| value | p50 ms | p95 ms | worker CPU-ms a file | the rest's CPU-ms a file |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for side, value in enumerate(choices):
        times = seconds[side]
        p95 = statistics.quantiles(times, n=20)[18]
        files = len(times)
        print(
            f"| {attribute}={value!r} | {statistics.median(times) * 1e3:.1f} | {p95 * 1e3:.1f} "
            f"| {cpu[side][0] / files * 1e3:.1f} | {cpu[side][1] / files * 1e3:.1f} |"
        )


if __name__ == "__main__":
    main()
