"""Decisions about a file that need no I/O: which model, which job, where the result goes.

A key's first path segment names the model (``churn/2026/jan.csv`` is scored
by the model ``churn``). The job id is a hash of everything that decides the
result (bucket, key, ETag and model version), so the duplicate deliveries
S3 and SQS make share one id and one output key.
"""

from __future__ import annotations

import hashlib
import re

from pipeline.errors import UnroutableKey
from pipeline.messages import ModelRef, ObjectRef

MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MODEL_NAME_RULE = "1-63 characters of a-z, 0-9, '-' and '_', starting with a letter or digit"
ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
ALIAS_RULE = "1-63 characters of a-z, 0-9, '-' and '_', starting with a letter"
#: Words that already mean a version: an alias named so would shadow them.
_RESERVED_ALIAS = re.compile(r"^(latest|v\d+)$")
#: The alias an upload with no pin is scored by, when it is set.
CHAMPION = "champion"


def alias_problem(alias: str) -> str | None:
    """Why ``alias`` cannot name a version, or None if it can."""
    if not ALIAS.match(alias):
        lower = alias.lower()
        hint = f"; did you mean {lower!r}?" if ALIAS.match(lower) else ""
        return f"{alias!r} is not an alias ({ALIAS_RULE}){hint}"
    if _RESERVED_ALIAS.match(alias):
        return f"{alias!r} cannot be an alias: it reads as a version"
    return None


#: S3's longest key, and the most an output's key adds to its input's: ``/``, the
#: 32-character job id, and a format's suffix where the input had none.
S3_KEY_BYTES = 1024
_OUTPUT_KEY_GROWTH = 1 + 32 + len(".jsonl.gz")
MAX_INPUT_KEY_BYTES = S3_KEY_BYTES - _OUTPUT_KEY_GROWTH


def model_name_for(key: str) -> str:
    """The model named by a key's first path segment; a key whose output's key would be
    too long for S3 is refused here, before anything is scored."""
    size = len(key.encode())
    if size > MAX_INPUT_KEY_BYTES:
        raise UnroutableKey(
            f"key {key[:60]!r}… is {size:,} bytes: its output's key would pass S3's limit of "
            f"{S3_KEY_BYTES:,} bytes; keep input keys to {MAX_INPUT_KEY_BYTES:,} bytes"
        )
    head, sep, rest = key.partition("/")
    if not sep or not rest:
        raise UnroutableKey(
            f"key {key!r} does not name a model: upload files as '<model-name>/<file>'"
        )
    if not MODEL_NAME.match(head):
        raise UnroutableKey(
            f"key {key!r} starts with {head!r}, which is not a model name ({MODEL_NAME_RULE})"
        )
    return head


def job_id(obj: ObjectRef, model: ModelRef | None, run: int = 0) -> str:
    """Deterministic id of one run of scoring one version of one object with one model version.

    Run 0 is the upload's own; ``pipeline retry`` starts run 1, 2, … of a failed
    job, each a job of its own with its own single outcome.
    """
    version = "" if model is None else f"{model.name}@{model.version}"
    text = f"{obj.bucket}\n{obj.key}\n{obj.etag}\n{version}" + (f"\nrun {run}" if run else "")
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def companion_key(output_key: str, job: str, suffix: str) -> str:
    """A file beside a job's output, named by the job: ``<job>.quality.json`` and the like."""
    folder = output_key.rsplit("/", 1)[0] if "/" in output_key else ""
    return f"{folder}/{job}{suffix}" if folder else f"{job}{suffix}"


def output_key(stem: str, job: str, suffix: str) -> str:
    """Where a job's result goes: beside the input's path, named by the job.

    ``churn/2026/jan.csv`` (stem ``churn/2026/jan``) scored as job ``ab12…``
    becomes ``churn/2026/jan/ab12….csv``: every upload of the same key gets its
    own result, and a duplicate run of one job overwrites its own output with
    the same bytes.
    """
    return f"{stem}/{job}{suffix}"
