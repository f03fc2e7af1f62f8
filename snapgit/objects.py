"""The object kinds of a snapshot store and their canonical bytes.

Every object is a type byte plus canonical msgpack bytes; its id is the SHA-256 of the two
together (:func:`object_id`), so a row can never be read back as a tree node. The kinds:

=========  ====  =====================================================================
kind       type  canonical bytes (msgpack)
=========  ====  =====================================================================
record     1     a row: array of values in sorted column-name order (encoding.py)
node       2     tree node: ``[0, [key...], ids]`` for a leaf, ``[level, [last key...],
                 ids, [row count...]]`` for an inner node; ``ids`` is one bin holding the
                 32-byte ids of the records (leaf) or children (inner) back to back
table      3     map ``{key, root, rows, schema}``: key columns (nil for a keyless table),
                 root node id, row count, schema id
schema     4     map: the table's portable schema (schema.py)
root       5     array of ``[table name, table id]`` pairs sorted by name bytes
commit     6     map ``{author, message, meta, parents, time, tree, tz}``
tag        7     map ``{message, name, tagger, target, time, tz}``
=========  ====  =====================================================================

Maps are written with their keys sorted by UTF-8 bytes; ids are 32-byte bins; times are
microseconds since the Unix epoch in UTC, with ``tz`` the author's offset in minutes.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import struct
from dataclasses import dataclass, field
from typing import Any

import msgpack

from snapgit.errors import CorruptError
from snapgit.schema import TableSchema

__all__ = [
    "ObjType",
    "object_id",
    "pack_canonical",
    "unpack_canonical",
    "Node",
    "TableEntry",
    "Root",
    "Commit",
    "Tag",
    "encode_schema",
    "decode_schema",
    "ID_LEN",
]

ID_LEN = 32


class ObjType(enum.IntEnum):
    RECORD = 1
    NODE = 2
    TABLE = 3
    SCHEMA = 4
    ROOT = 5
    COMMIT = 6
    TAG = 7


def object_id(otype: int, data: bytes) -> bytes:
    return hashlib.sha256(bytes((otype,)) + data).digest()


def _sorted(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _sorted(obj[k]) for k in sorted(obj, key=lambda s: s.encode("utf-8"))}
    if isinstance(obj, (list, tuple)):
        return [_sorted(x) for x in obj]
    return obj


def pack_canonical(obj: Any) -> bytes:
    """msgpack with map keys sorted: the canonical bytes of a structured object."""
    return msgpack.packb(_sorted(obj), use_bin_type=True)


def unpack_canonical(data: bytes, what: str = "object") -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise CorruptError(f"{what} does not decode: {exc}") from exc


@functools.lru_cache(maxsize=128)  # a Struct of 256 fields holds about 2 KB
def _ids_struct(count: int) -> struct.Struct:
    return struct.Struct(f"{ID_LEN}s" * count)


def split_ids(blob: bytes) -> list[bytes]:
    """The 32-byte ids joined in ``blob``, in one C call (a Python loop of slices costs five
    times as much, and every node read does it)."""
    count, rest = divmod(len(blob), ID_LEN)
    if rest:
        raise ValueError("ids are not a whole number of 32 bytes")
    return list(_ids_struct(count).unpack(blob)) if count else []


@dataclass(frozen=True)
class Node:
    """A tree node. ``ids`` are record ids (leaf, level 0) or child node ids (inner)."""

    level: int
    keys: list[bytes]
    ids: list[bytes]
    counts: list[int] = field(default_factory=list)

    def encode(self) -> bytes:
        ids = b"".join(self.ids)
        if self.level == 0:
            return msgpack.packb([0, self.keys, ids], use_bin_type=True)
        return msgpack.packb([self.level, self.keys, ids, self.counts], use_bin_type=True)

    @classmethod
    def decode(cls, data: bytes) -> Node:
        o = unpack_canonical(data, "tree node")
        try:
            level, keys, blob = o[0], o[1], o[2]
            ids = split_ids(blob)
            counts = o[3] if level else []
            if len(ids) != len(keys) or (level and len(counts) != len(keys)):
                raise ValueError("entry lists differ in length")
        except (IndexError, TypeError, ValueError) as exc:
            raise CorruptError(f"tree node is malformed: {exc}") from exc
        return cls(level, keys, ids, counts)

    @property
    def row_count(self) -> int:
        return len(self.keys) if self.level == 0 else sum(self.counts)


@dataclass(frozen=True)
class TableEntry:
    schema: bytes
    root: bytes
    rows: int
    key: list[str] | None  # None: keyless (multiset) table

    def encode(self) -> bytes:
        return pack_canonical({"key": self.key, "root": self.root, "rows": self.rows, "schema": self.schema})

    @classmethod
    def decode(cls, data: bytes) -> TableEntry:
        o = unpack_canonical(data, "table object")
        try:
            return cls(o["schema"], o["root"], o["rows"], o["key"])
        except (KeyError, TypeError) as exc:
            raise CorruptError(f"table object is malformed: {exc}") from exc


@dataclass(frozen=True)
class Root:
    tables: dict[str, bytes]  # table name -> table object id

    def encode(self) -> bytes:
        names = sorted(self.tables, key=lambda s: s.encode("utf-8"))
        return msgpack.packb([[n, self.tables[n]] for n in names], use_bin_type=True)

    @classmethod
    def decode(cls, data: bytes) -> Root:
        o = unpack_canonical(data, "snapshot tree")
        try:
            return cls({n: t for n, t in o})
        except (TypeError, ValueError) as exc:
            raise CorruptError(f"snapshot tree is malformed: {exc}") from exc


@dataclass(frozen=True)
class Commit:
    tree: bytes
    parents: list[bytes]
    author: str
    time: int  # microseconds since the Unix epoch, UTC
    tz: int  # offset of the author's clock from UTC, minutes
    message: str
    meta: dict[str, Any]

    def encode(self) -> bytes:
        return pack_canonical(
            {
                "author": self.author,
                "message": self.message,
                "meta": self.meta,
                "parents": list(self.parents),
                "time": self.time,
                "tree": self.tree,
                "tz": self.tz,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> Commit:
        o = unpack_canonical(data, "commit")
        try:
            return cls(o["tree"], list(o["parents"]), o["author"], o["time"], o["tz"], o["message"], o["meta"])
        except (KeyError, TypeError) as exc:
            raise CorruptError(f"commit is malformed: {exc}") from exc


@dataclass(frozen=True)
class Tag:
    target: bytes
    name: str
    tagger: str
    time: int
    tz: int
    message: str

    def encode(self) -> bytes:
        return pack_canonical(
            {
                "message": self.message,
                "name": self.name,
                "tagger": self.tagger,
                "target": self.target,
                "time": self.time,
                "tz": self.tz,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> Tag:
        o = unpack_canonical(data, "tag")
        try:
            return cls(o["target"], o["name"], o["tagger"], o["time"], o["tz"], o["message"])
        except (KeyError, TypeError) as exc:
            raise CorruptError(f"tag is malformed: {exc}") from exc


def encode_schema(schema: TableSchema) -> bytes:
    return pack_canonical(schema.to_obj())


def decode_schema(data: bytes) -> TableSchema:
    o = unpack_canonical(data, "schema")
    try:
        return TableSchema.from_obj(o)
    except (KeyError, TypeError) as exc:
        raise CorruptError(f"schema is malformed: {exc}") from exc
