"""The local stack's own process: what it keeps between files."""

from __future__ import annotations

import gc

from pipeline.local.stack import LocalStack
from tests.conftest import REGION, TEST_SETTINGS, unique


def test_a_running_stack_keeps_its_startup_out_of_the_collectors_way(aws_endpoint: str) -> None:
    """A full collection walked every object moto and botocore had loaded, a pause of
    about 230 ms once in 60 small files; frozen, it walks only what came since."""
    stack = LocalStack(
        stack_name=unique("gc"),
        region=REGION,
        endpoint_url=aws_endpoint,
        workers=0,
        settings=TEST_SETTINGS,
        sink=lambda _line: None,
    )
    try:
        stack.start()
        assert gc.get_freeze_count() > 10_000
    finally:
        stack.stop()
    assert gc.get_freeze_count() == 0  # what died meanwhile can be collected again
