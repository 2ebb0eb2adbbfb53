"""Telling botocore's errors apart: worth a retry, the deployment's fault, or a bug."""

from __future__ import annotations

import os
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from pipeline.errors import ConfigurationError, TransientError
from pipeline.stores.aws import ASK_FIRST_BYTES, is_transient, raise_transient


def client_error(code: str, status: int, message: str = "") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message or code},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "PutObject",
    )


@pytest.mark.parametrize(
    "error",
    [
        client_error("SlowDown", 503),
        client_error("InternalError", 500),
        client_error("ConditionalRequestConflict", 409),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:9"),
    ],
    ids=["slow-down", "5xx", "conditional-conflict", "no-connection", "read-timeout"],
)
def test_these_are_worth_another_try(error: Exception) -> None:
    assert is_transient(error)
    with pytest.raises(TransientError):
        raise_transient(error, "doing")


@pytest.mark.parametrize(
    "error",
    [ParamValidationError(report='Invalid bucket name ""'), NoCredentialsError()],
    ids=["bad-parameter", "no-credentials"],
)
def test_the_deployments_errors_are_final_and_say_where_to_look(error: Exception) -> None:
    assert not is_transient(error)
    with pytest.raises(ConfigurationError, match="check the PIPELINE_"):
        raise_transient(error, "reading model churn")


def test_a_client_error_of_the_callers_making_is_left_to_the_caller() -> None:
    error = client_error("NoSuchBucket", 404)

    assert not is_transient(error)
    raise_transient(error, "doing")  # returns: the caller re-raises it as it is


def test_a_permission_iam_denies_is_the_deployments_to_fix_and_is_named() -> None:
    said = (
        "User: arn:aws:sts::1:assumed-role/r/s is not authorized to perform: s3:PutObject on "
        "resource: arn:aws:s3:::out/k because no identity-based policy allows the "
        "s3:PutObject action"
    )
    error = client_error("AccessDenied", 403, message=said)

    assert not is_transient(error)
    with pytest.raises(ConfigurationError, match=r"storing s3://out/k: access denied: "):
        raise_transient(error, "storing s3://out/k")
    with pytest.raises(ConfigurationError, match=r"s3:PutObject on resource: arn:aws:s3:::out/k"):
        raise_transient(error, "storing s3://out/k")


def _expect_headers(s3: Any, bucket: str, size: int) -> list[str | None]:
    sent: list[str | None] = []
    s3.meta.events.register(
        "before-send.s3.PutObject", lambda request, **_: sent.append(request.headers.get("Expect"))
    )
    s3.put_object(Bucket=bucket, Key=f"k{size}", Body=b"x" * size)
    assert s3.head_object(Bucket=bucket, Key=f"k{size}")["ContentLength"] == size
    return sent


def test_a_small_body_is_sent_without_asking_first_and_a_large_one_asks(
    s3: Any, bucket: str
) -> None:
    """Waiting for ``100 Continue`` costs a round trip on every small upload of a file."""
    assert _expect_headers(s3, bucket, 1000) == [None]
    assert _expect_headers(s3, bucket, ASK_FIRST_BYTES) == [None]
    assert _expect_headers(s3, bucket, ASK_FIRST_BYTES + 1) == [b"100-continue"]


def test_a_large_body_is_sent_whole_and_stored_as_given(s3: Any, bucket: str) -> None:
    """urllib3 sends a stream 16 KiB a read; a large body goes to the socket at once."""
    bodies: list[object] = []
    s3.meta.events.register(
        "before-send.s3.PutObject", lambda request, **_: bodies.append(request.body)
    )
    large, small = os.urandom(ASK_FIRST_BYTES + 1), os.urandom(1000)
    s3.put_object(Bucket=bucket, Key="large", Body=large)
    s3.put_object(Bucket=bucket, Key="small", Body=small)

    assert isinstance(bodies[0], bytes)
    assert hasattr(bodies[1], "read")  # left as botocore made it
    assert s3.get_object(Bucket=bucket, Key="large")["Body"].read() == large
    assert s3.get_object(Bucket=bucket, Key="small")["Body"].read() == small
