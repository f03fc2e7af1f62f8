"""A table read through its change log gets the very tree a full read builds: the parent's tree
with the logged keys' rows applied (snapshot/capture.py), taking whole every subtree no logged
key falls in, is compared with the tree built from scratch from the same rows.

Small node targets (as in test_prolly.py) make a few hundred keys a tree of four or five levels,
so that whole inner nodes are taken, forced cuts at the maxima are met, and rows added past the
last key meet the tree's right edge, whose nodes were closed where the rows ran out."""

from __future__ import annotations

import hashlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapgit.encoding import encode_key
from snapgit.objects import Node, ObjType
from snapgit.snapshot.capture import _apply_edits
from snapgit.snapshot.tablewriter import OldTree, TableWriter
from snapgit.store.objectstore import MemoryObjectStore
from snapgit.tree.diff import diff_trees
from snapgit.tree.prolly import TreeBuilder
from tests.test_prolly import small_nodes


def record(i: int, version: int) -> tuple[bytes, bytes]:
    payload = b"row %d version %d" % (i, version)
    return hashlib.sha256(b"\x01" + payload).digest(), payload


def build(store: MemoryObjectStore, rows: dict[int, int]) -> bytes:
    """The root of the tree of ``rows`` (key -> version) built from scratch."""
    with store.writer() as w:

        def emit(node: Node, payloads) -> bytes:
            return w.add(ObjType.NODE, node.encode())

        b = TreeBuilder(emit)
        keys = sorted(rows)
        b.add_batch([encode_key([k]) for k in keys], [record(k, rows[k])[0] for k in keys])
        return b.finish()[0]


_edit = st.tuples(st.integers(-20, 700), st.sampled_from(["update", "delete", "same"]))


# (leaf target, leaf max, inner target, inner max): boundaries by hash mostly; inner nodes cut
# at their maximum mostly (runs of whole leaves then cross the cut once leaves move)
SHAPES = [(4, 12, 3, 5), (4, 12, 16, 5)]


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.sampled_from(SHAPES),
    size=st.integers(0, 600),
    holes=st.sets(st.integers(0, 600), max_size=60),
    edits=st.lists(_edit, max_size=40),
    tail=st.integers(0, 5),
)
def test_tree_from_the_log_is_the_tree_built_from_scratch(shape, size: int, holes: set[int], edits, tail: int) -> None:
    old_keys = set(range(size)) - holes  # trees of hundreds of keys, four or five levels deep
    with small_nodes(*shape):
        store = MemoryObjectStore()
        old_rows = dict.fromkeys(old_keys, 0)
        old_root = build(store, old_rows) if old_rows else None
        new_rows = dict(old_rows)
        logged: set[int] = set()
        top = max(old_keys, default=0)
        for k in range(top + 1, top + 1 + tail):  # rows added past the last key
            edits = [*edits, (k, "update")]
        for k, op in edits:
            logged.add(k)
            if op == "update":
                new_rows[k] = new_rows.get(k, 0) + 1
            elif op == "delete":
                new_rows.pop(k, None)
        changed = {encode_key([k]): record(k, v) for k, v in new_rows.items() if k in logged}
        with store.writer() as w:
            tw = TableWriter(store, w, OldTree(store, old_root) if old_root is not None else None, None)
            got, count = _apply_edits(tw, old_root, sorted(encode_key([k]) for k in logged), changed).finish()
        assert count == len(new_rows)
        want = build(store, new_rows) if new_rows else got
        assert got == want
        if old_root is not None:
            # the changes are those a diff of the two trees gives
            listed = {c.key: (c.op, c.old, c.new) for c in diff_trees(store, old_root, store, got)}
            for k in logged:
                o, n = old_rows.get(k), new_rows.get(k)
                if o == n:
                    assert encode_key([k]) not in listed
