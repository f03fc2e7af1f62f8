"""The commit's per-row work, in C where the optional extension ``snapgit._native`` is built,
else in Python: the functions here give the same results either way (the tests compare them).

* :func:`pack_digest`: the fingerprints of blocks of rows (SHA-256 of their msgpack);
* :func:`records`: the record ids and payloads of rows;
* :func:`index_entries`: the sorted entries of a pack index;
* :func:`sorted_hits`: which of many prefixes a pack index holds (a commit's batched probes);
* :func:`index_sole`: the one entry of a pack index with a prefix (the links of delta chains);
* :func:`chain_walk`: the links of a delta chain, each looked up in the packs' indexes and read
  from the block cache (an object store's reads); None without the extension, and its
  reference is the store's walk in Python (``DiskObjectStore._walk``);
* :func:`ints_fit`: whether integer columns of a batch of rows are within their ranges, in one
  pass (a restore's checks of what it writes); its reference is ``db.fit.IntRange``;
* :func:`patch_make`, :func:`patch_apply`: the patch (git's delta encoding) from a base to an
  object as long that differs from it in a few places, and patches applied (delta chains);
* :func:`leaf_size`: the canonical length of a tree leaf (a leaf is patched only if so encoded);
* :func:`patch_leaf`: a canonically encoded tree leaf with some record ids replaced, and its id
  (a commit through the change log patches most of the leaves it writes);
* :func:`leaf_ids`: the record ids such a leaf holds under some keys (status through the log);
* :func:`whole_run`: a run of objects of a pack block, each stored whole and verified against
  its id (the object store's bulk reads);
* :func:`sqlite_params`: stored records as the parameters SQLite is given (a restore's rows);
  its reference is the rows path (decode, then the SQLite converters of ``db.params``);
* :func:`pg_copy_rows`: stored records as PostgreSQL's binary COPY tuples, never decoded (a
  restore's rows); its reference is the rows path (decode, check, convert, psycopg's COPY);
* :func:`sqlite_reader`: a read-only SQLite connection whose rows come as Python's ``sqlite3``
  module gives them, three times as fast (no GIL release and no SQLite mutex per step), or None;
  its ``fetch_blocks`` reads a table keyed by one integer column as the row cache cuts it, keys,
  fingerprints and (through an :class:`Encoder`) records included, without a Python object per
  value. Its reference is the commit's path for a driver's rows (``snapshot.scan.CachedScan``).

``SNAP_NATIVE=0`` turns the extension off (to compare, or to rule it out).
"""

from __future__ import annotations

import hashlib
import os
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

import msgpack

__all__ = [
    "available",
    "pack_digest",
    "records",
    "index_entries",
    "sorted_hits",
    "index_sole",
    "leaf_size",
    "patch_leaf",
    "leaf_ids",
    "whole_run",
    "sqlite_params",
    "SQ_ANY",
    "SQ_FLOAT",
    "SQ_DATE",
    "SQ_DATETIME",
    "pg_copy_rows",
    "PG_KINDS",
    "sqlite_reader",
    "chain_walk",
    "Encoder",
    "NativeError",
]

try:
    if os.environ.get("SNAP_NATIVE", "1") == "0":
        raise ImportError("turned off by SNAP_NATIVE=0")
    from snapgit import _native
except ImportError:
    _native = None  # type: ignore[assignment]

if _native is not None:
    _native.set_ext_type(msgpack.ExtType)
    NativeError: type[Exception] = _native.Error
    # the converters of a block scan's columns (None: none), for Batch.records; it remembers
    # what each converter gave for each value it was given
    Encoder: Any = _native.Encoder
else:

    class NativeError(Exception):  # type: ignore[no-redef]
        """An error of the C extension's SQLite reader (never raised without it)."""

    Encoder = None


def available() -> bool:
    return _native is not None


_sha256 = hashlib.sha256


def pack_digest(rows: list[Sequence[Any]], starts: list[int], ends: list[int], length: int) -> list[bytes]:
    """``[sha256(packb(rows[a:b])).digest()[:length] for a, b in zip(starts, ends)]``, with
    msgpack's ``Packer(use_bin_type=True)``; its errors are msgpack's."""
    if _native is not None:
        got = _native.pack_digest(rows, starts, ends, length)
        if got is not None:
            return got
    pack = msgpack.Packer(use_bin_type=True).pack
    return [_sha256(pack(rows[a:b])).digest()[:length] for a, b in zip(starts, ends, strict=False)]


def records(
    rows: list[tuple[Any, ...]] | list[list[Any]], prefix: bytes, encode_row: Any
) -> tuple[list[bytes], list[bytes]]:
    """(ids, payloads) of rows: each payload ``encode_row(row)``, each id
    ``sha256(prefix + payload)``. The C packer gives ``encode_row``'s bytes for the values it
    knows (those a converted row holds); for any other row, ``encode_row`` runs, and raises."""
    if _native is not None:
        got = _native.records(rows, prefix)
        if got is not None:
            return got
    packed = list(map(encode_row, rows))
    sha = _sha256
    return [sha(prefix + p).digest() for p in packed], packed


def index_entries(joined: bytes | bytearray) -> tuple[bytes, bytes, list[int]] | None:
    """(prefixes, ordinals, fanout) of the pack index of these ids (32 bytes each, joined), in
    the index's byte order, or None without the extension: the reference is
    :func:`snapgit.packindex.index_entries_py`, beside the format."""
    return _native.index_entries(joined) if _native is not None else None


def sorted_hits(prefixes: Any, wanted: Any) -> set[int] | None:
    """Which of ``wanted`` (an ascending ``array('Q')``) a pack index's ``prefixes`` (its
    little-endian u64 column, ascending) hold, or None without the extension: the reference is
    ``IndexReader.prefix_hits``'s search in Python."""
    return set(_native.sorted_hits(prefixes, wanted)) if _native is not None else None


def leaf_size(keys: list[bytes], ids_len: int) -> int:
    """The length of msgpack's shortest encoding of ``[0, keys, ids]``, ``ids`` being ``ids_len``
    bytes: a tree leaf as :meth:`snapgit.objects.Node.encode` writes it. Python's reference is
    msgpack's own packer (a fifth of patching a leaf, where C sums the lengths in one call)."""
    if _native is not None:
        return _native.leaf_size(keys, ids_len)
    head = 2 if ids_len < 256 else 3 if ids_len < 1 << 16 else 5
    return 2 + len(msgpack.packb(keys, use_bin_type=True)) + head + ids_len


def patch_leaf(data: bytes, edits: list[bytes], rids: list[bytes]) -> tuple[bytes, bytes, list[int]] | None:
    """The tree leaf ``data`` (``[0, [key...], ids]`` in msgpack's shortest form, as
    :meth:`snapgit.objects.Node.encode` writes it) with the record id of the row of each key of
    ``edits`` (ascending) set to the same place of ``rids``: (the new leaf's bytes, its id, the
    places of ``edits`` whose id changed); ``(b"", b"", [])`` when none did. None when the leaf
    is not so encoded, or a key of ``edits`` is not one of its keys (rows were added or removed:
    the caller rebuilds the leaf). In C, one call; here, msgpack and :func:`leaf_size`."""
    if _native is not None:
        return _native.patch_leaf(data, edits, rids)
    if len(edits) != len(rids) or any(len(r) != 32 for r in rids):
        raise ValueError("patch_leaf: edits and rids differ in length, or a rid is not 32 bytes")
    parts = _leaf_parts(data)
    if parts is None:
        return None
    keys, blob = parts
    start = len(data) - len(blob)  # the ids are the last field, of fixed length
    new = bytearray(data)
    changed: list[int] = []
    for k, (key, rid) in enumerate(zip(edits, rids, strict=True)):
        i = bisect_left(keys, key)
        if i == len(keys) or keys[i] != key:
            return None
        o = start + 32 * i
        if new[o : o + 32] != rid:
            new[o : o + 32] = rid
            changed.append(k)
    if not changed:
        return b"", b"", []
    fresh = bytes(new)
    return fresh, _sha256(b"\x02" + fresh).digest(), changed


def leaf_ids(data: bytes, keys: list[bytes]) -> list[bytes | None] | None:
    """The record ids the tree leaf ``data`` (encoded as :func:`patch_leaf` takes it) holds
    under each of ``keys``, None for a key it does not hold; None when the leaf is not so
    encoded (the caller decodes it, which names any damage). In C the leaf is not decoded."""
    if _native is not None:
        return _native.leaf_ids(data, keys)
    parts = _leaf_parts(data)
    if parts is None:
        return None
    have, blob = parts
    out: list[bytes | None] = []
    for key in keys:
        i = bisect_left(have, key)
        out.append(blob[32 * i : 32 * i + 32] if i < len(have) and have[i] == key else None)
    return out


def _leaf_parts(data: bytes) -> tuple[list[bytes], bytes] | None:
    """(keys, ids joined) of a tree leaf encoded in msgpack's shortest form, else None."""
    try:
        level, keys, blob = msgpack.unpackb(data, raw=False)
    except (ValueError, TypeError, msgpack.UnpackException):  # what bad input raises, unpacked or not
        return None
    if (
        type(level) is not int
        or level != 0
        or not isinstance(keys, list)
        or not all(type(k) is bytes for k in keys)
        or type(blob) is not bytes
        or len(blob) != 32 * len(keys)
        or len(data) != leaf_size(keys, len(blob))  # any longer form is longer
    ):
        return None
    return keys, blob


def index_sole(fd: int, prefix_at: int, ordinal_at: int, lo: int, hi: int, prefix: int) -> int | None:
    """The ordinal of the one entry with ``prefix`` among entries ``lo`` .. ``hi - 1`` of the
    pack index open as ``fd`` (its prefix column at byte ``prefix_at``, its ordinals at
    ``ordinal_at``), read with pread: -1 none, -2 several, -3 a short read; or None without the
    extension. The reference is ``IndexReader.candidates``."""
    return _native.index_sole(fd, prefix_at, ordinal_at, lo, hi, prefix) if _native is not None else None


def chain_walk(
    oid: bytes,
    order: list[str],
    base_mru: list[str],
    base_packs: dict[str, list[str]],
    packs: dict[str, Any],
    blocks: dict[tuple[str, int], Any],
    full_cache: dict[bytes, Any],
    links: dict[bytes, Any],
    max_links: int,
) -> tuple[Any, ...] | None:
    """The links of ``oid``'s delta chain, walked in C through the packs' indexes and the block
    cache (``DiskObjectStore._walk_in_c`` says what comes back); None without the extension,
    as for a chain the careful road must read. The reference is ``DiskObjectStore._walk``."""
    if _native is None:
        return None
    return _native.chain_walk(oid, order, base_mru, base_packs, packs, blocks, full_cache, links, max_links)


def ints_fit(rows: list[Any], cols: list[tuple[int, int, int]]) -> list[bool] | None:
    """For each (position, lo, hi) of ``cols`` (lo and hi within 64 bits), whether every value
    at that position of ``rows`` (tuples or lists) is None, a bool or an int within lo .. hi,
    in one pass over the rows; None without the extension, or for rows it does not take (the
    caller then checks each column: its reference is ``snapgit.db.fit.IntRange``)."""
    return _native.ints_fit(rows, cols) if _native is not None else None


PATCH_MARK = 1  # the first byte of a patch (a zstd frame's is 0x28)
_PATCH_GAP = 8  # fewer equal bytes than this between two changes: one insert holds both


def _varint(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _copy_op(off: int, size: int) -> bytes:
    out = bytearray()
    while size:
        n = min(size, 0xFFFFFF)
        cmd, args = 0x80, bytearray()
        for b in range(4):
            if (off >> (8 * b)) & 0xFF:
                args.append((off >> (8 * b)) & 0xFF)
                cmd |= 1 << b
        for b in range(3):
            if (n >> (8 * b)) & 0xFF:
                args.append((n >> (8 * b)) & 0xFF)
                cmd |= 0x10 << b
        out.append(cmd)
        out += args
        off += n
        size -= n
    return bytes(out)


def _insert_op(data: bytes) -> bytes:
    return b"".join(bytes((len(c),)) + c for c in (data[k : k + 127] for k in range(0, len(data), 127)))


def patch_make(base: bytes, obj: bytes, limit: int) -> bytes | None:
    """The patch from ``base`` to ``obj`` (git's delta encoding after :data:`PATCH_MARK`: copies
    of the base's equal stretches, inserts of the bytes that changed) when both are as long,
    the length fits in 32 bits and the patch is at most ``limit`` bytes; else None."""
    if _native is not None:
        return _native.patch_make(base, obj, limit)
    n = len(obj)
    if len(base) != n or n == 0 or n > 0xFFFFFFFF or limit <= 0:
        return None
    out = [bytes((PATCH_MARK,)), _varint(n), _varint(n)]
    size = sum(map(len, out))
    i = copy_from = 0
    while i < n:
        while i + 64 <= n and base[i : i + 64] == obj[i : i + 64]:  # equal stretches, quickly
            i += 64
        while i < n and base[i] == obj[i]:
            i += 1
        if i >= n:
            break
        last, j = i, i + 1
        while j < n and j - last <= _PATCH_GAP:
            if base[j] != obj[j]:
                last = j
            j += 1
        ops = _copy_op(copy_from, i - copy_from) + _insert_op(obj[i : last + 1])
        out.append(ops)
        size += len(ops)
        copy_from = i = last + 1
        if size > limit:
            break
    tail = _copy_op(copy_from, n - copy_from)
    if size + len(tail) > limit:
        return None
    out.append(tail)
    return b"".join(out)


def _read_varint(p: bytes | memoryview, at: int) -> tuple[int, int]:
    v = shift = 0
    while True:
        if at >= len(p) or shift > 56:
            raise ValueError("damaged patch: its header does not fit its base")
        c = p[at]
        at += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return v, at


def _apply_one(base: bytes, patch: bytes | memoryview) -> bytes:
    p = bytes(patch)
    if not p or p[0] != PATCH_MARK:
        raise ValueError("damaged patch: its header does not fit its base")
    src, at = _read_varint(p, 1)
    dst, at = _read_varint(p, at)
    # an instruction gives at most the base's length (a copy) or 127 bytes (an insert)
    if src != len(base) or dst // max(len(base), 127) > len(p):
        raise ValueError("damaged patch: its header does not fit its base")
    out = bytearray()
    bad = ValueError("damaged patch: an instruction does not fit")
    while at < len(p):
        cmd = p[at]
        at += 1
        if cmd & 0x80:
            fields = [0, 0]  # offset (bits 0-3 say which of its bytes follow), size (bits 4-6)
            for b in range(7):
                if cmd & (1 << b):
                    if at >= len(p):
                        raise bad
                    fields[b >= 4] |= p[at] << (8 * (b if b < 4 else b - 4))
                    at += 1
            off, size = fields[0], fields[1] or 0x10000
            if off + size > len(base) or len(out) + size > dst:
                raise bad
            out += base[off : off + size]
        elif cmd:
            if at + cmd > len(p) or len(out) + cmd > dst:
                raise bad
            out += p[at : at + cmd]
            at += cmd
        else:
            raise bad
    if len(out) != dst:
        raise bad
    return bytes(out)


def patch_apply(base: bytes, patches: list[Any]) -> bytes:
    """``patches`` (made by :func:`patch_make`) applied one after the other, the first to
    ``base``: the object at the end. A damaged patch raises ValueError."""
    if _native is not None:
        return _native.patch_apply(base, patches)
    cur = bytes(base)
    for patch in patches:
        cur = _apply_one(cur, patch)
    return cur


def whole_run(data: Any, ends: list[int], i: int, oids: Sequence[bytes], j: int, out: list[tuple[int, bytes]]) -> int:
    """How many entries of a decompressed pack block, from its ``i``-th on, are stored whole
    and hash to ``oids[j]``, ``oids[j + 1]``, ...; their (type, data) are appended to ``out``.
    ``data``: the block's entries (a kind byte, 0 for whole, then the type byte and the data),
    ``ends``: where each ends. Stops at the first that is not (a delta, another object, damage,
    the block's end), which the caller then looks up the careful way."""
    if _native is not None:
        return _native.whole_run(data, ends, i, oids, j, out)
    count = 0
    if i < 0 or j < 0:
        return 0
    start = ends[i - 1] if 0 < i <= len(ends) else 0
    while i + count < len(ends) and j + count < len(oids):
        end = ends[i + count]
        if end > len(data) or end < start + 2 or data[start] != 0:
            break
        full = bytes(data[start + 1 : end])
        if _sha256(full).digest() != oids[j + count]:
            break
        out.append((full[0], full[1:]))
        start = end
        count += 1
    return count


# what sqlite_params does with a column's values: the SQ_* of _native.c
SQ_ANY, SQ_FLOAT, SQ_DATE, SQ_DATETIME = 0, 1, 2, 3


def sqlite_params(data: bytes, n: int, kinds: bytes) -> list[tuple[Any, ...]] | None:
    """The parameters of the ``n`` records joined in ``data`` as the rows path gives them to
    SQLite (decoded, then converted with the canonical style), or None: without the
    extension, or when a value is not a plain one (see ``_native.c``), which the rows path then
    converts or refuses. ``kinds``: per value, what its column's converter does: :data:`SQ_ANY`
    nothing, :data:`SQ_FLOAT` refuse NaN, :data:`SQ_DATE` and :data:`SQ_DATETIME` write dates
    and datetimes as ISO text."""
    return _native.sqlite_params(data, n, kinds) if _native is not None else None


# PostgreSQL type name -> the kind of column pg_copy_rows writes (the PG_* of _native.c)
PG_KINDS = {
    "int2": 1,
    "int4": 2,
    "int8": 3,
    "float8": 4,
    "bool": 5,
    "text": 6,
    "varchar": 6,
    "bytea": 7,
    "date": 8,
    "timestamp": 9,
    "timestamptz": 10,
    "uuid": 11,
}


def pg_copy_rows(data: bytes, n: int, columns: tuple[tuple[int, int, int], ...]) -> bytes | None:
    """The tuples of a binary ``COPY`` of the ``n`` records joined in ``data``, each value as
    psycopg's binary dumper writes it decoded, or None: without the extension, or when a value
    is not one it writes. ``columns``: per value (a kind of :data:`PG_KINDS`, low, high): an
    int is accepted within [low, high], a text when high is -1 or it has at most high
    characters. Only plain values are accepted (see ``_native.c``): anything else is left to the
    rows path, which writes it or says why it cannot."""
    return _native.pg_copy_rows(data, n, columns) if _native is not None else None


def sqlite_reader(path: str, busy_ms: int = 1000) -> Any | None:
    """A read-only connection to the SQLite file ``path`` (``execute(sql)``, ``fetchmany(n)``,
    ``close()``), or None without the extension, or where it cannot share the locks of Python's
    ``sqlite3`` module: it must use the same SQLite library, or closing one copy's file would
    drop the other's locks. Raises NativeError if the file cannot be opened."""
    if _native is None or not _shares_sqlite():
        return None
    return _native.Reader(path, busy_ms)


_shared: bool | None = None


def _shares_sqlite() -> bool:
    global _shared
    if _shared is None:
        import _sqlite3

        _shared = bool(_native.shares_sqlite(_sqlite3.__file__))
    return _shared
