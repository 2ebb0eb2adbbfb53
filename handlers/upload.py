"""Lambda entry point for the upload-events queue (S3 ObjectCreated events via SQS).

Returns partial batch failures (``ReportBatchItemFailures``): only the records
that could not be enqueued are delivered again.
"""

from __future__ import annotations

import functools
from typing import Any

from pipeline import logs
from pipeline.functions.intake import IntakeRuntime, handle_event
from pipeline.settings import Settings

logs.configure("upload-function", Settings().log_level)


@functools.cache
def _runtime() -> IntakeRuntime:
    return IntakeRuntime.create(Settings())


def lambda_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    return handle_event(event, _runtime())
