"""Delta chains (snapgit/store/objectstore.py, _WriterBase._encode_delta): a node is stored as a
delta against the version before it, chains stay within MAX_DELTA_DEPTH and restart from
intermediate snapshots; every version reads back exactly, gc keeps every link of a chain, and
what a version adds to the store does not rise with the number of versions."""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapgit import Repo
from snapgit.objects import ObjType
from snapgit.ops.gc import _mark
from snapgit.store.objectstore import SNAPSHOT_LEVELS, DiskObjectStore, MemoryObjectStore
from snapgit.store.pack import MAX_DELTA_DEPTH, DeltaDecoder, delta_compress
from storekit import disk_store, keep_only_the_tree_of
from storekit import node_id as oid_of

NODE = int(ObjType.NODE)
SNAP = [sys.executable, "-m", "snapgit.cli"]


def leaf_versions(n: int, ids: int = 128, changed: int = 2, seed: int = 0) -> list[bytes]:
    """n versions of a leaf-like object: ``ids`` random 32-byte ids, ``changed`` of them
    replaced from one version to the next (what a spread 1% change does to a leaf)."""
    rnd = random.Random(seed)
    cur = [rnd.randbytes(32) for _ in range(ids)]
    out = []
    for _ in range(n):
        out.append(b"".join(cur))
        for _ in range(changed):
            cur[rnd.randrange(ids)] = rnd.randbytes(32)
    return out


def write_versions(store, vs: list[bytes], commit_every: int = 1) -> list[bytes]:
    """Each version as a delta against the one before (as a commit stores a changed leaf)."""
    ids = []
    w = store.writer()
    prev = w.add(NODE, vs[0])
    ids.append(prev)
    for i, v in enumerate(vs[1:], 1):
        prev = w.add_delta(NODE, v, oid_of(v), prev)
        ids.append(prev)
        if i % commit_every == 0:
            w.commit()
            w = store.writer()
    w.commit()
    return ids


def chain_length(store, oid: bytes) -> int:
    n = 0
    base = store.delta_base(oid)
    while base is not None:
        n += 1
        assert n <= MAX_DELTA_DEPTH, "a chain longer than the bound"
        base = store.delta_base(base)
    return n


# --- any sequence of versions ------------------------------------------------------------------

_edit = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6)),
    st.tuples(st.just("replace"), st.integers(0, 10**6), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("delete"), st.integers(0, 10**6), st.integers(1, 64)),
)
# mostly small edits, so that chains grow to the bound; now and then a version rewritten whole
_version = st.tuples(st.lists(_edit, min_size=0, max_size=3), st.integers(0, 15))


def apply(cur: bytearray, edit: tuple) -> None:
    kind, at = edit[0], edit[1] % max(len(cur), 1)
    if kind == "flip" and cur:
        cur[at] ^= 0xFF
    elif kind == "replace":
        cur[at : at + len(edit[2])] = edit[2]
    elif kind == "insert":
        cur[at:at] = edit[2]
    elif kind == "delete" and len(cur) > edit[2]:
        del cur[at : at + edit[2]]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    size=st.integers(800, 6000),
    edits=st.lists(_version, min_size=12, max_size=40),
    commit_every=st.integers(1, 7),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_sequence_of_versions_reads_back_within_the_bound(tmp_path_factory, size, edits, commit_every, seed):
    cur = bytearray(random.Random(seed).randbytes(size))
    vs = [bytes(cur)]
    for step, rewrite in edits:
        for e in step:
            apply(cur, e)
        if rewrite == 0:
            cur[:] = random.Random(len(vs)).randbytes(len(cur) or 1)
        vs.append(bytes(cur))
    root = tmp_path_factory.mktemp("store")
    for store in (disk_store(root), MemoryObjectStore()):
        ids = write_versions(store, vs, commit_every)
        for oid, v in zip(ids, vs, strict=True):
            assert store.get(oid) == (NODE, v)
            depth = store.get_depth(oid)
            assert 0 <= depth <= MAX_DELTA_DEPTH
            assert chain_length(store, oid) == depth  # the depth recorded is the chain read
        store.close()
    fresh = DiskObjectStore(root)  # nothing cached: every chain resolved from the packs
    for oid, v in reversed(list(zip(ids, vs, strict=True))):
        assert fresh.get(oid) == (NODE, v)
    fresh.close()


@pytest.mark.parametrize("commit_every", [1, 4])
def test_each_version_is_a_delta_against_the_one_before_until_the_bound(tmp_path, commit_every):
    vs = leaf_versions(4 * MAX_DELTA_DEPTH)
    store = disk_store(tmp_path)
    ids = write_versions(store, vs, commit_every)
    depths = [store.get_depth(oid) for oid in ids]
    # the first chain grows by one a version, up to the bound (a star of deltas against the first
    # version stays at depth 1, and each version then carries every change since the first)
    first_restart = next(i for i in range(1, len(ids)) if depths[i] != depths[i - 1] + 1)
    for i in range(1, first_restart):
        assert store.delta_base(ids[i]) == ids[i - 1]
    assert max(depths) == MAX_DELTA_DEPTH
    # the full chain restarts from an intermediate snapshot: a delta against one of its first
    # links, not a whole node (those come only once the changes since the chain's root make
    # every snapshot too big: here, once in 26 versions)
    assert 1 <= depths[first_restart] <= SNAPSHOT_LEVELS
    assert store.delta_base(ids[first_restart]) in ids[:SNAPSHOT_LEVELS]
    assert sum(d == 0 for d in depths) <= 1 + len(depths) // 20
    store.close()


def test_decoder_reads_bases_across_raw_block_sizes():
    """A base read the first time goes through a frame that holds it raw, in blocks of 128 KiB
    at most: bases of every size around those bounds give the object back."""
    dec = DeltaDecoder()
    for n in (1, 255, 256, 65_791, 65_792, 128 * 1024 - 1, 128 * 1024, 128 * 1024 + 1, 300_000):
        base = random.Random(n).randbytes(n)
        full = base[: n // 2] + b"changed" + base[n // 2 :]
        bid = hashlib.sha256(base).digest()
        frame = delta_compress(base, full)
        assert dec.decompress(bid, base, frame) == full  # first read: the raw-frame path
        assert dec.decompress(bid, base, frame) == full  # again: the base's own decompressor


# --- growth per version ------------------------------------------------------------------------


def pack_bytes(store: Path) -> int:
    return sum(p.stat().st_size for p in (store / ".snapstore" / "objects" / "pack").iterdir())


def test_growth_per_version_does_not_rise(tmp_path):
    """A table of 8,000 rows, 30 versions of a spread 1% change: what a version adds to the
    store levels off, where deltas against the first version of each leaf grew with every
    version."""
    rows = 8000
    con = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, n INTEGER)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, f"value {i}", 0) for i in range(rows)])
    rnd = random.Random(21)
    growth = []
    with Repo.init(tmp_path, "db.sqlite") as repo:
        repo.commit("first")
        before = pack_bytes(tmp_path)
        for v in range(30):
            con.executemany("UPDATE t SET n = n + 1 WHERE id = ?", [(i,) for i in rnd.sample(range(rows), rows // 100)])
            repo.commit(f"version {v}")
            after = pack_bytes(tmp_path)
            growth.append(after - before)
            before = after
        assert repo.verify().ok
    con.close()
    first, middle, last = (sum(growth[i : i + 10]) / 10 for i in (0, 10, 20))
    # chains: about 11, 15, 16 kB a version (the first ten are all deltas against the version
    # before; from the eleventh, full chains restart from intermediate snapshots, which cost
    # more); star deltas: 22, 45, 64 kB
    assert last <= 1.6 * first and last <= 1.2 * middle, f"growth per version rose: {growth}"


# --- gc --------------------------------------------------------------------------------------


def snap(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAP, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env={**os.environ})


def test_gc_keeps_every_link_of_a_chain_and_verify_reads_it(tmp_path):
    """Only the last of 14 versions stays reachable, through a parentless commit: its leaves
    are deltas whose bases are deltas too, none of them reachable otherwise. gc must keep
    every link (bases of bases), and `verify --read-data` must then pass."""
    con = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, n INTEGER)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, f"value {i}", 0) for i in range(3000)])
    with Repo.init(tmp_path, "db.sqlite") as repo:
        repo.commit("first")
        for v in range(14):
            con.execute("UPDATE t SET n = n + 1 WHERE id % 97 = ?", (v,))
            last = repo.commit(f"version {v}").commit_id
        orphan = keep_only_the_tree_of(repo, tmp_path, last)
        kept = _mark(repo.objects, {orphan}).few
        chains = {nid: chain_length(repo.objects, nid) for nid in kept if repo.objects.delta_base(nid)}
        assert max(chains.values()) >= 3, "no chain deeper than 2: the test proves nothing"
        for nid in chains:  # every link is marked, not only the base of a reachable node
            link = repo.objects.delta_base(nid)
            while link is not None:
                assert link in kept
                link = repo.objects.delta_base(link)
    con.close()
    gc = snap(tmp_path, "gc", "--prune=now")
    assert gc.returncode == 0, gc.stderr
    verify = snap(tmp_path, "verify", "--read-data")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    with Repo.open(tmp_path) as repo:  # copied as they were: still deltas, chains as long
        assert {nid: chain_length(repo.objects, nid) for nid in chains} == chains
    restored = tmp_path / "restored.sqlite"
    r = snap(tmp_path, "restore", "HEAD", "--into", str(restored))
    assert r.returncode == 0, r.stderr
    a = sqlite3.connect(tmp_path / "db.sqlite").execute("SELECT * FROM t ORDER BY id").fetchall()
    b = sqlite3.connect(restored).execute("SELECT * FROM t ORDER BY id").fetchall()
    assert a == b


# --- unchecked links ---------------------------------------------------------------------------


def test_a_wrong_link_is_found_by_the_end_of_its_chain_and_read_again_checked(tmp_path):
    """Links of a chain are not hashed one by one: the object at the chain's end is. When one
    pack's index sends a link's look-up to another object (a damaged index, or an 8-byte prefix
    shared with another id), the end does not hash to its id, and the chain is resolved again
    with every link checked: the link is then read from the pack that has it right."""
    store = disk_store(tmp_path)
    x, y, z = leaf_versions(3, ids=200, changed=2, seed=3)
    for attempt in range(200):
        # pack A holds X and a decoy; pack B another copy of X. Readers ask the packs with the
        # greatest names first: A must be asked before B for the wrong link to be read at all.
        before = set(store.pack_names())
        w = store.writer()
        decoy = w.add(NODE, b"decoy %d " % attempt + x[:3000])
        w.add(NODE, x)
        w.commit()
        (a,) = set(store.pack_names()) - before
        w = store.writer()
        w.add(NODE, x)
        w.add(NODE, b"other %d" % attempt)
        w.commit()
        (b,) = set(store.pack_names()) - before - {a}
        if a > b:
            break
        for n in (a, b):
            store.forget(n)
            (store.pack_dir / f"pack-{n}.idx").unlink()
            (store.pack_dir / f"pack-{n}.pack").unlink()
    else:
        pytest.fail("no pack name order found")
    w = store.writer()
    xid = oid_of(x)
    yid = w.add_delta(NODE, y, oid_of(y), xid)
    zid = w.add_delta(NODE, z, oid_of(z), yid)
    w.commit()
    assert store.get_depth(zid) == 2
    store.close()
    # damage A's index: X's prefix now names the decoy's ordinal (the checksum made right again,
    # so that nothing but a read can tell)
    idx_path = tmp_path / "objects" / "pack" / f"pack-{a}.idx"
    raw = bytearray(idx_path.read_bytes())
    n = int.from_bytes(raw[12:16], "big")
    prefixes = [int.from_bytes(raw[1040 + 8 * i : 1048 + 8 * i], "little") for i in range(n)]
    ords = 1040 + 8 * n
    ordinal = {p: int.from_bytes(raw[ords + 4 * i : ords + 4 * i + 4], "little") for i, p in enumerate(prefixes)}
    px, pd = int.from_bytes(xid[:8], "big"), int.from_bytes(decoy[:8], "big")
    raw[ords + 4 * prefixes.index(px) : ords + 4 * prefixes.index(px) + 4] = ordinal[pd].to_bytes(4, "little")
    raw[-32:] = hashlib.sha256(bytes(raw[:-32])).digest()
    os.chmod(idx_path, 0o600)
    idx_path.write_bytes(bytes(raw))
    fresh = DiskObjectStore(tmp_path)
    assert fresh.get(zid) == (NODE, z)
    assert fresh.get(yid) == (NODE, y)
    fresh.close()


def test_reading_a_chain_end_tells_each_link_its_stored_base(tmp_path):
    """A chain is read in one pass from its end (DiskObjectStore._read_chain), without making
    the objects between; what it learns of each link's base is what the link's entry holds,
    and what a store reading each link from the packs says (writers walk a chain back that way)."""
    root = tmp_path / "s"
    store = disk_store(root)
    vs = leaf_versions(MAX_DELTA_DEPTH + 1, ids=150, changed=3, seed=11)
    ids = write_versions(store, vs, commit_every=3)
    store.close()
    fresh = DiskObjectStore(root)
    assert fresh.get(ids[-1]) == (NODE, vs[-1])
    learnt = [fresh.delta_base(oid) for oid in ids]
    fresh.close()
    stored = DiskObjectStore(root)
    as_stored = [(stored.stored_bases(oid) or [None])[0] for oid in ids]
    one_by_one = []
    for oid in ids:  # a store that read nothing else before: each link resolved for itself
        alone = DiskObjectStore(root)
        one_by_one.append(alone.delta_base(oid))
        alone.close()
    stored.close()
    assert learnt == as_stored == one_by_one
    # each base an earlier version (a restart goes back to one of a chain's first), most the one before
    assert learnt[0] is None and all(b is None or b in ids[:k] for k, b in enumerate(learnt))
    assert sum(b == a for a, b in zip(ids, learnt[1:], strict=False)) >= MAX_DELTA_DEPTH // 2


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(2, 30),
    commit_every=st.integers(1, 5),
    budget=st.sampled_from([1, 20_000, 200_000, None]),
    seed=st.integers(0, 2**32 - 1),
)
def test_chains_read_in_c_or_python_give_the_same_objects(tmp_path_factory, n, commit_every, budget, seed):
    """Versions of a few leaves stored as delta chains over several packs, read back in a
    random order by a store whose block cache holds one block, a few, or plenty: the C walk
    asks for what it lacks and walks again, or hands the chain to the walk in Python; a store
    walking in Python alone reads the same objects at the same depths."""
    root = tmp_path_factory.mktemp("store")
    store = disk_store(root)
    rnd = random.Random(seed)
    written: list[tuple[bytes, bytes]] = []
    for leaf in range(3):
        vs = leaf_versions(n, ids=100, changed=2, seed=seed + leaf)
        written += zip(write_versions(store, vs, commit_every), vs, strict=True)
    store.close()
    rnd.shuffle(written)
    walking = DiskObjectStore(root, block_budget=budget)
    in_python = DiskObjectStore(root, block_budget=budget)
    in_python._walk_c = False
    for oid, v in written:
        assert walking.get(oid) == in_python.get(oid) == (NODE, v)
        assert walking.get_depth(oid) == in_python.get_depth(oid)
    walking.close()
    in_python.close()
