"""Table trees: sorted, content-defined chunked trees (prolly trees) over (key, record id).

A leaf holds ``(key bytes, record id)`` entries in key order; an inner node holds, per child,
the child's last key, its id and its row count. Where a node ends depends on the keys alone:

* a leaf ends after an entry whose ``crc32(key)`` is below :data:`LEAF_THRESHOLD` (one key in
  :data:`LEAF_TARGET` on average), or when it reaches :data:`LEAF_MAX` entries;
* a node of level ``L >= 1`` ends after a child whose last key ``k`` has
  ``SHA-256("snapgit-level" || byte(L) || k)``, its first 4 bytes read big-endian, below
  :data:`INNER_THRESHOLD`, or at :data:`INNER_MAX` entries. (Not CRC-32 again: CRC is affine,
  so a per-level CRC would be the leaf CRC xor a constant, and the levels' boundaries would be
  tied to each other. Inner checks happen once per leaf, so a cryptographic hash costs nothing.)
* the root is the single node of the top level.

So the same rows give the same tree, and the same root id, however and in whatever order they
were inserted; changing a record id rewrites one leaf and its path to the root; inserting or
deleting a key moves at most the boundary next to it. CRC-32 maps any key bytes that differ in a
window of up to 32 bits to distinct values, which keeps boundaries evenly spread even for
sequential integer keys, and it costs a C call.

Trees are built in one streaming pass (:class:`TreeBuilder` rejects out-of-order keys) and read
lazily; nothing here needs more than one path of nodes in memory.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence
from hashlib import sha256
from itertools import compress, count, islice
from operator import lt
from zlib import crc32

from snapgit.errors import CorruptError, SnapError
from snapgit.objects import Node, ObjType
from snapgit.store.objectstore import ObjectReader

__all__ = [
    "TreeBuilder",
    "UnsortedKeysError",
    "load_node",
    "iter_leaves",
    "iter_entries",
    "leaf_spans",
    "lookup",
    "leaf_index",
    "leaf_ends",
    "node_ends",
    "leaves_ending",
    "LEAF_TARGET",
    "LEAF_MAX",
    "INNER_TARGET",
    "INNER_MAX",
]

LEAF_TARGET = 256
LEAF_MAX = 4096
LEAF_THRESHOLD = (1 << 32) // LEAF_TARGET
INNER_TARGET = 64
INNER_MAX = 1024
INNER_THRESHOLD = (1 << 32) // INNER_TARGET


def leaf_ends(keys: Sequence[bytes]) -> bool:
    """Whether a leaf of these keys, started fresh, ends after its last key."""
    return len(keys) >= LEAF_MAX or crc32(keys[-1]) < LEAF_THRESHOLD


def _inner_hash(level: int, key: bytes) -> int:
    return int.from_bytes(sha256(b"snapgit-level" + bytes((level,)) + key).digest()[:4], "big")


def leaves_ending(last_keys: Sequence[bytes], counts: Sequence[int], start: int, stop: int) -> int:
    """The first of the leaves ``start`` .. ``stop - 1`` (by their last keys and row counts)
    that does not end on its boundary (:func:`node_ends` of level 0), or ``stop``."""
    for k in range(start, stop):
        if counts[k] < LEAF_MAX and crc32(last_keys[k]) >= LEAF_THRESHOLD:
            return k
    return stop


def node_ends(level: int, last_key: bytes, count: int) -> bool:
    """Whether a stored node of ``level`` (0: a leaf) whose last key is ``last_key``, holding
    ``count`` rows, ends where a fresh node of its level would end, and so does every node
    below it that ends with it: ``last_key`` is a boundary at every level up to ``level`` (or,
    for a leaf, it holds :data:`LEAF_MAX` entries). The nodes on a tree's right edge were
    closed by :meth:`TreeBuilder.finish` wherever the rows ran out: one whose own level's
    boundary falls on its last key by chance may still hold a last leaf that rows added after
    it would have continued, hence every level. False tells nothing (a node cut at
    :data:`LEAF_MAX` or :data:`INNER_MAX` entries below its top cannot be told by its last
    key): such a node is not taken whole, which costs reading it, never a wrong tree."""
    if level == 0:
        return count >= LEAF_MAX or crc32(last_key) < LEAF_THRESHOLD
    if crc32(last_key) >= LEAF_THRESHOLD:
        return False
    return all(_inner_hash(lv, last_key) < INNER_THRESHOLD for lv in range(1, level + 1))


# emit(node, payloads) stores a node and returns its id; payloads are the encoded records of a
# leaf's entries (parallel to node.ids) when the builder was given them, else None. The builder
# only passes them on: a payload None is the caller's (a record it knows is stored).
Emit = Callable[[Node, "list[bytes | None] | None"], bytes]


class UnsortedKeysError(SnapError):
    """Keys given to a tree builder out of order (or twice)."""


class TreeBuilder:
    """Builds a tree from sorted entries in one pass.

    ``on_leaf(first key, last key, id, count)``, when given, receives each closed leaf instead
    of the inner levels: a builder of leaves only (for a key range of a table, whose leaves a
    second builder joins with :meth:`add_leaf_ref`); :meth:`pending` then gives the entries
    after its last leaf."""

    def __init__(self, emit: Emit, on_leaf: Callable[[bytes, bytes, bytes, int], None] | None = None) -> None:
        self._emit = emit
        self._on_leaf = on_leaf
        self._keys: list[bytes] = []
        self._ids: list[bytes] = []
        self._payloads: list[bytes | None] | None = None
        self._levels: list[tuple[list[bytes], list[bytes], list[int]]] = []  # level 1, 2, ...
        self._last: bytes | None = None
        self.count = 0
        self._done = False

    def add_batch(
        self, keys: Sequence[bytes], ids: Sequence[bytes], payloads: Sequence[bytes | None] | None = None
    ) -> None:
        """Append entries whose keys are strictly increasing and greater than all before."""
        if not keys:
            return
        if (self._last is not None and keys[0] <= self._last) or not all(map(lt, keys, islice(keys, 1, None))):
            raise UnsortedKeysError("keys are not in strictly increasing order")
        self._last = keys[-1]
        self.count += len(keys)
        if payloads is not None and self._payloads is None:
            if self._keys:
                raise ValueError("payloads must be given for every batch or none")
            self._payloads = []
        t = LEAF_THRESHOLD
        cuts = list(compress(count(), map(t.__gt__, map(crc32, keys))))
        start = 0
        for c in cuts:
            self._segment(keys, ids, payloads, start, c + 1, True)
            start = c + 1
        if start < len(keys):
            self._segment(keys, ids, payloads, start, len(keys), False)

    def add(self, key: bytes, rid: bytes) -> None:
        self.add_batch([key], [rid])

    def add_leaf(self, nid: bytes, leaf: Node) -> bool:
        """Append a stored leaf whole, without re-emitting it, when that gives the very tree that
        adding its entries one by one would: no entries are pending (so the leaf starts where a
        fresh leaf would) and its last key is a boundary. Returns False (nothing added) when
        not; the caller then adds the entries."""
        if not leaf.keys or not leaf_ends(leaf.keys):
            return False
        return self.add_leaf_ref(leaf.keys[0], leaf.keys[-1], nid, len(leaf.keys))

    def add_leaf_ref(self, first_key: bytes, last_key: bytes, nid: bytes, count: int) -> bool:
        """:meth:`add_leaf` for a leaf known by its first and last keys, id and size, which the
        caller knows ends on a boundary (a leaf another builder closed, not its last; or one
        whose keys are those of such a leaf) and whose records are stored. A builder of leaves
        gives it to ``on_leaf``."""
        if self._keys:
            return False
        if self._last is not None and first_key <= self._last:
            raise UnsortedKeysError("keys are not in strictly increasing order")
        self._last = last_key
        self.count += count
        if self._on_leaf is not None:
            self._on_leaf(first_key, last_key, nid, count)
        else:
            self._push(1, last_key, nid, count)
        return True

    def add_node_ref(self, level: int, last_key: bytes, nid: bytes, count: int) -> bool:
        """Append a stored node of ``level`` whole (0: a leaf, as :meth:`add_leaf_ref`), without
        reading or re-emitting it, when that gives the very tree that adding its entries one by
        one would: nothing is pending at its level or below (so it starts where a fresh node of
        its level would), and the caller knows it ends on its boundary (:func:`node_ends`) and
        that its keys follow every key added so far. Returns False (nothing added) when not.
        Not for a builder of leaves."""
        if level == 0:
            return self.add_leaf_ref(last_key, last_key, nid, count)
        assert self._on_leaf is None
        if self._keys or any(self._levels[i][0] for i in range(min(level, len(self._levels)))):
            return False
        if self._last is not None and last_key <= self._last:
            raise UnsortedKeysError("keys are not in strictly increasing order")
        self._last = last_key
        self.count += count
        self._push(level + 1, last_key, nid, count)
        return True

    def add_leaf_refs(
        self, last_keys: Sequence[bytes], nids: Sequence[bytes], counts: Sequence[int], last_may_end: bool
    ) -> None:
        """:meth:`add_leaf_ref` of a run of stored leaves (their last keys, ids and row counts),
        at once: consecutive children of one inner node of level 1, each ending on its leaf
        boundary (:func:`leaves_ending`). None of them but the node's last child is a boundary
        of level 1 (the node would have ended there), so no key is hashed but the run's last
        when it is the node's last child (``last_may_end``); where the run fills a node to
        :data:`INNER_MAX` children, that node ends there, as one child at a time would."""
        if not last_keys:
            return
        if self._keys or self._on_leaf is not None:
            raise ValueError("leaves are added whole only between leaves, to a builder of the whole tree")
        if self._last is not None and last_keys[0] <= self._last:
            raise UnsortedKeysError("keys are not in strictly increasing order")
        self._last = last_keys[-1]
        self.count += sum(counts)
        if not self._levels:
            self._levels.append(([], [], []))
        n = len(last_keys)
        i = 0
        while i < n:
            keys, ids, cnts = self._levels[0]
            take = min(INNER_MAX - len(keys), n - i)
            keys.extend(last_keys[i : i + take])
            ids.extend(nids[i : i + take])
            cnts.extend(counts[i : i + take])
            i += take
            if len(keys) >= INNER_MAX:
                self._close_inner(1)
            elif i == n and last_may_end and _inner_hash(1, last_keys[-1]) < INNER_THRESHOLD:
                self._close_inner(1)

    def between_nodes(self, level: int) -> bool:
        """Whether a whole node of ``level`` may be added (:meth:`add_node_ref`): nothing is
        pending at its level or below."""
        return not self._keys and not any(self._levels[i][0] for i in range(min(level, len(self._levels))))

    def between_leaves(self) -> bool:
        """Whether no entries are pending: the next entry starts a leaf, and a whole leaf may be
        added (:meth:`add_leaf_ref`)."""
        return not self._keys

    def _segment(
        self,
        keys: Sequence[bytes],
        ids: Sequence[bytes],
        payloads: Sequence[bytes | None] | None,
        start: int,
        end: int,
        natural: bool,
    ) -> None:
        pos = start
        while pos < end:
            room = LEAF_MAX - len(self._keys)
            take = min(room, end - pos)
            self._keys.extend(keys[pos : pos + take])
            self._ids.extend(ids[pos : pos + take])
            if self._payloads is not None and payloads is not None:
                self._payloads.extend(payloads[pos : pos + take])
            pos += take
            if len(self._keys) >= LEAF_MAX or (pos == end and natural):
                self._close_leaf()

    def _close_leaf(self) -> None:
        if not self._keys:
            return
        node = Node(0, self._keys, self._ids)
        payloads = self._payloads
        self._keys, self._ids = [], []
        if payloads is not None:
            self._payloads = []
        nid = self._emit(node, payloads)
        if self._on_leaf is not None:
            self._on_leaf(node.keys[0], node.keys[-1], nid, len(node.keys))
        else:
            self._push(1, node.keys[-1], nid, len(node.keys))

    def _push(self, level: int, last_key: bytes, nid: bytes, count: int) -> None:
        while len(self._levels) < level:
            self._levels.append(([], [], []))
        keys, ids, counts = self._levels[level - 1]
        keys.append(last_key)
        ids.append(nid)
        counts.append(count)
        if len(keys) >= INNER_MAX or _inner_hash(level, last_key) < INNER_THRESHOLD:
            self._close_inner(level)

    def _close_inner(self, level: int) -> None:
        keys, ids, counts = self._levels[level - 1]
        if not keys:
            return
        self._levels[level - 1] = ([], [], [])
        node = Node(level, keys, ids, counts)
        nid = self._emit(node, None)
        self._push(level + 1, keys[-1], nid, sum(counts))

    def pending(self) -> tuple[list[bytes], list[bytes], list[bytes | None] | None]:
        """(keys, ids, payloads or None) added but not yet in a closed leaf."""
        return self._keys, self._ids, self._payloads

    def finish(self) -> tuple[bytes, int]:
        """Flush what is pending; returns (root id, row count)."""
        if self._done:
            raise RuntimeError("finish() called twice")
        self._done = True
        if self.count == 0:
            return self._emit(Node(0, [], []), [] if self._payloads is not None else None), 0
        self._close_leaf()
        level = 1
        while True:
            keys, ids, _counts = self._levels[level - 1]
            top = len(self._levels) == level
            if top and len(keys) == 1:
                return ids[0], self.count
            if keys:
                self._close_inner(level)  # may create the level above
            level += 1


def node_data(reader: ObjectReader, nid: bytes) -> bytes:
    """A tree node's bytes as stored, undecoded (CorruptError when the object is another kind)."""
    otype, data = reader.get(nid)
    if otype != ObjType.NODE:
        raise CorruptError(f"object {nid.hex()} is not a tree node (type {otype})")
    return data


def load_node(reader: ObjectReader, nid: bytes) -> Node:
    return Node.decode(node_data(reader, nid))


def leaf_spans(reader: ObjectReader, root: bytes, keys: Sequence[bytes]) -> list[tuple[bytes, int, int]]:
    """The leaves of the tree ``root`` that ``keys`` (sorted) fall in, in key order, each once
    with the keys that fall in it (``keys[lo:hi]``): a key falls in the first leaf whose last
    key is at or above it, a key above every key of the tree in none. Reads the inner nodes on
    the way to them only, no leaf: what a walk down to the keys will read next."""
    node = load_node(reader, root)
    if node.level == 0:
        if not keys or not node.keys or keys[0] > node.keys[-1]:
            return []
        return [(root, 0, bisect_right(keys, node.keys[-1]))]
    out: list[tuple[bytes, int, int]] = []

    def down(node: Node, lo: int, hi: int) -> None:
        ci = lo
        for last, cid in zip(node.keys, node.ids, strict=True):
            cj = bisect_right(keys, last, ci, hi)
            if cj > ci:
                if node.level == 1:
                    out.append((cid, ci, cj))
                else:
                    down(load_node(reader, cid), ci, cj)
                ci = cj
            if ci == hi:
                return

    down(node, 0, len(keys))
    return out


def iter_leaves(reader: ObjectReader, root: bytes) -> Iterator[tuple[bytes, Node]]:
    """Every leaf of the tree, in key order, with its id."""
    stack = [root]
    while stack:
        nid = stack.pop()
        node = load_node(reader, nid)
        if node.level == 0:
            yield nid, node
        else:
            stack.extend(reversed(node.ids))


def iter_entries(reader: ObjectReader, root: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Every (key, record id) of the tree, in key order."""
    for _nid, leaf in iter_leaves(reader, root):
        yield from zip(leaf.keys, leaf.ids, strict=False)


def lookup(reader: ObjectReader, root: bytes, key: bytes) -> bytes | None:
    """The record id stored under ``key``, or None."""
    node = load_node(reader, root)
    while node.level:
        i = bisect_left(node.keys, key)
        if i == len(node.keys):
            return None
        node = load_node(reader, node.ids[i])
    i = bisect_left(node.keys, key)
    if i < len(node.keys) and node.keys[i] == key:
        return node.ids[i]
    return None


def leaf_index(reader: ObjectReader, root: bytes) -> tuple[list[bytes], list[bytes], list[int]]:
    """(last keys, ids, entry counts) of every leaf, in key order, read from the inner nodes
    only."""
    node = load_node(reader, root)
    if node.level == 0:
        return ([node.keys[-1]] if node.keys else [b""]), [root], [len(node.keys)]
    keys: list[bytes] = []
    ids: list[bytes] = []
    counts: list[int] = []
    stack = [node]
    while stack:
        n = stack.pop()
        if n.level == 1:
            keys.extend(n.keys)
            ids.extend(n.ids)
            counts.extend(n.counts)
        else:
            stack.extend(reversed([load_node(reader, c) for c in n.ids]))
    return keys, ids, counts
