"""Creating boto3 clients, and translating botocore errors at the edge.

Clients are created here once per process and passed to the functions that
need them, so tests and the local stack can point them anywhere. The endpoint
comes from the standard ``AWS_ENDPOINT_URL`` variable when it is set (the local
emulator) and from boto3's defaults otherwise (AWS).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
    ParamValidationError,
)
from botocore.utils import determine_content_length

from pipeline.errors import ConfigurationError, JobTimeout, TransientError

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

# botocore's "standard" mode retries throttling and 5xx with backoff and jitter;
# what still escapes it is raised as TransientError for the task to retry.
CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 5}, connect_timeout=5, read_timeout=60
)

_TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeoutException",
        "RequestLimitExceeded",
        "KMSThrottlingException",
        # Another conditional write to the same key is in progress: retry it.
        "ConditionalRequestConflict",
    }
)


#: Bodies are not hashed into the signature. Over HTTPS with a checksum header (every
#: upload: botocore's CRC32) that is botocore's own default, so on AWS nothing
#: changes; over plain HTTP (the local emulator) botocore would SHA-256 every part,
#: about a tenth of the worker's CPU on a 300 MB output.
_S3 = Config(s3={"payload_signing_enabled": False})


def s3_client(
    region: str | None = None, *, retried: bool = True, session: boto3.Session | None = None
) -> S3Client:
    """``retried=False``: one try, for a read whose caller falls back to a retried one.
    ``session``: as that identity (a local stack's part playing its template role)."""
    config = CONFIG.merge(_S3)
    if not retried:
        config = config.merge(Config(retries={"total_max_attempts": 1}))
    client = (session or boto3).client("s3", region_name=region, config=config)
    client.meta.events.register_last("before-call.s3", _sent_by_size)
    return client


#: Bodies up to this size are sent without asking first (``Expect: 100-continue``).
ASK_FIRST_BYTES = 1 << 20


def _sent_by_size(params: dict[str, Any], **_: Any) -> None:
    """A small body goes with its request; a large one waits to be asked, then goes whole.

    botocore asks before every upload with a body (``Expect: 100-continue``),
    whatever its size: a round trip on each of a small file's uploads (its
    output, its reports, its ledger entries), where sending the body would
    take less than the round trip. A large body (an output's parts) still
    waits, so a refused one is not sent.

    botocore also wraps every body in a ``BytesIO``, which urllib3 reads and
    sends 16 KiB at a time: 512 reads, copies and sends for an 8 MiB part,
    each giving up the interpreter lock. A large body is given as its bytes,
    sent at once: 36 parts of 8 MiB (a 1M-row CSV's output) cost the client
    0.16-0.18 CPU-s against 0.22-0.27, in 0.68-0.74 s against 0.74-0.98. A
    retry sends the bytes again, as it would the stream. Small bodies stay
    streams: no gain was measured there.
    """
    body = params.get("body")
    length = determine_content_length(body)
    if length is None:
        return
    if length <= ASK_FIRST_BYTES:
        params.get("headers", {}).pop("Expect", None)
    elif isinstance(body, io.BytesIO) and body.tell() == 0:
        params["body"] = body.getvalue()


def sqs_client(region: str | None = None, *, session: boto3.Session | None = None) -> SQSClient:
    return (session or boto3).client("sqs", region_name=region, config=CONFIG)


def sns_client(region: str | None = None, *, session: boto3.Session | None = None) -> SNSClient:
    return (session or boto3).client("sns", region_name=region, config=CONFIG)


def cloudformation_client(region: str | None = None) -> CloudFormationClient:
    return boto3.client("cloudformation", region_name=region, config=CONFIG)


def logs_client(region: str | None = None) -> CloudWatchLogsClient:
    return boto3.client("logs", region_name=region, config=CONFIG)


def ecs_client(region: str | None = None) -> ECSClient:
    return boto3.client("ecs", region_name=region, config=CONFIG)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def http_status(exc: ClientError) -> int:
    meta: Any = exc.response.get("ResponseMetadata", {})
    return int(meta.get("HTTPStatusCode", 0))


def is_transient(exc: BaseException) -> bool:
    """Worth another try: throttling, 5xx, a conflicting write, a failed or broken connection.

    Narrowly so: botocore's other errors (a parameter that fails validation, no
    credentials) are the deployment's, and the same call fails the same way.
    """
    if isinstance(exc, ClientError):
        return error_code(exc) in _TRANSIENT_CODES or http_status(exc) >= 500
    return isinstance(exc, ConnectionError | HTTPClientError)


def is_access_denied(exc: BaseException) -> bool:
    """A refusal by IAM: never worth another try, and the deployment's to fix."""
    if not isinstance(exc, ClientError):
        return False
    code = error_code(exc)
    return code in {"AccessDenied", "AccessDeniedException"} or (
        http_status(exc) == 403 and "AccessDenied" in str(exc)
    )


def denial(exc: ClientError) -> str:
    """What IAM said: who may not perform which action on which resource."""
    said = str(exc.response.get("Error", {}).get("Message", "")) or str(exc)
    start = said.find("User: ")
    if start >= 0:  # the sentence, out of a body botocore could not parse
        said = said[start:].split("</Message>", 1)[0]
    return f"{exc.operation_name}: {said}"


def raise_transient(exc: BaseException, doing: str) -> None:
    """Re-raise ``exc`` as ``TransientError`` when it is worth retrying.

    A configuration error (botocore refusing a parameter, missing credentials,
    a permission IAM denies) becomes ``ConfigurationError``: no delivery can
    succeed until it is fixed.

    An error botocore raised because the job's time limit interrupted a
    request (it wraps whatever a request raises) is the time limit, never
    worth a retry.
    """
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, JobTimeout):
            raise cause from exc
        cause = cause.__cause__ or cause.__context__
    if is_transient(exc):
        raise TransientError(f"{doing}: {exc}") from exc
    if isinstance(exc, ClientError) and is_access_denied(exc):
        raise ConfigurationError(
            f"{doing}: access denied: {denial(exc)} (the role this process runs as lacks the "
            "permission; add it to the template)"
        ) from exc
    if isinstance(exc, ParamValidationError | NoCredentialsError):
        raise ConfigurationError(
            f"{doing}: {exc} (check the PIPELINE_* settings and AWS credentials of this process)"
        ) from exc


@contextlib.contextmanager
def translated(doing: str) -> Iterator[None]:
    """AWS errors raised in the block become the pipeline's own, saying what was being done.

    ``with aws.translated("reading the model"):`` is the one place an AWS call's
    failure is sorted: transient (retried), configuration (fails the file
    once), the job's time limit, or, unchanged, anything else (a bug).
    """
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise_transient(exc, doing)
        raise


#: What S3 answers a conditional put whose key exists (a 412); a 409 means
#: another conditional write to the key is under way, and is retried.
_EXISTS = "PreconditionFailed"


def put_once(s3: S3Client, bucket: str, key: str, body: bytes, doing: str, **extra: Any) -> bool:
    """Write ``key`` unless it exists (``If-None-Match: *``): whether this call wrote it.

    The write-once primitive of the ledger and the model store: the first
    writer of an outcome, a plan, a version number or a compile claim wins,
    and every other caller learns that it lost.
    """
    with translated(doing):
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*", **extra)
        except ClientError as exc:
            if error_code(exc) == _EXISTS:
                return False
            raise
    return True
