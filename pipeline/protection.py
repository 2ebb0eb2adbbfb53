"""Marking a worker busy while it holds a file, so scaling in never stops it mid-file.

Locally the supervisor reads a marker file (``PIPELINE_BUSY_FILE``); the
marker exists exactly while a file runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


class Protection:
    def __init__(self, busy_file: str = "") -> None:
        self._busy_file = Path(busy_file) if busy_file else None

    @contextlib.contextmanager
    def busy(self, job_id: str) -> Iterator[None]:
        if self._busy_file is not None:
            self._busy_file.write_text(job_id)
        try:
            yield
        finally:
            if self._busy_file is not None:
                self._busy_file.unlink(missing_ok=True)
