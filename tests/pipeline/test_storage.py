"""Output uploads: parts small while outputs are small, yet any object S3 takes fits in
10,000; every part checked by S3 against its CRC32."""

from __future__ import annotations

import base64
import os
import zlib
from typing import Any

import pytest
from botocore.httpchecksum import Crc32Checksum

from pipeline.messages import ObjectRef
from pipeline.stores import uploads
from pipeline.stores.storage import RangeReader
from pipeline.stores.uploads import MAX_PARTS, PART_BYTES, MultipartWriter, crc32, part_size

TIB = 1024**4


def test_parts_grow_so_ten_thousand_hold_s3s_largest_object() -> None:
    sizes = [part_size(n) for n in range(1, MAX_PARTS + 1)]

    assert sum(sizes) >= 5 * TIB
    assert sizes[0] == sizes[999] == PART_BYTES  # the first 8 GiB of output: 8 MiB parts
    assert sizes[1000] == 2 * PART_BYTES
    assert max(sizes) <= 5 * 1024**3  # S3's largest part
    assert sizes == sorted(sizes)


def test_the_first_part_size_is_a_parameter_for_small_outputs() -> None:
    assert part_size(1, 5 * 1024**2) == 5 * 1024**2
    assert part_size(1001, 5 * 1024**2) == 10 * 1024**2


def _crc32(data: bytes) -> bytes:
    return zlib.crc32(data).to_bytes(4, "big")


@pytest.mark.parametrize("size", [0, 1, 7, 4096, 5 * 1024 * 1024 + 3])
def test_a_parts_crc32_is_the_one_botocore_would_send(size: int) -> None:
    """The emulator keeps its own checksum of a part; S3 refuses a part whose declared
    one differs, so the declared one is checked here against botocore's."""
    data = os.urandom(size)
    assert crc32(data) == Crc32Checksum().handle(data)
    assert crc32(memoryview(data)) == crc32(data)


def test_pending_bytes_are_taken_in_order_across_writes_and_a_reused_buffer_is_copied() -> None:
    pending = uploads._Pending()
    reused = bytearray(b"abcd")
    pending.add(memoryview(b"0123"))
    pending.add(memoryview(reused))
    reused[:] = b"WXYZ"  # a writer filling its buffer again
    pending.add(memoryview(b"").cast("B"))
    pending.add(memoryview(b"tail"))
    assert len(pending) == 12
    assert pending.take(6) == b"0123ab"
    assert pending.take(3) == b"cdt"
    assert len(pending) == 3
    assert pending.take(100) == b"ail"
    assert pending.take(1) == b""
    pending.add(memoryview(b"rest"))
    assert pending.take() == b"rest"
    assert len(pending) == 0


def test_an_output_in_parts_carries_the_crc32_of_its_parts(s3: Any, bucket: str) -> None:
    """S3 checked each part against the CRC32 sent with it, and keeps the composite."""
    part = 5 * 1024 * 1024
    data = os.urandom(2 * part + 12345)

    with MultipartWriter(s3, bucket, "out.csv", "text/csv", part_bytes=part) as sink:
        sink.write(data)
        sink.complete()

    head = s3.head_object(Bucket=bucket, Key="out.csv", ChecksumMode="ENABLED")
    pieces = [data[i : i + part] for i in range(0, len(data), part)]
    composite = base64.b64encode(_crc32(b"".join(_crc32(p) for p in pieces))).decode()
    assert head["ChecksumCRC32"].split("-")[0] == composite
    assert s3.get_object(Bucket=bucket, Key="out.csv")["Body"].read() == data


def test_reads_running_on_past_a_block_come_from_one_open_get(s3: Any, bucket: str) -> None:
    """Sequential blocks after the first are read from one GET to the end; a read elsewhere
    is a ranged GET of its own, and every byte is the object's."""
    block = 64 * 1024
    data = os.urandom(10 * block + 999)
    etag = s3.put_object(Bucket=bucket, Key="in.bin", Body=data)["ETag"].strip('"')
    reader = RangeReader(
        s3, ObjectRef(bucket=bucket, key="in.bin", etag=etag, size=len(data)), block_bytes=block
    )

    reader.seek(len(data) - 100)
    assert reader.read(100) == data[-100:]  # a footer: one ranged GET
    reader.seek(0)
    pieces = [reader.read(10_000) for _ in range(20)]  # as Parquet reads: many small pieces
    assert b"".join(pieces) == data[:200_000]
    assert reader.requests == 3  # the footer, the first block, then one GET for the rest
    reader.seek(4 * block + 17)  # a gap: skipped over in the open GET
    assert reader.read(2 * block) == data[4 * block + 17 : 6 * block + 17]
    assert reader.requests == 3
    reader.seek(block)  # backwards: a ranged GET
    assert reader.read(100) == data[block : block + 100]
    assert reader.requests == 4
    reader.seek(0)
    assert reader.read() == data
    reader.close()
