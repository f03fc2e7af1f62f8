"""The tree diff's promises that a correct list of changes does not show (snapgit/tree/diff.py).

tests/test_prolly.py checks that ``diff_trees`` gives exactly the changed entries. These tests
check what makes it cheap, each found missing by mutation testing (docs/mutation.md): equal
roots read nothing, a diff reads only the nodes the two trees do not share (shared subtrees
are skipped unread, also between trees of different heights), leaves that hold the same keys
go through the one-pass comparison of record ids, and a ``RowChange`` is a small immutable
value.
"""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from snapgit.encoding import encode_key
from snapgit.objects import Node, ObjType
from snapgit.store.objectstore import MemoryObjectStore
from snapgit.tree import diff as diff_mod
from snapgit.tree import prolly as tree_mod
from snapgit.tree.diff import ADDED, CHANGED, REMOVED, RowChange, diff_trees
from snapgit.tree.prolly import TreeBuilder, load_node


def rid(i) -> bytes:
    return hashlib.sha256(b"record %r" % (i,)).digest()


class CountingReader:
    """An object reader that counts the objects read through it."""

    def __init__(self, store: MemoryObjectStore) -> None:
        self.store = store
        self.reads = 0

    def get(self, oid: bytes) -> tuple[int, bytes]:
        self.reads += 1
        return self.store.get(oid)

    def get_many(self, oids):
        self.reads += len(oids)
        return self.store.get_many(oids)

    def contains(self, oid: bytes) -> bool:
        return self.store.contains(oid)


@pytest.fixture
def small_nodes(monkeypatch):
    """A leaf every ~4 keys and an inner node every ~3 children: a few hundred keys make a tree
    five or six levels high."""
    monkeypatch.setattr(tree_mod, "LEAF_THRESHOLD", (1 << 32) // 4)
    monkeypatch.setattr(tree_mod, "LEAF_MAX", 12)
    monkeypatch.setattr(tree_mod, "INNER_THRESHOLD", (1 << 32) // 3)
    monkeypatch.setattr(tree_mod, "INNER_MAX", 5)


def build(store: MemoryObjectStore, entries: dict[bytes, bytes]) -> bytes:
    w = store.writer()
    b = TreeBuilder(lambda node, _p: w.add(ObjType.NODE, node.encode()))
    items = sorted(entries.items())
    b.add_batch([k for k, _ in items], [r for _, r in items])
    root, _count = b.finish()
    w.commit()
    return root


def node_ids(store, root) -> set[bytes]:
    out, stack = set(), [root]
    while stack:
        nid = stack.pop()
        out.add(nid)
        node: Node = load_node(store, nid)
        if node.level:
            stack.extend(node.ids)
    return out


def changes(store, old, new, reader=None):
    r = reader or store
    return [(c.op, c.key, c.old, c.new) for c in diff_trees(r, old, r, new)]


def table(keys) -> dict[bytes, bytes]:
    return {encode_key([k]): rid(k) for k in keys}


def test_equal_roots_read_nothing(small_nodes):
    store = MemoryObjectStore()
    root = build(store, table(range(300)))
    reader = CountingReader(store)
    assert changes(store, root, root, reader) == []
    assert changes(store, root, bytes(bytearray(root)), reader) == []  # equal, not the same object
    assert reader.reads == 0
    assert changes(store, None, None, reader) == []
    assert reader.reads == 0


def test_empty_against_a_tree_is_every_entry(small_nodes):
    store = MemoryObjectStore()
    rows = table(range(50))
    root = build(store, rows)
    everything = sorted(rows.items())
    assert changes(store, None, root) == [(ADDED, k, None, r) for k, r in everything]
    assert changes(store, root, None) == [(REMOVED, k, r, None) for k, r in everything]


OLD_ROWS = range(0, 1200, 2)
EDITS = {
    "change": lambda rows: {**rows, encode_key([600]): rid("changed")},
    "add": lambda rows: {**rows, encode_key([601]): rid(601)},
    "remove": lambda rows: {k: r for k, r in rows.items() if k != encode_key([600])},
    "append": lambda rows: {**rows, **table(range(1200, 6000, 2))},  # two levels taller
    "prepend": lambda rows: {**table(range(-4800, 0, 2)), **rows},
    "cut": lambda rows: table(range(0, 600, 2)),
    "one leaf": lambda rows: table(range(0, 40, 2)),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_the_diff_reads_only_the_nodes_the_trees_do_not_share(small_nodes, edit):
    """A deep tree against one with a row changed, added or removed, or with many rows added
    or cut (so the heights differ): the diff reads each node only one of the trees has, once,
    and no shared node (whichever tree is the old one). No correct diff reads fewer."""
    store = MemoryObjectStore()
    old_rows = table(OLD_ROWS)
    new_rows = EDITS[edit](old_rows)
    old, new = build(store, old_rows), build(store, new_rows)
    assert load_node(store, old).level >= 7
    not_shared = len(node_ids(store, old) ^ node_ids(store, new))
    for a, b, a_rows, b_rows in ((old, new, old_rows, new_rows), (new, old, new_rows, old_rows)):
        reader = CountingReader(store)
        got = changes(store, a, b, reader)
        assert got == [
            (REMOVED, k, a_rows[k], None)
            if k not in b_rows
            else (ADDED, k, None, b_rows[k])
            if k not in a_rows
            else (CHANGED, k, a_rows[k], b_rows[k])
            for k in sorted(a_rows.keys() | b_rows.keys())
            if a_rows.get(k) != b_rows.get(k)
        ]
        assert reader.reads == not_shared


def test_leaves_with_the_same_keys_are_compared_in_one_pass(small_nodes, monkeypatch):
    """A row changed in place leaves the keys of its leaf as they were: the two leaves are
    compared as lists of record ids (one ``compress`` over them), not entry by entry."""
    store = MemoryObjectStore()
    old_rows = table(range(400))
    new_rows = {**old_rows, encode_key([200]): rid("changed")}
    old, new = build(store, old_rows), build(store, new_rows)
    calls = []
    real = diff_mod.compress

    def spy(data, selectors):
        calls.append(1)
        return real(data, selectors)

    monkeypatch.setattr(diff_mod, "compress", spy)
    assert changes(store, old, new) == [(CHANGED, encode_key([200]), rid(200), rid("changed"))]
    assert len(calls) == 1


def test_a_row_change_is_a_small_immutable_value():
    c = RowChange(CHANGED, b"k", b"o" * 32, b"n" * 32)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.op = ADDED  # type: ignore[misc]
    assert {c, RowChange(CHANGED, b"k", b"o" * 32, b"n" * 32)} == {c}  # hashable, by value
    assert not hasattr(c, "__dict__")  # slots: a diff of millions of rows holds many of these
