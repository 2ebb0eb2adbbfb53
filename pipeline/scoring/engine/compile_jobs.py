"""Compile jobs, and putting their output to use only after it proves exact.

Publishing a model sends a ``compile`` task. The worker that takes it does not
compile in its own slot: a solo worker holds one message at a time, and a
file queued behind a 20-second compile would wait for it. It claims the
compile in the store and starts it in a child process (``python -m
pipeline.scoring.engine.compile_jobs NAME VERSION``), then takes its next message at
once. The child parses the text, generates and compiles the forest for this
architecture's baseline CPU, runs the gate against ``Booster.predict`` and
stores the object file with an ``EngineRecord`` (or a record of why the model
stays on LightGBM). A child that dies leaves a claim that goes stale; any
worker that loads the model while its compile is pending claims it again.

A worker loading a model looks for the record: compiled, it downloads the
object once, runs the gate again in its own process (a wrong or damaged
artifact is caught here and recorded as refused), and only then scores with it.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from typing import Any

import numpy as np

from pipeline.messages import ModelRef, utc_now
from pipeline.scoring.engine import bitvector, compiler, forest, gate
from pipeline.scoring.engine.native import NativeForest
from pipeline.scoring.model import LoadedModel
from pipeline.stores.model_store import EngineRecord, ModelStore

log = logging.getLogger(__name__)

#: A claim older than this with no record means its compile died; a running
#: compile renews its claim every third of this, so it is never run twice.
CLAIM_STALE_SECONDS = 900.0
_PR_SET_PDEATHSIG = 1
_ALARM_GRACE_SECONDS = 30


def _target_name() -> str:
    target = compiler.host_target()
    return target.name if target else "unknown"


def start_compile(
    ref: ModelRef, store: ModelStore, budget: float, sha256: str | None = None
) -> str:
    """Compile ``ref`` in a child process unless it is done or under way; return which.

    The child runs in a process group of its own, for at most ``budget``
    seconds: past that the group is killed and the model stays on LightGBM
    with the reason. It dies with the thread that waits for it, so a worker
    that exits takes its compiles along (no orphan compiling for an hour).
    """
    target = compiler.host_target()
    if target is None:
        return "no target"
    sha256 = sha256 or store.record(ref).sha256
    if store.engine(sha256, compiler.compiler_id(), target.name) is not None:
        return "done"
    if not store.claim_compile(sha256, compiler.compiler_id(), target.name, CLAIM_STALE_SECONDS):
        return "under way"
    command = [
        sys.executable,
        "-m",
        "pipeline.scoring.engine.compile_jobs",
        ref.name,
        str(ref.version),
        str(budget),
    ]

    def run() -> None:
        child = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, before exec
        )
        _children.add(child)
        late = False
        try:
            out, err = child.communicate(timeout=budget)
        except subprocess.TimeoutExpired:
            _kill(child)
            out, err = child.communicate()
            late = True
        finally:
            _children.discard(child)
        if late or child.returncode < 0:  # no record of its own: write why, or it stays pending
            reason = (
                f"compiling took longer than its budget of {budget:g} s "
                "(PIPELINE_COMPILE_TIMEOUT_SECONDS), so it was stopped"
                if late
                else f"the compile process died (signal {-child.returncode})"
            )
            log.error("compile of %s v%d: %s", ref.name, ref.version, reason)
            record_refusal(ref, store, reason, sha256, seconds=budget if late else 0.0)
            return
        level = logging.INFO if child.returncode == 0 else logging.ERROR
        message = out.strip() or err.strip()[-2000:]
        log.log(level, "compile of %s v%d: %s", ref.name, ref.version, message)

    threading.Thread(target=run, name=f"compile-{ref.name}-{ref.version}", daemon=True).start()
    return "started"


#: Compile children still running, killed (with their groups) when this process exits.
_children: set[subprocess.Popen[str]] = set()


def _kill(child: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)


@atexit.register
def _kill_children() -> None:
    for child in list(_children):
        _kill(child)


def _die_with_parent() -> None:
    """In the child, before exec: be killed when the thread that started it ends (Linux)."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def compile_version(ref: ModelRef, store: ModelStore, budget: float | None = None) -> EngineRecord:
    """Compile a published version for this architecture, unless that was done already.

    ``budget``: the seconds the compile job has, of which a second kernel gets what is left.
    """
    target = compiler.host_target()
    if target is None:
        raise RuntimeError("no compile target is known for this machine's architecture")
    version = store.record(ref)
    existing = store.engine(version.sha256, compiler.compiler_id(), target.name)
    if existing is not None:
        return existing
    model = LoadedModel.from_text(ref, store.model_text(ref))
    started = time.monotonic()
    artifact: bytes | None = None
    kernel: str | None = None
    try:
        parsed = forest.parse(model.written)
        deadline = None if budget is None else started + budget
        kernel, artifact, verdict = choose_kernel(parsed, target, model.booster, deadline)
        status, reason = ("compiled" if verdict.passed else "refused"), verdict.reason
    except forest.Unsupported as exc:
        status, reason = "refused", str(exc)
    record = EngineRecord(
        sha256=version.sha256,
        compiler=compiler.compiler_id(),
        target=target.name,
        status=status,
        reason=reason,
        kernel=kernel,
        compile_seconds=round(time.monotonic() - started, 3),
        created_at=utc_now(),
    )
    store.save_engine(record, artifact if status == "compiled" else None)
    log.info("model %s v%d: %s (%s)", ref.name, ref.version, status, reason)
    return record


def choose_kernel(
    parsed: forest.Forest,
    target: compiler.Target,
    booster: Any,
    deadline: float | None = None,
) -> tuple[str | None, bytes | None, gate.Verdict]:
    """The fastest kernel that passes the gate, with its artifact and verdict.

    Which kernel is faster depends on the model (the bitvector kernel decides
    every split of a tree for every row, the branch kernel only the splits on
    each row's path), so both are timed here, on the model's own check rows,
    one thread. The bitvector kernel comes first and compiles in about a
    second; the branch kernel can take a minute (100 trees of 255 leaves: 45 s).
    With a ``deadline`` (``time.monotonic()``), a kernel compiled after one
    has passed gets only the time left, in a process of its own, so a slow
    second compile cannot cost the model the kernel it already has.
    """
    passed: list[tuple[float, str, bytes, gate.Verdict]] = []
    failed: list[tuple[str, str]] = []
    first_failure: gate.Verdict | None = None
    rows = _timing_rows(parsed)
    for kernel in compiler.kernels_for(parsed, target):
        started = time.monotonic()
        if passed and deadline is not None:
            text = booster.model_to_string(num_iteration=-1)  # every tree, as ``written``
            artifact = _compile_within(text, target, kernel, deadline - started - _RESERVE)
            if artifact is None:
                failed.append((kernel, "was not compiled within the compile budget"))
                continue
        else:
            artifact = compiler.compile_object(parsed, target, kernel)
        native = NativeForest(artifact, parsed.num_class, parsed.num_features)
        verdict = gate.verify(native, booster, parsed)
        if verdict.passed:
            passed.append((_rows_per_second(native, rows), kernel, artifact, verdict))
        else:
            failed.append((kernel, verdict.reason))
            first_failure = first_failure or verdict
    if not passed:
        return None, None, first_failure or gate.Verdict(False, 0, math.inf, "nothing compiled")
    passed.sort(key=lambda candidate: -candidate[0])
    _, kernel, artifact, verdict = passed[0]
    timed = ", ".join(f"{name} {speed:,.0f}" for speed, name, _, _ in passed)
    why = [verdict.reason, f"rows/s a thread here: {timed}"]
    why += [f"the {name} kernel {reason}" for name, reason in failed]
    refusal = bitvector.refusal(parsed, target.arch)
    if refusal is not None:
        why.append(f"no bitvector kernel: {refusal}")
    return (
        kernel,
        artifact,
        gate.Verdict(True, verdict.rows, verdict.max_difference, "; ".join(why)),
    )


#: Seconds of a compile budget kept for gating, timing and storing what was compiled.
_RESERVE = 10.0


def _compile_within(
    text: str, target: compiler.Target, kernel: str, seconds: float
) -> bytes | None:
    """``compile_object`` in a child process given ``seconds``; None if it needs longer.

    LLVM cannot be stopped from another thread, so the compile runs where it
    can be killed. The child is in this process's group, so a compile job
    killed for its budget takes it along. It imports the compiler alone
    (``python -m pipeline.scoring.engine.compiler``): a multiprocessing child
    imported this module again, LightGBM with it, about 0.9 s a compile job.
    """
    if seconds <= 0:
        return None
    command = [sys.executable, "-m", "pipeline.scoring.engine.compiler", target.triple]
    command += [target.cpu, kernel]
    try:
        done = subprocess.run(
            command, input=text.encode(), capture_output=True, timeout=seconds, check=True
        )
    except subprocess.TimeoutExpired:
        return None
    return done.stdout


#: Rows a kernel is timed on: enough that the timing is not a call's overhead.
_TIMING_ROWS = 16_384


def _timing_rows(parsed: forest.Forest) -> np.ndarray:
    rows = gate.check_rows(parsed)
    return np.ascontiguousarray(np.resize(rows, (max(len(rows), _TIMING_ROWS), rows.shape[1])))


def _rows_per_second(native: NativeForest, rows: np.ndarray) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        native.predict(rows, threads=1, raw=True)
        best = min(best, time.perf_counter() - started)
    return len(rows) / best


def record_failure(ref: ModelRef, store: ModelStore, exc: Exception) -> EngineRecord:
    """Record that compiling failed, so the model stays on LightGBM with the reason."""
    return record_refusal(ref, store, f"compiling failed: {type(exc).__name__}: {exc}")


def record_refusal(
    ref: ModelRef, store: ModelStore, reason: str, sha256: str | None = None, seconds: float = 0.0
) -> EngineRecord:
    """Record that the model stays on LightGBM, and why."""
    record = EngineRecord(
        sha256=sha256 or store.record(ref).sha256,
        compiler=compiler.compiler_id(),
        target=_target_name(),
        status="refused",
        reason=reason,
        compile_seconds=seconds,
        created_at=utc_now(),
    )
    store.save_engine(record, None)
    return record


def attach(model: LoadedModel, store: ModelStore, budget: float) -> tuple[LoadedModel, bool]:
    """``model`` on its compiled forest if one exists and passes here; and whether one may come."""
    target = compiler.host_target()
    if target is None:
        return replace(model, engine_reason="no compile target for this architecture"), False
    record = store.engine(model.sha256, compiler.compiler_id(), target.name)
    if record is None:
        start_compile(model.ref, store, budget, model.sha256)  # a no-op while one is under way
        return replace(model, engine_reason="compile pending"), True
    if record.status != "compiled":
        return replace(model, engine_reason=record.reason), False
    try:
        parsed = forest.parse(model.written)
        native = NativeForest(store.artifact(record), parsed.num_class, parsed.num_features)
        verdict = gate.verify(native, model.booster, parsed, reach=False)
    except (forest.Unsupported, ValueError, RuntimeError) as exc:
        verdict = gate.Verdict(False, 0, float("inf"), f"cannot be loaded: {exc}")
    if not verdict.passed:
        reason = f"the compiled predictor failed the gate on load: {verdict.reason}"
        log.error("model %s v%d: %s", model.ref.name, model.ref.version, reason)
        store.save_engine(record.model_copy(update={"status": "refused", "reason": reason}), None)
        return replace(model, engine_reason=reason), False
    return replace(model, compiled=native, engine_reason=record.reason), False


def main(argv: list[str]) -> int:
    """The compile child: compile one version, record any failure but a transient one."""
    from pipeline.errors import TransientError  # noqa: PLC0415
    from pipeline.settings import Settings  # noqa: PLC0415
    from pipeline.stores import aws  # noqa: PLC0415

    ref = ModelRef(name=argv[0], version=int(argv[1]))
    settings = Settings()
    budget = float(argv[2]) if len(argv) > 2 else settings.compile_timeout_seconds
    # A backstop should the parent's own timer never fire: SIGALRM ends this process.
    signal.alarm(int(budget) + _ALARM_GRACE_SECONDS)
    store = ModelStore(aws.s3_client(), settings.model_bucket)
    try:
        sha256 = store.record(ref).sha256
        claim = (sha256, compiler.compiler_id(), _target_name())
        with store.holding_claim(*claim, renew_seconds=CLAIM_STALE_SECONDS / 3):
            record = compile_version(ref, store, budget)
    except TransientError as exc:  # the claim goes stale; a later load claims it again
        print(f"not compiled now: {exc}")
        return 1
    except Exception as exc:
        record = record_failure(ref, store, exc)
    print(f"{record.status}: {record.reason} ({record.compile_seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
