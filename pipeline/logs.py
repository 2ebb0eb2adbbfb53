"""Structured logs: one JSON object per line, naming the job in hand.

Every process of the pipeline (the functions, the workers, the local stack)
logs through the standard ``logging`` module; ``configure`` makes each record
a JSON line with ``time``, ``level``, ``role``, ``logger`` and ``message``, plus
``job_id``, ``key``, ``model`` and ``delivery`` while ``job_context`` holds a
job. CloudWatch Logs, ``pipeline logs`` and any log tool can then pick one
file's lines out of many processes by its job id.

The job is held in a context variable, so a line logged anywhere below the
``with job_context(...)`` (in this thread) carries it without being passed.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import IO, Any

_job: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("job", default={})  # noqa: B039 - never mutated, only replaced

#: Fields a line about a job carries, in the order they are shown.
JOB_FIELDS = ("job_id", "key", "model", "delivery")
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


@contextlib.contextmanager
def job_context(**fields: Any) -> Iterator[None]:
    """Lines logged inside the block carry these fields (``job_id``, ``key``, ...)."""
    token = _job.set({**_job.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _job.reset(token)


#: In the local stack one process plays several parts; a record's logger says which.
LOCAL_ROLES = {
    "pipeline.functions.intake": "upload-function",
    "pipeline.functions.dead_letters": "dead-letter-function",
    "pipeline.local.poller": "poller",
    "pipeline.local.supervisor": "supervisor",
}


class JsonFormatter(logging.Formatter):
    def __init__(self, role: str, roles: dict[str, str] | None = None) -> None:
        super().__init__()
        self.role, self._roles = role, roles or {}

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "role": self._roles.get(record.name, self.role),
            "logger": record.name,
            "message": record.getMessage(),
            **_job.get(),
        }
        # Fields given with ``extra=`` (an EMF document, a progress figure).
        document.update(
            (name, value) for name, value in record.__dict__.items() if name not in _STANDARD
        )
        if record.exc_info:
            document["error"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


def configure(role: str, level: str = "INFO", stream: IO[str] | None = None) -> None:
    """Send this process's log records to ``stream`` (stdout) as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter(role))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # botocore's per-call INFO lines ("Found credentials...") say nothing about files.
    logging.getLogger("botocore").setLevel(logging.WARNING)


def parse(line: str) -> dict[str, Any] | None:
    """A JSON log line as a dict, or None for anything else (a stray print)."""
    try:
        document = json.loads(line)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def stray(text: str, role: str) -> dict[str, Any]:
    """A line a process printed without logging (a crash, a library's print), as a document."""
    return {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "level": "INFO",
        "role": role,
        "logger": "stdout",
        "message": text,
    }


class SinkHandler(logging.Handler):
    """Log records as readable lines to a callable (a terminal, a test's list)."""

    def __init__(
        self, sink: Callable[[str], None], role: str, roles: dict[str, str] | None = None
    ) -> None:
        super().__init__()
        self._sink = sink
        self.setFormatter(JsonFormatter(role, roles))

    def emit(self, record: logging.LogRecord) -> None:
        document = parse(self.format(record))
        if document is not None:
            self._sink(render(document))


def render(document: dict[str, Any]) -> str:
    """A log document as one readable line for a terminal."""
    when = str(document.get("time", ""))[11:23]
    job = " ".join(
        f"{name}={document[name]}" for name in JOB_FIELDS if document.get(name) is not None
    )
    text = f"{when} {document.get('level', ''):<7} {document.get('role', '')}: "
    text += str(document.get("message", ""))
    if job:
        text += f"  [{job}]"
    if document.get("error"):
        text += "\n" + str(document["error"])
    return text
