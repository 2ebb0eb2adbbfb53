"""The whole pipeline on one machine: emulator, resources, handler poller, workers.

``LocalStack`` starts everything in order and stops everything it started, in
reverse; ``pipeline dev``, ``pipeline demo``, the ``pipeline_stack`` fixture and
the end-to-end tests all use it. Settings reach the handler and the workers
from the template (the upload function's ``Environment``), as they would in AWS.

While it runs, this process's ``AWS_*`` variables point at the emulator: the
handlers run in this process and read them, as they would in Lambda. ``stop``
puts them back as they were. A ``Client`` needs none of that: it gets the
endpoint from the outputs. The stack's own emulator runs in a process of its
own (``Emulator``'s ``separate``), as AWS runs apart from its clients.

With ``enforce_iam`` the stack's emulator checks every request against IAM,
and each part runs as its template role (``identities``).
"""

from __future__ import annotations

import functools
import gc
import json
import logging
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import boto3

from pipeline import logs
from pipeline.functions import dead_letters
from pipeline.functions.intake import IntakeRuntime, handle_event
from pipeline.local import emulator, identities, template
from pipeline.local.identities import DEAD_LETTER_ROLE, UPLOAD_ROLE, WORKER_ROLE
from pipeline.local.poller import EventSourceMapping
from pipeline.local.provision import Stack, provision
from pipeline.local.supervisor import Supervisor
from pipeline.local.workers import Sink, WorkerProcess
from pipeline.scaling import Policy
from pipeline.settings import Settings, restore_process_environment, set_process_environment
from pipeline.stores import aws

log = logging.getLogger(__name__)

DEFAULT_STACK_NAME = "pipeline-local"
DEFAULT_REGION = "us-east-1"
_STACK_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


class LocalStack:
    """The whole pipeline on this machine, from ``start()`` (or a ``with`` block) to ``stop()``.

    Once started, ``outputs`` holds the template's outputs plus ``EndpointUrl``,
    ``Region`` and ``StackName``: ``Client.from_local(stack)`` talks to it.
    Without ``endpoint_url`` it runs an emulator of its own on a free port.
    ``environment`` (``PIPELINE_*`` variables) and ``settings`` (fields) override
    the template's values for the handlers and workers.
    """

    def __init__(
        self,
        *,
        stack_name: str = DEFAULT_STACK_NAME,
        region: str = DEFAULT_REGION,
        port: int = 0,
        endpoint_url: str | None = None,
        worker_endpoint_url: str | None = None,
        workers: int = 1,
        scaling: Policy | None = None,
        template_path: Path | None = None,
        state_dir: Path | None = None,
        parameters: Mapping[str, str] | None = None,
        settings: Mapping[str, Any] | None = None,
        environment: Mapping[str, str] | None = None,
        sink: Sink = print,
        logs_dir: Path | None = None,
        enforce_iam: bool = False,
    ) -> None:
        if not _STACK_NAME.match(stack_name):
            raise ValueError(
                f"stack name {stack_name!r}: 1-31 characters of a-z, 0-9 and '-', "
                "starting with a letter (it becomes part of bucket names)"
            )
        self.stack_name, self.region, self._port = stack_name, region, port
        self._endpoint_url = endpoint_url
        #: Where workers reach AWS, if not the emulator directly (a proxy, say).
        self._worker_endpoint_url = worker_endpoint_url
        self._worker_count = workers
        self._scaling = scaling
        #: Worker busy markers and status.json; a temporary folder unless given.
        self._given_state_dir = state_dir
        self._template_path = template_path
        self._parameters = dict(parameters or {})
        self._setting_overrides = dict(settings or {})
        #: ``PIPELINE_*`` variables over the template's, as a deployment's parameters would be.
        self._environment = {
            name: value
            for name, value in (environment or {}).items()
            if name.startswith("PIPELINE_")
        }
        self._sink = sink
        #: Every process's JSON log lines (``pipeline logs`` reads them); the state folder's
        #: ``logs`` unless given.
        self._given_logs_dir = logs_dir
        #: Each part runs as its template role, on an emulator that checks every request.
        self._enforce_iam = enforce_iam
        if enforce_iam and endpoint_url is not None:
            raise ValueError(
                "enforce_iam needs the stack's own emulator (no endpoint_url): enforcement "
                "applies to everything an emulator serves"
            )
        self.identities: identities.Identities | None = None
        self.logs_dir: Path | None = None
        self._log_handlers: list[logging.Handler] = []
        self._emulator: emulator.Emulator | None = None
        self.stack: Stack | None = None
        self.settings: Settings | None = None
        self.mappings: list[EventSourceMapping] = []
        self.supervisor: Supervisor | None = None
        self._state_dir: Path | None = None
        self.outputs: dict[str, str] = {}
        self._environment_before: dict[str, str | None] = {}

    @property
    def emulator_pid(self) -> int | None:
        """The process of the stack's own emulator; None on a given ``endpoint_url``."""
        return self._emulator.pid if self._emulator is not None else None

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
            self._emulator = emulator.Emulator(self._port, separate=True).start()
            self._endpoint_url = self._emulator.url
        self._environment_before = set_process_environment(
            emulator.environment(self.endpoint_url, self.region)
        )
        loaded = template.load(self._template_path)
        self.stack = provision(loaded, self.stack_name, self.region, self._parameters)
        outputs = self.stack.outputs
        sessions = self._enforce(loaded)
        self.settings = self._function_settings("UploadFunction")
        upload, dead_letters_session, supervisor = (
            sessions.get(name) for name in (UPLOAD_ROLE, DEAD_LETTER_ROLE, "supervisor")
        )
        self.mappings = [
            EventSourceMapping(
                "upload",
                outputs["UploadEventsQueueUrl"],
                functools.partial(
                    handle_event, runtime=IntakeRuntime.create(self.settings, upload)
                ),
                self.region,
                sqs=aws.sqs_client(self.region, session=upload),
            ),
            EventSourceMapping(
                "dead-letters",
                outputs["TaskDeadLetterQueueUrl"],
                functools.partial(
                    dead_letters.handle_event,
                    runtime=dead_letters.DeadLetterRuntime.create(
                        self._function_settings("DeadLetterFunction"), dead_letters_session
                    ),
                ),
                self.region,
                sqs=aws.sqs_client(self.region, session=dead_letters_session),
            ),
        ]
        self._state_dir = self._given_state_dir or Path(
            tempfile.mkdtemp(prefix=f"{self.stack_name}-")
        )
        self._open_logs(self._given_logs_dir or self._state_dir / "logs")
        for mapping in self.mappings:
            mapping.start()
        worker_identity = (
            self.identities.roles[WORKER_ROLE].environment() if self.identities else {}
        )
        self.supervisor = Supervisor(
            {
                **self._worker_runtime_variables(),
                **emulator.environment(self._worker_endpoint_url or self.endpoint_url, self.region),
                **worker_identity,
                **self._worker_settings().as_environment(),
            },
            self._state_dir,
            self._sink,
            workers=self._worker_count,
            policy=self._scaling,
            queue_url=outputs["TaskQueueUrl"],
            sqs=aws.sqs_client(self.region, session=supervisor),
            logs_dir=self.logs_dir,
        )
        self.supervisor.start(wait_ready=wait_for_workers)
        self.outputs = {
            **outputs,
            "EndpointUrl": self.endpoint_url,
            "Region": self.region,
            "StackName": self.stack_name,
            "StatusFile": str(self.supervisor.status_path),
            "LogsFolder": str(self.logs_dir),
        }
        if self.identities is not None:
            self.outputs["ClientAccessKeyId"] = self.identities.client.access_key_id
            self.outputs["ClientSecretAccessKey"] = self.identities.client.secret_access_key
            self.outputs["ClientPolicyArn"] = self.identities.client_policy_arn
        # Everything botocore (and moto, with an emulator in this process) loaded to get
        # here lives as long as the stack: out of the collector's sight, a full collection
        # no longer walks its quarter-million objects (a 220-240 ms pause about once in
        # 60 small files, stalling whichever request or poller was running).
        gc.freeze()

    def _enforce(self, loaded: dict[str, Any]) -> dict[str, boto3.Session]:
        """With ``enforce_iam``: the template's identities, then checking on; their sessions.

        This process's own requests (removing the stack, its status) go as an
        administrator from then on.
        """
        if not self._enforce_iam or self._emulator is None or self.stack is None:
            return {}
        self.identities = identities.create(loaded, self.stack, self.region)
        before = set_process_environment(self.identities.admin.environment())
        self._environment_before = {**before, **self._environment_before}
        self._emulator.enforce()
        found = {name: i.session(self.region) for name, i in self.identities.roles.items()}
        return {**found, "supervisor": self.identities.supervisor.session(self.region)}

    def _open_logs(self, folder: Path) -> None:
        """This process's pipeline records (pollers, functions, supervisor): JSON to a file,
        readable lines to the sink."""
        folder.mkdir(parents=True, exist_ok=True)
        self.logs_dir = folder
        file_handler = logging.FileHandler(folder / "local-stack.jsonl")
        file_handler.setFormatter(logs.JsonFormatter("local-stack", logs.LOCAL_ROLES))
        self._log_handlers = [
            file_handler,
            logs.SinkHandler(self._sink, "local-stack", logs.LOCAL_ROLES),
        ]
        logger = logging.getLogger("pipeline")
        logger.setLevel(self.settings.log_level if self.settings else "INFO")
        for handler in self._log_handlers:
            logger.addHandler(handler)

    def _close_logs(self) -> None:
        logger = logging.getLogger("pipeline")
        for handler in self._log_handlers:
            logger.removeHandler(handler)
            handler.close()
        self._log_handlers = []

    @property
    def workers(self) -> list[WorkerProcess]:
        return [] if self.supervisor is None else self.supervisor.workers

    def _function_settings(self, function: str) -> Settings:
        """A function's settings, from its ``Environment`` in the template, as Lambda sets them."""
        assert self.stack is not None  # noqa: S101
        variables = self.stack.properties[function]["Environment"]["Variables"]
        return self._settings_from({**variables, **self._environment})

    def _worker_variables(self) -> dict[str, str]:
        """The worker container's ``Environment`` in the task definition."""
        assert self.stack is not None  # noqa: S101
        (container,) = self.stack.properties["WorkerTaskDefinition"]["ContainerDefinitions"]
        return {item["Name"]: str(item["Value"]) for item in container["Environment"]}

    def _worker_settings(self) -> Settings:
        """The worker container's settings, from its ``Environment`` in the task definition."""
        return self._settings_from({**self._worker_variables(), **self._environment})

    def _worker_runtime_variables(self) -> dict[str, str]:
        """The container's variables that are not settings (the allocator's, say), as ECS
        sets them; settings, the endpoint, region and identity are the local stack's."""
        return {
            name: value
            for name, value in self._worker_variables().items()
            if not name.startswith(("PIPELINE_", "AWS_"))
        }

    def _settings_from(self, variables: Mapping[str, str]) -> Settings:
        return Settings.from_environment(variables).model_copy(update=self._setting_overrides)

    def write_outputs(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.outputs, indent=2) + "\n")

    def stop(self) -> None:
        gc.unfreeze()  # what died meanwhile can be collected again
        if self.supervisor is not None:
            self.supervisor.stop()
        for mapping in self.mappings:
            mapping.stop()
        self._close_logs()
        if self.stack is not None and self._emulator is None:
            # A shared emulator outlives this stack: leave it as we found it.
            self.stack.destroy()
        if self._emulator is not None:
            self._emulator.stop()
        if self._state_dir is not None and self._given_state_dir is None:
            shutil.rmtree(self._state_dir, ignore_errors=True)
        restore_process_environment(self._environment_before)
        self._environment_before = {}

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
