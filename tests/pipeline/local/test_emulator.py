"""The embedded emulator's variables, as every process that talks to it gets them."""

from typing import Any

import pytest

from pipeline.stores import aws
from tests.conftest import REGION


def checksum_headers(s3: Any, bucket: str) -> list[str]:
    """The checksum headers of one upload made with ``s3``."""
    sent: list[dict[str, str]] = []
    s3.meta.events.register(
        "before-send.s3.PutObject", lambda request, **_: sent.append(dict(request.headers))
    )
    s3.put_object(Bucket=bucket, Key="k", Body=b"x" * 1000)
    return [name.lower() for name in sent[0] if name.lower().startswith("x-amz-checksum")]


def test_uploads_to_the_emulator_carry_no_optional_checksum(
    s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over the loopback a CRC32 of every part guards nothing and costs the worker and
    the emulator CPU; a client without the stack's variables (on AWS) still sends one."""
    assert checksum_headers(s3, bucket) == []
    monkeypatch.delenv("AWS_REQUEST_CHECKSUM_CALCULATION")
    assert checksum_headers(aws.s3_client(REGION), bucket) == ["x-amz-checksum-crc32"]
