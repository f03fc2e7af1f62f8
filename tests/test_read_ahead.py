"""Reading tree nodes with a second process (issue 21): DiskObjectStore.read_ahead, which a
commit through the change log uses for the parent's leaves, and the split walk of `snap status`
(snapgit/snapshot/capture.py _parent_ids), each on a real disk store of leaves stored as delta
chains. The answers are those of a store reading alone, in any order of asking, and when the
other process fails, the damage is named by this one as without it."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
from bisect import bisect_left

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shareskit import BothTake, no_shared_memory
from snapgit import native
from snapgit.encoding import encode_key
from snapgit.errors import CorruptError
from snapgit.forked import aside
from snapgit.objects import Node, ObjType
from snapgit.snapshot import capture
from snapgit.store import objectstore
from snapgit.store.objectstore import SNAPSHOT_LEVELS, DiskObjectStore, MemoryObjectStore, read_ahead, restarts
from snapgit.store.pack import MAX_DELTA_DEPTH, DeltaDecoder
from snapgit.tree.prolly import TreeBuilder, iter_leaves, leaf_spans, load_node
from storekit import disk_store
from storekit import node_id as oid_of

NODE = int(ObjType.NODE)


def chained_nodes(store: DiskObjectStore, n: int, versions: int, seed: int = 0) -> tuple[list[bytes], list[bytes]]:
    """``n`` node-like objects, each the last of ``versions`` versions stored as a delta chain
    (one commit a version, as a table changed by every commit); (their ids, their data)."""
    rnd = random.Random(seed)
    cur = [bytearray(rnd.randbytes(2000)) for _ in range(n)]
    ids: list[bytes] = [b""] * n
    for v in range(versions):
        w = store.writer()
        for i in range(n):
            if v:
                cur[i][rnd.randrange(2000)] ^= 0xFF
            data = bytes(cur[i])
            ids[i] = w.add_delta(NODE, data, oid_of(data), ids[i]) if v else w.add(NODE, data)
        w.commit()
    return ids, [bytes(c) for c in cur]


@pytest.fixture(scope="module")
def chains(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    store = disk_store(root)
    ids, datas = chained_nodes(store, 300, 6)
    store.close()
    return root, ids, datas


@pytest.mark.skipif(not native.available(), reason="the C extension is not built here")
def test_the_c_walk_reads_every_chain_as_the_walk_in_python(chains, monkeypatch):
    """DiskObjectStore._walk_in_c (native.chain_walk) against _walk, on stores that read the
    same objects in the same order: the same links in the same packs, the same depth and root,
    and the same object in the end. Asked with nothing open, it asks for every reader,
    descriptor and block it needs, and answers itself (never hands the walk to Python)."""
    root, ids, datas = chains
    in_c, in_python = DiskObjectStore(root), DiskObjectStore(root)
    in_python._walk_c = False
    asks = 0
    real = native.chain_walk

    def counting(*args):
        nonlocal asks
        got = real(*args)
        asks += got is not None and isinstance(got[0], str)
        return got

    rnd = random.Random(5)
    for oid, data in rnd.sample(list(zip(ids, datas, strict=True)), len(ids)):
        walked = in_c._walk_in_c(oid, in_c._mru)
        expect = in_python._walk(oid, in_python._mru)
        assert isinstance(walked, tuple) and expect is not None
        root_c, frames_c, *rest_c = walked
        root_py, frames_py, *rest_py = expect
        assert rest_c == rest_py  # ids, packs, depth, the root's id
        assert [bytes(f) for f in frames_c] == [bytes(f) for f in frames_py]
        assert bytes(root_c) == bytes(root_py)
        decoder = DeltaDecoder()
        full = decoder.decompress_chain(root_c, frames_c[::-1]) if frames_c else root_c
        assert full == bytes([NODE]) + data
        assert in_c.get(oid) == in_python.get(oid) == (NODE, data)
    fresh = DiskObjectStore(root)
    monkeypatch.setattr(native, "chain_walk", counting)
    assert [fresh.get(oid) for oid in ids] == [(NODE, d) for d in datas]
    assert asks > 0  # the readers, descriptors and blocks it asked for
    for s in (in_c, in_python, fresh):
        s.close()


@pytest.mark.skipif(not native.available(), reason="the C extension is not built here")
def test_a_block_cache_too_small_for_a_chain_sends_the_walk_to_python(chains):
    """With room for one block, each block the C walk asks for pushes out the one before:
    after its asks it hands the chain to the walk in Python, which reads it right."""
    root, ids, datas = chains
    tiny = DiskObjectStore(root, block_budget=1)
    deep = [i for i, oid in enumerate(ids) if tiny.get_depth(oid) >= 3]
    assert deep
    assert tiny._walk_in_c(ids[deep[0]], tiny._mru) is objectstore._IN_PYTHON
    assert [tiny.get(ids[i]) for i in deep] == [(NODE, datas[i]) for i in deep]
    tiny.close()


@pytest.mark.skipif(not native.available(), reason="the C extension is not built here")
def test_an_index_gone_under_an_open_store_sends_the_walk_to_python(chains, tmp_path):
    """The C walk reads through each index's descriptor; an index whose file went away after
    the store opened it (gc moving it) gives none, and the walk in Python reads through the
    index's map instead: the same objects."""
    root, ids, datas = chains
    copy = tmp_path / "store"
    shutil.copytree(root, copy)
    store = DiskObjectStore(copy)
    for idx in (copy / "objects" / "pack").glob("*.idx"):
        idx.rename(tmp_path / idx.name)
    assert store._walk_in_c(ids[0], store._mru) is objectstore._IN_PYTHON
    assert [store.get(oid) for oid in ids] == [(NODE, d) for d in datas]
    store.close()


def test_objects_read_ahead_are_the_objects(chains):
    """In order, out of order now and then (a walk looks at the next leaf first), some never
    asked for, some asked for twice, and others between: every answer is the stored object,
    with the depth and the chain a store reading alone gives (writers walk chains back)."""
    root, ids, datas = chains
    alone = DiskObjectStore(root)
    expect = {oid: (alone.get(oid), alone.get_depth(oid)) for oid in ids}
    assert max(d for _o, d in expect.values()) == 5  # chains of six versions (a few restarted early)
    store = DiskObjectStore(root)
    order = list(range(len(ids)))
    for i in range(0, len(order) - 1, 7):
        order[i], order[i + 1] = order[i + 1], order[i]
    skipped = set(order[10::13])
    served = 0
    with store.read_ahead(ids):
        ahead = store._ahead
        assert ahead is not None
        for k, i in enumerate(order):
            if i in skipped:
                continue
            oid = ids[i]
            served += oid in ahead._got or ahead._next <= ahead._index.get(oid, -1)
            assert store.get(oid) == (NODE, datas[i]) and store.get(oid) == expect[oid][0]
            assert store.get_depth(oid) == expect[oid][1]
            if k % 50 == 0:
                assert store.get(ids[0]) == (NODE, datas[0])  # asked again, long after
        for i in sorted(skipped):
            assert store.get(ids[i]) == (NODE, datas[i])
    assert store._ahead is None
    assert served > len(ids) // 2  # most came from the other process
    for oid in ids:  # what the other process told of each chain is what the packs hold
        link = oid
        while (base := store.delta_base(link)) is not None:
            assert base == alone.delta_base(link)
            link = base
    alone.close()
    store.close()


def test_a_reader_that_meets_damage_leaves_the_reads_to_this_process(tmp_path):
    """The object whose block is damaged stops the other process; the objects before it come
    from it, the damaged one is named by this process's own read as it would be without read
    ahead, and the rest are read here."""
    root = tmp_path / "s"
    store = disk_store(root)
    early, early_data = chained_nodes(store, 300, 1, seed=1)
    before = set(store.pack_names())
    late, late_data = chained_nodes(store, 300, 1, seed=2)  # a pack of its own
    (late_pack,) = set(store.pack_names()) - before
    store.close()
    damaged = root / "objects" / "pack" / f"pack-{late_pack}.pack"
    raw = bytearray(damaged.read_bytes())
    raw[100:140] = bytes(40)  # in the first block of late's pack: late[0] is there, late[-1] is not
    os.chmod(damaged, 0o600)
    damaged.write_bytes(bytes(raw))
    with pytest.raises(CorruptError) as alone:
        DiskObjectStore(root).get(late[0])
    store = DiskObjectStore(root)
    with store.read_ahead(early + late):
        for oid, data in zip(early, early_data, strict=True):
            assert store.get(oid) == (NODE, data)
        with pytest.raises(CorruptError) as ahead:
            store.get(late[0])
        assert str(ahead.value) == str(alone.value)
        assert store._ahead is not None and store._ahead._done  # the other process stopped
        assert store.get(late[-1]) == (NODE, late_data[-1])
    store.close()


def test_read_ahead_is_for_a_disk_store_and_enough_objects(chains, monkeypatch):
    root, ids, _ = chains
    store = DiskObjectStore(root)
    with read_ahead(store, ids[:10]):
        assert store._ahead is None  # a fork costs more than ten reads
    with read_ahead(store, ids):
        assert store._ahead is not None
    monkeypatch.setenv("SNAP_WORKERS", "0")
    with read_ahead(store, ids):
        assert store._ahead is None
    with read_ahead(MemoryObjectStore(), ids):
        pass
    store.close()


def test_the_snapshots_of_a_chain_that_will_restart_come_with_it(tmp_path):
    """A node whose successor restarts its chain (at the bound, or one base in ten past the
    snapshot levels) comes with the chain's snapshots: a writer then has every base it tries
    without reading it, and writes what a store reading alone writes."""
    root = tmp_path / "s"
    store = disk_store(root)
    ids, datas = chained_nodes(store, 60, MAX_DELTA_DEPTH + 1, seed=3)
    store.close()
    alone = DiskObjectStore(root)
    depths = [alone.get_depth(oid) for oid in ids]
    restarting = [i for i, oid in enumerate(ids) if restarts(oid, depths[i])]
    assert MAX_DELTA_DEPTH in depths and any(SNAPSHOT_LEVELS <= depths[i] < MAX_DELTA_DEPTH for i in restarting)
    ahead = DiskObjectStore(root)
    with ahead.read_ahead(ids):
        w_ahead, w_alone = ahead.writer(), alone.writer()
        for i, oid in enumerate(ids):
            assert ahead.get(oid) == (NODE, datas[i])
            if i in restarting:
                link, chain = oid, [oid]
                while (base := alone.delta_base(link)) is not None:
                    chain.append(base)
                    link = base
                for sid in chain[::-1][:SNAPSHOT_LEVELS]:  # the chain's root and first links
                    assert ahead._full_cache.get(sid) == (bytes((NODE,)) + alone.get(sid)[1], alone.get_depth(sid))
            new = bytearray(datas[i])
            new[i] ^= 0x55
            nid = oid_of(bytes(new))
            w_ahead.add_delta(NODE, bytes(new), nid, oid)
            w_alone.add_delta(NODE, bytes(new), nid, oid)
        w_ahead.commit()
        w_alone.commit()
    ahead.refresh()
    alone.refresh()
    for i, oid in enumerate(ids):
        new = bytearray(datas[i])
        new[i] ^= 0x55
        nid = oid_of(bytes(new))
        assert ahead.get(nid) == alone.get(nid) == (NODE, bytes(new))
        assert (ahead.get_depth(nid), ahead.delta_base(nid)) == (alone.get_depth(nid), alone.delta_base(nid))
        assert restarts(oid, depths[i]) == (ahead.get_depth(nid) <= SNAPSHOT_LEVELS and depths[i] >= SNAPSHOT_LEVELS)
    ahead.close()
    alone.close()


# --- the leaves keys fall in -------------------------------------------------------------------


def build_tree(store, keys: list[bytes]) -> bytes:
    w = store.writer()
    b = TreeBuilder(lambda node, _p: w.add(NODE, node.encode()))
    if keys:
        b.add_batch(keys, [hashlib.sha256(k).digest() for k in keys])
    root, _count = b.finish()
    w.commit()
    return root


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(0, 40_000),
    asked=st.lists(st.integers(-10, 41_000), max_size=300, unique=True),
)
def test_leaf_spans_are_the_leaves_the_keys_fall_in(n, asked):
    """Each asked key falls in the first leaf whose last key is at or above it (none past the
    last): leaf_spans lists those leaves, once each, in key order, reading no leaf, each with
    the asked keys that fall in it."""
    store = MemoryObjectStore()
    root = build_tree(store, [encode_key([i]) for i in range(n)])
    keys = sorted(encode_key([i]) for i in asked)
    leaves = [(nid, leaf) for nid, leaf in iter_leaves(store, root) if leaf.keys]
    lasts = [leaf.keys[-1] for _nid, leaf in leaves]
    expect: list[bytes] = []
    for k in keys:
        j = bisect_left(lasts, k)
        if j < len(leaves) and (not expect or expect[-1] != leaves[j][0]):
            expect.append(leaves[j][0])
    # with each leaf, the asked keys that fall in it (the capture commit's other process
    # patches a leaf by them, and the walk takes its work only where they are its own)
    spans = leaf_spans(store, root, keys)
    assert [nid for nid, _, _ in spans] == expect
    for nid, lo, hi in spans:
        j = next(i for i, (leaf_id, _leaf) in enumerate(leaves) if leaf_id == nid)
        assert keys[lo:hi] == [k for k in keys if bisect_left(lasts, k) == j]
    assert [lo for _, lo, _ in spans[1:]] == [hi for _, _, hi in spans[:-1]]  # contiguous


# --- the split walk of status --------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_table(tmp_path_factory):
    """A table's tree of 160,000 rows (about 620 leaves) on disk, its leaves delta chains of
    three versions, as HEAD's table after a few commits of spread changes."""
    root = tmp_path_factory.mktemp("table")
    store = disk_store(root)
    rnd = random.Random(5)
    rows = {encode_key([i]): hashlib.sha256(b"%d" % i).digest() for i in range(160_000)}
    tree = None
    for v in range(3):
        for k in rnd.sample(sorted(rows), 1200):
            rows[k] = hashlib.sha256(b"v%d" % v + k).digest()
        w = store.writer()
        old = {}
        if tree is not None:
            old = {leaf.keys[-1]: nid for nid, leaf in iter_leaves(store, tree)}

        def emit(node: Node, _payloads, w=w, old=old) -> bytes:
            data = node.encode()
            base = old.get(node.keys[-1]) if node.level == 0 and node.keys else None
            return w.add_delta(NODE, data, oid_of(data), base) if base else w.add(NODE, data)

        b = TreeBuilder(emit)
        keys = sorted(rows)
        b.add_batch(keys, [rows[k] for k in keys])
        tree, _count = b.finish()
        w.commit()
    store.close()
    return root, tree, rows


def test_status_reads_the_parents_ids_with_a_second_process_as_alone(big_table, monkeypatch):
    root, tree, rows = big_table
    rnd = random.Random(8)
    keys = sorted(rows)
    edits = sorted(set(rnd.sample(keys, 8000)) | {encode_key([-1]), encode_key([10**9])})
    expect = [rows.get(k) for k in edits]
    store = DiskObjectStore(root)
    assert len(leaf_spans(store, tree, edits)) >= 256  # the leaves are shared out
    assert load_node(store, tree).level >= 2
    with capture._parent_ids(store, tree, edits) as ids:
        assert ids() == expect
    with capture._parent_ids(store, tree, edits):
        pass  # never asked: the other process is ended all the same
    with capture._parent_ids(DiskObjectStore(root), tree, edits, second=False) as ids:
        assert ids() == expect
    monkeypatch.setenv("SNAP_WORKERS", "0")
    with capture._parent_ids(DiskObjectStore(root), tree, edits) as ids:
        assert ids() == expect
    store.close()


class _BackFailsAfterOne(BothTake):
    """The other process takes one chunk of leaves, reads it, then fails before it answers."""

    taken = 0

    def back(self) -> range | None:
        if self.taken:
            raise RuntimeError("the other process fails")
        self.taken += 1
        return super().back()


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="the leaves are shared out on two cores only")
@pytest.mark.parametrize("shares", [BothTake, _BackFailsAfterOne, no_shared_memory])
def test_status_shares_the_parents_leaves_out_and_reads_what_the_other_did_not_answer(big_table, monkeypatch, shares):
    """The two processes take leaves a chunk at a time from either end (Shares): the ids are
    those of one process reading alone when both took some, when the other failed after taking
    a chunk (its leaves are read here), and without shared memory (all are read here)."""
    root, tree, rows = big_table
    rnd = random.Random(9)
    edits = sorted(set(rnd.sample(sorted(rows), 8000)) | {encode_key([10**9])})
    expect = [rows.get(k) for k in edits]
    assert len(leaf_spans(DiskObjectStore(root), tree, edits)) >= 256  # shared out
    monkeypatch.setattr(capture, "Shares", shares)
    with capture._parent_ids(DiskObjectStore(root), tree, edits) as ids:
        assert ids() == expect


def test_work_aside_comes_back_or_is_done_here():
    """What the second process sends back; None when it failed or died, so the caller does the
    work itself."""
    with aside(lambda: [b"x" * 100_000, None, 3]) as result:
        assert result() == [b"x" * 100_000, None, 3]
    with aside(lambda: 1 // 0) as result:
        assert result() is None
    with aside(lambda: os._exit(3)) as result:
        assert result() is None
    with pytest.raises(ZeroDivisionError), aside(lambda: 1):
        raise ZeroDivisionError  # the block fails: the process is ended all the same


class _Closes:
    """Stands for a database connection left in a garbage cycle: its finalizer acts on what the
    parent shares with its forked processes (here, it notes which process ran it)."""

    def __init__(self, path) -> None:
        self.path = path
        self.me = self  # a cycle: only the garbage collector frees it

    def __del__(self) -> None:
        with open(self.path, "a") as f:
            f.write(f"{os.getpid()}\n")


def test_a_forked_process_leaves_the_parents_garbage_to_the_parent(tmp_path):
    """A forked process that collects garbage does not run the finalizers of what the parent
    left uncollected: a connection closed from there would be closed under the parent."""
    import gc

    ran = tmp_path / "finalized"
    gc.disable()
    try:
        _Closes(ran)  # garbage now, collected later
        with aside(lambda: gc.collect() >= 0) as result:
            assert result() is True
        assert not ran.exists()  # the other process ran no finalizer of it
        gc.collect()
        assert ran.read_text() == f"{os.getpid()}\n"  # the parent did, once
    finally:
        gc.enable()


def test_a_process_forked_during_read_ahead_reads_for_itself(chains):
    """A process forked while objects are read ahead (status's second walk, from a caller that
    reads ahead too) inherits the pipe: it must not read from it, or the two would take each
    other's batches (or half of one). It reads for itself, and both get every object."""
    root, ids, datas = chains
    store = DiskObjectStore(root)
    with store.read_ahead(ids):
        with aside(lambda: [store.get(oid)[1] for oid in ids]) as theirs:
            mine = [store.get(oid)[1] for oid in ids]
            assert theirs() == datas
        assert mine == datas
    store.close()


def test_a_scratch_store_reads_ahead_the_packs_it_reads_from_its_store(chains, tmp_path):
    """A scratch store (status and merge previews build into one) reads its store's packs:
    so does the process reading ahead for it, which sends most of the objects."""
    import shutil

    from snapgit.store.objectstore import scratch_store

    root, ids, datas = chains
    copy = tmp_path / "store"
    shutil.copytree(root, copy)
    scratch = scratch_store(DiskObjectStore(copy))
    assert scratch is not None
    served = []
    with scratch.read_ahead(ids):
        ahead = scratch._ahead
        assert ahead is not None
        take = ahead.take

        def counted(oid):
            got = take(oid)
            served.append(got is not None)
            return got

        ahead.take = counted  # type: ignore[method-assign]
        for oid, data in zip(ids, datas, strict=True):
            assert scratch.get(oid) == (NODE, data)
    assert sum(served) > len(ids) // 2  # sent by the other process, not read here
