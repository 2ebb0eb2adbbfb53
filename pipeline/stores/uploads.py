"""Writing S3 objects in parts: an output's multipart upload, and a shard's share of one.

A multipart upload is completed only when the whole output is written and
aborted on any failure: a partial result is never visible. Parts declare a
CRC32, so S3 checks each as it arrives.
"""

from __future__ import annotations

import base64
import contextlib
import io
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from botocore.exceptions import BotoCoreError, ClientError
from isal import isal_zlib

from pipeline.stores.aws import translated

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

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


def crc32(body: bytes) -> str:
    """A part's CRC32 as S3 spells it. ISA-L's takes 0.15 ms for 8 MiB where zlib's,
    which botocore would use, takes 2-4 ms: a tenth of a CPU-second on a 300 MB output."""
    return base64.b64encode(isal_zlib.crc32(body).to_bytes(4, "big")).decode()


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
        checksum = crc32(body)  # given, so botocore does not compute its own
        with translated(f"writing part {number} of s3://{self.bucket}/{self.key}"):
            answer = self.s3.upload_part(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=body,
                ChecksumAlgorithm=CHECKSUM,
                ChecksumCRC32=checksum,
            )
        return Part(number, answer["ETag"], checksum)

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


class _Pending:
    """Bytes written and not yet in a part, as they were written: a part is joined from
    them in one copy (growing a buffer and slicing parts off it copied each byte three
    times).

    A ``bytes`` object is kept as it is; anything else is copied, since its writer
    may reuse it (Arrow's writers hand over views of buffers they write again).
    """

    def __init__(self) -> None:
        self._pieces: deque[memoryview] = deque()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, view: memoryview) -> None:
        if not view.nbytes:
            return
        if not isinstance(view.obj, bytes):
            view = memoryview(bytes(view))
        self._pieces.append(view.cast("B"))
        self._size += view.nbytes

    def take(self, size: int | None = None) -> bytes:
        """The first ``size`` bytes (at most all of them; all of them if None)."""
        taken: list[memoryview] = []
        need = self._size if size is None else min(size, self._size)
        self._size -= need
        while need:
            piece = self._pieces[0]
            if len(piece) <= need:
                taken.append(self._pieces.popleft())
                need -= len(piece)
            else:
                taken.append(piece[:need])
                self._pieces[0] = piece[need:]
                need = 0
        return b"".join(taken)


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
        self._pending = _Pending()
        self._parts: list[Future[Part]] = []
        self._uploads: ThreadPoolExecutor | None = None
        self._upload: Upload | None = None
        self._done = False
        self.bytes_written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data)
        self._pending.add(view)
        self.bytes_written += len(view)
        while len(self._pending) >= (size := part_size(len(self._parts) + 1, self._part_bytes)):
            self._start_part(self._pending.take(size))
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
        with translated(f"completing s3://{self.bucket}/{self.key}"):
            if self._upload is None:
                self._s3.put_object(
                    Bucket=self.bucket,
                    Key=self.key,
                    Body=self._pending.take(),
                    ContentType=self._content_type,
                )
            else:
                if self._pending:
                    self._start_part(self._pending.take())
                parts = [part.result() for part in self._parts]
                self._upload.complete(parts)
        self._pending = _Pending()
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
        self._pending = _Pending()
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
        self._pending.add(view)
        while len(self._pending) >= (size := self._next_size()) + self._hold:
            self._start_part(self._pending.take(size))
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
        with translated(f"keeping the held-back bytes of {self._temp}"):
            uploaded = [(future.result(), size) for future, size in self._parts]
            parts = [(part.number, part.etag, size, part.crc32) for part, size in uploaded]
            tail = self._pending.take()
            for suffix, held in (("head", bytes(self._head)), ("tail", tail)):
                if held:
                    self._s3.put_object(Bucket=self.bucket, Key=f"{self._temp}-{suffix}", Body=held)
        self.output = ShardOutput(parts=parts, head=len(self._head), tail=len(tail))
        return self.output

    def __exit__(self, *exc_info: object) -> None:
        self._uploads.shutdown(wait=True, cancel_futures=True)
        self.close()
