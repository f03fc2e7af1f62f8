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

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import compress
from operator import ne

from snapgit.objects import Node
from snapgit.store.objectstore import ObjectReader, read_cursor
from snapgit.tree.prolly import load_node

__all__ = ["RowChange", "diff_trees", "ADDED", "REMOVED", "CHANGED"]

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
    """One tree as a queue of (kind, level, id or key, record id) items in key order."""

    __slots__ = ("reader", "items")

    def __init__(self, reader: ObjectReader, root: bytes | None) -> None:
        # the two sides' nodes are mostly in different packs: each side has its own order
        self.reader = read_cursor(reader)
        self.items: deque[tuple[int, int, bytes, bytes | None]] = deque()
        if root is not None:
            node = load_node(reader, root)
            self._push_children(node)

    def _push_children(self, node: Node) -> None:
        if node.level == 0:
            self.items.extendleft(reversed([(_ENTRY, 0, k, r) for k, r in zip(node.keys, node.ids, strict=False)]))
        else:
            level = node.level - 1
            self.items.extendleft(reversed([(_NODE, level, c, None) for c in node.ids]))

    def expand(self) -> None:
        _kind, _level, nid, _ = self.items.popleft()
        self._push_children(load_node(self.reader, nid))

    def take_node(self) -> Node:
        """Pop the head (a node) and load it."""
        return load_node(self.reader, self.items.popleft()[2])


def diff_trees(
    old_reader: ObjectReader, old_root: bytes | None, new_reader: ObjectReader, new_root: bytes | None
) -> Iterator[RowChange]:
    """Changes that turn the old tree into the new one, in key order. A root of None is empty."""
    if old_root is not None and old_root == new_root:
        return
    a = _Side(old_reader, old_root)
    b = _Side(new_reader, new_root)
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
