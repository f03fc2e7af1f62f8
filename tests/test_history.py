"""Revisions: names, prefixes (unique or ambiguous), ~N and ^N; merge bases."""

from __future__ import annotations

import pytest

from snapgit.objects import Commit, ObjType, object_id
from snapgit.store.history import AmbiguousRevisionError, UnknownRevisionError, merge_base, resolve
from snapgit.store.objectstore import MemoryObjectStore
from snapgit.store.refs import MemoryRefs

TREE = b"\x00" * 32


def add_commit(store: MemoryObjectStore, parents: list[bytes], message: str, t: int) -> bytes:
    data = Commit(TREE, parents, "tester", t, 0, message, {}).encode()
    oid = object_id(ObjType.COMMIT, data)
    with store.writer() as w:
        w.add(ObjType.COMMIT, data, oid)
    return oid


@pytest.fixture
def chain():
    store, refs = MemoryObjectStore(), MemoryRefs()
    ids = []
    for i in range(5):
        ids.append(add_commit(store, ids[-1:], f"c{i}", i))
    refs.set_if_equals("refs/heads/main", None, ids[-1].hex(), who="t", message="m")
    refs.set_symbolic("HEAD", "refs/heads/main")
    side = add_commit(store, [ids[1]], "side", 10)
    refs.set_if_equals("refs/heads/side", None, side.hex(), who="t", message="m")
    merge = add_commit(store, [ids[-1], side], "merge", 11)
    refs.set_if_equals("refs/tags/m", None, merge.hex(), who="t", message="m")
    return store, refs, ids, side, merge


def test_names_and_suffixes(chain):
    store, refs, ids, side, merge = chain
    assert resolve(store, refs, "HEAD") == ids[-1]
    assert resolve(store, refs, "@~2") == ids[2]
    assert resolve(store, refs, "main~4") == ids[0]
    assert resolve(store, refs, "refs/heads/side") == side
    assert resolve(store, refs, "m^2") == side
    assert resolve(store, refs, "m^") == ids[-1]
    assert resolve(store, refs, "m^2~1") == ids[1]
    assert resolve(store, refs, ids[3].hex()[:10]) == ids[3]
    with pytest.raises(UnknownRevisionError, match="past the first commit"):
        resolve(store, refs, "HEAD~9")
    with pytest.raises(UnknownRevisionError, match="unknown revision"):
        resolve(store, refs, "nosuch")
    with pytest.raises(UnknownRevisionError):
        resolve(store, refs, "../../config")


def test_ambiguous_prefix():
    store, refs = MemoryObjectStore(), MemoryRefs()
    seen: dict[str, bytes] = {}
    for i in range(5000):  # a 16-bit prefix repeats after a few hundred commits
        oid = add_commit(store, [], f"commit {i}", i)
        prefix = oid.hex()[:4]
        if prefix in seen:
            with pytest.raises(AmbiguousRevisionError, match="ambiguous"):
                resolve(store, refs, prefix)
            assert resolve(store, refs, oid.hex()[:20]) == oid
            return
        seen[prefix] = oid
    pytest.fail("no two commits shared a 4-digit prefix")


def test_merge_base(chain):
    store, refs, ids, side, merge = chain
    assert merge_base(store, ids[-1], side) == ids[1]
    assert merge_base(store, merge, side) == side
    assert merge_base(store, ids[2], ids[4]) == ids[2]
    other = add_commit(store, [], "unrelated", 99)
    assert merge_base(store, other, ids[4]) is None
