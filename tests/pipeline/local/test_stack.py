"""The local stack's own process: what it keeps between files."""

from __future__ import annotations

import gc
from pathlib import Path

from pipeline.local.stack import LocalStack
from tests.conftest import REGION, TEST_SETTINGS, StackFactory, unique


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


def test_a_local_worker_gets_the_container_s_other_variables(local_stack: StackFactory) -> None:
    """Variables the task definition sets beside the settings (the allocator's) reach the
    local worker process as ECS would set them; the endpoint and settings stay the stack's."""
    stack = local_stack(workers=1)
    assert stack.stack is not None
    (container,) = stack.stack.properties["WorkerTaskDefinition"]["ContainerDefinitions"]
    declared = {item["Name"]: str(item["Value"]) for item in container["Environment"]}
    assert declared["MIMALLOC_PURGE_DELAY"] == "-1"
    (worker,) = stack.workers
    assert worker.pid is not None
    raw = Path(f"/proc/{worker.pid}/environ").read_bytes().split(b"\0")
    environ = dict(item.decode().split("=", 1) for item in raw if b"=" in item)
    assert environ["MIMALLOC_PURGE_DELAY"] == "-1"
    assert environ["PIPELINE_TASK_QUEUE_URL"] == stack.outputs["TaskQueueUrl"]
    assert environ["AWS_ENDPOINT_URL"] == stack.endpoint_url
