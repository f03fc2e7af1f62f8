"""Read cursors of the disk store (snapgit/store/objectstore.py ReadCursor): each keeps its own
order of packs, and reads through it give what the store gives, as packs come and go."""

from __future__ import annotations

import hashlib
import random

from snapgit.objects import ObjType
from snapgit.store.objectstore import DiskObjectStore, MemoryObjectStore, ReadCursor, read_cursor

NODE = int(ObjType.NODE)


def make_store(root) -> DiskObjectStore:
    (root / "objects" / "pack").mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)
    return DiskObjectStore(root)


def put(store, datas: list[bytes]) -> list[bytes]:
    w = store.writer()
    ids = [w.add(NODE, d) for d in datas]
    w.commit()
    return ids


def test_interleaved_cursors_read_what_the_store_reads(tmp_path):
    """Two cursors reading alternately from objects spread over several packs (the two sides
    of a diff), with a pack published by another handle on the way: every answer is the
    store's."""
    s = make_store(tmp_path)
    rnd = random.Random(4)
    objects = {}
    for _ in range(4):
        datas = [rnd.randbytes(rnd.randrange(10, 300)) for _ in range(30)]
        objects.update(zip(put(s, datas), datas, strict=True))
    a, b = read_cursor(s), read_cursor(s)
    assert isinstance(a, ReadCursor) and a is not b
    ids = list(objects)
    rnd.shuffle(ids)
    other = make_store(tmp_path)
    late = [rnd.randbytes(50) for _ in range(5)]
    for i, oid in enumerate(ids):
        cur = a if i % 2 else b
        assert cur.get(oid) == (NODE, objects[oid]) == s.get(oid)
        if i == len(ids) // 2:
            objects.update(zip(put(other, late), late, strict=True))
    for oid, data in objects.items():  # the late pack too: a cursor follows the store's refresh
        assert a.get(oid) == (NODE, data)
        assert a.contains(oid)
    assert a.get_many(ids[:5]) == s.get_many(ids[:5])
    other.close()
    s.close()


def test_cursor_skips_a_pack_the_store_forgot(tmp_path):
    """A pack forgotten (gc moves it away) after a cursor ordered it: the cursor reads the
    object from the copy that is left, without error."""
    s = make_store(tmp_path)
    data = [b"one" * 40, b"two" * 40]
    ids = put(s, data)
    first = s.pack_names()[0]
    put(s, data)  # the same objects, in a second pack
    cur = read_cursor(s)
    assert cur.get(ids[0]) == (NODE, data[0])
    s.forget(first)
    assert [cur.get(i) for i in ids] == [(NODE, d) for d in data]
    s.close()


def test_other_readers_are_their_own_cursor():
    m = MemoryObjectStore()
    assert read_cursor(m) is m
    w = m.writer()
    oid = w.add(NODE, b"x")
    w.commit()
    assert read_cursor(m).get(oid) == (NODE, b"x")
    assert oid == hashlib.sha256(bytes((NODE,)) + b"x").digest()
