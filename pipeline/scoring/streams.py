"""Byte-stream plumbing shared by the codecs: decompression, peeking, Arrow adapters."""

from __future__ import annotations

import io

import pyarrow as pa

from pipeline.errors import UnreadableFile
from pipeline.scoring.codec import ByteSink, ByteSource


class _NativeReader(io.RawIOBase):
    """A Python file over an Arrow input stream; decompression errors become input errors."""

    def __init__(self, native: pa.NativeFile) -> None:
        super().__init__()
        self._native = native

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        try:
            data = self._native.read(len(buffer))
        except (OSError, pa.ArrowException) as exc:
            raise UnreadableFile(f"the file cannot be decompressed: {exc}") from exc
        buffer[: len(data)] = data
        return len(data)


class Prefixed(io.RawIOBase):
    """``head`` followed by the rest of ``stream``: a peek that gives nothing back."""

    def __init__(self, head: bytes, stream: ByteSource) -> None:
        super().__init__()
        self._head, self._stream = memoryview(head), stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def decompressed(stream: ByteSource, compression: str | None) -> io.BufferedReader:
    """A buffered reader of ``stream``'s content, decompressed if need be."""
    if compression is None:
        return io.BufferedReader(Prefixed(b"", stream), buffer_size=1 << 20)
    native = pa.CompressedInputStream(pa.PythonFile(stream, mode="r"), compression)
    return io.BufferedReader(_NativeReader(native), buffer_size=1 << 20)


def output_stream(sink: ByteSink, compression: str | None) -> pa.NativeFile:
    out = pa.PythonFile(sink, mode="w")
    if compression:
        out = pa.CompressedOutputStream(out, compression)
    return out
