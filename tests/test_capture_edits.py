"""A table read through its change log gets the very tree a full read builds: the parent's tree
with the logged keys' rows applied (snapshot/capture.py), taking whole every subtree no logged
key falls in, is compared with the tree built from scratch from the same rows.

Small node targets (as in test_prolly.py) make a few hundred keys a tree of four or five levels,
so that whole inner nodes are taken, forced cuts at the maxima are met, and rows added past the
last key meet the tree's right edge, whose nodes were closed where the rows ran out."""

from __future__ import annotations

import hashlib
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shareskit import BothTake, no_shared_memory
from snapgit.encoding import encode_key
from snapgit.forked import Shares, aside
from snapgit.objects import Node, ObjType
from snapgit.snapshot import capture
from snapgit.snapshot.capture import _apply_edits
from snapgit.snapshot.tablewriter import OldTree, TableWriter, Unstored
from snapgit.store.objectstore import DiskObjectStore, MemoryObjectStore
from snapgit.tree.diff import diff_trees
from snapgit.tree.prolly import TreeBuilder, iter_leaves
from storekit import disk_store
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


def applied(rows: dict[int, int], edits: list[tuple[int, str]]) -> tuple[dict[int, int], set[int]]:
    """The rows (key -> version) after the edits (an update adds a version, or the row), and
    the keys the edits logged."""
    new = dict(rows)
    for k, op in edits:
        if op == "update":
            new[k] = new.get(k, 0) + 1
        elif op == "delete":
            new.pop(k, None)
    return new, {k for k, _ in edits}


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
        top = max(old_keys, default=0)
        added = [(k, "update") for k in range(top + 1, top + 1 + tail)]  # rows added past the last key
        new_rows, logged = applied(old_rows, [*edits, *added])
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


# --- leaves patched by two processes -----------------------------------------------------------


def _disk_run(root, old_rows: dict[int, int], logged: set[int], new_rows: dict[int, int], shared: bool, fail: str):
    """``_apply_edits`` on a disk store holding the tree of ``old_rows``, its leaves patched by
    two processes (``shared``, every time there are two leaves to patch) or one; ``fail``: the
    other process fails before it patches anything ("at once"), or after it patched the chunk it
    took first ("late"), or not (""). (root, records and nodes written, packs, the leaves this
    process patched.)"""
    store = disk_store(root)
    old_root = build(store, old_rows)
    changed = {encode_key([k]): record(k, v) for k, v in new_rows.items() if k in logged}
    patched_here = []
    real_patch = capture._patch

    def counted(tw, nid, edits, changed):
        if os.getpid() == here:  # the other process counts in its own copy
            patched_here.append(nid)
        return real_patch(tw, nid, edits, changed)

    here = os.getpid()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(capture, "_patch", counted)
        mp.setattr(capture, "_SHARED_MIN", 2 if shared else 1 << 40)
        if fail:
            mp.setattr(capture, "_patch_apart", _fails if fail == "at once" else _fails_late)
        with store.writer() as w:
            unstored = Unstored(store, w)
            tw = TableWriter(store, w, OldTree(store, old_root), unstored, "t")
            got, count = _apply_edits(tw, old_root, sorted(encode_key([k]) for k in logged), changed).finish()
            found = unstored.flush().get("t", [0, 0])
    assert count == len(new_rows)
    store.close()
    fresh = DiskObjectStore(root)  # what the other process wrote is published
    assert sum(len(leaf.keys) for _nid, leaf in iter_leaves(fresh, got)) == len(new_rows)
    for k in logged:
        if k in new_rows and new_rows[k] != old_rows.get(k):  # a record the parent did not have
            rid, payload = changed[encode_key([k])]
            assert fresh.get(rid) == (ObjType.RECORD, payload)
    packs = len(fresh.pack_names())
    fresh.close()
    return got, tw.records_written - found[0], tw.nodes_written - found[1], packs, len(patched_here)


def _fails(*args) -> None:
    raise RuntimeError("the other process fails")


def _fails_late(store, old_root, owner, spans, shares, edits, changed) -> None:
    """The other process, failing after it patched the first chunk it took, into packs it
    never publishes."""
    mine = shares.back()
    if mine is not None:
        objects = store.reopen()
        with objects.writer() as writer:
            tw = TableWriter(objects, writer, OldTree(objects, old_root), Unstored(objects, writer), owner)
            capture._patch_spans(tw, spans[mine.start : mine.stop], edits, changed)
            raise RuntimeError("the other process fails")


needs_two_cores = pytest.mark.skipif(
    (os.cpu_count() or 1) < 2 or os.environ.get("SNAP_WORKERS") == "0", reason="patching apart needs a second core"
)


@needs_two_cores
@settings(deadline=None, max_examples=20)
@given(n=st.integers(0, 300), chunk=st.integers(1, 40), pause=st.sampled_from([0.0, 0.0005]))
def test_shares_hand_each_item_to_one_process(n: int, chunk: int, pause: float) -> None:
    """This process taking chunks from the front and a forked one from the back: between them
    they get every item once, and this one's share is the front of the list."""
    shares = Shares(n, chunk)

    def theirs() -> list[int]:
        got: list[int] = []
        while (r := shares.back()) is not None:
            got.extend(r)
            time.sleep(pause)  # so that the two interleave
        return got

    mine: list[int] = []
    with aside(theirs) as result:
        while (r := shares.front()) is not None:
            mine.extend(r)
            time.sleep(pause)
        other = result()
    assert other is not None
    assert sorted(mine + other) == list(range(n))
    assert mine == list(range(len(mine)))  # this process's share is the front


@needs_two_cores
@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.integers(1, 400),
    edits=st.lists(
        st.tuples(st.integers(-5, 420), st.sampled_from(["update", "update", "delete", "same"])), max_size=80
    ),
    fail=st.sampled_from(["", "at once", "late"]),
    chunk=st.sampled_from([1, 3, 32]),
)
def test_leaves_patched_by_two_processes_make_the_tree_one_makes(
    tmp_path_factory, size: int, edits, fail: str, chunk: int
) -> None:
    """Leaves patched (rows changed in place) by a forked process from the last one back, into
    packs of its own, the rest by this one, a chunk at a time each, and the walk taking them:
    the same tree, and the same counts of what was written, as one process patching each leaf
    as the walk comes to it. So too when the other process fails, at once or after a chunk:
    this one patches what it took."""
    old_rows = dict.fromkeys(range(size), 0)
    new_rows, logged = applied(old_rows, edits)
    with small_nodes(*SHAPES[0]), pytest.MonkeyPatch.context() as mp:
        mp.setattr(capture, "_SHARE_CHUNK", chunk)
        alone = _disk_run(tmp_path_factory.mktemp("alone"), old_rows, logged, new_rows, shared=False, fail="")
        two = _disk_run(tmp_path_factory.mktemp("two"), old_rows, logged, new_rows, shared=True, fail=fail)
        want = build(MemoryObjectStore(), new_rows) if new_rows else alone[0]
    assert two[:3] == alone[:3]
    assert alone[0] == want


@needs_two_cores
def test_the_other_process_publishes_its_half_before_the_walk_refers_to_it(tmp_path) -> None:
    """A spread change of rows in place: the other process's leaves and records are in a pack
    of its own, published (the commit's tree refers to them), and the tree is the one a single
    process makes."""
    old_rows = dict.fromkeys(range(2000), 0)
    logged = set(range(0, 2000, 7))
    new_rows = {k: v + (k in logged) for k, v in old_rows.items()}
    with small_nodes(*SHAPES[0]):
        alone = _disk_run(tmp_path / "alone", old_rows, logged, new_rows, shared=False, fail="")
        failed = _disk_run(tmp_path / "failed", old_rows, logged, new_rows, shared=True, fail="at once")
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(capture, "Shares", BothTake)
            two = _disk_run(tmp_path / "two", old_rows, logged, new_rows, shared=True, fail="")
            late = _disk_run(tmp_path / "late", old_rows, logged, new_rows, shared=True, fail="late")
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(capture, "Shares", no_shared_memory)
            none = _disk_run(tmp_path / "none", old_rows, logged, new_rows, shared=True, fail="")
    assert two[:3] == alone[:3] == failed[:3] == late[:3] == none[:3]
    assert none[4] == alone[4]  # without shared memory for the chunks, this process patches all
    assert alone[2] > 100  # leaves patched, each with its path
    # the first tree's pack, then the commit's (and the other's, unless it failed)
    assert (alone[3], two[3], failed[3], late[3]) == (2, 3, 2, 2)
    # the walk took the other process's leaves as they were: this one patched the rest only,
    # and every leaf when the other failed (at once, or after a chunk it never published)
    assert two[4] < failed[4] == late[4]
