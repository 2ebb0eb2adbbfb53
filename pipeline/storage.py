"""Streaming S3 objects in and out without holding a whole file.

Reading pins the ETag the event announced (``IfMatch``), so a job never scores
bytes other than the ones its id was computed from. Writing goes through a
multipart upload that is completed only when the whole output is written and
aborted on any failure: a partial result is never visible.
"""

from __future__ import annotations

import contextlib
import io
from typing import TYPE_CHECKING, BinaryIO

from botocore.exceptions import BotoCoreError, ClientError

from pipeline.aws import error_code, raise_transient
from pipeline.errors import InputChanged
from pipeline.messages import ObjectRef

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

#: S3 parts must be at least 5 MiB (but the last); 8 MiB keeps 10,000 parts
#: good for 78 GiB of output while holding one part in memory.
PART_BYTES = 8 * 1024 * 1024


def open_object(s3: S3Client, obj: ObjectRef) -> BinaryIO:
    """A read stream of exactly the object version the event announced."""
    try:
        response = s3.get_object(Bucket=obj.bucket, Key=obj.key, IfMatch=f'"{obj.etag}"')
    except ClientError as exc:
        if error_code(exc) in {"NoSuchKey", "404", "PreconditionFailed", "412"}:
            raise InputChanged(
                f"s3://{obj.bucket}/{obj.key} with ETag {obj.etag} no longer exists: it was "
                "overwritten or deleted after upload (a newer upload is scored on its own)"
            ) from exc
        raise_transient(exc, f"reading s3://{obj.bucket}/{obj.key}")
        raise
    except BotoCoreError as exc:
        raise_transient(exc, f"reading s3://{obj.bucket}/{obj.key}")
        raise
    body: BinaryIO = response["Body"]  # type: ignore[assignment]
    return body


class MultipartWriter(io.RawIOBase):
    """A write-only file whose bytes become one S3 object on ``complete()``.

    Leaving its ``with`` block without ``complete()`` aborts the upload, so an
    exception anywhere in between leaves nothing behind.
    """

    def __init__(
        self, s3: S3Client, bucket: str, key: str, content_type: str, part_bytes: int = PART_BYTES
    ) -> None:
        super().__init__()
        self._s3, self.bucket, self.key = s3, bucket, key
        self._part_bytes = part_bytes
        self._buffer = bytearray()
        self._parts: list[CompletedPartTypeDef] = []
        self._done = False
        self.bytes_written = 0
        upload = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType=content_type)
        self._upload_id = upload["UploadId"]

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data)
        self._buffer += view
        self.bytes_written += len(view)
        while len(self._buffer) >= self._part_bytes:
            self._upload_part(bytes(self._buffer[: self._part_bytes]))
            del self._buffer[: self._part_bytes]
        return len(view)

    def _upload_part(self, chunk: bytes) -> None:
        number = len(self._parts) + 1
        try:
            part = self._s3.upload_part(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=chunk,
            )
        except (ClientError, BotoCoreError) as exc:
            raise_transient(exc, f"writing part {number} of s3://{self.bucket}/{self.key}")
            raise
        self._parts.append({"PartNumber": number, "ETag": part["ETag"]})

    def complete(self) -> None:
        """Publish the object. Until this returns, no reader can see it."""
        if self._buffer or not self._parts:
            self._upload_part(bytes(self._buffer))
            self._buffer.clear()
        try:
            self._s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        except (ClientError, BotoCoreError) as exc:
            raise_transient(exc, f"completing s3://{self.bucket}/{self.key}")
            raise
        self._done = True

    def __exit__(self, *exc_info: object) -> None:
        # Arrow closes the file when its writer finishes, before the caller
        # completes the upload, so the abort belongs to leaving the block.
        if not self._done:
            self.abort()
        self.close()

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        # Best effort: an abort that fails leaves an incomplete upload, which a
        # bucket lifecycle rule removes; it is never a visible object.
        with contextlib.suppress(ClientError, BotoCoreError):
            self._s3.abort_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self._upload_id
            )
