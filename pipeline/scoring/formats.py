"""File formats: telling them apart, and handing each to its codec.

A format is told by the key's extension; a key without a known one (``data``,
``export.gz``) is told by its first bytes. What a codec reads and writes is
the contract in ``codec``.
"""

from __future__ import annotations

import zlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import pyarrow as pa

from pipeline import naming
from pipeline.errors import UnsupportedFormat
from pipeline.scoring import csv_files, json_lines, parquet_files
from pipeline.scoring.codec import (
    DEFAULT_MAX_LINE_BYTES,
    ByteSink,
    Codec,
    ObjectSource,
    Reader,
    Writer,
)

_CODECS: dict[str, Codec] = {
    "csv": csv_files.CODEC,
    "parquet": parquet_files.CODEC,
    "jsonl": json_lines.CODEC,
}


@dataclass(frozen=True)
class Format:
    name: str
    suffixes: tuple[str, ...]
    kind: str  # "csv", "parquet" or "jsonl"
    compression: str | None
    content_type: str

    def output_suffix(self, key: str) -> str:
        """The key's own suffix for this format, or the canonical one if it had none."""
        lower = key.lower()
        for suffix in sorted(self.suffixes, key=len, reverse=True):
            if lower.endswith(suffix):
                return key[-len(suffix) :]
        return self.suffixes[0]

    def stem(self, key: str) -> str:
        """The key without this format's suffix (or a bare ``.gz``)."""
        suffix = self.output_suffix(key)
        if key.lower().endswith(suffix.lower()):
            return key[: -len(suffix)]
        if key.lower().endswith(".gz"):
            return key[:-3]
        return key

    def output_key(self, key: str, job_id: str) -> str:
        """The output object's key for input ``key``: the one place it is spelled."""
        return naming.output_key(self.stem(key), job_id, self.output_suffix(key))

    @property
    def codec(self) -> Codec:
        return _CODECS[self.kind]

    def open(
        self,
        source: ObjectSource,
        where: str,
        batch_rows: int,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        *,
        numbers: Collection[str] = (),
        features: Collection[str] | None = None,
    ) -> Reader:
        return self.codec.open(
            source,
            self.compression,
            where,
            batch_rows,
            max_line_bytes,
            numbers=numbers,
            features=features,
        )

    def writer(
        self,
        sink: ByteSink,
        reader: Reader,
        carried: Sequence[str] | None,
        added: pa.Schema,
        *,
        header: bool = True,
    ) -> Writer:
        """A writer of the output; ``header=False`` leaves out a CSV header (a later shard's)."""
        return self.codec.writer(sink, self.compression, reader, carried, added, header=header)


FORMATS: tuple[Format, ...] = (
    Format("csv", (".csv",), "csv", None, "text/csv"),
    Format("csv.gz", (".csv.gz",), "csv", "gzip", "application/gzip"),
    Format("parquet", (".parquet", ".pq"), "parquet", None, "application/vnd.apache.parquet"),
    Format("jsonl", (".jsonl", ".ndjson"), "jsonl", None, "application/x-ndjson"),
    Format("jsonl.gz", (".jsonl.gz", ".ndjson.gz"), "jsonl", "gzip", "application/gzip"),
)
BY_NAME = {f.name: f for f in FORMATS}
ACCEPTED_SUFFIXES = tuple(s for f in FORMATS for s in f.suffixes)
_SNIFF_BYTES = 4096


def by_extension(key: str) -> Format | None:
    lower = key.lower()
    best: tuple[int, Format] | None = None
    for fmt in FORMATS:
        for suffix in fmt.suffixes:
            if lower.endswith(suffix) and (best is None or len(suffix) > best[0]):
                best = (len(suffix), fmt)
    return best[1] if best else None


def detect(key: str, head: bytes) -> Format:
    """The format of an object: by extension, else by its first bytes."""
    fmt = by_extension(key)
    if fmt is not None:
        return fmt
    fmt = sniff(head)
    if fmt is None:
        raise UnsupportedFormat(
            f"cannot tell the format of {key!r} from its extension or its content; "
            f"accepted extensions: {', '.join(ACCEPTED_SUFFIXES)}"
        )
    return fmt


def sniff(head: bytes) -> Format | None:
    """A format from a file's first bytes, or None."""
    if head.startswith(b"PAR1"):
        return BY_NAME["parquet"]
    compressed = head.startswith(b"\x1f\x8b")
    if compressed:
        try:
            head = zlib.decompressobj(wbits=31).decompress(head, _SNIFF_BYTES)
        except zlib.error:
            return None
    kind = _text_kind(head)
    if kind is None:
        return None
    return BY_NAME[f"{kind}.gz" if compressed else kind]


def _text_kind(head: bytes) -> str | None:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text:
        return None
    try:
        first_line = text.split(b"\n", 1)[0].decode()
    except UnicodeDecodeError:
        return None
    if first_line.startswith("{"):
        return "jsonl"
    if "," in first_line and all(ch.isprintable() or ch in "\t\r" for ch in first_line):
        return "csv"
    return None
