"""Lambda entry point for the task dead-letter queue: no file ends in silence."""

from __future__ import annotations

import functools
from typing import Any

from pipeline import logs
from pipeline.functions.dead_letters import DeadLetterRuntime, handle_event
from pipeline.settings import Settings

logs.configure("dead-letter-function", Settings().log_level)


@functools.cache
def _runtime() -> DeadLetterRuntime:
    return DeadLetterRuntime.create(Settings())


def lambda_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    return handle_event(event, _runtime())
