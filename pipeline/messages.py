"""The pipeline's wire contracts: the task request and the notification.

Both are frozen pydantic models carried as JSON, with a ``schema_version`` so a
consumer can tell which shape it holds. A change that removes or renames a
field bumps the version; adding an optional field does not. The notification is
what users build on: its JSON Schema is printed by ``pipeline schema``.

Nothing here imports boto3 or celery: producers, consumers and tests share it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.options import InForce
from pipeline.quality import Location, QualityRef
from pipeline.shadow import ShadowRef

SCHEMA_VERSION: Literal[1] = 1


def utc_now() -> datetime:
    return datetime.now(UTC)


class _Contract(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ObjectRef(_Contract):
    """An S3 object as the event announced it; ``key`` is the real, decoded key."""

    bucket: str
    key: str
    etag: str = Field(description="The object's ETag without quotes.")
    size: int = Field(ge=0)


class ModelRef(_Contract):
    name: str
    version: int = Field(ge=1)
    alias: str | None = Field(
        default=None,
        description="The alias that chose the version (`champion` for an upload with no pin, "
        "when it is set), or null: the version was pinned, or the latest.",
    )

    @property
    def bare(self) -> ModelRef:
        """The version alone: what caches and job ids are keyed by, whatever chose it."""
        return self if self.alias is None else ModelRef(name=self.name, version=self.version)


class ScoreRequest(_Contract):
    """The argument of the ``score`` task: one accepted file to score."""

    schema_version: Literal[1] = SCHEMA_VERSION
    job_id: str
    input: ObjectRef
    model: ModelRef
    received_at: datetime = Field(description="When the object was created in S3.")
    run: int = Field(default=0, ge=0, description="0 for the upload; n for its n-th retry.")
    shard: int | None = Field(
        default=None,
        ge=0,
        description="Set when the task scores one shard of a file split across workers "
        "(its plan is in the ledger); the job is still the file's.",
    )
    options: InForce = Field(
        default_factory=InForce,
        description="What the output holds: the file's options over its model's defaults.",
    )
    shadow: ModelRef | None = Field(
        default=None,
        description="The model's shadow version, which scores the file too, in the same "
        "pass, for comparison only (`pipeline model shadow`).",
    )


class CompileRequest(_Contract):
    """The argument of the ``compile`` task: compile one published model version."""

    schema_version: Literal[1] = SCHEMA_VERSION
    model: ModelRef


class OutputRef(_Contract):
    bucket: str
    key: str
    rows: int = Field(ge=0)
    format: str = Field(description="The output's format, the same as the input's.")
    engine: Literal["compiled", "lightgbm"] | None = Field(
        default=None,
        description="What scored the file: `compiled` (the model's compiled forest, "
        "checked against LightGBM) or `lightgbm` (`Booster.predict`).",
    )
    options: InForce | None = Field(
        default=None,
        description="The options in force: carried `columns` (null: all), `drop_columns`, "
        "`scores`, `threshold`, `num_iteration` (null: all), `max_bad_rows`.",
    )
    bad_rows: int = Field(
        default=0, ge=0, description="Rows set aside (not scored) for unreadable values."
    )
    errors: Location | None = Field(
        default=None, description="The rows set aside, as CSV: row, column, value, reason."
    )


class ErrorInfo(_Contract):
    code: str = Field(description="Stable machine-readable reason, e.g. `bad_value`.")
    message: str = Field(description="What is wrong and where, for a person.")


Status = Literal["succeeded", "failed", "running"]


class Progress(_Contract):
    """How far a running file has got; recorded every few seconds while it runs."""

    key: str
    etag: str
    rows: int = Field(ge=0, description="Rows scored and written so far.")
    input_bytes: int = Field(ge=0, description="Bytes of the input read so far.")
    input_size: int = Field(ge=0)
    started_at: datetime
    updated_at: datetime

    @property
    def fraction(self) -> float:
        """Of the input read, from 0 to 1 (a file is done when its notification says so)."""
        return min(1.0, self.input_bytes / self.input_size) if self.input_size else 1.0


#: A notification's JSON stays under this: far below SNS's 256 KB message limit.
MAX_NOTIFICATION_BYTES = 64 * 1024


class Notification(_Contract):
    """Published to the notification topic when a file is done, one way or the other."""

    schema_version: Literal[1] = SCHEMA_VERSION
    job_id: str
    status: Status
    input: ObjectRef | None = Field(
        description="The file; absent only for a task message too broken to name one "
        "(error code `poison_message`)."
    )
    model: ModelRef | None = Field(
        default=None, description="The model version used; absent if none could be chosen."
    )
    output: OutputRef | None = Field(default=None, description="Present when succeeded.")
    error: ErrorInfo | None = Field(default=None, description="Present when failed.")
    received_at: datetime
    started_at: datetime | None = Field(
        default=None, description="When a worker started on the file; absent if it never did."
    )
    finished_at: datetime
    run: int = Field(
        default=0, ge=0, description="0 for the upload's own run; n for its n-th retry."
    )
    progress: Progress | None = Field(
        default=None,
        description="On `running` notifications only (off unless enabled): how far it got.",
    )
    quality: QualityRef | None = Field(
        default=None,
        description="The file's quality report (`report`, `html`), its largest PSI against "
        "the model's baseline (`max_psi`) and `warnings`; on files that were scored, and on "
        "those failed by the model's quality policy (code `quality`).",
    )
    shadow: ShadowRef | None = Field(
        default=None,
        description="While the model has a shadow version: how its predictions of the "
        "file differ from the primary's, and where the comparison's report is.",
    )

    def is_for(self, key: str, etag: str) -> bool:
        """Whether this answers the upload of ``key`` with this ETag (``running`` does not)."""
        return (
            self.status != "running"
            and self.input is not None
            and (self.input.key, self.input.etag) == (key, etag)
        )

    def bounded(self, limit: int = MAX_NOTIFICATION_BYTES) -> Notification:
        """This notification, its error message shortened if the whole would pass ``limit``.

        SNS refuses a message over 256 KB, and a refused one is never
        announced: a header of thousands of long names must not do that.
        """
        size = len(self.model_dump_json().encode())
        if size <= limit or self.error is None:
            return self
        message = self.error.message
        keep = max(0, len(message) - (size - limit) - 100)
        shortened = f"{message[:keep]}… ({len(message) - keep} more characters)"
        return self.model_copy(
            update={"error": self.error.model_copy(update={"message": shortened})}
        )


def succeeded(
    request: ScoreRequest,
    output: OutputRef,
    started_at: datetime,
    quality: QualityRef | None = None,
    shadow: ShadowRef | None = None,
) -> Notification:
    return Notification(
        job_id=request.job_id,
        status="succeeded",
        input=request.input,
        model=request.model,
        output=output,
        received_at=request.received_at,
        started_at=started_at,
        finished_at=utc_now(),
        run=request.run,
        quality=quality,
        shadow=shadow,
    )


def failed(
    *,
    job_id: str,
    input: ObjectRef,
    error: ErrorInfo,
    received_at: datetime,
    model: ModelRef | None = None,
    started_at: datetime | None = None,
    run: int = 0,
    quality: QualityRef | None = None,
) -> Notification:
    return Notification(
        job_id=job_id,
        status="failed",
        input=input,
        model=model,
        error=error,
        received_at=received_at,
        started_at=started_at,
        finished_at=utc_now(),
        run=run,
        quality=quality,
    )
