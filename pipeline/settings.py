"""The one place configuration is read from the environment.

Every process of the pipeline (the upload handler, the dead-letter handler, the
worker) is configured by ``PIPELINE_*`` variables that ``template.yaml`` sets from
its resources. Nothing else in the code base reads ``os.environ``: a component
that needs a value takes a ``Settings`` (or the value) as an argument.

The AWS endpoint, region and credentials are not here on purpose: boto3 and
kombu read the standard ``AWS_*`` variables themselves, so the same code runs
against the local emulator (``AWS_ENDPOINT_URL`` set) and against AWS (unset).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "PIPELINE_"


class Settings(BaseSettings):
    """Configuration shared by the handler and the worker."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    input_bucket: str = ""
    output_bucket: str = ""
    model_bucket: str = ""
    notification_topic_arn: str = ""
    task_queue_url: str = ""

    #: Seconds a broker long poll waits for a message (SQS allows 0-20).
    broker_wait_seconds: int = Field(default=20, ge=1, le=20)
    #: Files larger than this are refused before any byte is read.
    max_input_bytes: int = Field(default=50 * 1024**3, gt=0)
    #: A CSV, JSON lines or Parquet file larger than this is split into shards of
    #: about this size, scored by as many workers at once (see ``pipeline.worker.sharding``).
    shard_bytes: int = Field(default=256 * 1024**2, ge=1024**2)
    #: Rows per chunk through the overlapped stages: each stage and hand-off
    #: holds a chunk, so this sets the worker's memory; large enough to amortize
    #: a prediction call (bench/memory.py measured 8192 against 16k and 32k).
    batch_rows: int = Field(default=8_192, gt=0)
    #: The longest line a CSV file may have (header included), and the longest
    #: JSON lines record: past it a file is refused at once, naming the line.
    #: CSV is parsed in blocks of at least this size, so it also bounds memory.
    max_line_bytes: int = Field(default=1024**2, ge=1024)
    #: Threads per prediction call, LightGBM's or the compiled forest's (0: all cores).
    predict_threads: int = Field(default=0, ge=0)
    #: ``auto``: a model's compiled forest once it passed the exactness gate,
    #: LightGBM until then; ``lightgbm``: always ``Booster.predict``.
    predict_engine: Literal["auto", "lightgbm"] = "auto"
    #: A compile still running after this long is stopped (its whole process
    #: group) and the model stays on LightGBM, saying so in ``model list``.
    compile_timeout_seconds: float = Field(default=60.0, gt=0)
    #: While a model's compile is pending, how often a worker looks for its result.
    engine_recheck_seconds: float = Field(default=5.0, ge=0)
    #: Attempts at a file when S3 or SNS fail transiently, and the first backoff.
    retry_attempts: int = Field(default=4, ge=1)
    retry_base_seconds: float = Field(default=1.0, ge=0)
    #: The task queue's visibility timeout. A worker extends its message's
    #: visibility by this much every third of it while a file runs (heartbeat),
    #: so it can be short: a dead worker's file is back on the queue soon.
    task_visibility_seconds: int = Field(default=120, ge=3, le=43_200)
    #: After a failed delivery, the next one waits base * 2^(delivery-1) seconds (capped).
    redelivery_base_seconds: float = Field(default=15.0, ge=0)
    #: A file still running after this long fails with code ``timeout`` (0: never).
    job_timeout_seconds: float = Field(default=6 * 3600.0, ge=0)
    #: How often a running file's progress is recorded in the ledger (seconds).
    progress_seconds: float = Field(default=5.0, gt=0)
    #: How often a long file also publishes a ``running`` notification (0: never).
    progress_notify_seconds: float = Field(default=0.0, ge=0)
    #: The level of the JSON log lines every process writes (``logs.configure``).
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: Locally, a file that exists while this worker holds a file (busy).
    busy_file: str = ""
    #: On ECS, the agent's endpoint (set by ECS): the worker protects its task
    #: from scale-in while it holds a file.
    ecs_agent_uri: str = Field(
        default="", validation_alias=AliasChoices("PIPELINE_ECS_AGENT_URI", "ECS_AGENT_URI")
    )

    def as_environment(self) -> dict[str, str]:
        """The variables that recreate these settings in a child process."""
        return {
            f"{ENV_PREFIX}{name.upper()}": str(value) for name, value in self.model_dump().items()
        }

    @classmethod
    def from_environment(cls, variables: Mapping[str, str]) -> Settings:
        """Settings from an explicit set of ``PIPELINE_*`` variables (as a template sets them)."""
        fields = {
            name.removeprefix(ENV_PREFIX).lower(): value
            for name, value in variables.items()
            if name.startswith(ENV_PREFIX)
        }
        return cls.model_validate(fields)


def own_variables() -> dict[str, str]:
    """This process's own ``PIPELINE_*`` variables.

    ``pipeline dev`` gives them precedence over the template's values, for the
    handlers and the workers alike: ``PIPELINE_SHARD_BYTES=8388608 pipeline dev``.
    """
    return {name: value for name, value in os.environ.items() if name.startswith(ENV_PREFIX)}


def child_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment plus ``extra``, for starting a subprocess."""
    return {**os.environ, **extra}


def set_process_environment(variables: Mapping[str, str]) -> dict[str, str | None]:
    """Export variables to this process and its children; what they were before.

    Used only by the local stack, to point boto3 and kombu at the emulator the
    way ``AWS_ENDPOINT_URL`` would in a shell, and to put them back after.
    """
    before = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    return before


def restore_process_environment(before: Mapping[str, str | None]) -> None:
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
