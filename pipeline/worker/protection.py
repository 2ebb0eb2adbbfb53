"""Marking a worker busy while it holds a file, so scaling in never stops it mid-file.

On ECS the worker protects its own task from scale-in through the ECS agent's
task scale-in protection endpoint (``$ECS_AGENT_URI/task-protection/v1/state``)
while a file runs, and clears the protection after: Application Auto Scaling
then only ever stops idle tasks. Locally the supervisor reads a marker file
(``PIPELINE_BUSY_FILE``) that exists exactly while a file runs.

Protection is best effort: if the agent cannot be reached the file is still
scored (and, if the task is stopped anyway, its message returns to the queue).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

#: ECS allows protection for up to 48 hours.
_MAX_MINUTES = 2880


class Protection:
    """Scale-in protection for as long as a file runs.

    The protection expires a little after the job's time limit, or after ECS's
    longest (48 hours) when there is no limit (``expires_seconds`` 0), and it
    is renewed every half of that while the file runs: a file that outlives
    any single expiry stays protected.
    """

    def __init__(
        self,
        busy_file: str = "",
        ecs_agent_uri: str = "",
        expires_seconds: float = 3600,
        renew_seconds: float | None = None,
    ) -> None:
        self._busy_file = Path(busy_file) if busy_file else None
        self._agent = ecs_agent_uri.rstrip("/")
        if expires_seconds <= 0:
            self._minutes = _MAX_MINUTES
        else:
            self._minutes = max(1, min(_MAX_MINUTES, math.ceil(expires_seconds / 60) + 5))
        self._renew_seconds = renew_seconds if renew_seconds is not None else self._minutes * 30

    @contextlib.contextmanager
    def busy(self, job_id: str) -> Iterator[None]:
        if self._busy_file is not None:
            self._busy_file.write_text(job_id)
        self._protect(enabled=True)
        done = threading.Event()
        renewer = threading.Thread(target=self._renew, args=(done,), daemon=True)
        if self._agent:
            renewer.start()
        try:
            yield
        finally:
            done.set()
            if renewer.is_alive():
                renewer.join(timeout=10)
            self._protect(enabled=False)
            if self._busy_file is not None:
                self._busy_file.unlink(missing_ok=True)

    def _renew(self, done: threading.Event) -> None:
        while not done.wait(self._renew_seconds):
            self._protect(enabled=True)

    def _protect(self, enabled: bool) -> None:
        if not self._agent:
            return
        state: dict[str, object] = {"ProtectionEnabled": enabled}
        if enabled:
            state["ExpiresInMinutes"] = self._minutes
        request = urllib.request.Request(  # noqa: S310 - the agent's URI, given by ECS
            f"{self._agent}/task-protection/v1/state",
            data=json.dumps(state).encode(),
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                response.read()
        except OSError as exc:
            log.warning(
                "could not %s task scale-in protection: %s", "set" if enabled else "clear", exc
            )
