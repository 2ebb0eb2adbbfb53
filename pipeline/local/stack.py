"""The whole pipeline on one machine: emulator, resources, handler poller, workers.

``LocalStack`` starts everything in order and stops everything it started, in
reverse; ``pipeline dev``, ``pipeline demo`` and the end-to-end tests all use
it. Settings reach the handler and the workers from the template (the upload
function's ``Environment``), as they would in AWS.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from pipeline.intake import IntakeRuntime, handle_event
from pipeline.local import emulator, template
from pipeline.local.poller import EventSourceMapping
from pipeline.local.provision import Stack, provision
from pipeline.local.workers import Sink, WorkerProcess
from pipeline.settings import Settings, set_process_environment

log = logging.getLogger(__name__)

DEFAULT_STACK_NAME = "pipeline-local"
DEFAULT_REGION = "us-east-1"
_STACK_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


class LocalStack:
    def __init__(
        self,
        *,
        stack_name: str = DEFAULT_STACK_NAME,
        region: str = DEFAULT_REGION,
        port: int = 0,
        endpoint_url: str | None = None,
        workers: int = 1,
        template_path: Path | None = None,
        parameters: Mapping[str, str] | None = None,
        settings: Mapping[str, Any] | None = None,
        sink: Sink = print,
    ) -> None:
        if not _STACK_NAME.match(stack_name):
            raise ValueError(
                f"stack name {stack_name!r}: 1-31 characters of a-z, 0-9 and '-', "
                "starting with a letter (it becomes part of bucket names)"
            )
        self.stack_name, self.region, self._port = stack_name, region, port
        self._endpoint_url = endpoint_url
        self._worker_count = workers
        self._template_path = template_path
        self._parameters = dict(parameters or {})
        self._setting_overrides = dict(settings or {})
        self._sink = sink
        self._emulator: emulator.Emulator | None = None
        self.stack: Stack | None = None
        self.settings: Settings | None = None
        self.mappings: list[EventSourceMapping] = []
        self.workers: list[WorkerProcess] = []
        self.outputs: dict[str, str] = {}

    @property
    def endpoint_url(self) -> str:
        if self._endpoint_url is None:
            raise RuntimeError("the stack is not started")
        return self._endpoint_url

    def start(self, wait_for_workers: bool = True) -> Self:
        try:
            self._start(wait_for_workers)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, wait_for_workers: bool) -> None:
        if self._endpoint_url is None:
            self._emulator = emulator.Emulator(self._port).start()
            self._endpoint_url = self._emulator.url
        set_process_environment(emulator.environment(self.endpoint_url, self.region))
        self.stack = provision(
            template.load(self._template_path), self.stack_name, self.region, self._parameters
        )
        outputs = self.stack.outputs
        self.settings = self._settings_from_template(self.stack)
        intake = IntakeRuntime.create(self.settings)
        self.mappings = [
            EventSourceMapping(
                "upload",
                outputs["UploadEventsQueueUrl"],
                functools.partial(handle_event, runtime=intake),
                self.region,
            )
        ]
        for mapping in self.mappings:
            mapping.start()
        worker_env = {
            **emulator.environment(self.endpoint_url, self.region),
            **self.settings.as_environment(),
        }
        for n in range(1, self._worker_count + 1):
            worker = WorkerProcess(f"worker-{n}", worker_env, self._sink)
            worker.start()
            self.workers.append(worker)
        if wait_for_workers:
            for worker in self.workers:
                if not worker.wait_ready():
                    tail = "\n".join(worker.lines[-20:])
                    raise RuntimeError(f"{worker.name} did not start:\n{tail}")
        self.outputs = {
            **outputs,
            "EndpointUrl": self.endpoint_url,
            "Region": self.region,
            "StackName": self.stack_name,
        }

    def _settings_from_template(self, stack: Stack) -> Settings:
        function_env = stack.properties["UploadFunction"]["Environment"]["Variables"]
        settings = Settings.from_environment(function_env)
        # The worker's own resources; the upload function has no use for them.
        return settings.model_copy(
            update={"output_bucket": stack.outputs["OutputBucketName"], **self._setting_overrides}
        )

    def write_outputs(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.outputs, indent=2) + "\n")

    def stop(self, worker_timeout: float = 60.0) -> None:
        for worker in self.workers:
            worker.signal(15)
        for worker in self.workers:
            worker.stop(worker_timeout)
        for mapping in self.mappings:
            mapping.stop()
        if self.stack is not None and self._emulator is None:
            # A shared emulator outlives this stack: leave it as we found it.
            self.stack.destroy()
        if self._emulator is not None:
            self._emulator.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
