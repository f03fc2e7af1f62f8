"""Prolly trees (snapgit/tree.py): the same entries give the same root however they are fed in,
lookups and iteration agree with the entries, and small edits touch small parts of the tree.

Most properties run with small node targets (a leaf every ~4 keys, an inner node every ~3
children, small maxima) so that hypothesis-sized inputs build deep trees and hit the forced cuts;
one test builds a big tree with the real parameters.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapgit.encoding import encode_key
from snapgit.objects import Node, ObjType, object_id
from snapgit.store.objectstore import MemoryObjectStore
from snapgit.tree import prolly as tree_mod
from snapgit.tree.prolly import (
    TreeBuilder,
    UnsortedKeysError,
    iter_entries,
    iter_leaves,
    leaf_index,
    load_node,
    lookup,
)

PROPS = settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])


@contextmanager
def small_nodes(leaf_target=4, leaf_max=12, inner_target=3, inner_max=5):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tree_mod, "LEAF_THRESHOLD", (1 << 32) // leaf_target)
        mp.setattr(tree_mod, "LEAF_MAX", leaf_max)
        mp.setattr(tree_mod, "INNER_THRESHOLD", (1 << 32) // inner_target)
        mp.setattr(tree_mod, "INNER_MAX", inner_max)
        yield


def rid(i) -> bytes:
    return hashlib.sha256(b"record %r" % (i,)).digest()


def build(store: MemoryObjectStore, entries, batch_sizes=None) -> bytes:
    """The root id of a tree of sorted (key, id) entries, fed in batches of the given sizes
    (cycled; all at once when None)."""
    w = store.writer()

    def emit(node: Node, payloads) -> bytes:
        return w.add(ObjType.NODE, node.encode())

    b = TreeBuilder(emit)
    keys = [k for k, _ in entries]
    ids = [i for _, i in entries]
    if batch_sizes is None:
        b.add_batch(keys, ids)
    else:
        pos, n = 0, 0
        while pos < len(keys):
            size = batch_sizes[n % len(batch_sizes)]
            b.add_batch(keys[pos : pos + size], ids[pos : pos + size])
            pos += size
            n += 1
    root, count = b.finish()
    assert count == len(entries)
    w.commit()
    return root


def all_nodes(store, root) -> dict[bytes, Node]:
    out = {}
    stack = [root]
    while stack:
        nid = stack.pop()
        node = load_node(store, nid)
        out[nid] = node
        if node.level:
            stack.extend(node.ids)
    return out


def height(store, root) -> int:
    return load_node(store, root).level + 1


keys_st = st.lists(st.binary(min_size=1, max_size=6), unique=True, max_size=150)
int_keys_st = st.lists(st.integers(-(10**6), 10**6), unique=True, max_size=200).map(
    lambda xs: [encode_key([x]) for x in xs]
)
entry_sets = st.one_of(keys_st, int_keys_st).map(lambda ks: sorted((k, rid(k)) for k in ks))


# --- the same entries, the same tree ---------------------------------------------------------


@PROPS
@given(entries=entry_sets, data=st.data())
def test_same_entries_same_root_in_any_batching(entries, data):
    with small_nodes():
        store = MemoryObjectStore()
        root = build(store, entries)
        for sizes in ([1], [7], [1000], [2, 1, 5]):
            assert build(store, entries, sizes) == root
        splits = data.draw(st.lists(st.integers(1, 40), min_size=1, max_size=20))
        assert build(store, entries, splits) == root
        # the order the entries came in (before sorting) does not matter either
        shuffled = data.draw(st.permutations(entries))
        assert build(store, sorted(shuffled)) == root


@PROPS
@given(entries=entry_sets, data=st.data())
def test_iteration_lookup_and_counts(entries, data):
    with small_nodes():
        store = MemoryObjectStore()
        root = build(store, entries)
    assert list(iter_entries(store, root)) == entries
    for k, i in entries:
        assert lookup(store, root, k) == i
    present = {k for k, _ in entries}
    absent = data.draw(st.lists(st.binary(max_size=7), max_size=30))
    for k in absent + [b"", b"\xff" * 10]:
        if k not in present:
            assert lookup(store, root, k) is None
    # inner nodes: each child's count and last key are the child's own
    nodes = all_nodes(store, root)
    for node in nodes.values():
        if node.level:
            assert node.keys == sorted(node.keys)
            for key, child_id, count in zip(node.keys, node.ids, node.counts, strict=False):
                child = nodes[child_id]
                assert child.level == node.level - 1
                assert child.row_count == count
                assert child.keys[-1] == key
        else:
            assert node.keys == sorted(node.keys)
    assert nodes[root].row_count == len(entries)
    # leaves in order are the entries, and leaf_index agrees with iter_leaves
    leaves = list(iter_leaves(store, root))
    assert [e for _nid, leaf in leaves for e in zip(leaf.keys, leaf.ids, strict=False)] == entries
    if entries:
        last_keys, leaf_ids, counts = leaf_index(store, root)
        assert leaf_ids == [nid for nid, _ in leaves]
        assert last_keys == [leaf.keys[-1] for _, leaf in leaves]
        assert counts == [len(leaf.keys) for _, leaf in leaves]


@PROPS
@given(entries=entry_sets.filter(bool), data=st.data())
def test_changing_one_record_id_changes_only_its_path(entries, data):
    with small_nodes():
        store = MemoryObjectStore()
        root = build(store, entries)
        i = data.draw(st.integers(0, len(entries) - 1))
        changed = list(entries)
        changed[i] = (entries[i][0], rid(("changed", i)))
        root2 = build(store, changed)
    assert root2 != root
    assert height(store, root2) == height(store, root)
    n1, n2 = set(all_nodes(store, root)), set(all_nodes(store, root2))
    # exactly the nodes from the root down to the leaf that holds the entry
    assert len(n1 - n2) == height(store, root)
    assert len(n2 - n1) == height(store, root)
    assert lookup(store, root2, entries[i][0]) == changed[i][1]


@PROPS
@given(entries=entry_sets, new_key=st.binary(min_size=1, max_size=6))
def test_inserting_one_key_changes_at_most_two_leaves(entries, new_key):
    """Boundaries depend on the keys alone: an insert rewrites the leaf it lands in (or splits
    it in two when the new key is itself a boundary). Forced cuts at LEAF_MAX would shift the
    leaves after it, so they are out of reach here."""
    if any(k == new_key for k, _ in entries):
        return
    with small_nodes(leaf_max=10**9, inner_max=10**9):
        store = MemoryObjectStore()
        root = build(store, entries)
        root2 = build(store, sorted(entries + [(new_key, rid(new_key))]))
    leaves1 = {nid for nid, _ in iter_leaves(store, root)}
    leaves2 = {nid for nid, _ in iter_leaves(store, root2)}
    assert len(leaves1 - leaves2) <= 1
    assert len(leaves2 - leaves1) <= 2
    assert lookup(store, root2, new_key) == rid(new_key)


# --- input checks -----------------------------------------------------------------------------


def test_unsorted_or_duplicate_keys_are_rejected():
    store = MemoryObjectStore()
    w = store.writer()

    def emit(node, payloads):
        return w.add(ObjType.NODE, node.encode())

    ids = [rid(i) for i in range(3)]
    for keys in ([b"b", b"a"], [b"a", b"a"], [b"a", b"c", b"b"]):
        with pytest.raises(UnsortedKeysError):
            TreeBuilder(emit).add_batch(keys, ids[: len(keys)])
    # across batches
    b = TreeBuilder(emit)
    b.add_batch([b"a", b"c"], ids[:2])
    with pytest.raises(UnsortedKeysError):
        b.add_batch([b"b"], ids[:1])
    with pytest.raises(UnsortedKeysError):
        b.add_batch([b"c"], ids[:1])
    with pytest.raises(UnsortedKeysError):
        b.add(b"c", ids[0])
    b.add(b"d", ids[0])
    b.add_batch([], [])
    root, count = b.finish()
    assert count == 3
    w.commit()
    assert [k for k, _ in iter_entries(store, root)] == [b"a", b"c", b"d"]


def test_finish_twice_is_an_error():
    b = TreeBuilder(lambda node, payloads: object_id(ObjType.NODE, node.encode()))
    b.finish()
    with pytest.raises(RuntimeError):
        b.finish()


def test_empty_tree_has_a_stable_root():
    store = MemoryObjectStore()
    roots = {build(store, []) for _ in range(3)}
    assert len(roots) == 1
    (root,) = roots
    assert root == object_id(ObjType.NODE, Node(0, [], []).encode())
    assert list(iter_entries(store, root)) == []
    assert lookup(store, root, b"x") is None
    assert load_node(store, root).row_count == 0


def test_payloads_reach_emit_with_their_leaf():
    seen = []

    def emit(node, payloads):
        if node.level == 0:
            seen.append((list(node.ids), payloads))
        return object_id(ObjType.NODE, node.encode())

    keys = [encode_key([i]) for i in range(2000)]
    ids = [rid(i) for i in range(2000)]
    payloads = [b"row %d" % i for i in range(2000)]
    b = TreeBuilder(emit)
    for s in range(0, 2000, 333):
        b.add_batch(keys[s : s + 333], ids[s : s + 333], payloads[s : s + 333])
    b.finish()
    assert [i for leaf_ids, _ in seen for i in leaf_ids] == ids
    assert [p for _, ps in seen for p in ps] == payloads
    assert all(len(leaf_ids) == len(ps) for leaf_ids, ps in seen)


# --- real parameters --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_tree():
    """An integer-keyed tree of 100k rows, built with the real parameters."""
    n = 100_000
    entries = [(encode_key([i]), rid(i)) for i in range(n)]
    store = MemoryObjectStore()
    root = build(store, entries, [4096])
    return store, entries, root, all_nodes(store, root)


def test_big_tree_shape(big_tree):
    store, entries, root, nodes = big_tree
    n = len(entries)
    top = nodes[root]
    assert top.level >= 1
    assert top.row_count == n
    leaves = [nd for nd in nodes.values() if nd.level == 0]
    sizes = [len(nd.keys) for nd in leaves]
    assert sum(sizes) == n
    mean = n / len(leaves)
    assert tree_mod.LEAF_TARGET / 2 <= mean <= tree_mod.LEAF_TARGET * 2, mean
    assert max(sizes) <= tree_mod.LEAF_MAX
    assert list(iter_entries(store, root)) == entries


def test_big_tree_batching_lookups_and_edits(big_tree):
    store, entries, root, nodes = big_tree
    n = len(entries)
    top = nodes[root]
    # the batching does not matter at full size either
    assert build(store, entries, [1000, 1, 77]) == root
    rnd = random.Random(0)
    for i in rnd.sample(range(n), 200):
        assert lookup(store, root, entries[i][0]) == entries[i][1]
    assert lookup(store, root, encode_key([n])) is None
    assert lookup(store, root, encode_key([-1])) is None
    # one changed id rewrites one path; one inserted key a leaf or two
    changed = list(entries)
    changed[12345] = (changed[12345][0], rid("other"))
    root2 = build(store, changed)
    diff = set(all_nodes(store, root2)) - set(nodes)
    assert len(diff) == top.level + 1
    inserted = sorted(entries + [(encode_key([n // 2]) + b"\x00", rid("new"))])
    root3 = build(store, inserted)
    new_leaves = {nid for nid, nd in all_nodes(store, root3).items() if nd.level == 0}
    old_leaves = {nid for nid, nd in nodes.items() if nd.level == 0}
    assert len(new_leaves - old_leaves) <= 2
    assert len(old_leaves - new_leaves) <= 1


def test_inner_nodes_are_content_defined_for_integer_keys(big_tree):
    """~390 leaves should make ~390/INNER_TARGET level-1 nodes, cut where the keys say.

    Regression: with crc32(last key, L) as the inner boundary hash, CRC being affine made
    crc32(k, L) = crc32(k, 0) xor a constant for keys of one length, so a key that ends a leaf
    either always or never ended an inner node; for 9-byte keys (every int64 key) it was never,
    and inner nodes ended only at INNER_MAX (one level-1 node of ~390 children here)."""
    _store, _entries, root, nodes = big_tree
    leaves = [nd for nd in nodes.values() if nd.level == 0]
    inner1 = [nd for nd in nodes.values() if nd.level == 1]
    assert nodes[root].level >= 2
    fan = len(leaves) / len(inner1)
    assert tree_mod.INNER_TARGET / 3 <= fan <= tree_mod.INNER_TARGET * 3, fan


def test_forced_cuts_at_leaf_max():
    """Keys that are never boundaries still make leaves of at most LEAF_MAX entries."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tree_mod, "LEAF_THRESHOLD", 0)  # no natural boundary at all
        mp.setattr(tree_mod, "LEAF_MAX", 7)
        entries = [(encode_key([i]), rid(i)) for i in range(100)]
        store = MemoryObjectStore()
        root = build(store, entries)
        assert build(store, entries, [3]) == root
    sizes = [len(leaf.keys) for _, leaf in iter_leaves(store, root)]
    assert sizes == [7] * 14 + [2]
    assert list(iter_entries(store, root)) == entries


@PROPS
@given(entries=entry_sets, data=st.data())
def test_whole_leaves_of_an_old_tree_give_the_tree_of_the_new_entries(entries, data):
    """Rebuilding from an old tree (what an incremental commit does): leaves taken whole with
    add_leaf where it accepts them, entries elsewhere, give the root that building the new
    entries from scratch gives. Small nodes, so LEAF_MAX cuts and leaf seams are common."""
    with small_nodes(leaf_target=4, leaf_max=6):
        store = MemoryObjectStore()
        old_root = build(store, entries)
        old = dict(entries)
        drop = set(data.draw(st.lists(st.sampled_from(sorted(old)), max_size=8))) if old else set()
        added = data.draw(st.lists(st.binary(min_size=1, max_size=6), max_size=8))
        new = {k: v for k, v in old.items() if k not in drop} | {k: rid(b"new" + k) for k in added}
        new_entries = sorted(new.items())
        w = store.writer()
        b = TreeBuilder(lambda node, _p: w.add(ObjType.NODE, node.encode()))
        taken = 0
        keys = sorted(new)
        pos = 0
        for nid, leaf in iter_leaves(store, old_root):
            if not leaf.keys:
                continue
            upto = pos
            while upto < len(keys) and keys[upto] <= leaf.keys[-1]:
                upto += 1
            mine = keys[pos:upto]
            pos = upto
            if mine == leaf.keys and all(new[k] == old[k] for k in mine) and b.add_leaf(nid, leaf):
                taken += 1
                continue
            b.add_batch(mine, [new[k] for k in mine])
        b.add_batch(keys[pos:], [new[k] for k in keys[pos:]])
        root, count = b.finish()
        w.commit()
        assert count == len(new_entries)
        assert root == build(store, new_entries)
        if not drop and not added and len(entries) > 20:
            assert taken > 0  # unchanged trees are mostly taken whole


def test_add_leaf_refuses_what_would_change_the_tree():
    with small_nodes(leaf_target=4, leaf_max=6):
        store = MemoryObjectStore()
        entries = [(encode_key([i]), rid(i)) for i in range(60)]
        root = build(store, entries)
        leaves = list(iter_leaves(store, root))
        b = TreeBuilder(lambda node, _p: b"\0" * 32)
        b.add_batch([entries[0][0]], [entries[0][1]])
        assert not b.add_leaf(*leaves[1])  # entries pending: the leaf would start elsewhere
        ends_early = next((nid, leaf) for nid, leaf in leaves if not tree_mod.leaf_ends(leaf.keys))
        assert not TreeBuilder(lambda node, _p: b"\0" * 32).add_leaf(*ends_early)


def _edited(entries, edits, added):
    old = dict(entries)
    new = dict(entries)
    for n, (pick, what) in enumerate(edits):
        if not new:
            break
        key = sorted(new)[pick % len(new)]
        if what == "remove":
            del new[key]
        else:
            new[key] = rid(("changed", n))
    for key in added:
        new.setdefault(key, rid(("added", key)))
    return old, new


@PROPS
@given(
    entries=entry_sets,
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(["change", "remove"])), max_size=12),
    added=st.lists(st.binary(min_size=1, max_size=6), max_size=6),
)
def test_diff_trees_gives_exactly_the_changed_entries(entries, edits, added):
    """Deep trees (small nodes) that differ by changed, removed and added entries: the diff is
    the entries' own, in key order, whichever way round, and trees with the same leaves' keys
    are compared as whole leaves."""
    from snapgit.tree.diff import ADDED, CHANGED, REMOVED, diff_trees

    old, new = _edited(entries, edits, added)
    expected = []
    for k in sorted(old.keys() | new.keys()):
        if k not in new:
            expected.append((REMOVED, k, old[k], None))
        elif k not in old:
            expected.append((ADDED, k, None, new[k]))
        elif old[k] != new[k]:
            expected.append((CHANGED, k, old[k], new[k]))
    with small_nodes():
        store = MemoryObjectStore()
        a = build(store, sorted(old.items())) if old else None
        b = build(store, sorted(new.items())) if new else None
    got = [(c.op, c.key, c.old, c.new) for c in diff_trees(store, a, store, b)]
    assert got == expected
    flip = {ADDED: REMOVED, REMOVED: ADDED, CHANGED: CHANGED}
    back = [(c.op, c.key, c.old, c.new) for c in diff_trees(store, b, store, a)]
    assert back == [(flip[op], k, n, o) for op, k, o, n in expected]


edits_st = st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(["change", "remove"])), max_size=40)
added_st = st.lists(st.binary(min_size=1, max_size=6), max_size=10)


@PROPS
@given(entries=entry_sets, edits=edits_st, added=added_st, data=st.data())
def test_diff_trees_between_two_keys_gives_the_changes_between_them(entries, edits, added, data):
    """diff_trees(lo=, hi=): exactly the whole diff's changes of keys above lo and up to hi,
    and the two halves at any key make the whole, reading only the nodes that hold such keys."""
    from snapgit.tree.diff import diff_trees

    old, new = _edited(entries, edits, added)
    with small_nodes():
        store = MemoryObjectStore()
        a = build(store, sorted(old.items())) if old else None
        b = build(store, sorted(new.items())) if new else None
    whole = list(diff_trees(store, a, store, b))
    keys = sorted(old.keys() | new.keys() | set(added)) or [b"k"]
    bound = st.one_of(st.none(), st.sampled_from(keys), st.binary(max_size=6))
    lo, hi = data.draw(bound), data.draw(bound)
    inside = [c for c in whole if (lo is None or c.key > lo) and (hi is None or c.key <= hi)]
    assert list(diff_trees(store, a, store, b, lo=lo, hi=hi)) == inside
    split = data.draw(st.sampled_from(keys))
    assert [*diff_trees(store, a, store, b, hi=split), *diff_trees(store, a, store, b, lo=split)] == whole


def test_a_bounded_diff_reads_only_the_nodes_that_hold_its_keys():
    from snapgit.tree import diff as diff_mod

    entries = [(encode_key([i]), rid(i)) for i in range(4000)]
    new = dict(entries)
    for i in range(0, 4000, 7):
        new[encode_key([i])] = rid(("changed", i))
    with small_nodes():
        store = MemoryObjectStore()
        a = build(store, entries)
        b = build(store, sorted(new.items()))
    read: list[bytes] = []
    real = diff_mod.load_node

    def counted(reader, nid):
        read.append(nid)
        return real(reader, nid)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(diff_mod, "load_node", counted)
        whole = list(diff_mod.diff_trees(store, a, store, b))
        all_read = len(read)
        read.clear()
        tenth = list(diff_mod.diff_trees(store, a, store, b, lo=encode_key([1000]), hi=encode_key([1400])))
    assert [c.key for c in tenth] == [encode_key([i]) for i in range(1001, 1401) if i % 7 == 0]
    assert len(whole) == len(range(0, 4000, 7))
    assert len(read) < all_read / 5


@settings(deadline=None, max_examples=15, suppress_health_check=[HealthCheck.too_slow])
@given(edits=edits_st, added=added_st, fail_after=st.one_of(st.none(), st.integers(0, 3)), held=st.integers(1, 50))
def test_a_diff_shared_with_another_process_is_the_diff(edits, added, fail_after, held):
    """diff_trees_shared: the second half diffed by a forked process gives the same changes in
    the same order, whether the process ends, fails after sending some batches, or waits while
    this one holds as many of its changes as it may."""
    from snapgit.tree import diff as diff_mod

    entries = [(encode_key([i * 3]), rid(i)) for i in range(3000)]
    old, new = _edited(entries, edits, [encode_key([1 + 3 * (x[0] % 3000)]) for x in added if x])
    for i in range(0, 9000, 33):  # changes all along the keys: both halves have some
        if encode_key([i]) in new:
            new[encode_key([i])] = rid(("spread", i))
    with small_nodes():
        store = MemoryObjectStore()
        a = build(store, sorted(old.items()))
        b = build(store, sorted(new.items()))
    whole = list(diff_mod.diff_trees(store, a, store, b))
    real_send = diff_mod.send_batched

    def send(conn, kind, items, size, limit):
        if fail_after is None:
            return real_send(conn, kind, items, size, 7)
        batch = []
        for n, item in enumerate(items):
            batch.append(item)
            if len(batch) == 7:
                conn.send((kind, batch))
                batch = []
            if n == fail_after * 7 + 3:
                raise RuntimeError("the other process fails half way")
        return None

    here = os.getpid()
    real_diff = diff_mod.diff_trees
    second_half_here = []

    def diff_trees(*args, lo=None, hi=None):
        if lo is not None and os.getpid() == here:
            second_half_here.append(lo)
        return real_diff(*args, lo=lo, hi=hi)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(diff_mod, "_SHARED_ROWS", 100)
        mp.setattr(diff_mod, "_HELD", held)
        mp.setattr(diff_mod, "send_batched", send)
        mp.setattr(diff_mod, "diff_trees", diff_trees)
        mp.setenv("SNAP_WORKERS", "1")
        split = diff_mod._split_key(store, a, store, b)
        assert split is not None
        assert list(diff_mod.diff_trees_shared(store, a, store, b)) == whole
    # the halves hold as many rows as each other, within a leaf (the root's children do not)
    assert abs(sum(k <= split for k in new) - len(new) / 2) <= 12
    # the other process's half is taken from it, unless it failed: then what it did not send
    assert len(second_half_here) == (0 if fail_after is None else 1)


def test_damage_in_the_other_processes_half_is_named_as_one_process_names_it(tmp_path, monkeypatch):
    """A leaf of the new tree above the split is damaged (its pack holds only such leaves): the
    other process fails on it, this one diffs that half itself and meets the damage where one
    process meets it, having yielded the same changes before it."""
    from snapgit.store.objectstore import DiskObjectStore
    from snapgit.tree import diff as diff_mod

    monkeypatch.setattr(diff_mod, "_SHARED_ROWS", 100)
    monkeypatch.setenv("SNAP_WORKERS", "1")
    entries = [(encode_key([i]), rid(i)) for i in range(3000)]
    new = dict(entries)
    for i in range(0, 3000, 5):
        new[encode_key([i])] = rid(("changed", i))
    (tmp_path / "objects" / "pack").mkdir(parents=True)
    (tmp_path / "tmp").mkdir()
    with small_nodes():
        mem = MemoryObjectStore()
        split = diff_mod._split_key(mem, build(mem, entries), mem, build(mem, sorted(new.items())))
        assert split is not None
        disk = DiskObjectStore(tmp_path)
        a = build(disk, entries)
        below, above = disk.writer(), disk.writer()

        def emit(node: Node, payloads) -> bytes:
            w = above if node.level == 0 and node.keys[0] > split else below
            return w.add(ObjType.NODE, node.encode())

        builder = TreeBuilder(emit)
        builder.add_batch([k for k, _ in sorted(new.items())], [v for _, v in sorted(new.items())])
        b, _count = builder.finish()
        below.commit()
        above.commit()
    (name,) = above.published
    pack = tmp_path / "objects" / "pack" / f"pack-{name}.pack"
    os.chmod(pack, 0o600)
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0x40
    pack.write_bytes(bytes(data))

    def until_damage(diff) -> tuple[list, str]:
        got = []
        with pytest.raises(Exception) as failed:  # the type is the one one process raises
            for ch in diff(DiskObjectStore(tmp_path), a, DiskObjectStore(tmp_path), b):
                got.append(ch)
        return got, f"{type(failed.value).__name__}: {failed.value}"

    alone = until_damage(diff_mod.diff_trees)
    assert "damaged" in alone[1] or "corrupt" in alone[1].lower(), alone[1]
    assert all(c.key <= split for c in alone[0][: len(alone[0]) // 2])
    assert until_damage(diff_mod.diff_trees_shared) == alone


def test_a_shared_diff_left_early_leaves_no_process_behind(monkeypatch):
    """`snap diff --limit N` stops reading a diff early: the generator closes, and the other
    process, blocked on a full pipe with more changes to send, is gone with it."""
    import multiprocessing

    from snapgit.tree import diff as diff_mod

    monkeypatch.setattr(diff_mod, "_SHARED_ROWS", 100)
    monkeypatch.setattr(diff_mod, "_HELD", 1)  # this process takes in (almost) nothing
    monkeypatch.setenv("SNAP_WORKERS", "1")
    entries = [(encode_key([i]), rid(i)) for i in range(40_000)]
    new = {k: rid(("changed", k)) for k, _ in entries}  # 20,000 changes to send: past the pipe
    store = MemoryObjectStore()
    a = build(store, entries)
    b = build(store, sorted(new.items()))
    before = set(multiprocessing.active_children())
    changes = diff_mod.diff_trees_shared(store, a, store, b)
    first = [next(changes) for _ in range(5)]
    assert [c.key for c in first] == [k for k, _ in entries[:5]]
    time.sleep(0.5)
    [other] = set(multiprocessing.active_children()) - before  # still sending
    changes.close()
    assert not other.is_alive()
    assert set(multiprocessing.active_children()) == before
