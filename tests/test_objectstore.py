"""Object stores (snapgit/objectstore.py): one contract suite, run on the disk store and its
in-memory twin, then the disk store's own promises about damage, crashes and other processes."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapgit.errors import CorruptError, NotFoundError
from snapgit.objects import ObjType
from snapgit.store import objectstore as objectstore_mod
from snapgit.store import pack as pack_mod
from snapgit.store import packindex as packindex_mod
from snapgit.store.objectstore import DiskObjectStore, MemoryObjectStore, ObjectStore, ObjectWriter
from snapgit.store.pack import DELTA, MAX_DELTA_DEPTH, PackReader

NODE = int(ObjType.NODE)
RECORD = int(ObjType.RECORD)


def oid_of(otype: int, data: bytes) -> bytes:
    return hashlib.sha256(bytes((otype,)) + data).digest()


def make_disk_store(root: Path) -> DiskObjectStore:
    (root / "objects" / "pack").mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)
    return DiskObjectStore(root)


@pytest.fixture(params=["disk", "memory"])
def store(request, tmp_path):
    if request.param == "disk":
        s = make_disk_store(tmp_path)
    else:
        s = MemoryObjectStore()
    yield s
    s.close()


@pytest.fixture
def disk(tmp_path):
    s = make_disk_store(tmp_path)
    yield s
    s.close()


def put(store, objects: list[tuple[int, bytes]]) -> list[bytes]:
    w = store.writer()
    ids = [w.add(t, d) for t, d in objects]
    w.commit()
    return ids


def random_objects(n: int, seed: int = 0, size: tuple[int, int] = (1, 400)) -> list[tuple[int, bytes]]:
    rnd = random.Random(seed)
    return [(rnd.choice([RECORD, NODE, 3, 4, 5, 6, 7]), rnd.randbytes(rnd.randrange(*size))) for _ in range(n)]


def versions(n: int, size: int = 3000, seed: int = 1) -> list[bytes]:
    """n versions of a node-sized object, each a small edit of the one before."""
    rnd = random.Random(seed)
    cur = bytearray(rnd.randbytes(size))
    out = []
    for i in range(n):
        cur[(i * 97) % size] ^= 0xFF
        out.append(bytes(cur))
    return out


# --- the contract -----------------------------------------------------------------------------


def test_get_after_commit_only(store):
    w = store.writer()
    oid = w.add(NODE, b"node bytes")
    assert oid == oid_of(NODE, b"node bytes")
    with pytest.raises(NotFoundError):
        store.get(oid)
    assert not store.contains(oid)
    w.commit()
    assert store.get(oid) == (NODE, b"node bytes")
    assert store.contains(oid)
    assert store.get_depth(oid) == 0


def test_add_with_given_id(store):
    w = store.writer()
    data = b"a record"
    assert w.add(RECORD, data, oid_of(RECORD, data)) == oid_of(RECORD, data)
    w.commit()
    assert store.get(oid_of(RECORD, data)) == (RECORD, data)


def test_nothing_readable_after_abort(store, tmp_path):
    w = store.writer()
    ids = [w.add(t, d) for t, d in random_objects(50)]
    w.abort()
    for oid in ids:
        with pytest.raises(NotFoundError):
            store.get(oid)
        assert not store.contains(oid)
    assert list(store.iter_objects()) == []
    assert store.find_prefix("") == []
    if isinstance(store, DiskObjectStore):
        assert list((tmp_path / "tmp").iterdir()) == []
        assert list((tmp_path / "objects" / "pack").iterdir()) == []
        # a fresh look (another process) sees nothing either
        other = DiskObjectStore(tmp_path)
        assert not other.contains(ids[0])
        other.close()


def test_commit_after_abort_publishes_nothing(store):
    w = store.writer()
    oid = w.add(NODE, b"x")
    w.abort()
    w.commit()
    assert not store.contains(oid)


def test_writer_as_context_manager(store):
    with store.writer() as w:
        kept = w.add(NODE, b"kept")
    assert store.get(kept) == (NODE, b"kept")
    with pytest.raises(RuntimeError):
        with store.writer() as w:
            lost = w.add(NODE, b"lost")
            raise RuntimeError("boom")
    assert not store.contains(lost)


def test_absent_ids(store):
    put(store, random_objects(5))
    for oid in (bytes(32), b"\xff" * 32, oid_of(NODE, b"never written")):
        with pytest.raises(NotFoundError):
            store.get(oid)
        with pytest.raises(NotFoundError):
            store.get_depth(oid)
        assert not store.contains(oid)


def test_every_object_readable(store):
    objects = random_objects(200)
    ids = put(store, objects)
    for oid, obj in zip(ids, objects, strict=False):
        assert store.get(oid) == obj


def test_same_object_twice(store):
    a = put(store, [(NODE, b"same")])
    b = put(store, [(NODE, b"same")])
    assert a == b
    assert store.get(a[0]) == (NODE, b"same")


def test_find_prefix(store):
    objects = random_objects(300, seed=2)
    ids = put(store, objects)
    assert store.find_prefix("") == sorted(set(ids))
    for oid in ids[:40]:
        h = oid.hex()
        assert store.find_prefix(h) == [oid]
        for k in (1, 2, 5, 16, 17, 40):
            found = store.find_prefix(h[:k])
            assert oid in found
            assert found == sorted(found)
            assert all(f.hex().startswith(h[:k]) for f in found)
            assert set(found) == {i for i in ids if i.hex().startswith(h[:k])}
    assert store.find_prefix("0" * 20) == [i for i in sorted(ids) if i.hex().startswith("0" * 20)]


def test_add_full_many(store):
    rnd = random.Random(4)
    datas = [rnd.randbytes(rnd.randrange(0, 300)) for _ in range(500)]
    ids = [oid_of(RECORD, d) for d in datas]
    w = store.writer()
    w.add_full_many(RECORD, ids[:200], datas[:200])
    w.add(NODE, b"in between")
    w.add_full_many(RECORD, ids[200:], datas[200:])
    w.add_full_many(RECORD, [], [])
    w.commit()
    for oid, d in zip(ids, datas, strict=False):
        assert store.get(oid) == (RECORD, d)
    assert store.get(oid_of(NODE, b"in between")) == (NODE, b"in between")


def test_add_delta_round_trip(store):
    base, new = versions(2)
    w = store.writer()
    base_id = w.add(NODE, base)
    new_id = w.add_delta(NODE, new, oid_of(NODE, new), base_id)
    assert new_id == oid_of(NODE, new)
    w.commit()
    assert store.get(new_id) == (NODE, new)
    assert store.get(base_id) == (NODE, base)
    assert store.get_depth(base_id) == 0
    assert store.get_depth(new_id) == 1  # a one-byte edit of 3 KB is worth a delta


def test_add_delta_against_a_committed_base(store):
    base, new, newer = versions(3)
    (base_id,) = put(store, [(NODE, base)])
    w = store.writer()
    new_id = w.add_delta(NODE, new, oid_of(NODE, new), base_id)
    newer_id = w.add_delta(NODE, newer, oid_of(NODE, newer), new_id)
    w.commit()
    assert store.get(new_id) == (NODE, new)
    assert store.get(newer_id) == (NODE, newer)
    assert store.get_depth(newer_id) == 2


def test_add_delta_falls_back_to_full(store):
    w = store.writer()
    # an unknown base
    a_id = w.add_delta(NODE, b"x" * 3000, oid_of(NODE, b"x" * 3000), bytes(32))
    # a delta not worth it: tiny objects
    small_base = w.add(NODE, b"tiny")
    small_id = w.add_delta(NODE, b"tinier", oid_of(NODE, b"tinier"), small_base)
    # an unrelated base
    rnd = random.Random(9)
    other = rnd.randbytes(3000)
    unrelated = w.add_delta(NODE, other, oid_of(NODE, other), a_id)
    w.commit()
    for oid, data in ((a_id, b"x" * 3000), (small_id, b"tinier"), (unrelated, other)):
        assert store.get(oid) == (NODE, data)
        assert store.get_depth(oid) == 0


@pytest.mark.parametrize("per_commit", [1, 100])
def test_delta_chain_beyond_max_depth(store, per_commit):
    vs = versions(3 * MAX_DELTA_DEPTH + 5)
    ids = []
    w = store.writer()
    prev = w.add(NODE, vs[0])
    ids.append(prev)
    for i, v in enumerate(vs[1:], 1):
        prev = w.add_delta(NODE, v, oid_of(NODE, v), prev)
        ids.append(prev)
        if i % per_commit == 0:
            w.commit()
            w = store.writer()
    w.commit()
    depths = [store.get_depth(oid) for oid in ids]
    # a delta goes against the version before (published or added by this writer): the chain
    # grows to the bound, then restarts from a shallow intermediate snapshot
    assert max(depths) == MAX_DELTA_DEPTH
    assert all(d <= MAX_DELTA_DEPTH for d in depths)
    for oid, v in zip(ids, vs, strict=False):
        assert store.get(oid) == (NODE, v)
    # a fresh reader resolves the chains without anything cached
    if isinstance(store, DiskObjectStore):
        other = DiskObjectStore(store.root)
        for oid, v in zip(reversed(ids), reversed(vs), strict=False):
            assert other.get(oid) == (NODE, v)
        other.close()


def test_many_objects_across_blocks_and_packs(store, monkeypatch):
    monkeypatch.setattr(objectstore_mod, "PACK_MAX_OBJECTS", 64)
    monkeypatch.setattr(pack_mod, "BLOCK_TARGET", 2048)
    objects = random_objects(700, seed=5, size=(50, 300))
    w = store.writer()
    ids = [w.add(t, d) for t, d in objects[:300]]
    recs = [(RECORD, d) for _t, d in objects[300:]]
    rec_ids = [oid_of(RECORD, d) for _t, d in recs]
    w.add_full_many(RECORD, rec_ids, [d for _t, d in recs])
    w.commit()
    expected = dict(zip(ids, objects[:300], strict=False)) | dict(zip(rec_ids, recs, strict=False))
    for oid, obj in expected.items():
        assert store.get(oid) == obj
    got = {oid: (t, d) for _pack, oid, t, d in store.iter_objects()}
    assert got == expected
    if isinstance(store, DiskObjectStore):
        names = store.pack_names()
        assert len(names) >= 700 // 64
        for name in names:
            rd = PackReader(store.pack_dir / f"pack-{name}.pack")
            assert rd.count < 2 * 64  # a soft cap: add_full_many may top up an open pack
            assert len(rd._blocks) > 1
            assert rd.checksum_ok()
            rd.close()


def test_iter_objects_yields_everything(store):
    objects = random_objects(100, seed=6)
    ids = put(store, objects[:50]) + put(store, objects[50:])
    base, new = versions(2)
    w = store.writer()
    bid = w.add(NODE, base)
    nid = w.add_delta(NODE, new, oid_of(NODE, new), bid)
    w.commit()
    expected = dict(zip(ids, objects, strict=False)) | {bid: (NODE, base), nid: (NODE, new)}
    seen = {}
    for _pack, oid, t, d in store.iter_objects():
        assert oid == oid_of(t, d)
        seen[oid] = (t, d)
    assert seen == expected


def another_handle(store):
    """The same store as another process would open it: a second disk store on the same
    directory; the memory store has no other handle than itself."""
    return DiskObjectStore(store.root) if isinstance(store, DiskObjectStore) else store


def test_every_store_keeps_the_protocol(store):
    """Disk, memory and overlay stores have every method of the protocol, so callers need no
    fallback for any of them; so do their writers."""
    overlay = objectstore_mod.OverlayObjectStore(store)
    for s in (store, overlay):
        assert isinstance(s, ObjectStore)
        w = s.writer()
        assert isinstance(w, ObjectWriter)
        w.abort()
    overlay.close()


def test_might_contain_and_might_contain_many(store):
    objects = random_objects(60, seed=13)
    ids = put(store, objects)
    absent = [oid_of(NODE, f"never written {i}".encode()) for i in range(20)]
    assert store.might_contain_many([]) == []
    asked = ids[::3] + absent + ids[1::3]
    got = store.might_contain_many(asked)
    assert got == [store.might_contain(o) for o in asked]
    # every stored id is among the answers; the absent ones share no 8-byte prefix with any
    assert got[: len(ids[::3])] == [True] * len(ids[::3])
    assert got[-len(ids[1::3]) :] == [True] * len(ids[1::3])
    assert not any(store.might_contain(o) for o in absent)
    # what a writer has not committed is not there
    w = store.writer()
    pending = w.add(NODE, b"pending")
    assert store.might_contain_many([pending]) == [False]
    w.abort()


def test_pack_names(store):
    assert store.pack_names() == []  # nothing stored: nothing for a commit to probe
    w = store.writer()
    w.add(NODE, b"aborted")
    w.abort()
    assert store.pack_names() == []
    put(store, random_objects(10, seed=14))
    put(store, random_objects(10, seed=15))
    names = store.pack_names()
    assert names and len(set(names)) == len(names)
    assert {pack for pack, _oid, _t, _d in store.iter_objects()} <= set(names)


def test_refresh_sees_what_another_handle_published(store):
    kept = put(store, [(NODE, b"before")])
    other = another_handle(store)
    (later,) = put(other, [(NODE, b"published by the other")])
    store.refresh()
    assert store.might_contain(later)  # no look-up on a miss here: only refresh finds it
    assert store.get(later) == (NODE, b"published by the other")
    assert set(store.pack_names()) == set(other.pack_names())
    assert store.get(kept[0]) == (NODE, b"before")
    store.refresh()  # again, with nothing new: nothing lost
    assert store.get(kept[0]) == (NODE, b"before")
    if other is not store:
        other.close()


def test_delta_base(store):
    base, new = versions(2)
    w = store.writer()
    base_id = w.add(NODE, base)
    new_id = w.add_delta(NODE, new, oid_of(NODE, new), base_id)
    w.commit()
    assert store.delta_base(base_id) is None
    assert store.delta_base(new_id) == base_id
    fresh = another_handle(store)  # nothing cached
    assert fresh.delta_base(new_id) == base_id
    with pytest.raises(NotFoundError):
        store.delta_base(oid_of(NODE, b"never written"))
    if fresh is not store:
        fresh.close()


def test_block_budget_and_mapped_lookups_change_no_answer(store):
    objects = random_objects(50, seed=16)
    ids = put(store, objects)
    with store.block_budget(1024):
        assert [store.get(o) for o in ids] == objects
    with store.mapped_lookups():
        assert store.get_many(ids) == objects
        assert all(store.contains(o) for o in ids)
    assert [store.get(o) for o in ids] == objects


# --- disk only --------------------------------------------------------------------------------


def pack_files(store: DiskObjectStore) -> list[Path]:
    return sorted(store.pack_dir.glob("*.pack"))


def flip(path: Path, offset: int, mask: int = 0x01) -> None:
    os.chmod(path, 0o600)
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes((b[0] ^ mask,)))


def test_get_many_equals_get_across_packs_and_deltas(store, monkeypatch):
    """The bulk read gives what one-by-one reads give: records in several packs, deltas,
    duplicates, in any order; an absent id raises NotFoundError like get()."""
    monkeypatch.setattr(objectstore_mod, "PACK_MAX_OBJECTS", 40)
    monkeypatch.setattr(pack_mod, "BLOCK_TARGET", 1024)
    objects = random_objects(300, seed=11, size=(20, 200))
    ids = put(store, objects[:150]) + put(store, objects[150:])
    w = store.writer()
    vs = versions(4)
    base = w.add(NODE, vs[0])
    delta_ids = [w.add_delta(NODE, v, oid_of(NODE, v), base) for v in vs[1:]]
    w.commit()
    wanted = ids[::-1] + [base, *delta_ids] + ids[:10]
    random.Random(3).shuffle(wanted)
    assert store.get_many(wanted) == [store.get(oid) for oid in wanted]
    assert store.get_many([]) == []
    with pytest.raises(NotFoundError):
        store.get_many([ids[0], b"\x07" * 32])


@pytest.mark.parametrize("use_native", [True, False], ids=["c", "python"])
def test_get_many_reads_runs_across_blocks_and_packs(disk, monkeypatch, use_native):
    """Ids wanted in the order they were written (a restore's records) are read as runs that
    cross blocks and packs, stop at a delta, an id written elsewhere or a duplicate, and give
    what one-by-one reads give, with and without the C extension's run reader."""
    from snapgit import native

    if use_native and not native.available():
        pytest.skip("the C extension is not built here")
    if not use_native:
        monkeypatch.setattr(native, "_native", None)
    monkeypatch.setattr(objectstore_mod, "PACK_MAX_OBJECTS", 70)
    monkeypatch.setattr(pack_mod, "BLOCK_TARGET", 512)
    objects = random_objects(400, seed=21, size=(10, 120))
    ids = put(disk, objects[:200]) + put(disk, objects[200:])
    w = disk.writer()
    vs = versions(3)
    base = w.add(NODE, vs[0])
    deltas = [w.add_delta(NODE, v, oid_of(NODE, v), base) for v in vs[1:]]
    w.commit()
    assert len(pack_files(disk)) >= 5
    wanted = [*ids[5:180], deltas[0], *ids[180:260], ids[3], ids[3], *ids[260:], base, *deltas, *ids[:5]]
    fresh = DiskObjectStore(disk.root)
    try:
        assert fresh.get_many(wanted) == [fresh.get(oid) for oid in wanted]
        assert fresh.get_many(ids) == objects
        with pytest.raises(NotFoundError):
            fresh.get_many([*ids[:30], b"\x07" * 32, *ids[30:40]])
    finally:
        fresh.close()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([0, 0, 0, 1, 2]), st.binary(max_size=12)), max_size=12),
    st.integers(-1, 13),
    st.integers(-1, 3),
    st.data(),
)
def test_whole_run_in_c_reads_what_the_python_reference_reads(entries, i, j, data):
    """The run reader of the C extension stops where its Python reference stops: at an entry
    that is not stored whole, one whose hash is not the id wanted, the end of the block or of
    the ids; ends that point outside the block stop it too."""
    from snapgit import native

    if not native.available():
        pytest.skip("the C extension is not built here")
    blob = bytearray()
    ends = []
    ids = []
    for kind, body in entries:
        entry = bytes([kind]) + body
        blob += entry
        ends.append(len(blob))
        ids.append(hashlib.sha256(entry[1:]).digest())
    if ends and data.draw(st.booleans()):
        at = data.draw(st.integers(0, len(ends) - 1))
        ends[at] = data.draw(st.sampled_from([ends[at] + 1, ends[at] - 1, ends[at] + 1000, 2**64 - 1]))
    wanted = [b"\x00" * 32] * max(j, 0) + ids[max(i, 0) :]
    if wanted and data.draw(st.booleans()):
        wanted[data.draw(st.integers(0, len(wanted) - 1))] = b"\x01" * 32
    got_c: list = []
    got_py: list = []
    count_c = native.whole_run(memoryview(bytes(blob)), ends, i, wanted, j, got_c)
    original = native._native
    try:
        native._native = None
        count_py = native.whole_run(memoryview(bytes(blob)), ends, i, wanted, j, got_py)
    finally:
        native._native = original
    assert (count_c, got_c) == (count_py, got_py)
    assert len(got_c) == count_c


def test_disk_get_many_finds_damage_like_get(disk):
    objects = random_objects(40, seed=9, size=(100, 200))
    ids = put(disk, objects)
    (path,) = pack_files(disk)
    rd = PackReader(path)
    off, clen = rd._blocks[0][0], rd._blocks[0][1]
    rd.close()
    flip(path, off + clen // 2)
    fresh = DiskObjectStore(disk.root)
    with pytest.raises(CorruptError):
        fresh.get_many(ids)
    fresh.close()


def test_disk_flipped_byte_in_a_block_is_corrupt(disk):
    objects = random_objects(40, seed=8, size=(100, 200))
    ids = put(disk, objects)
    (path,) = pack_files(disk)
    rd = PackReader(path)
    off, clen, _rlen, first, n, _crc = rd._blocks[0]
    # the objects of that block (records and other objects are written to blocks of their own)
    in_block = {hashlib.sha256(rd.entry(i)[1:]).digest() for i in range(first, first + n)}
    rd.close()
    assert in_block and in_block <= set(ids)
    for offset in (off, off + clen // 2, off + clen - 1):
        flip(path, offset)
        fresh = DiskObjectStore(disk.root)
        for oid in ids:
            if oid in in_block:
                with pytest.raises(CorruptError):
                    fresh.get(oid)
            else:
                assert fresh.get(oid) == objects[ids.index(oid)]
        fresh.close()
        flip(path, offset)
    fresh = DiskObjectStore(disk.root)
    assert [fresh.get(oid) for oid in ids] == objects
    fresh.close()


def test_disk_any_flipped_byte_gives_right_bytes_or_corrupt_error(disk, monkeypatch):
    """Wherever one byte of a pack is damaged -- header, blocks, block table, footer -- a read
    returns the object's true bytes or raises CorruptError: never wrong bytes, never another
    exception, never 'not found' for an object that is there."""
    monkeypatch.setattr(pack_mod, "BLOCK_TARGET", 300)
    vs = versions(4, size=900, seed=3)
    w = disk.writer()
    ids = [w.add(t, d) for t, d in random_objects(12, seed=10, size=(20, 120))]
    objects = dict(zip(ids, random_objects(12, seed=10, size=(20, 120)), strict=False))
    prev = w.add(NODE, vs[0])
    objects[prev] = (NODE, vs[0])
    for v in vs[1:]:
        prev = w.add_delta(NODE, v, oid_of(NODE, v), prev)
        objects[prev] = (NODE, v)
    w.commit()
    (path,) = pack_files(disk)
    size = path.stat().st_size
    rd = PackReader(path)
    frames = [range(off, off + clen) for off, clen, *_ in rd._blocks]
    rd.close()
    # every byte of the header, block table and footer; every 5th byte of the zstd frames
    offsets = [o for o in range(size) if not any(o in f for f in frames) or o % 5 == 0]
    problems = []
    for offset in offsets:
        flip(path, offset)
        try:
            fresh = DiskObjectStore(disk.root)
            for oid, obj in objects.items():
                try:
                    got = fresh.get(oid)
                except CorruptError:
                    continue
                if got != obj:
                    problems.append((offset, "wrong bytes"))
            fresh.close()
        except CorruptError:
            pass
        except Exception as exc:  # noqa: BLE001 - the point is to catch anything else
            problems.append((offset, f"{type(exc).__name__}: {exc}"))
        finally:
            flip(path, offset)
    assert problems == [], f"{len(problems)} of {len(offsets)} offsets misbehave: {problems}"


@pytest.mark.parametrize("keep", [0, 16, 100, -1, -40])
def test_disk_truncated_pack_is_corrupt(disk, keep):
    ids = put(disk, random_objects(30, seed=11))
    (path,) = pack_files(disk)
    data = path.read_bytes()
    os.chmod(path, 0o600)
    path.write_bytes(data[:keep])
    fresh = DiskObjectStore(disk.root)
    with pytest.raises(CorruptError):
        fresh.get(ids[0])
    fresh.close()


@pytest.mark.parametrize("keep", [0, 16, 100, -1, -40])
def test_disk_truncated_index_is_corrupt(disk, keep):
    ids = put(disk, random_objects(30, seed=12))
    (idx,) = sorted(disk.pack_dir.glob("*.idx"))
    data = idx.read_bytes()
    os.chmod(idx, 0o600)
    idx.write_bytes(data[:keep])
    with pytest.raises(CorruptError):
        fresh = DiskObjectStore(disk.root)
        fresh.get(ids[0])


def test_disk_missing_pack_is_corrupt(disk):
    ids = put(disk, random_objects(5))
    (path,) = pack_files(disk)
    path.unlink()
    fresh = DiskObjectStore(disk.root)
    with pytest.raises(CorruptError):
        fresh.get(ids[0])
    fresh.close()


def test_disk_leftovers_of_a_killed_writer_are_ignored(disk, tmp_path_factory):
    ids = put(disk, random_objects(5))
    # a temporary pack of a killed run
    (disk.tmp_dir / "pack-0123456789abcdef.tmp").write_bytes(b"SNAPPACK half a pack")
    (disk.tmp_dir / "pack-abc.idx.tmp").write_bytes(b"junk")
    # a pack renamed into place whose index never was (the crash came between the two)
    elsewhere = make_disk_store(tmp_path_factory.mktemp("elsewhere"))
    (orphan,) = put(elsewhere, [(NODE, b"orphan")])
    (orphan_pack,) = pack_files(elsewhere)
    elsewhere.close()
    os.replace(orphan_pack, disk.pack_dir / orphan_pack.name)
    fresh = DiskObjectStore(disk.root)
    assert [fresh.get(oid)[1] for oid in ids] == [d for _t, d in random_objects(5)]
    assert not fresh.contains(orphan)
    assert {oid for _p, oid, _t, _d in fresh.iter_objects()} == set(ids)
    # and writing goes on
    more = put(fresh, [(NODE, b"after the crash")])
    assert fresh.get(more[0]) == (NODE, b"after the crash")
    fresh.close()


def test_disk_uncommitted_writer_is_invisible_to_other_processes(disk):
    w = disk.writer()
    oid = w.add(NODE, b"pending")
    other = DiskObjectStore(disk.root)
    assert not other.contains(oid)
    w.commit()
    assert other.contains(oid)
    other.close()


def test_disk_another_instance_sees_packs_published_later(disk):
    other = DiskObjectStore(disk.root)  # opened first, like another process
    first = put(disk, [(NODE, b"one")])
    assert other.get(first[0]) == (NODE, b"one")  # refresh on a miss
    second = put(disk, [(NODE, b"two")])
    assert other.contains(second[0])
    assert other.find_prefix(second[0].hex()[:10]) == [second[0]]
    assert set(other.pack_names()) == set(disk.pack_names())
    other.close()


def test_disk_published_files_are_read_only(disk):
    put(disk, [(NODE, b"x")])
    files = list(disk.pack_dir.iterdir())
    assert {f.suffix for f in files} == {".pack", ".idx"}
    for f in files:
        assert f.stat().st_mode & 0o777 == 0o400


def test_disk_entries_are_deltas(disk):
    base, new = versions(2)
    w = disk.writer()
    bid = w.add(NODE, base)
    nid = w.add_delta(NODE, new, oid_of(NODE, new), bid)
    w.commit()
    (path,) = pack_files(disk)
    rd = PackReader(path)
    kinds = [e[0] for _o, e in rd.iter_entries()]
    rd.close()
    assert kinds == [0, DELTA]
    assert path.stat().st_size < len(base) + 500
    assert disk.get(nid) == (NODE, new)


def test_seal_early_only_from_min_objects(disk: DiskObjectStore) -> None:
    """writer.seal(min_objects): the pack being written is finished (a pack of its own) only
    when it holds that many objects; either way every object is readable after commit."""
    datas = [f"object {i}".encode() for i in range(30)]
    with disk.writer() as w:
        for d in datas[:10]:
            w.add(ObjType.RECORD, d)
        w.seal(min_objects=11)  # 10 objects: not worth a pack of their own
        for d in datas[10:20]:
            w.add(ObjType.RECORD, d)
        w.seal(min_objects=20)  # 20: sealed
        for d in datas[20:]:
            w.add(ObjType.RECORD, d)
    assert len(pack_files(disk)) == 2
    for d in datas:
        assert disk.get(hashlib.sha256(b"\x01" + d).digest()) == (ObjType.RECORD, d)


def test_might_contain_is_an_8_byte_prefix_match_over_every_pack(disk):
    """Ids that share their first 4 bytes (answered in memory) but not 8 (answered from the
    mapped index), over several packs, asked in any order."""
    rnd = random.Random(5)
    heads = [bytes(rnd.choice([0, 1, 255]) for _ in range(8)) for _ in range(40)]
    stored: list[bytes] = []
    for _pack in range(3):
        w = disk.writer()
        for head in rnd.sample(heads, 10):
            oid = head + rnd.randbytes(24)
            w.add(RECORD, oid, oid)  # (data that differs, so the packs differ)
            stored.append(oid)
        w.commit()
    assert len(disk.pack_names()) == 3
    for head in heads:
        probe = head + rnd.randbytes(24)
        assert disk.might_contain(probe) == any(o[:8] == head for o in stored)
    fresh = DiskObjectStore(disk.root)
    assert all(fresh.might_contain(o) for o in reversed(stored))
    fresh.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(packs=st.integers(1, 4), per_pack=st.integers(0, 40), asked=st.integers(0, 90), seed=st.integers(0, 10**6))
def test_might_contain_many_answers_as_might_contain_does(tmp_path_factory, packs, per_pack, asked, seed):
    """The batch look-up a commit probes with (each index read once with pread, by a pass in C
    for many ids and a binary search each for few) says what ``might_contain`` says of each id,
    on disk, in memory and through an overlay; ids share prefixes of 1 to 8 bytes."""
    rnd = random.Random(seed)
    heads = [bytes(rnd.choice([0, 1, 255]) for _ in range(8)) for _ in range(12)]

    def an_id() -> bytes:
        shared = rnd.randrange(1, 9)
        return rnd.choice(heads)[:shared] + rnd.randbytes(32 - shared)

    disk = make_disk_store(tmp_path_factory.mktemp("many"))
    memory = MemoryObjectStore()
    stored: list[bytes] = []
    for _ in range(packs):
        batch = [an_id() for _ in range(per_pack)]
        for s in (disk, memory):
            w = s.writer()
            for oid in batch:
                w.add(RECORD, oid, oid)
            w.commit()
        stored += batch
    probes = [rnd.choice(stored) if stored and rnd.random() < 0.3 else an_id() for _ in range(asked)]
    overlay = objectstore_mod.OverlayObjectStore(disk)
    assert disk.might_contain_many(probes) == [disk.might_contain(o) for o in probes]
    assert overlay.might_contain_many(probes) == [overlay.might_contain(o) for o in probes]
    assert memory.might_contain_many(probes) == [o in set(stored) for o in probes]
    # an 8-byte prefix match is all it promises: every stored id is among the answers
    assert all(a for o, a in zip(probes, disk.might_contain_many(probes), strict=False) if o in set(stored))
    disk.close()


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux's /proc/self/smaps")
def test_reading_objects_maps_no_index_pages(disk):
    """Objects are found through their index with pread: a commit reads thousands of its
    parent's leaves, and pages of a mapped index, once touched, count in its memory."""
    datas = [os.urandom(64) for _ in range(4000)]
    with disk.writer() as w:
        ids = [w.add(RECORD, d) for d in datas]
    disk.refresh()
    assert [disk.get(i)[1] for i in ids[::7]] == datas[::7]
    assert all(disk.contains(i) for i in ids[::11])
    assert index_pages_resident() == 0
    # gc reads every node, and asks the maps instead: the same answers
    disk._full_cache.clear()
    with disk.mapped_lookups():
        assert [disk.get(i)[1] for i in ids[::7]] == datas[::7]
        assert disk.stored_bases(ids[0]) == []
        assert index_pages_resident() > 0


def index_pages_resident() -> int:
    """kB of this process's mapped .idx files that are resident (Linux)."""
    total, in_idx = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split(maxsplit=6)
            if "-" in head[0] and len(head) >= 5 and ":" in head[3]:
                in_idx = line.rstrip().endswith(".idx")
            elif in_idx and line.startswith("Rss:"):
                total += int(line.split()[1])
    return total


def test_an_index_removed_while_open_is_still_read_through_its_map(disk):
    """gc moves an old index away while another command still has it open: look-ups, which
    open the file for each read, fall back to the map of what was opened."""
    datas = [os.urandom(40) for _ in range(300)]
    with disk.writer() as w:
        ids = [w.add(RECORD, d) for d in datas]
    disk.refresh()
    (idx,) = disk.pack_dir.glob("*.idx")
    idx.unlink()
    assert [disk.get(i)[1] for i in ids[::13]] == datas[::13]
    assert disk.might_contain_many(ids[:50] + [os.urandom(32)]) == [True] * 50 + [False]


def test_reading_nodes_stored_as_deltas_asks_each_pack_once(disk, monkeypatch):
    """A node stored as a delta and its base are in different packs (the base written commits
    before): the base's look-up keeps an order of packs of its own, so reading such nodes one
    after another asks the right pack first for each, twice a node, not four times."""
    rnd = random.Random(3)
    bases = [rnd.randbytes(3000) for _ in range(40)]
    base_ids = put(disk, [(NODE, b) for b in bases])
    for _ in range(3):  # packs between the two, which no look-up should ask
        put(disk, random_objects(20, seed=rnd.randrange(99)))
    news = [b[:100] + b"changed" + b[107:] for b in bases]
    w = disk.writer()
    new_ids = [w.add_delta(NODE, n, oid_of(NODE, n), b) for n, b in zip(news, base_ids, strict=False)]
    w.commit()
    reader = make_disk_store(disk.root)
    asked = []
    original = packindex_mod.IndexReader.candidates

    def counting(self, oid, mapped=False):
        asked.append(oid)
        return original(self, oid, mapped)

    monkeypatch.setattr(packindex_mod.IndexReader, "candidates", counting)
    assert [reader.get(i) for i in new_ids] == [(NODE, n) for n in news]
    assert all(reader.get_depth(i) == 1 for i in new_ids)
    # the first of each kind may ask every pack; the rest find theirs first time
    assert len(asked) <= 2 * len(new_ids) + 2 * 5
    reader.close()


def test_index_descriptors_are_kept_for_the_last_indexes_only(disk, monkeypatch):
    monkeypatch.setattr(packindex_mod, "_descriptors", packindex_mod._Descriptors(3))
    packs = [put(disk, random_objects(30, seed=s)) for s in range(6)]
    objects = [random_objects(30, seed=s) for s in range(6)]
    mapped = len(open_index_descriptors(disk.root))  # the maps hold a descriptor each
    for _ in range(2):
        for ids, objs in zip(packs, objects, strict=False):
            assert [disk.get(i) for i in ids] == objs
            assert len(open_index_descriptors(disk.root)) <= mapped + 3
    disk.close()
    assert open_index_descriptors(disk.root) == []


def test_an_index_replaced_while_open_is_read_through_its_map(disk):
    """verify --repair writes a new index in place of a broken one: a descriptor opened after
    that would read another file than the map of the index this store opened, so none is."""
    datas = [os.urandom(40) for _ in range(300)]
    with disk.writer() as w:
        ids = [w.add(RECORD, d) for d in datas]
    disk.refresh()
    (idx,) = disk.pack_dir.glob("*.idx")
    replacement = idx.with_suffix(".new")
    replacement.write_bytes(bytes(idx.stat().st_size))  # the same size, all zeros
    replacement.replace(idx)
    assert [disk.get(i)[1] for i in ids[::13]] == datas[::13]
    assert open_index_descriptors(disk.root) == []  # the map's own is of the file replaced


def open_index_descriptors(root: Path) -> list[str]:
    """The .idx files under ``root`` this process holds a descriptor of (Linux); a file
    removed or replaced since is not one of them."""
    fds = Path("/proc/self/fd")
    if not fds.exists():
        pytest.skip("needs Linux's /proc/self/fd")
    out = []
    for fd in list(fds.iterdir()):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(root)) and target.endswith(".idx"):
            out.append(target)
    return out


def test_a_scratch_store_reads_the_store_and_writes_only_its_own_packs(disk):
    """scratch_store: reads the store's packs (a delta written into it may be against one of
    the store's objects), writes into its own, sees what the store publishes later and a pack
    gc moved to the store's trash; deleted, with its packs, once nothing holds it."""
    import gc

    base, new = versions(2)
    (bid,) = put(disk, [(NODE, base)])
    (unread,) = put(disk, [(RECORD, b"not read before gc moves its pack")])
    store_files = sorted(disk.pack_dir.iterdir())
    scratch = objectstore_mod.scratch_store(disk)
    assert scratch is not None
    root = scratch.root
    assert root.parent == disk.tmp_dir and root.name.startswith("scratch-")
    with scratch.writer() as w:
        nid = w.add_delta(NODE, new, oid_of(NODE, new), bid)
    assert scratch.get(nid) == (NODE, new) and scratch.get(bid) == (NODE, base)
    assert scratch.delta_base(nid) == bid and scratch.get_depth(nid) == 1
    assert not disk.contains(nid)  # nothing of the scratch store's is the store's
    assert sorted(disk.pack_dir.iterdir()) == store_files
    assert len(list((root / "objects" / "pack").glob("pack-*.idx"))) == 1
    (later,) = put(disk, [(RECORD, b"published by the store afterwards")])
    assert scratch.get(later) == (RECORD, b"published by the store afterwards")
    # another process of the scratch store's (a worker, the read-ahead) reads the same
    other = scratch.reopen()
    assert other.get(nid) == (NODE, new) and other.also == (disk.root,)
    other.close()
    # gc moved a pack to the store's trash after the scratch store listed its index
    (moved,) = [p for p in disk.pack_dir.glob("*.pack") if disk.index(p.name[5:-5]).candidates(unread)]
    trash = disk.root / "objects" / "trash"
    trash.mkdir()
    os.replace(moved, trash / moved.name)
    assert scratch.get(unread) == (RECORD, b"not read before gc moves its pack")
    del scratch, w  # the writer holds its store too
    gc.collect()
    assert not root.exists()


def test_no_scratch_store_where_tmp_cannot_take_one(disk):
    disk.tmp_dir.rmdir()
    disk.tmp_dir.write_bytes(b"")  # not a directory: even root cannot make one in it
    assert objectstore_mod.scratch_store(disk) is None
