"""pytest fixtures for code that works with the pipeline: a whole stack, per test session.

Installing ``lgbm-pipeline[local]`` registers this plugin (the ``pytest11``
entry point), so any test suite in that environment can ask for:

* ``pipeline_stack``: a running local stack (emulator, resources from the
  template, the upload handler, a real solo worker), shared by the session.
  It is a ``Client``: ``.outputs``, ``.s3``, ``.publish_model(path, name=...)``,
  ``.submit(path, model=..., key=None)`` (which returns the file's
  ``Notification`` once it arrives), ``.notifications()``, ``.retry()``, ``.status()``.
* ``pipeline_stack_options``: the ``LocalStack`` keyword arguments it starts
  with; override this fixture in a conftest for more workers or other settings,
  or ``enforce_iam=True`` to run each part as its template role (on an
  emulator of its own that checks every request against IAM).
* ``pipeline_endpoint``: the emulator's URL alone, for tests that make their own
  resources. While the session runs, ``AWS_ENDPOINT_URL``, the region and fake
  credentials point this process's boto3 at it, so the code under test
  reaches the stack as it would reach AWS; they are restored at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pipeline.client.api import Client

REGION = "us-east-1"

#: Short broker waits: the emulator keeps an abandoned long poll open until it
#: ends, so stopping a worker waits that long. Fast retries: tests of failures end sooner.
TEST_SETTINGS: dict[str, Any] = {
    "broker_wait_seconds": 2,
    "retry_base_seconds": 0.01,
    "redelivery_base_seconds": 0.5,
}


@pytest.fixture(scope="session")
def pipeline_endpoint() -> Iterator[str]:
    """An emulator for the session, with this process's AWS variables pointing at it."""
    from pipeline.local import emulator  # noqa: PLC0415 - only sessions that use it pay for moto

    server = emulator.Emulator().start()
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in emulator.environment(server.url, REGION).items():
                patch.setenv(name, value)
            yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pipeline_stack_options() -> dict[str, Any]:
    """How ``pipeline_stack`` starts: ``LocalStack`` keyword arguments."""
    return {"workers": 1, "settings": TEST_SETTINGS}


@pytest.fixture(scope="session")
def pipeline_stack(
    pipeline_endpoint: str, pipeline_stack_options: dict[str, Any]
) -> Iterator[Client]:
    """A running local stack for the session, as a ``Client``; stopped and removed after."""
    from pipeline.client.api import Client  # noqa: PLC0415
    from pipeline.local.stack import LocalStack  # noqa: PLC0415

    options = {
        "stack_name": f"pytest-{uuid.uuid4().hex[:8]}",
        "region": REGION,
        "sink": lambda _line: None,
        **pipeline_stack_options,
    }
    if not options.get("enforce_iam"):  # an enforcing stack runs an emulator of its own
        options["endpoint_url"] = pipeline_endpoint
    with LocalStack(**options) as stack, Client.from_local(stack) as client:
        yield client
