"""Keeping the local worker processes running and scaled, as a container service would.

The supervisor replaces any worker that exits without being asked to (a
crash, an out-of-memory kill, ``kill -9``), the way ECS replaces a stopped
task. With a scaling ``Policy`` it also polls the task queue and applies the
policy: it starts workers when the backlog grows and, when it shrinks, asks
idle workers to stop (SIGTERM), never a busy one. Each decision is printed
with its reason. Each worker has a busy marker file that exists exactly while
it holds a file; the supervisor's view is written to ``status.json`` for
``pipeline status``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.local.workers import Sink, WorkerProcess
from pipeline.scaling import Observation, Policy, decide

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)

_POLL_SECONDS = 1.0


class Supervisor:
    def __init__(
        self,
        environment: Mapping[str, str],
        state_dir: Path,
        sink: Sink,
        *,
        workers: int = 1,
        stop_timeout: float = 60.0,
        policy: Policy | None = None,
        queue_url: str = "",
        sqs: SQSClient | None = None,
        logs_dir: Path | None = None,
    ) -> None:
        self._environment = dict(environment)
        self._state_dir = state_dir
        #: Each worker's JSON log lines, one file per worker.
        self._logs_dir = logs_dir or state_dir / "logs"
        self._logs_dir.mkdir(parents=True, exist_ok=True)
        self._sink = sink
        self.target = policy.minimum if policy else workers
        self.stop_timeout = stop_timeout
        self.policy, self._queue_url, self._sqs = policy, queue_url, sqs
        self.workers: list[WorkerProcess] = []
        self.restarts = 0
        self.decisions: list[tuple[float, int, str]] = []
        #: The most workers alive (not stopping) at once.
        self.peak_workers = 0
        self._serial = 0
        self._last_change = time.monotonic()
        self._last_activity = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)

    @property
    def status_path(self) -> Path:
        return self._state_dir / "status.json"

    def start(self, wait_ready: bool = True) -> None:
        self._state_dir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            started = [self._start_worker() for _ in range(self.target)]
        if wait_ready:
            for worker in started:
                if not worker.wait_ready():
                    tail = "\n".join(worker.lines[-20:])
                    raise RuntimeError(f"{worker.name} did not start:\n{tail}")
        self._write_status("")
        self._thread.start()

    @property
    def running(self) -> list[WorkerProcess]:
        """Workers alive and not asked to stop: the capacity the policy counts."""
        return [w for w in self.workers if w.alive() and not w.stopping]

    def _start_worker(self) -> WorkerProcess:
        self._serial += 1
        name = f"worker-{self._serial}"
        busy = self._state_dir / f"{name}.busy"
        busy.unlink(missing_ok=True)
        worker = WorkerProcess(
            name,
            {**self._environment, "PIPELINE_BUSY_FILE": str(busy)},
            self._sink,
            busy,
            log_file=self._logs_dir / f"{name}.jsonl",
        )
        worker.start()
        self.workers.append(worker)
        self.peak_workers = max(self.peak_workers, len(self.running))
        return worker

    def _run(self) -> None:
        while not self._stop.wait(_POLL_SECONDS):
            reason = ""
            with self._lock:
                self._reap()
                if self.policy is not None:
                    reason = self._scale(self.policy)
                self._write_status(reason)

    def _reap(self) -> None:
        for worker in list(self.workers):
            if worker.alive():
                continue
            worker.clear_busy()
            self.workers.remove(worker)
            if worker.stopping or self._stop.is_set():
                continue
            log.warning("%s exited (%s); replacing it", worker.name, worker.exit_code)
            self._start_worker()
            self.restarts += 1

    def _scale(self, policy: Policy) -> str:
        assert self._sqs is not None  # noqa: S101 - given with the policy
        try:
            attributes = self._sqs.get_queue_attributes(
                QueueUrl=self._queue_url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
        except Exception as exc:  # the emulator going away at shutdown, a network blip
            return f"queue not readable: {exc}"
        visible = int(attributes["ApproximateNumberOfMessages"])
        in_flight = int(attributes["ApproximateNumberOfMessagesNotVisible"])
        now = time.monotonic()
        if visible or in_flight:
            self._last_activity = now
        running = self.running
        decision = decide(
            policy,
            Observation(
                visible=visible,
                in_flight=in_flight,
                workers=len(running),
                seconds_idle=now - self._last_activity,
                seconds_since_change=now - self._last_change,
            ),
        )
        if decision.workers > len(running):
            for _ in range(decision.workers - len(running)):
                self._start_worker()
        elif decision.workers < len(running):
            idle = [w for w in running if not w.busy and w.ready]
            doomed = idle[: len(running) - decision.workers]
            if not doomed:
                return f"{decision.reason}; every worker is busy, none stopped"
            for worker in doomed:
                worker.request_stop()
        else:
            return decision.reason
        self._last_change = now
        self.target = decision.workers
        self.decisions.append((now, decision.workers, decision.reason))
        log.info("%s", decision.reason)
        return decision.reason

    def _write_status(self, reason: str) -> None:
        status = {
            "updated_at": datetime.now(UTC).isoformat(),
            "target": self.target,
            "restarts": self.restarts,
            "last_decision": reason or (self.decisions[-1][2] if self.decisions else ""),
            "workers": [
                {
                    "name": w.name,
                    "pid": w.pid,
                    "state": "stopping" if w.stopping else ("busy" if w.busy else "idle"),
                }
                for w in self.workers
                if w.alive()
            ],
        }
        temporary = self.status_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(status, indent=2))
        temporary.replace(self.status_path)

    def halt(self) -> None:
        """Stop replacing and scaling workers, at once (safe in a signal handler).

        A terminal's Ctrl-C reaches the workers too: their exits must not look
        like crashes to be repaired.
        """
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        with self._lock:
            for worker in self.workers:
                worker.request_stop()
            for worker in self.workers:
                worker.stop(self.stop_timeout)
