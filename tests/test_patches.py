"""Patches: the deltas of objects that changed in place (snapgit/native.py patch_make and
patch_apply, git's delta encoding after a byte 01), how a store writes and reads them among
zstd frames, and the format versions that keep an earlier snapgit from misreading them: packs
of version 2, stores of format 3, remotes of format 2."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard as zstd
from hypothesis import given, settings
from hypothesis import strategies as st

from remotekit import change, make_store
from snapgit import Repo, native
from snapgit.errors import CorruptError, SnapError
from snapgit.objects import ObjType
from snapgit.remote.directory import DirRemote
from snapgit.remote.layout import FORMAT_KEY, FORMAT_TEXT, RemoteRepo
from snapgit.store.objectstore import DiskObjectStore
from snapgit.store.pack import (
    DELTA,
    PACK_VERSION,
    DeltaDecoder,
    DeltaError,
    delta_compress,
    delta_decompress,
    delta_encode,
    entry_frame,
    entry_kind,
    is_patch,
)

NODE = int(ObjType.NODE)
C = native._native  # the extension, where it is built
IMPLS = (C, None) if C is not None else (None,)


@contextlib.contextmanager
def implementation(impl: object) -> Iterator[None]:
    """snapgit.native's functions through the extension ``impl``, or (None) its Python reference."""
    saved = native._native
    native._native = impl
    try:
        yield
    finally:
        native._native = saved


def edited(base: bytes, edits: list[tuple[int, bytes]]) -> bytes:
    """``base`` with bytes overwritten in place (the same length)."""
    out = bytearray(base)
    for at, new in edits:
        at %= max(len(out), 1)
        out[at : at + len(new)] = new[: len(out) - at]
    return bytes(out)


_edits = st.lists(st.tuples(st.integers(0, 1 << 20), st.binary(min_size=1, max_size=70)), max_size=12)


@settings(max_examples=300, deadline=None)
@given(base=st.binary(min_size=1, max_size=3000), edits=_edits, limit=st.integers(1, 1 << 16))
def test_a_patch_gives_the_object_and_both_implementations_write_the_same_bytes(base, edits, limit):
    obj = edited(base, edits)
    patch = native.patch_make(base, obj, limit)
    assert patch is None or (len(patch) <= limit and is_patch(patch))
    if patch is not None:
        assert native.patch_apply(base, [patch]) == obj
    with implementation(None):
        assert native.patch_make(base, obj, limit) == patch  # the reference in Python
        if patch is not None:
            assert native.patch_apply(base, [patch]) == obj


def test_a_patch_of_a_leaf_holds_the_ids_that_changed_and_little_else() -> None:
    """Three 32-byte ids replaced in 12 KB: the patch is those 96 bytes and about 25 of
    instructions (a zstd frame of the same change takes a dozen bytes more, and 20 times as
    long to make)."""
    base = random.Random(1).randbytes(12_000)
    obj = edited(base, [(100, os.urandom(32)), (5_000, os.urandom(32)), (11_000, os.urandom(32))])
    patch = native.patch_make(base, obj, len(obj))
    assert patch is not None and 96 < len(patch) < 130
    assert native.patch_apply(base, [patch]) == obj
    assert len(patch) < len(delta_compress(base, obj))


def test_no_patch_where_the_lengths_differ_or_it_would_be_too_long() -> None:
    base = random.Random(2).randbytes(500)
    assert native.patch_make(base, base + b"x", 10_000) is None
    assert native.patch_make(b"", b"", 10) is None
    assert native.patch_make(base, bytes(500), 100) is None  # every byte changed
    assert delta_encode(base, base + b"x")[:4] == b"\x28\xb5\x2f\xfd"  # zstd frames then


def test_a_patch_that_claims_a_huge_object_is_damage_found_before_allocating() -> None:
    """A header claiming more bytes than its instructions could give (each gives at most the
    base's length, or 127): DeltaError, in C and in Python, not a MemoryError."""
    base = bytes(100)
    huge = bytes((native.PATCH_MARK,)) + bytes([100]) + b"\xff\xff\xff\xff\xff\xff\x7f" + b"\x80"
    for impl in IMPLS:
        with implementation(impl), pytest.raises(DeltaError):
            delta_decompress(base, huge)


def test_copies_longer_than_the_size_field_are_split() -> None:
    """A copy's size has three bytes: a longer stretch is copied in several instructions."""
    base = bytes(range(256)) * (0x1000000 // 256 + 300)
    obj = edited(base, [(len(base) - 5, b"\xff\xfe")])
    for impl in IMPLS:
        with implementation(impl):
            patch = native.patch_make(base, obj, 100)
            assert patch is not None and native.patch_apply(base, [patch]) == obj


def _damaged(patch: bytes, how: int, where: int) -> bytes:
    if how == 0:
        return patch[: where % len(patch)]  # cut short
    if how == 1:
        at = where % len(patch)
        return patch[:at] + bytes([patch[at] ^ (1 + where % 255)]) + patch[at + 1 :]
    return patch + bytes([where % 256])  # something after the end


@settings(max_examples=300, deadline=None)
@given(base=st.binary(min_size=1, max_size=600), edits=_edits, how=st.integers(0, 2), where=st.integers(0, 10_000))
def test_a_damaged_patch_raises_or_gives_other_bytes_never_anything_else(base, edits, how, where):
    """Any damage: DeltaError (a ValueError from the native functions; or zstd's error, where
    the damage took the marker byte, so the payload reads as a zstd frame), or bytes, which the
    reader's SHA-256 of the end of the chain then refuses; never a crash or another error, and
    the two implementations agree."""
    obj = edited(base, edits)
    patch = native.patch_make(base, obj, 1 << 20)
    if patch is None:
        return
    bad = _damaged(patch, how, where)
    answers = []
    for impl in IMPLS:
        with implementation(impl):
            try:
                answers.append(delta_decompress(base, bad))
            except (DeltaError, zstd.ZstdError):
                answers.append(None)
    assert len(set(answers)) == 1
    if how == 2 or (how == 0 and where % len(patch) > 0):
        assert answers[0] is None  # a trailing byte, or a patch cut short, never fits exactly


@settings(max_examples=80, deadline=None)
@given(
    root=st.binary(min_size=40, max_size=2000),
    steps=st.lists(st.tuples(st.booleans(), _edits), min_size=1, max_size=10),
)
def test_chains_of_patches_and_zstd_frames_read_to_their_end(root, steps):
    """A chain whose links are patches (an object changed in place) or zstd frames (grown or
    shrunk) reads to its last version, link by link or in one call."""
    versions, frames = [root], []
    for grow, edits in steps:
        prev = versions[-1]
        nxt = prev + bytes(len(edits) + 1) if grow else edited(prev, edits)
        frame = delta_encode(prev, nxt) if not grow else delta_compress(prev, nxt)
        assert is_patch(frame) == (not grow and native.patch_make(prev, nxt, len(nxt) // 2) is not None)
        versions.append(nxt)
        frames.append(frame)
    dec = DeltaDecoder()
    assert dec.decompress_chain(root, frames) == versions[-1]
    for k, frame in enumerate(frames):
        base_id = hashlib.sha256(versions[k]).digest()
        assert dec.decompress(base_id, versions[k], frame) == versions[k + 1] == delta_decompress(versions[k], frame)


def _leaves(store: DiskObjectStore) -> list[tuple[bytes, bytes]]:
    """(kind byte, payload) of every delta entry of every pack of the store."""
    out = []
    for name in store.pack_names():
        rd = store.pack_reader(name)
        for _, entry in rd.iter_entries():
            if entry_kind(entry) == DELTA:
                out.append((bytes(entry[:1]), bytes(entry_frame(entry))))
    return out


def test_a_commit_after_rows_changed_in_place_stores_patches_in_packs_of_version_2(tmp_path: Path) -> None:
    repo = make_store(tmp_path / "a", rows=3000)
    db = tmp_path / "a" / "db.sqlite"
    try:
        for v in range(3):
            change(db, "UPDATE items SET price = price + 1 WHERE id % 97 = ?", v)
            repo.commit(f"v{v}")
        deltas = _leaves(repo.objects)
        assert deltas and all(is_patch(p) for _, p in deltas)
        for name in repo.objects.pack_names():
            path = tmp_path / "a" / ".snapstore" / "objects" / "pack" / f"pack-{name}.pack"
            assert struct.unpack(">I", path.read_bytes()[8:12])[0] == PACK_VERSION == 2
        assert repo.verify(read_data=True).ok
    finally:
        repo.close()
    # a store opened afresh, and one reading through the Python reference, read the same trees
    with Repo.open(tmp_path / "a") as again:
        n = sum(d.stat().total for d in again.diff("HEAD~3", "HEAD"))
    with implementation(None), Repo.open(tmp_path / "a") as slow:
        assert sum(d.stat().total for d in slow.diff("HEAD~3", "HEAD")) == n > 0


def _store(root: Path) -> DiskObjectStore:
    (root / "objects" / "pack").mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)
    return DiskObjectStore(root)


@pytest.mark.parametrize("walk", ["c", "python"])
def test_a_damaged_patch_in_a_pack_is_reported_not_misread(tmp_path: Path, walk: str) -> None:
    """A delta entry whose patch copies from past its base (its block's CRC right: written so):
    reading the object is a CorruptError, walked in C or in Python; the object written with a
    good patch beside it reads."""
    base = random.Random(3).randbytes(3000)
    obj = edited(base, [(1000, b"new bytes")])
    full_base, full_obj = bytes((NODE,)) + base, bytes((NODE,)) + obj
    good = native.patch_make(full_base, full_obj, 1000)
    assert good is not None
    bad = good[:-2] + bytes([0xFF, 0xFF])  # the last copy's size: far past the base
    s = _store(tmp_path)
    w = s.writer()
    bid = w.add(NODE, base)
    w.commit()
    oid = hashlib.sha256(full_obj).digest()
    other = edited(obj, [(5, b"x")])
    other_id = hashlib.sha256(bytes((NODE,)) + other).digest()
    w = s.writer()
    w.add_raw(oid, bytes((DELTA, NODE, 1)) + bid + bad)
    w.add_raw(other_id, bytes((DELTA, NODE, 1)) + bid + native.patch_make(full_base, bytes((NODE,)) + other, 1000))
    w.commit()
    s.close()
    fresh = DiskObjectStore(tmp_path)
    if walk == "python":
        fresh._walk_c = False  # the walk in Python, as without the extension
    try:
        assert fresh.get(other_id) == (NODE, other)
        with pytest.raises(CorruptError):
            fresh.get(oid)
    finally:
        fresh.close()


def test_a_remote_of_format_1_is_read_and_marked_as_format_2_by_a_push(tmp_path: Path) -> None:
    repo = make_store(tmp_path / "a")
    try:
        remote_dir = tmp_path / "remote"
        repo.remote_add("origin", str(remote_dir))
        repo.push("origin")
        (remote_dir / FORMAT_KEY).write_bytes(b"snapgit remote 1\n")  # as an earlier snapgit left it
        assert RemoteRepo(DirRemote(remote_dir, "origin")).exists()
        repo.fetch("origin")  # read as it is
        assert (remote_dir / FORMAT_KEY).read_bytes() == b"snapgit remote 1\n"
        change(tmp_path / "a" / "db.sqlite", "UPDATE items SET price = price + 1 WHERE id = 7")
        repo.commit("v1")
        repo.push("origin")
        assert (remote_dir / FORMAT_KEY).read_bytes() == FORMAT_TEXT == b"snapgit remote 2\n"
        (remote_dir / FORMAT_KEY).write_bytes(b"snapgit remote 3\n")
        with pytest.raises(
            SnapError, match="format 'snapgit remote 3'; this snapgit reads 'snapgit remote 1' and 'snapgit remote 2'"
        ):
            repo.fetch("origin")
    finally:
        repo.close()
