"""The row cache: what a commit remembers of the rows it read, so that the next commit can skip
converting, encoding and hashing the rows that did not change (as git's index lets
``git commit`` skip hashing the files whose stat data did not change).

A table's rows, in key order, are cut into *blocks* by their keys (:func:`block_ends`): in a
table keyed by one integer column, a block is the rows whose key divided by 16 is the same (a
row whose key is not an integer is a block of its own); in any other table, a block ends after
a key whose encoded bytes' CRC-32 is below :data:`BLOCK_THRESHOLD` (one key in
:data:`BLOCK_TARGET`). The last block ends where the table ends. (Integer blocks are even: a row
changed in a dense integer key costs its 16 neighbours, where the CRC rule's blocks, of random
sizes, cost twice that on average: a row falls more often in a long block.) A block's *fingerprint* is the first 16 bytes of the SHA-256 of the msgpack array of
its rows exactly as the database driver returned them, before any conversion. For each table the
commit writes the (last key, fingerprint) of every block of the tree it built, bound to that
tree's root id and to a *signature* of everything that turns driver rows into records (the
dialect, the table's schema, its key and the code that reads and encodes).

The next commit reads the table again and fingerprints its blocks the same way, one C call for
the whole block. A block whose last key and fingerprint are the cache's, in a cache bound to the
parent commit's tree and to the same signature, holds exactly the driver rows that the parent's
tree was built from, so its (key, record id) entries are the parent's: they are taken from the
parent's leaves, and the rows are neither converted nor encoded nor hashed, nor their records
looked for in the store. Every other block is read as without a cache.

Nothing in the cache can make a commit wrong, only slower: an entry that does not match is a
miss, a file that does not parse or is bound to another tree or signature is not used, and a
hit also needs the parent's leaves to hold exactly the block's keys. The cache lives in
``.snapstore/cache/``, one file per table, written under a temporary name and renamed; deleting
it costs one slower commit. Only drivers whose values msgpack packs as they come (SQLite's: int,
float, text, bytes, NULL) are fingerprinted, and only tables whose key columns need no
conversion.

File layout (all integers little-endian)::

    segment*   msgpack [keys: array of bin, fingerprints: bin of 16 bytes per key]
    directory  msgpack [version, signature (bin 32), root (bin 32),
                        [[first key, last key, offset, length], ...] one per segment]
    footer     u64 directory offset, u32 directory length, "SNAPROWC"
"""

from __future__ import annotations

import hashlib
import os
import struct
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from itertools import compress, count, islice, repeat
from operator import ne, rshift
from pathlib import Path
from typing import Any
from zlib import crc32

import msgpack

__all__ = [
    "BLOCK_TARGET",
    "BLOCK_THRESHOLD",
    "FP_LEN",
    "RowCache",
    "RowCacheWriter",
    "Blocks",
    "block_ends",
    "cache_path",
    "signature",
]

# 2: driver rows convert to spelled values (store format 2): record ids a cache of version 1
# holds for the same rows are those of format 1, so such a cache is not used
VERSION = 2
BLOCK_TARGET = 16
BLOCK_THRESHOLD = (1 << 32) // BLOCK_TARGET
BLOCK_BITS = 4  # integer keys: a block is the rows whose key >> BLOCK_BITS is the same
FP_LEN = 16
SEGMENT_BLOCKS = 1024
_MAGIC = b"SNAPROWC"
_FOOTER = struct.Struct("<QI8s")
# what turns driver rows into records: a change to any of these modules may change a record
_READ_MODULES = ("snapgit.encoding", "snapgit.db.values", "snapgit.db.types", "snapgit.db.rows", "snapgit.db.database")
_code_hash: bytes | None = None


def _code() -> bytes:
    global _code_hash
    if _code_hash is None:
        import importlib

        from snapgit.version import __version__

        h = hashlib.sha256(f"snapgit {__version__} rowcache {VERSION} blocks {BLOCK_TARGET} {BLOCK_BITS}\0".encode())
        for name in _READ_MODULES:
            path = getattr(importlib.import_module(name), "__file__", None)
            try:
                h.update(Path(path).read_bytes() if path else name.encode())
            except OSError:
                h.update(name.encode())
        _code_hash = h.digest()
    return _code_hash


def signature(dialect: str, schema_id: bytes, key: Sequence[str], integer_key: bool) -> bytes:
    """What a cache's fingerprints are valid for: rows read from this dialect, of the table with
    this schema (its columns' names and types, as declared), keyed so, cut into blocks by this
    rule, by this code."""
    rule = "integer" if integer_key else "crc"
    return hashlib.sha256(msgpack.packb([_code(), dialect, schema_id, list(key), rule], use_bin_type=True)).digest()


def block_ends(keys: list[bytes], ints: list[Any] | None) -> list[int]:
    """Where blocks end in a run of rows in key order: the positions after each block's last
    row. ``ints``: the key values of a table keyed by one integer column, else None. Under the
    integer rule a block ends where the next row's key is in another block, so the run's last
    row ends none (the next run tells)."""
    if ints is None:
        return list(compress(count(1), map(BLOCK_THRESHOLD.__gt__, map(crc32, keys))))
    if set(map(type, ints)) == {int}:
        q: list[Any] = list(map(rshift, ints, repeat(BLOCK_BITS)))
    else:  # text in an integer column (SQLite): such a row is a block of its own
        q = [v >> BLOCK_BITS if type(v) is int else object() for v in ints]
    return list(compress(count(1), map(ne, q, islice(q, 1, None))))


def cache_path(cache_dir: Path, table: str) -> Path:
    return cache_dir / f"{hashlib.sha256(table.encode('utf-8')).hexdigest()[:32]}.rows"


class Blocks:
    """The (last key, fingerprint) of blocks as a scan finds them, in key order; taken out as
    segments of the file format."""

    __slots__ = ("keys", "fps")

    def __init__(self) -> None:
        self.keys: list[bytes] = []
        self.fps = bytearray()

    def __len__(self) -> int:
        return len(self.keys)

    def extend(self, last_keys: list[bytes], fps: list[bytes]) -> None:
        self.keys += last_keys
        self.fps += b"".join(fps)

    def take(self) -> tuple[bytes, bytes, bytes] | None:
        """(segment bytes, first key, last key) of what was added since the last take, or None."""
        if not self.keys:
            return None
        out = msgpack.packb([self.keys, bytes(self.fps)], use_bin_type=True), self.keys[0], self.keys[-1]
        self.keys = []
        self.fps = bytearray()
        return out


class RowCacheWriter:
    """Writes one table's cache file: segments as they come (the key ranges of a table read by
    several processes come in any order; the directory lists them in key order), then
    :meth:`finish` binds it to the tree and renames it into place. Errors are swallowed (a
    cache that cannot be written is a slower next commit, not a failed one)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tmp = path.with_name(f"{path.name}.{os.urandom(4).hex()}.tmp")
        self._f: Any = None
        self._dir: list[list[Any]] = []
        self._offset = 0
        try:
            path.parent.mkdir(mode=0o700, exist_ok=True)
            # the fingerprints say which rows are equal to which: the store's owner only
            self._f = os.fdopen(os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")
        except OSError:
            self._f = None

    def add_segment(self, segment: tuple[bytes, bytes, bytes] | None) -> None:
        if segment is None or self._f is None:
            return
        data, first, last = segment
        try:
            self._f.write(data)
        except OSError:
            self.abort()
            return
        self._dir.append([first, last, self._offset, len(data)])
        self._offset += len(data)

    def add_blocks(self, blocks: Blocks) -> None:
        self.add_segment(blocks.take())

    def finish(self, sig: bytes, root: bytes) -> None:
        if self._f is None:
            return
        self._dir.sort(key=lambda d: d[0])
        if any(a[1] >= b[0] for a, b in zip(self._dir, self._dir[1:], strict=False)):
            self.abort()  # segments that overlap (a range read twice): not searchable
            return
        try:
            directory = msgpack.packb([VERSION, sig, root, self._dir], use_bin_type=True)
            self._f.write(directory + _FOOTER.pack(self._offset, len(directory), _MAGIC))
            self._f.close()
            self._f = None
            os.replace(self._tmp, self.path)
        except OSError:
            self.abort()

    def abort(self) -> None:
        if self._f is not None:
            try:
                self._f.close()
            except OSError:
                pass
            self._f = None
        try:
            os.unlink(self._tmp)
        except OSError:
            pass


class RowCache:
    """One table's cache file, opened for reading. Segments are read when a cursor comes to them."""

    def __init__(self, path: Path, directory: list[list[Any]]) -> None:
        self._path = path
        self._dir = directory
        self._lasts = [d[1] for d in directory]

    @classmethod
    def open(cls, path: Path, sig: bytes, root: bytes) -> RowCache | None:
        """The cache at ``path`` if it is bound to this signature and tree, else None."""
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                if size < _FOOTER.size:
                    return None
                f.seek(size - _FOOTER.size)
                offset, length, magic = _FOOTER.unpack(f.read(_FOOTER.size))
                if magic != _MAGIC or offset + length + _FOOTER.size != size:
                    return None
                f.seek(offset)
                version, got_sig, got_root, directory = msgpack.unpackb(f.read(length), raw=False)
        except (OSError, ValueError, TypeError, msgpack.UnpackException):
            return None
        if version != VERSION or got_sig != sig or got_root != root or not isinstance(directory, list):
            return None
        for d in directory:
            if not (
                isinstance(d, list)
                and len(d) == 4
                and isinstance(d[0], bytes)
                and isinstance(d[1], bytes)
                and type(d[2]) is int
                and type(d[3]) is int
                and 0 <= d[2]
                and d[2] + d[3] <= offset
            ):
                return None
        return cls(path, directory)

    def cursor(self) -> Cursor:
        return Cursor(self)

    def _segment(self, i: int) -> tuple[list[bytes], bytes] | None:
        _first, _last, offset, length = self._dir[i]
        try:
            with open(self._path, "rb") as f:
                f.seek(offset)
                keys, fps = msgpack.unpackb(f.read(length), raw=False)
        except (OSError, ValueError, TypeError, msgpack.UnpackException):
            return None
        if not isinstance(keys, list) or not isinstance(fps, bytes) or len(fps) != FP_LEN * len(keys):
            return None
        return keys, fps


class Cursor:
    """Answers, for last keys in increasing order, whether the cache has those blocks with those
    fingerprints. Moves forward only; reads a segment when it comes to it."""

    __slots__ = ("_cache", "_seg", "_keys", "_fps", "_i", "_dead")

    def __init__(self, cache: RowCache) -> None:
        self._cache = cache
        self._seg = -1
        self._keys: list[bytes] = []
        self._fps = b""
        self._i = 0
        self._dead = False

    def matches(self, last_keys: list[bytes], fps: list[bytes]) -> list[bool]:
        """Whether the cache has each block (by its last key, increasing and above any asked
        before) with its fingerprint."""
        out: list[bool] = []
        pos, n = 0, len(last_keys)
        while pos < n and not self._dead:
            keys = self._keys
            i = bisect_left(keys, last_keys[pos], self._i) if keys else 0
            if i == len(keys):
                if not self._seek(last_keys[pos]):
                    break
                continue
            j = bisect_right(last_keys, keys[-1], pos)  # the asked keys this segment can hold
            end = bisect_right(keys, last_keys[j - 1], i)
            f = self._fps
            have = dict(
                zip(keys[i:end], [f[k : k + FP_LEN] for k in range(i * FP_LEN, end * FP_LEN, FP_LEN)], strict=False)
            )
            get = have.get
            out += [get(k) == fp for k, fp in zip(last_keys[pos:j], fps[pos:j], strict=False)]
            self._i = end
            pos = j
        out += [False] * (n - len(out))
        return out

    def _seek(self, last_key: bytes) -> bool:
        cache = self._cache
        s = bisect_left(cache._lasts, last_key, self._seg + 1)
        if s == len(cache._lasts):
            self._keys, self._fps, self._i = [], b"", 0
            self._seg = s - 1
            return False
        got = cache._segment(s)
        if got is None:
            self._dead = True
            return False
        self._seg = s
        self._keys, self._fps = got
        self._i = 0
        return True
