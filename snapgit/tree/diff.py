"""Diff two table trees: a lazy stream of row changes that skips shared subtrees.

Both trees are walked together from their roots. Each side is a queue of items in key order,
either a subtree (not yet loaded) or a leaf entry. When the two heads are subtrees with the same
id they cover the same rows, so both are dropped unread; otherwise the higher one is expanded into
its children. Entries are merged by key. Because node boundaries depend only on keys, the two
walks fall back into step right after a change, and the work is proportional to the number of
changed rows times the height of the tree, not to the size of the table. Two leaves that hold the
same keys (rows changed in place, the usual change) are compared as two lists of record ids, in
one pass in C, not entry by entry.
"""

from __future__ import annotations

import os
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import compress
from operator import ne
from typing import Any

from snapgit.forked import end, fork, send_batched
from snapgit.objects import Node
from snapgit.store.objectstore import ObjectReader, read_cursor
from snapgit.tree.prolly import load_node

__all__ = ["RowChange", "diff_trees", "diff_trees_shared", "ADDED", "REMOVED", "CHANGED"]

ADDED = "added"
REMOVED = "removed"
CHANGED = "changed"


@dataclass(frozen=True, slots=True)
class RowChange:
    op: str  # ADDED, REMOVED or CHANGED
    key: bytes
    old: bytes | None  # record id before (None when added)
    new: bytes | None  # record id after (None when removed)


_NODE = 0
_ENTRY = 1


class _Side:
    """One tree as a queue of (kind, level, id or key, record id) items in key order.

    ``lo``, ``hi``: the children of an inner node whose keys are all at or below ``lo``, or all
    above ``hi``, are left out (None: no bound). Entries outside are not: the caller drops the
    changes of keys outside, and every key inside is on each side, in a node or as an entry."""

    __slots__ = ("reader", "items", "lo", "hi")

    def __init__(self, reader: ObjectReader, root: bytes | None, lo: bytes | None = None, hi: bytes | None = None):
        # the two sides' nodes are mostly in different packs: each side has its own order
        self.reader = read_cursor(reader)
        self.items: deque[tuple[int, int, bytes, bytes | None]] = deque()
        self.lo, self.hi = lo, hi
        if root is not None:
            node = load_node(reader, root)
            self._push_children(node)

    def _push_children(self, node: Node) -> None:
        if node.level == 0:
            self.items.extendleft(reversed([(_ENTRY, 0, k, r) for k, r in zip(node.keys, node.ids, strict=False)]))
            return
        level = node.level - 1
        keys, ids = node.keys, node.ids
        i, j = 0, len(ids)
        if self.lo is not None:  # a child holds the keys above the one before's last, up to its own
            i = bisect_right(keys, self.lo)
        if self.hi is not None:
            j = min(j, bisect_left(keys, self.hi) + 1)
        self.items.extendleft(reversed([(_NODE, level, c, None) for c in ids[i:j]]))

    def expand(self) -> None:
        _kind, _level, nid, _ = self.items.popleft()
        self._push_children(load_node(self.reader, nid))

    def take_node(self) -> Node:
        """Pop the head (a node) and load it."""
        return load_node(self.reader, self.items.popleft()[2])


def diff_trees(
    old_reader: ObjectReader,
    old_root: bytes | None,
    new_reader: ObjectReader,
    new_root: bytes | None,
    lo: bytes | None = None,
    hi: bytes | None = None,
) -> Iterator[RowChange]:
    """Changes that turn the old tree into the new one, in key order. A root of None is empty.
    ``lo``, ``hi``: only the changes of keys above ``lo`` and up to ``hi`` (None: no bound),
    reading only the nodes that hold such keys."""
    if old_root is not None and old_root == new_root:
        return
    changes = _diff(_Side(old_reader, old_root, lo, hi), _Side(new_reader, new_root, lo, hi))
    if lo is None and hi is None:
        yield from changes
        return
    for ch in changes:
        if (lo is None or ch.key > lo) and (hi is None or ch.key <= hi):
            yield ch


def _diff(a: _Side, b: _Side) -> Iterator[RowChange]:
    ai, bi = a.items, b.items
    while ai and bi:
        ha, hb = ai[0], bi[0]
        if ha[0] == _NODE:
            if hb[0] == _NODE:
                if ha[2] == hb[2]:
                    ai.popleft()
                    bi.popleft()
                elif ha[1] == hb[1] == 0:
                    la, lb = a.take_node(), b.take_node()
                    if la.keys == lb.keys:
                        keys, old, new = la.keys, la.ids, lb.ids
                        for i in compress(range(len(keys)), map(ne, old, new)):
                            yield RowChange(CHANGED, keys[i], old[i], new[i])
                    else:
                        a._push_children(la)
                        b._push_children(lb)
                elif hb[1] > ha[1]:
                    b.expand()
                else:
                    a.expand()
            else:
                a.expand()
            continue
        if hb[0] == _NODE:
            b.expand()
            continue
        ka, kb = ha[2], hb[2]
        if ka == kb:
            ai.popleft()
            bi.popleft()
            if ha[3] != hb[3]:
                yield RowChange(CHANGED, ka, ha[3], hb[3])
        elif ka < kb:
            ai.popleft()
            yield RowChange(REMOVED, ka, ha[3], None)
        else:
            bi.popleft()
            yield RowChange(ADDED, kb, None, hb[3])
    while ai:
        if ai[0][0] == _NODE:
            a.expand()
            continue
        _, _, k, r = ai.popleft()
        yield RowChange(REMOVED, k, r, None)
    while bi:
        if bi[0][0] == _NODE:
            b.expand()
            continue
        _, _, k, r = bi.popleft()
        yield RowChange(ADDED, k, None, r)


def diff_trees_shared(
    old_reader: ObjectReader, old_root: bytes | None, new_reader: ObjectReader, new_root: bytes | None
) -> Iterator[RowChange]:
    """:func:`diff_trees`, the keys above the middle of the tree diffed by a forked process
    meanwhile, where it pays (big trees, a second core).

    A diff's work is the leaves that differ, read on both sides: after a change spread over a
    table, nearly every leaf. The other process sends its changes back in batches, taken in
    while this one diffs the first half and yields its changes, up to ``_HELD`` of them: beyond,
    the other process waits, so memory stays bounded whatever the size of the change. If it
    fails, this process diffs what it had not sent (and meets the damage, if that was it)."""
    split = _split_key(old_reader, old_root, new_reader, new_root)
    if split is None:
        yield from diff_trees(old_reader, old_root, new_reader, new_root)
        return
    conn, proc = fork(_diff_apart, old_reader, old_root, new_reader, new_root, split, pipe_bytes=1 << 20)
    held: deque[RowChange] = deque()
    done = failed = False

    def take(wait: bool) -> None:
        nonlocal done, failed
        while not done and (wait or (len(held) < _HELD and conn.poll())):
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                done = failed = True
                return
            if msg[0] == "done":
                done = True
            else:
                held.extend(msg[1])
            if wait:
                return

    try:
        for i, ch in enumerate(diff_trees(old_reader, old_root, new_reader, new_root, hi=split)):
            yield ch
            if not i & 255:
                take(wait=False)
        last = split
        while True:
            while held:
                ch = held.popleft()
                last = ch.key
                yield ch
            if done:
                break
            take(wait=True)
        if failed:  # what the other process did not send, diffed here
            yield from diff_trees(old_reader, old_root, new_reader, new_root, lo=last)
    finally:
        end(conn, proc)


# changes of the other process held at most while this one diffs its half (about 150 bytes each)
_HELD = 100_000
# rows a tree needs for a second process to pay (a fork costs 10-20 ms)
_SHARED_ROWS = 200_000


def _split_key(
    old_reader: ObjectReader, old_root: bytes | None, new_reader: ObjectReader, new_root: bytes | None
) -> bytes | None:
    """The key the diff is split at, or None when a second process does not pay: the last key
    of the new tree's leaf that holds its middle row (found by the inner nodes' row counts:
    the root's children of a big table can hold 1.1M, 2.0M, 0.2M rows)."""
    if old_root is None or new_root is None or old_root == new_root:
        return None
    if (os.cpu_count() or 1) < 2 or os.environ.get("SNAP_WORKERS") == "0":
        return None
    node = load_node(new_reader, new_root)
    if node.level == 0 or node.row_count < _SHARED_ROWS:
        return None
    target = node.row_count // 2
    while True:
        i = 0
        while i < len(node.counts) - 1 and target >= node.counts[i]:
            target -= node.counts[i]
            i += 1
        if node.level == 1:
            return node.keys[i]
        node = load_node(new_reader, node.ids[i])


def _diff_apart(
    conn: Any, old_reader: ObjectReader, old_root: bytes, new_reader: ObjectReader, new_root: bytes, split: bytes
) -> None:
    changes = diff_trees(old_reader, old_root, new_reader, new_root, lo=split)
    send_batched(conn, "changes", changes, lambda _ch: 1, 1024)
