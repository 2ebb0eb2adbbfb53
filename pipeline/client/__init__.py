"""The users' side: what people and their programs use.

* ``api``: ``Client``, the Python API (publish, submit, wait, retry, status).
* ``cli``: the ``pipeline`` command, built on ``Client``.
* ``consumer``: reading notifications from a queue.
* ``retries``, ``status``, ``log_reader``: running failed jobs again, the
  stack's state, a job's log lines.
* ``demo``: ``pipeline demo``.
* ``pytest_plugin``: the ``pipeline_stack`` fixture for users' own tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.client.api import Client


def __getattr__(name: str) -> Any:
    """``from pipeline.client import Client`` without importing boto3 for the package alone."""
    if name == "Client":
        from pipeline.client.api import Client  # noqa: PLC0415

        return Client
    raise AttributeError(name)


__all__ = ["Client"]
