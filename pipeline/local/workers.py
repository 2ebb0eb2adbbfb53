"""Real ``celery worker --pool=solo`` subprocesses, as containers run them in AWS.

Each worker is the same command the container image runs; its output is
forwarded line by line with the worker's name in front. Stopping sends
SIGTERM, which lets a solo worker finish (and ack) the file it holds, and only
kills it if it does not exit within the stop timeout.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from pipeline import logs
from pipeline.settings import child_environment
from pipeline.worker.app import SCORE_QUEUE

Sink = Callable[[str], None]


def worker_command(
    name: str, loglevel: str = "INFO", pool: str = "solo", concurrency: int = 1
) -> list[str]:
    """The worker's command line: the container image runs the same one (solo, 1)."""
    return [
        sys.executable,
        "-m",
        "celery",
        "--app=pipeline.worker.main",
        "worker",
        f"--pool={pool}",
        f"--concurrency={concurrency}",
        f"--queues={SCORE_QUEUE}",
        f"--hostname={name}@%h",
        f"--loglevel={loglevel}",
        "--without-mingle",
        "--without-gossip",
    ]


class WorkerProcess:
    def __init__(
        self,
        name: str,
        environment: Mapping[str, str],
        sink: Sink,
        busy_file: Path | None = None,
        *,
        command: list[str] | None = None,
        log_file: Path | None = None,
    ) -> None:
        self.name = name
        self._log_file = log_file
        self._command = command or worker_command(name)
        self._environment = dict(environment)
        self._sink = sink
        self._busy_file = busy_file
        self.stopping = False
        self._ready = threading.Event()
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self.lines: list[str] = []

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> None:
        self._process = subprocess.Popen(
            self._command,
            env=child_environment(self._environment),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(
            target=self._forward, name=f"{self.name}-output", daemon=True
        )
        self._reader.start()

    def _forward(self) -> None:
        stdout = self._process.stdout if self._process else None
        if stdout is None:
            return
        log = self._log_file.open("a", buffering=1) if self._log_file else None
        try:
            for line in stdout:
                text = line.rstrip("\n")
                self.lines.append(text)
                if " ready." in text:
                    self._ready.set()
                document = logs.parse(text) or logs.stray(text, self.name)
                if log is not None:
                    log.write(json.dumps(document) + "\n")
                self._sink(f"[{self.name}] {logs.render(document)}")
        finally:
            if log is not None:
                log.close()

    @property
    def ready(self) -> bool:
        """Whether the worker has said it is ready (it may be holding a message after that)."""
        return self._ready.is_set()

    def wait_ready(self, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ready.wait(0.1):
                return True
            if not self.alive():
                return False
        return False

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def exit_code(self) -> int | None:
        return None if self._process is None else self._process.poll()

    @property
    def busy(self) -> bool:
        """Whether the worker holds a file (its busy marker exists)."""
        return self._busy_file is not None and self._busy_file.exists()

    def clear_busy(self) -> None:
        """Remove a dead worker's marker: it holds nothing any more."""
        if self._busy_file is not None:
            self._busy_file.unlink(missing_ok=True)

    def request_stop(self) -> None:
        """SIGTERM: finish the current file, then exit (a solo worker's warm shutdown)."""
        self.stopping = True
        self.signal(signal.SIGTERM)

    def signal(self, signum: int) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signum)

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; the exit code."""
        if self._process is None:
            return None
        self.request_stop()
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        return self._process.returncode
