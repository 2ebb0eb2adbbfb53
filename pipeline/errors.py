"""What can go wrong, told apart by type rather than by message text.

Three kinds, and each is handled one way:

* ``InputError``: the user's file (or its key, or the model it names) is wrong.
  Never retried; answered at once with a ``failed`` notification whose message
  says what and where.
* ``TransientError``: the platform hiccuped (throttling, 5xx, a reset
  connection). Retried with backoff.
* anything else is a bug, reported as ``internal``.

Each class fixes its ``code``, the stable string consumers see in
``notification.error.code``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar


class PipelineError(Exception):
    """Root of the pipeline's own errors."""

    code: ClassVar[str] = "internal"


class InputError(PipelineError):
    """The file, its key or its model cannot be scored; retrying will not help.

    ``row`` and ``line`` say where in the stream read the error is (1-based),
    when it is at one place: a split file's shard counts from its own start,
    and the file's answer is counted from the file's (``shards.relocated``).
    """

    code = "invalid_input"

    def __init__(self, message: str, *, row: int | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.row, self.line = row, line


class UnroutableKey(InputError):
    code = "unroutable_key"


class UnknownModel(InputError):
    code = "unknown_model"


class InvalidModel(InputError):
    code = "invalid_model"


class UnsupportedFormat(InputError):
    code = "unsupported_format"


class EmptyFile(InputError):
    code = "empty_file"


class FileTooLarge(InputError):
    code = "file_too_large"


class UnreadableFile(InputError):
    code = "unreadable_file"


class SchemaMismatch(InputError):
    code = "schema_mismatch"


class BadValue(InputError):
    code = "bad_value"


class BadOption(InputError):
    """A scoring option (``columns``, ``scores``, ``threshold``, ...) that cannot be honoured."""

    code = "bad_option"


class QualityFailed(InputError):
    """A file past its model's quality limits (``--on-quality fail``); its report is written."""

    code = "quality"

    def __init__(self, message: str, quality: object = None) -> None:
        super().__init__(message)
        #: The notification's ``quality`` (a ``QualityRef``): where the report is.
        self.quality = quality


class InputChanged(InputError):
    """The object was overwritten or deleted after its event was sent."""

    code = "input_changed"


class NotRetryable(InputError):
    """``pipeline retry`` was asked for a job that cannot run again (and why)."""

    code = "not_retryable"


class JobTimeout(PipelineError):
    """The file ran longer than the job time limit; final, like an input error."""

    code = "timeout"


class ConfigurationError(PipelineError):
    """The deployment is wrong (an empty bucket name, no credentials); final for this run.

    Retrying cannot help until someone fixes the settings, so the file fails at
    once with code ``configuration``; ``pipeline retry`` reruns it afterwards.
    """

    code = "configuration"


class TransientError(PipelineError):
    """A temporary failure of a service we depend on; worth retrying."""

    code = "transient"


def located(exc: BaseException | str, where: str) -> str:
    """The error's message, prefixed with the file it is about unless it names it already."""
    text = str(exc)
    return text if where in text else f"{where}: {text}"


#: Names listed in a message before the rest are counted: a notification must
#: stay far below SNS's 256 KB whatever a file's header holds.
SHOWN_NAMES = 20
_SHOWN_NAME_CHARS = 100


def names_list(names: Sequence[str], shown: int = SHOWN_NAMES) -> str:
    """``a, b, c`` for a few names; the first ``shown`` and a count of the rest for many."""
    clipped = [n if len(n) <= _SHOWN_NAME_CHARS else n[:_SHOWN_NAME_CHARS] + "…" for n in names]
    if len(clipped) <= shown:
        return ", ".join(clipped)
    return f"{', '.join(clipped[:shown])} and {len(clipped) - shown} more"
