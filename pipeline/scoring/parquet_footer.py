"""Joining Parquet files end to end on S3's side: their footers merged, their bodies copied.

A Parquet file is ``PAR1``, its column chunks, a footer (Thrift's compact
encoding of ``FileMetaData``), the footer's length and ``PAR1`` again.
Readers find every column chunk by the absolute offsets in the footer, so
files written separately become one by copying their bodies one after the
other and writing one footer that lists all their row groups, each offset
moved by where its body landed. pyarrow can read footers but not move
offsets, so the compact protocol is decoded here generically: every field is
kept as it was, and only the offsets are changed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

MAGIC = b"PAR1"

# Compact protocol type ids.
_TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(1, 13)

#: A struct: its fields in order, as (field id, type id, value).
Struct = list[tuple[int, int, Any]]


@dataclass
class Container:
    """A list or set: its element type and elements."""

    element_type: int
    items: list[Any]


@dataclass
class Mapping:
    key_type: int
    value_type: int
    items: list[tuple[Any, Any]]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def byte(self) -> int:
        value = self.data[self.pos]
        self.pos += 1
        return value

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def value(self, kind: int) -> Any:  # noqa: PLR0911 - one branch per wire type
        if kind in (_TRUE, _FALSE):
            return self.byte() == _TRUE  # inside a container: one byte
        if kind == _BYTE:
            return struct.unpack("b", bytes([self.byte()]))[0]
        if kind in (_I16, _I32, _I64):
            return self.zigzag()
        if kind == _DOUBLE:
            (number,) = struct.unpack_from("<d", self.data, self.pos)
            self.pos += 8
            return number
        if kind == _BINARY:
            size = self.varint()
            raw = self.data[self.pos : self.pos + size]
            self.pos += size
            return raw
        if kind in (_LIST, _SET):
            header = self.byte()
            size, element = header >> 4, header & 0x0F
            if size == 15:
                size = self.varint()
            return Container(element, [self.value(element) for _ in range(size)])
        if kind == _MAP:
            size = self.varint()
            if size == 0:
                return Mapping(0, 0, [])
            types = self.byte()
            key, value = types >> 4, types & 0x0F
            return Mapping(key, value, [(self.value(key), self.value(value)) for _ in range(size)])
        if kind == _STRUCT:
            return self.struct()
        raise ValueError(f"unknown Thrift compact type {kind} at byte {self.pos}")

    def struct(self) -> Struct:
        fields: Struct = []
        last = 0
        while True:
            header = self.byte()
            if header == 0:
                return fields
            delta, kind = header >> 4, header & 0x0F
            field_id = last + delta if delta else self.zigzag()
            last = field_id
            value = (kind == _TRUE) if kind in (_TRUE, _FALSE) else self.value(kind)
            fields.append((field_id, kind, value))


class _Writer:
    def __init__(self) -> None:
        self.out = bytearray()

    def varint(self, n: int) -> None:
        while True:
            if n < 0x80:
                self.out.append(n)
                return
            self.out.append((n & 0x7F) | 0x80)
            n >>= 7

    def zigzag(self, n: int) -> None:
        self.varint((n << 1) ^ (n >> 63))

    def value(self, kind: int, value: Any) -> None:  # noqa: PLR0912 - one branch per wire type
        if kind in (_TRUE, _FALSE):
            self.out.append(_TRUE if value else _FALSE)
        elif kind == _BYTE:
            self.out += struct.pack("b", value)
        elif kind in (_I16, _I32, _I64):
            self.zigzag(value)
        elif kind == _DOUBLE:
            self.out += struct.pack("<d", value)
        elif kind == _BINARY:
            self.varint(len(value))
            self.out += value
        elif kind in (_LIST, _SET):
            size = len(value.items)
            if size < 15:
                self.out.append(size << 4 | value.element_type)
            else:
                self.out.append(0xF0 | value.element_type)
                self.varint(size)
            for item in value.items:
                self.value(value.element_type, item)
        elif kind == _MAP:
            self.varint(len(value.items))
            if value.items:
                self.out.append(value.key_type << 4 | value.value_type)
                for key, item in value.items:
                    self.value(value.key_type, key)
                    self.value(value.value_type, item)
        elif kind == _STRUCT:
            self.struct(value)
        else:
            raise ValueError(f"unknown Thrift compact type {kind}")

    def struct(self, fields: Struct) -> None:
        last = 0
        for field_id, kind, value in fields:
            wire = (_TRUE if value else _FALSE) if kind in (_TRUE, _FALSE) else kind
            delta = field_id - last
            if 0 < delta <= 15:
                self.out.append(delta << 4 | wire)
            else:
                self.out.append(wire)
                self.zigzag(field_id)
            last = field_id
            if kind not in (_TRUE, _FALSE):
                self.value(kind, value)
        self.out.append(0)


def decode(footer: bytes) -> Struct:
    """A ``FileMetaData`` from its compact encoding, every field kept."""
    return _Reader(footer).struct()


def encode(metadata: Struct) -> bytes:
    writer = _Writer()
    writer.struct(metadata)
    return bytes(writer.out)


# Field ids in parquet.thrift that hold absolute file offsets.
_FILE_NUM_ROWS, _FILE_ROW_GROUPS = 3, 4
_GROUP_COLUMNS, _GROUP_FILE_OFFSET = 1, 5
_CHUNK_FILE_OFFSET, _CHUNK_META, _CHUNK_OFFSET_INDEX, _CHUNK_COLUMN_INDEX = 2, 3, 4, 6
_META_OFFSETS = {9, 10, 11, 14}  # data, index and dictionary pages; bloom filter
_GROUP_ORDINAL = 7


def _field(fields: Struct, field_id: int) -> Any:
    return next(value for fid, _, value in fields if fid == field_id)


def _moved(fields: Struct, ids: set[int], by: int) -> Struct:
    return [(fid, kind, value + by if fid in ids else value) for fid, kind, value in fields]


def _moved_group(group: Struct, by: int, ordinal: int) -> Struct:
    moved: Struct = []
    for fid, kind, value in group:
        if fid == _GROUP_COLUMNS:
            chunks = [
                [
                    (
                        cid,
                        ckind,
                        _moved(cvalue, _META_OFFSETS, by) if cid == _CHUNK_META else cvalue,
                    )
                    for cid, ckind, cvalue in _moved(
                        chunk, {_CHUNK_FILE_OFFSET, _CHUNK_OFFSET_INDEX, _CHUNK_COLUMN_INDEX}, by
                    )
                ]
                for chunk in value.items
            ]
            moved.append((fid, kind, Container(value.element_type, chunks)))
        elif fid == _GROUP_FILE_OFFSET:
            moved.append((fid, kind, value + by))
        elif fid == _GROUP_ORDINAL:
            moved.append((fid, kind, ordinal))
        else:
            moved.append((fid, kind, value))
    return moved


def merged_footer(footers: list[bytes], body_starts: list[int]) -> bytes:
    """One footer for files joined end to end, each body (after its magic) at ``body_starts``.

    The result ends with the footer's length and ``PAR1``: it is the joined
    file's tail. Schema and key-value metadata are the first file's; the files
    must share a schema (shards of one file written by one writer do).
    """
    merged = decode(footers[0])
    groups: list[Struct] = []
    rows = 0
    for footer, start in zip(footers, body_starts, strict=True):
        metadata = decode(footer)
        rows += _field(metadata, _FILE_NUM_ROWS)
        # A file's offsets count from its own start, where its body began at 4.
        by = start - len(MAGIC)
        for group in _field(metadata, _FILE_ROW_GROUPS).items:
            groups.append(_moved_group(group, by, len(groups)))
    element_type = _field(merged, _FILE_ROW_GROUPS).element_type
    merged = [
        (fid, kind, rows)
        if fid == _FILE_NUM_ROWS
        else (fid, kind, Container(element_type, groups))
        if fid == _FILE_ROW_GROUPS
        else (fid, kind, value)
        for fid, kind, value in merged
    ]
    encoded = encode(merged)
    return encoded + struct.pack("<I", len(encoded)) + MAGIC


def footer_length(tail: bytes) -> int:
    """How many of a Parquet file's last bytes its footer takes, with its length and magic."""
    if tail[-4:] != MAGIC:
        raise ValueError("not a Parquet file: no PAR1 at its end")
    (size,) = struct.unpack("<I", tail[-8:-4])
    return int(size) + 8
