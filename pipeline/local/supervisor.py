"""Keeping the local worker processes running, as a container service would.

The supervisor holds a target number of ``celery worker --pool=solo``
processes and replaces any that exits without being asked to (a crash, an
out-of-memory kill, ``kill -9``), the way ECS replaces a stopped task. Each
worker gets a busy marker file that exists exactly while it holds a file.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

from pipeline.local.workers import Sink, WorkerProcess


class Supervisor:
    def __init__(
        self,
        environment: Mapping[str, str],
        state_dir: Path,
        sink: Sink,
        workers: int = 1,
        stop_timeout: float = 60.0,
    ) -> None:
        self._environment = dict(environment)
        self._state_dir = state_dir
        self._sink = sink
        self.target = workers
        self.stop_timeout = stop_timeout
        self.workers: list[WorkerProcess] = []
        self.restarts = 0
        self._serial = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)

    def start(self, wait_ready: bool = True) -> None:
        self._state_dir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            started = [self._start_worker() for _ in range(self.target)]
        if wait_ready:
            for worker in started:
                if not worker.wait_ready():
                    tail = "\n".join(worker.lines[-20:])
                    raise RuntimeError(f"{worker.name} did not start:\n{tail}")
        self._thread.start()

    def _start_worker(self) -> WorkerProcess:
        self._serial += 1
        name = f"worker-{self._serial}"
        busy = self._state_dir / f"{name}.busy"
        busy.unlink(missing_ok=True)
        worker = WorkerProcess(
            name, {**self._environment, "PIPELINE_BUSY_FILE": str(busy)}, self._sink, busy
        )
        worker.start()
        self.workers.append(worker)
        return worker

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                self._replace_dead()

    def _replace_dead(self) -> None:
        for worker in list(self.workers):
            if not worker.alive() and not worker.stopping:
                self._sink(f"[supervisor] {worker.name} exited ({worker.exit_code}); replacing it")
                worker.clear_busy()
                self.workers.remove(worker)
                self._start_worker()
                self.restarts += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        with self._lock:
            for worker in self.workers:
                worker.request_stop()
            for worker in self.workers:
                worker.stop(self.stop_timeout)
