"""Event-driven batch scoring of files with LightGBM models on AWS.

A file dropped into the input bucket under ``<model-name>/`` is scored by a
Celery worker and written to the output bucket; a notification says where the
result is, or exactly why the file failed.

What users build on is here: ``Client`` (publish models, submit files, wait
for notifications, retry, status), ``LocalStack`` (the whole pipeline on this
machine), the message contracts and the errors a caller may catch.
``Client`` and ``LocalStack`` are imported on first use: a consumer that only
reads notifications pays for neither, and ``LocalStack`` needs the ``local``
extra.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from pipeline.errors import InputError, InvalidModel, NotRetryable, PipelineError, UnknownModel
from pipeline.messages import (
    ErrorInfo,
    ModelRef,
    Notification,
    ObjectRef,
    OutputRef,
    Progress,
    ScoreRequest,
)

if TYPE_CHECKING:
    from pipeline.client.api import Client, NotificationTimeout, StackNotFound, Submission
    from pipeline.local.stack import LocalStack
    from pipeline.stores.model_store import ModelVersion

__all__ = [
    "Client",
    "ErrorInfo",
    "InputError",
    "InvalidModel",
    "LocalStack",
    "ModelRef",
    "ModelVersion",
    "NotRetryable",
    "Notification",
    "NotificationTimeout",
    "ObjectRef",
    "OutputRef",
    "PipelineError",
    "Progress",
    "ScoreRequest",
    "StackNotFound",
    "Submission",
    "UnknownModel",
]

_LAZY = {
    "Client": "pipeline.client.api",
    "NotificationTimeout": "pipeline.client.api",
    "StackNotFound": "pipeline.client.api",
    "Submission": "pipeline.client.api",
    "ModelVersion": "pipeline.stores.model_store",
    "LocalStack": "pipeline.local.stack",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
