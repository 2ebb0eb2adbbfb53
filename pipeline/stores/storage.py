"""Streaming S3 objects in and out without holding a whole file.

Reading pins the ETag the event announced (``IfMatch``), so a job never scores
bytes other than the ones its id was computed from. Writing goes through a
multipart upload that is completed only when the whole output is written and
aborted on any failure: a partial result is never visible.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Literal

from botocore.exceptions import BotoCoreError, ClientError

from pipeline.errors import InputChanged
from pipeline.messages import ObjectRef
from pipeline.stores.aws import error_code, raise_transient

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, GetObjectOutputTypeDef

#: S3 parts must be at least 5 MiB (but the last) and at most 10,000. Parts
#: start at 8 MiB and double every 1,000 parts: small outputs hold little in
#: memory, and 10,000 parts reach 8 TiB, past S3's 5 TiB object limit.
PART_BYTES = 8 * 1024 * 1024
#: S3's smallest part (all but a multipart upload's last) and highest part number.
MIN_PART_BYTES = 5 * 1024 * 1024
LAST_PART = 10_000
_PARTS_PER_SIZE = 1000
MAX_PARTS = 10_000


def part_size(number: int, first: int = PART_BYTES) -> int:
    """The size of part ``number`` (from 1) of an output."""
    return first << ((number - 1) // _PARTS_PER_SIZE)


#: Parts uploading while the next is filled: overlap, holding one part more.
_IN_FLIGHT = 1

#: Every output upload declares a CRC32: S3 checks each part as it arrives,
#: and keeps a checksum of the whole that a reader can ask for. It also spares
#: the local emulator a copy: without one, moto computes a full-object checksum
#: at completion (about 1.5 s of its 3.3 s for a 320 MB output).
CHECKSUM: Literal["CRC32"] = "CRC32"


@dataclass(frozen=True)
class Part:
    """An uploaded part: what completing the upload must name of it."""

    number: int
    etag: str
    crc32: str

    def completed(self) -> CompletedPartTypeDef:
        return {"PartNumber": self.number, "ETag": self.etag, "ChecksumCRC32": self.crc32}


@dataclass(frozen=True)
class Upload:
    """A multipart upload in progress."""

    s3: S3Client
    bucket: str
    key: str
    upload_id: str

    @classmethod
    def start(cls, s3: S3Client, bucket: str, key: str, content_type: str) -> Upload:
        answer = s3.create_multipart_upload(
            Bucket=bucket, Key=key, ContentType=content_type, ChecksumAlgorithm=CHECKSUM
        )
        return cls(s3, bucket, key, answer["UploadId"])

    def part(self, number: int, body: bytes) -> Part:
        try:
            answer = self.s3.upload_part(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=body,
                ChecksumAlgorithm=CHECKSUM,
            )
        except (ClientError, BotoCoreError) as exc:
            raise_transient(exc, f"writing part {number} of s3://{self.bucket}/{self.key}")
            raise
        return Part(number, answer["ETag"], answer["ChecksumCRC32"])

    def complete(self, parts: list[Part]) -> None:
        """Join ``parts`` (in any order) into the object; errors are the caller's to translate."""
        ordered = sorted(parts, key=lambda p: p.number)
        self.s3.complete_multipart_upload(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": [p.completed() for p in ordered]},
        )

    def abort(self) -> None:
        """Best effort: an abort that fails leaves an incomplete upload, which a bucket
        lifecycle rule removes; it is never a visible object."""
        with contextlib.suppress(ClientError, BotoCoreError):
            self.s3.abort_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
            )


def read_optional(s3: S3Client, bucket: str, key: str) -> bytes | None:
    """A small object's bytes, or None if there is none: for records we keep in S3."""
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if error_code(exc) in {"NoSuchKey", "404"}:
            return None
        raise_transient(exc, f"reading s3://{bucket}/{key}")
        raise
    except BotoCoreError as exc:
        raise_transient(exc, f"reading s3://{bucket}/{key}")
        raise


def open_object(s3: S3Client, obj: ObjectRef, start: int = 0, end: int | None = None) -> BinaryIO:
    """A read stream of exactly the object version the event announced, bytes ``[start, end)``."""
    extra = {}
    if start or end is not None:
        extra["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
    body: BinaryIO = _get_object(s3, obj, **extra)["Body"]  # type: ignore[assignment]
    return body


def object_metadata(s3: S3Client, obj: ObjectRef) -> dict[str, str]:
    """The user metadata of exactly the object version the event announced."""
    with _announced_version(obj):
        head = s3.head_object(Bucket=obj.bucket, Key=obj.key, IfMatch=f'"{obj.etag}"')
    return head.get("Metadata", {})


def _get_object(s3: S3Client, obj: ObjectRef, **extra: str) -> GetObjectOutputTypeDef:
    with _announced_version(obj):
        return s3.get_object(Bucket=obj.bucket, Key=obj.key, IfMatch=f'"{obj.etag}"', **extra)  # type: ignore[arg-type]


@contextlib.contextmanager
def _announced_version(obj: ObjectRef) -> Iterator[None]:
    """Translate the errors of a request for ``obj``'s announced version (``IfMatch``)."""
    where = f"s3://{obj.bucket}/{obj.key}"
    try:
        yield
    except ClientError as exc:
        if error_code(exc) in {"NoSuchKey", "404", "PreconditionFailed", "412"}:
            raise InputChanged(
                f"{where} with ETag {obj.etag} no longer exists: it was overwritten or "
                "deleted after upload (a newer upload is scored on its own)"
            ) from exc
        raise_transient(exc, f"reading {where}")
        raise
    except BotoCoreError as exc:
        raise_transient(exc, f"reading {where}")
        raise


class MultipartWriter(io.RawIOBase):
    """A write-only file whose bytes become one S3 object on ``complete()``.

    Leaving its ``with`` block without ``complete()`` aborts the upload, so an
    exception anywhere in between leaves nothing behind. Parts upload in the
    background, at most ``_IN_FLIGHT`` at once, while the next is encoded. An
    output that fits in one part is one ``PutObject`` at ``complete()``: a
    small file costs one request, not three.
    """

    def __init__(
        self, s3: S3Client, bucket: str, key: str, content_type: str, part_bytes: int = PART_BYTES
    ) -> None:
        super().__init__()
        self._s3, self.bucket, self.key = s3, bucket, key
        self._content_type = content_type
        self._part_bytes = part_bytes
        self._buffer = bytearray()
        self._parts: list[Future[Part]] = []
        self._uploads: ThreadPoolExecutor | None = None
        self._upload: Upload | None = None
        self._done = False
        self.bytes_written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data)
        self._buffer += view
        self.bytes_written += len(view)
        while len(self._buffer) >= (size := part_size(len(self._parts) + 1, self._part_bytes)):
            self._start_part(bytes(self._buffer[:size]))
            del self._buffer[:size]
        return len(view)

    def _start_part(self, chunk: bytes) -> None:
        if self._upload is None:
            self._upload = Upload.start(self._s3, self.bucket, self.key, self._content_type)
            self._uploads = ThreadPoolExecutor(1, thread_name_prefix="upload")
        assert self._uploads is not None  # noqa: S101 - created with the upload
        in_flight = [p for p in self._parts if not p.done()]
        if len(in_flight) >= _IN_FLIGHT:
            in_flight[0].result()  # also raises a failed part's error here
        number = len(self._parts) + 1
        self._parts.append(self._uploads.submit(self._upload.part, number, chunk))

    def complete(self) -> None:
        """Publish the object. Until this returns, no reader can see it."""
        try:
            if self._upload is None:
                self._s3.put_object(
                    Bucket=self.bucket,
                    Key=self.key,
                    Body=bytes(self._buffer),
                    ContentType=self._content_type,
                )
            else:
                if self._buffer:
                    self._start_part(bytes(self._buffer))
                parts = [part.result() for part in self._parts]
                self._upload.complete(parts)
        except (ClientError, BotoCoreError) as exc:
            raise_transient(exc, f"completing s3://{self.bucket}/{self.key}")
            raise
        self._buffer.clear()
        self._done = True

    def __exit__(self, *exc_info: object) -> None:
        # Arrow closes the file when its writer finishes, before the caller
        # completes the upload, so the abort belongs to leaving the block.
        if not self._done:
            self.abort()
        if self._uploads is not None:
            self._uploads.shutdown(wait=True, cancel_futures=True)
        self.close()

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        if self._upload is None:
            return
        for part in self._parts:
            part.cancel()
        self._upload.abort()


class S3Object:
    """The input object, pinned to its ETag: as a stream, with random access, or its first bytes.

    ``bytes_read`` counts what the stream and ranged reads have fetched: a
    file's progress, in the unit its size is known in before it is parsed.
    """

    #: Parquet: the row groups to read (None: all of them); a shard reads some.
    row_groups: tuple[int, ...] | None = None

    def __init__(self, s3: S3Client, obj: ObjectRef, body: bytes | None = None) -> None:
        """``body``: the object's bytes, if they were read already (a small file's)."""
        self._s3, self.ref, self._body = s3, obj, body
        self.bytes_read = 0

    def _count(self, size: int) -> None:
        self.bytes_read += size

    def stream(self, start: int = 0, end: int | None = None) -> BinaryIO:
        if self._body is not None:
            stream: BinaryIO = io.BytesIO(self._body[start:end])
        else:
            stream = open_object(self._s3, self.ref, start, end)
        return _Counted(stream, self._count)  # type: ignore[return-value]

    def random_access(self) -> BinaryIO:
        if self._body is not None:
            self._count(len(self._body))
            return io.BytesIO(self._body)
        return RangeReader(self._s3, self.ref, on_read=self._count)  # type: ignore[return-value]

    def head(self, size: int) -> bytes:
        if self._body is not None:
            return self._body[:size]
        return RangeReader(self._s3, self.ref).read(size)


class _Counted(io.RawIOBase):
    """A read stream that reports how many bytes passed through it."""

    def __init__(self, stream: BinaryIO, count: Callable[[int], None]) -> None:
        super().__init__()
        self._stream, self._count = stream, count

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        data = self._stream.read(size)
        self._count(len(data))
        return data

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class RangeReader(io.RawIOBase):
    """A seekable file over an S3 object, read in blocks.

    Reads are served from one block of ``block_bytes`` (a read beyond it fetches
    the next block), so a reader that asks for many small pieces of one region,
    as Parquet's column readers do, makes few requests. A block is one ranged
    GET; once reads run on past a block into the next one, the reader opens one
    GET to the object's end and takes the following blocks from it as reads
    reach them. A Parquet file read row group by row group is then a GET for
    its footer and about two for its data, not one per block: fewer requests
    on S3, and far less work for the local emulator, which reads a whole
    object to serve any range of it (250 ms for 1 MiB of a 320 MB object).
    """

    def __init__(
        self,
        s3: S3Client,
        obj: ObjectRef,
        block_bytes: int = 8 * 1024 * 1024,
        on_read: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__()
        self._s3, self._obj, self._block_bytes = s3, obj, block_bytes
        self._on_read = on_read
        self._position = 0
        self._block_start = 0
        self._block = b""
        #: The open GET to the object's end, and the offset its next byte has.
        self._stream: BinaryIO | None = None
        self._stream_at = 0
        self.requests = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._obj.size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        wanted = min(len(buffer), self._obj.size - self._position)
        if wanted <= 0:
            return 0
        offset = self._position - self._block_start
        if offset < 0 or offset + wanted > len(self._block):
            self._fetch(self._position, max(wanted, self._block_bytes))
            offset = 0
        buffer[:wanted] = self._block[offset : offset + wanted]
        self._position += wanted
        return wanted

    def close(self) -> None:
        self._close_stream()
        super().close()

    def _fetch(self, start: int, length: int) -> None:
        end = min(self._obj.size, start + length)
        block_end = self._block_start + len(self._block)
        # Bytes from ``start`` the block already holds are kept, not read again.
        kept = self._block[start - self._block_start :] if self._block_start <= start else b""
        resume = start + len(kept)
        reading_on = bool(self._block) and self._block_start <= start <= block_end + length
        try:
            if self._stream is not None and self._stream_at <= resume <= self._stream_at + length:
                self._block = kept + self._from_stream(resume, end)
            elif reading_on:
                self._close_stream()
                self._stream = open_object(self._s3, self._obj, resume)
                self._stream_at = resume
                self.requests += 1
                self._block = kept + self._from_stream(resume, end)
            else:
                self._block = open_object(self._s3, self._obj, start, end).read()
                self.requests += 1
        except BotoCoreError as exc:
            self._close_stream()
            raise_transient(exc, f"reading s3://{self._obj.bucket}/{self._obj.key}")
            raise
        self._block_start = start
        if self._on_read is not None:
            self._on_read(len(self._block) - len(kept))

    def _from_stream(self, start: int, end: int) -> bytes:
        assert self._stream is not None  # noqa: S101 - opened by the caller
        if start > self._stream_at:
            self._stream.read(start - self._stream_at)  # a gap: a few bytes between row groups
        data = self._stream.read(end - start)
        self._stream_at = start + len(data)
        if len(data) < end - start:
            raise EOFError(
                f"s3://{self._obj.bucket}/{self._obj.key} ended at byte {self._stream_at}, "
                f"before byte {end}"
            )
        return data

    def _close_stream(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


@dataclass(frozen=True)
class ShardOutput:
    """Where a shard's output went: its own parts of the file's upload, and what it held back."""

    parts: list[tuple[int, str, int, str]]  # (part number, ETag, size, CRC32)
    head: int  # bytes kept at ``<temp>-head``
    tail: int  # bytes kept at ``<temp>-tail``


class ShardWriter(io.RawIOBase):
    """A shard's output written straight into the file's multipart upload.

    S3 wants every part but the last to hold 5 MiB, and a shard does not know
    its neighbours' sizes, so it holds back its first 5 MiB (``head``) and
    what is left after its last full part (``tail``, with at least ``hold``
    bytes, where a Parquet footer lands), as small objects beside ``temp``.
    The file's finisher joins each tail with the next head into one part.
    Everything between goes up as parts numbered from ``first_part``, at most
    ``max_parts`` of them (they grow when a shard writes more than expected).
    ``skip`` bytes at the start are dropped (a later Parquet shard's magic).
    """

    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        key: str,
        *,
        upload_id: str,
        first_part: int,
        max_parts: int,
        temp: str,
        skip: int = 0,
        hold: int = 0,
        part_bytes: int = PART_BYTES,
    ) -> None:
        super().__init__()
        self._s3, self.bucket, self.key = s3, bucket, key
        self._upload = Upload(s3, bucket, key, upload_id)
        self._first, self._max, self._temp = first_part, max_parts, temp
        self._skip, self._hold, self._part_bytes = skip, hold, part_bytes
        self._head = bytearray()
        self._buffer = bytearray()
        self._parts: list[tuple[Future[Part], int]] = []
        self._uploads = ThreadPoolExecutor(1, thread_name_prefix="upload")
        self.bytes_written = 0
        self.output: ShardOutput | None = None

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data)
        written = len(view)
        if self._skip:
            dropped = min(self._skip, len(view))
            self._skip -= dropped
            view = view[dropped:]
        self.bytes_written += len(view)
        room = MIN_PART_BYTES - len(self._head)
        if room > 0:
            self._head += view[:room]
            view = view[room:]
        self._buffer += view
        while len(self._buffer) >= (size := self._next_size()) + self._hold:
            self._start_part(bytes(self._buffer[:size]))
            del self._buffer[:size]
        return written

    def _next_size(self) -> int:
        """Parts double in size every quarter of the numbers this shard has."""
        done = len(self._parts)
        if done >= self._max:
            return 1 << 62  # out of numbers: the rest stays in the tail
        return self._part_bytes << (done * 4 // max(self._max, 1))

    def _start_part(self, chunk: bytes) -> None:
        in_flight = [f for f, _ in self._parts if not f.done()]
        if len(in_flight) >= _IN_FLIGHT:
            in_flight[0].result()
        number = self._first + len(self._parts)
        self._parts.append((self._uploads.submit(self._upload.part, number, chunk), len(chunk)))

    def complete(self) -> ShardOutput:
        """Wait for the parts and keep the head and tail; nothing is visible until the file is."""
        try:
            uploaded = [(future.result(), size) for future, size in self._parts]
            parts = [(part.number, part.etag, size, part.crc32) for part, size in uploaded]
            for suffix, held in (("head", self._head), ("tail", self._buffer)):
                if held:
                    self._s3.put_object(
                        Bucket=self.bucket, Key=f"{self._temp}-{suffix}", Body=bytes(held)
                    )
        except (ClientError, BotoCoreError) as exc:
            raise_transient(exc, f"keeping the held-back bytes of {self._temp}")
            raise
        self.output = ShardOutput(parts=parts, head=len(self._head), tail=len(self._buffer))
        return self.output

    def __exit__(self, *exc_info: object) -> None:
        self._uploads.shutdown(wait=True, cancel_futures=True)
        self.close()
