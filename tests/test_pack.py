"""Pack files and their indexes (snapgit/pack.py, snapgit/packindex.py), byte for byte."""

from __future__ import annotations

import hashlib
import os
import random
import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapgit.errors import CorruptError
from snapgit.store import pack as pack_mod
from snapgit.store.pack import (
    DELTA,
    FULL,
    PACK_MAGIC,
    DeltaDecoder,
    PackReader,
    PackWriter,
    delta_compress,
    delta_decompress,
    delta_entry,
    entry_base,
    entry_depth,
    entry_frame,
    entry_full,
    entry_kind,
    entry_type,
    full_entry,
)
from snapgit.store.packindex import IDX_MAGIC, IndexReader, build_index, build_index_joined

PROPS = settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])

IDX_HEADER = 16
IDX_FANOUT = 256 * 4
IDX_TRAILER = 64


def write_pack(directory: Path, entries: list[bytes], ids: list[bytes] | None = None, *, run: bool = False) -> Path:
    """A sealed pack of these entries, named by its checksum as the store names it."""
    if ids is None:
        ids = [hashlib.sha256(e).digest() for e in entries]
    tmp = directory / f"pack-{os.urandom(4).hex()}.tmp"
    w = PackWriter(tmp)
    if run:
        # add_run takes the shared prefix apart from the rest of each entry
        assert all(e[:2] == entries[0][:2] for e in entries)
        w.add_run(entries[0][:2], ids, [e[2:] for e in entries])
    else:
        for oid, e in zip(ids, entries, strict=False):
            w.add(oid, e)
    assert w.count == len(entries)
    name = w.finish()
    assert w.ids == ids
    assert bytes(w.id_bytes) == b"".join(ids)
    final = directory / f"pack-{name}.pack"
    os.replace(tmp, final)
    return final


def flip(path: Path, offset: int, mask: int = 0x01) -> None:
    os.chmod(path, 0o600)
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes((b[0] ^ mask,)))


entry_lists = st.lists(st.binary(min_size=1, max_size=300), max_size=80)


# --- packs ------------------------------------------------------------------------------------


@PROPS
@given(entries=entry_lists, block_target=st.sampled_from([1, 64, 500, 64 * 1024]))
def test_pack_round_trip(entries, block_target):
    with tempfile.TemporaryDirectory() as d, pytest.MonkeyPatch.context() as mp:
        mp.setattr(pack_mod, "BLOCK_TARGET", block_target)
        path = write_pack(Path(d), entries)
        rd = PackReader(path)
        try:
            assert rd.count == len(entries)
            assert [rd.entry(i) for i in range(len(entries))] == entries
            assert list(rd.iter_entries()) == list(enumerate(entries))
            # random access in any order (the block cache is not an order assumption)
            order = list(range(len(entries)))
            random.Random(len(entries)).shuffle(order)
            assert [rd.entry(i) for i in order] == [entries[i] for i in order]
            assert rd.checksum_ok()
        finally:
            rd.close()


@PROPS
@given(
    datas=st.lists(st.binary(max_size=200), min_size=1, max_size=120),
    block_target=st.sampled_from([1, 50, 700, 64 * 1024]),
    split=st.integers(0, 120),
)
def test_pack_round_trip_with_runs(datas, block_target, split):
    """add_run (the record fast path) writes the same entries as one add per entry."""
    prefix = bytes((FULL, 1))
    entries = [prefix + d for d in datas]
    ids = [hashlib.sha256(e).digest() for e in entries]
    with tempfile.TemporaryDirectory() as d, pytest.MonkeyPatch.context() as mp:
        mp.setattr(pack_mod, "BLOCK_TARGET", block_target)
        tmp = Path(d) / "run.tmp"
        w = PackWriter(tmp)
        split = max(1, min(split, len(datas)))
        w.add(ids[0], entries[0])
        w.add_run(prefix, ids[1:split], datas[1:split])
        w.add_run(prefix, ids[split:], datas[split:])
        name = w.finish()
        path = Path(d) / f"pack-{name}.pack"
        os.replace(tmp, path)
        single = write_pack(Path(d), entries, ids)
        rd = PackReader(path)
        try:
            assert list(rd.iter_entries()) == list(enumerate(entries))
            assert [rd.entry(i) for i in range(len(entries))] == entries
            assert rd.checksum_ok()
        finally:
            rd.close()
        # the pack is a function of its entries and block boundaries: the same target gives the
        # same blocks whichever way the entries were added
        assert single.name == path.name


@PROPS
@given(
    entries=st.lists(st.tuples(st.integers(0, 1), st.binary(min_size=1, max_size=300)), max_size=80),
    block_target=st.sampled_from([1, 64, 500, 64 * 1024]),
)
def test_lanes_keep_their_entries_apart(entries, block_target):
    """Entries added to two lanes come back whole under the ordinals the ids list gives them;
    every block holds one lane's entries, in the order they were added."""
    with tempfile.TemporaryDirectory() as d, pytest.MonkeyPatch.context() as mp:
        mp.setattr(pack_mod, "BLOCK_TARGET", block_target)
        tmp = Path(d) / "lanes.tmp"
        w = PackWriter(tmp)
        datas = [bytes((FULL, lane)) + data for lane, data in entries]
        ids = [hashlib.sha256(bytes((n % 256, n // 256)) + e).digest() for n, e in enumerate(datas)]
        for (lane, _), oid, e in zip(entries, ids, datas, strict=False):
            w.add(oid, e, lane)
        assert w.count == len(entries)
        name = w.finish()
        path = Path(d) / f"pack-{name}.pack"
        os.replace(tmp, path)
        rd = PackReader(path)
        try:
            by_id = dict(zip(ids, datas, strict=False))
            assert sorted(w.ids) == sorted(ids)
            assert [rd.entry(i) for i in range(rd.count)] == [by_id[oid] for oid in w.ids]
            for _off, _clen, _rlen, first, n, _crc in rd._blocks:
                assert len({rd.entry(i)[1] for i in range(first, first + n)}) == 1
            for lane in (0, 1):
                assert [e for e in map(rd.entry, range(rd.count)) if e[1] == lane] == [e for e in datas if e[1] == lane]
            assert rd.checksum_ok()
        finally:
            rd.close()


def test_pack_with_many_blocks(tmp_path):
    rnd = random.Random(7)
    entries = [bytes((FULL, 2)) + rnd.randbytes(rnd.randrange(10, 3000)) for _ in range(400)]
    path = write_pack(tmp_path, entries)
    rd = PackReader(path)
    assert len(rd._blocks) > 3  # ~600 KB of entries in 64 KiB blocks
    assert [rd.entry(i) for i in range(len(entries))] == entries
    assert rd.checksum_ok()
    rd.close()


def test_empty_pack(tmp_path):
    path = write_pack(tmp_path, [])
    rd = PackReader(path)
    assert rd.count == 0
    assert list(rd.iter_entries()) == []
    assert rd.checksum_ok()
    with pytest.raises(CorruptError):
        rd.entry(0)
    rd.close()


def test_pack_layout(tmp_path):
    entries = [bytes((FULL, 1)) + b"x" * 10, bytes((DELTA, 2, 1)) + b"\x07" * 32 + b"frame"]
    path = write_pack(tmp_path, entries)
    data = path.read_bytes()
    assert data[:8] == PACK_MAGIC
    assert data[-32:] == hashlib.sha256(data[:-32]).digest()
    assert path.name == f"pack-{data[-32:].hex()}.pack"
    assert data[-32 - 8 : -32] == b"SNAPPEND"


def test_entry_layout():
    """The entry functions make and read exactly the bytes the module docstring lays out."""
    base = b"\x07" * 32
    whole = full_entry(1, b"data")
    assert whole == b"\x00\x01data"
    assert full_entry(3) == b"\x00\x03"  # the prefix of a run of whole objects of type 3
    assert (entry_kind(whole), entry_type(whole), entry_full(whole)) == (FULL, 1, b"\x01data")
    delta = delta_entry(2, 4, base, b"frame")
    assert delta == bytes((DELTA, 2, 4)) + base + b"frame"
    assert (entry_kind(delta), entry_type(delta), entry_depth(delta)) == (DELTA, 2, 4)
    assert entry_base(delta) == base and type(entry_base(memoryview(delta))) is bytes
    assert entry_frame(delta) == b"frame"
    old, new = b"\x02" + b"abc" * 500, b"\x02" + b"abc" * 499 + b"abd"
    frame = delta_compress(old, new)
    assert len(frame) < 100
    assert delta_decompress(old, frame) == new


def test_full_or_none_reads_whole_objects_only(tmp_path):
    entries = [full_entry(1, b"x" * 10), delta_entry(2, 1, b"\x07" * 32, b"frame"), full_entry(5)]
    rd = PackReader(write_pack(tmp_path, entries))
    assert [rd.full_or_none(i) for i in range(3)] == [b"\x01" + b"x" * 10, None, b"\x05"]
    for bad in (-1, 3):
        with pytest.raises(CorruptError):
            rd.full_or_none(bad)
    rd.close()


def test_ordinal_out_of_range(tmp_path):
    rd = PackReader(write_pack(tmp_path, [b"\x00\x01a", b"\x00\x01b"]))
    for bad in (-1, 2, 1000):
        with pytest.raises(CorruptError):
            rd.entry(bad)
    rd.close()


def test_checksum_detects_a_flip_anywhere(tmp_path):
    rnd = random.Random(3)
    entries = [bytes((FULL, 1)) + rnd.randbytes(200) for _ in range(30)]
    path = write_pack(tmp_path, entries)
    rd = PackReader(path)
    assert rd.checksum_ok()
    rd.close()
    size = path.stat().st_size
    # block bytes, and the stored checksum itself (reads do not look at it; checksum_ok does)
    for offset in (20, size // 2, size - 32, size - 1):
        flip(path, offset)
        rd = PackReader(path)
        assert not rd.checksum_ok()
        rd.close()
        flip(path, offset)  # back
    rd = PackReader(path)
    assert rd.checksum_ok()
    rd.close()


def test_checksum_fails_when_the_name_is_not_the_hash(tmp_path):
    path = write_pack(tmp_path, [b"\x00\x01a"])
    other = path.with_name("pack-" + "0" * 64 + ".pack")
    path.rename(other)
    rd = PackReader(other)
    assert not rd.checksum_ok()
    rd.close()


def test_flipped_byte_in_a_block_is_corrupt_not_wrong(tmp_path):
    rnd = random.Random(5)
    entries = [bytes((FULL, 1)) + rnd.randbytes(100) for _ in range(50)]
    path = write_pack(tmp_path, entries)
    rd = PackReader(path)
    off, clen = rd._blocks[0][0], rd._blocks[0][1]
    rd.close()
    for offset in range(off, off + clen, max(1, clen // 25)):
        flip(path, offset)
        rd = PackReader(path)
        with pytest.raises(CorruptError):
            rd.entry(0)
        with pytest.raises(CorruptError):
            list(rd.iter_entries())
        rd.close()
        flip(path, offset)


@pytest.mark.parametrize("keep", [0, 10, 16, 60, -1, -33, -60])
def test_truncated_pack_is_corrupt(tmp_path, keep):
    path = write_pack(tmp_path, [bytes((FULL, 1)) + bytes(50) for _ in range(20)])
    data = path.read_bytes()
    os.chmod(path, 0o600)
    path.write_bytes(data[:keep] if keep >= 0 else data[:keep])
    with pytest.raises(CorruptError):
        rd = PackReader(path)
        rd.entry(0)


def test_pack_of_another_format_is_corrupt(tmp_path):
    path = write_pack(tmp_path, [b"\x00\x01a"])
    flip(path, 11)  # version
    with pytest.raises(CorruptError, match="version"):
        PackReader(path)
    flip(path, 0)  # magic
    with pytest.raises(CorruptError):
        PackReader(path)


def test_abort_removes_the_file(tmp_path):
    tmp = tmp_path / "x.tmp"
    w = PackWriter(tmp)
    w.add(b"\x01" * 32, b"\x00\x01abc")
    w.abort()
    assert not tmp.exists()


# --- indexes ----------------------------------------------------------------------------------


def write_idx(directory: Path, ids: list[bytes], pack_name: str | None = None) -> Path:
    pack_name = pack_name or hashlib.sha256(b"".join(ids)).hexdigest()
    path = directory / f"pack-{pack_name}.idx"
    path.write_bytes(build_index(pack_name, ids))
    return path


id_lists = st.lists(st.binary(min_size=32, max_size=32), unique=True, max_size=300)


@PROPS
@given(ids=id_lists, extra=st.lists(st.binary(min_size=32, max_size=32), max_size=50))
def test_index_finds_every_id_and_almost_nothing_else(ids, extra):
    with tempfile.TemporaryDirectory() as d:
        path = write_idx(Path(d), ids)
        idx = IndexReader(path)
        try:
            assert idx.count == len(ids)
            for ordinal, oid in enumerate(ids):
                assert ordinal in idx.candidates(oid)  # no false negatives
                assert ordinal in idx.prefix_range(oid.hex()[:16])
                assert ordinal in idx.prefix_range(oid.hex()[:3])
            # a candidate is an object with the same 8-byte prefix; for ids drawn independently
            # that is (with 2**-64 odds) only the id itself
            prefixes = {oid[:8] for oid in ids}
            for oid in extra:
                got = idx.candidates(oid)
                assert [ids[o][:8] for o in got] == [oid[:8]] * len(got)
                if oid[:8] not in prefixes:
                    assert got == []
            assert list(idx.fanout) == sorted(idx.fanout)  # monotonic
            assert idx.fanout[255] == len(ids)
            for b in range(256):
                assert idx.fanout[b] == sum(1 for oid in ids if oid[0] <= b)
            assert path.stat().st_size == IDX_HEADER + IDX_FANOUT + 12 * len(ids) + IDX_TRAILER
            assert idx.checksum_ok()
            assert [p for p, _ in idx.iter_sorted()] == sorted(int.from_bytes(i[:8], "big") for i in ids)
        finally:
            idx.close()


def _index_entries(data: bytes) -> tuple[list[int], list[int], list[int]]:
    """(fanout, prefixes, ordinals) read from an index's bytes as docs/format.md lays them out."""
    n = int.from_bytes(data[12:16], "big")
    fanout = list(struct.unpack_from(">256I", data, 16))
    p0 = 16 + 1024
    prefixes = list(struct.unpack_from(f"<{n}Q", data, p0))
    ordinals = list(struct.unpack_from(f"<{n}I", data, p0 + 8 * n))
    return fanout, prefixes, ordinals


# Prefixes close to each other far from zero round to the same float (the index sorts by
# floats first): the order must still be that of the exact prefixes, ties by ordinal.
_crowded = st.builds(
    lambda base, delta, tail: ((base << 40) + delta).to_bytes(8, "big") + tail,
    st.sampled_from([0, 1, 0xFFFFFF, 0xABCDEF]),
    st.integers(0, 5000),
    st.binary(min_size=24, max_size=24),
)


@PROPS
@given(ids=st.lists(st.one_of(_crowded, st.binary(min_size=32, max_size=32)), max_size=400))
def test_index_entries_are_in_prefix_then_ordinal_order(ids):
    fanout, prefixes, ordinals = _index_entries(build_index("ab" * 32, ids))
    expect = sorted(range(len(ids)), key=lambda i: (ids[i][:8], i))
    assert ordinals == expect
    assert prefixes == [int.from_bytes(ids[i][:8], "big") for i in expect]
    assert fanout == [sum(1 for oid in ids if oid[0] <= b) for b in range(256)]


@PROPS
@given(ids=st.lists(st.binary(min_size=32, max_size=32), max_size=200))
def test_index_of_joined_ids_is_the_index_of_the_ids(ids):
    assert build_index_joined("cd" * 32, bytearray(b"".join(ids))) == build_index("cd" * 32, ids)


def test_ids_must_be_whole_ids():
    with pytest.raises(ValueError):
        build_index_joined("cd" * 32, b"\x01" * 33)
    with pytest.raises(ValueError):  # 31 + 33 bytes would join into two "ids"
        build_index("cd" * 32, [b"\x01" * 31, b"\x02" * 33])


def test_pack_writer_takes_only_32_byte_ids(tmp_path):
    w = PackWriter(tmp_path / "x.tmp")
    try:
        with pytest.raises(ValueError):
            w.add(b"\x01" * 31, b"\x00\x01abc")
        with pytest.raises(ValueError):
            w.add_run(b"\x00\x01", [b"\x01" * 32, b"\x02" * 33], [b"a", b"b"])
        assert w.count == 0  # nothing of either was added
    finally:
        w.abort()


# ids whose first 8 bytes come from a tiny alphabet: many share their first 4 bytes (the
# in-memory part of a look-up) and differ only in bytes 5-8 (the mapped part), or share all 8
near_ids = st.builds(
    lambda head, tail: bytes(head) + tail,
    st.lists(st.sampled_from([0, 1, 255]), min_size=8, max_size=8),
    st.binary(min_size=24, max_size=24),
)


@PROPS
@given(ids=st.lists(near_ids, unique=True, max_size=120), probes=st.lists(near_ids, max_size=60))
def test_candidates_are_the_ids_sharing_8_bytes(ids, probes):
    with tempfile.TemporaryDirectory() as d:
        idx = IndexReader(write_idx(Path(d), ids))
        try:
            for oid in ids + probes:
                assert sorted(idx.candidates(oid)) == [n for n, i in enumerate(ids) if i[:8] == oid[:8]]
        finally:
            idx.close()


def test_random_ids_are_mostly_absent(tmp_path):
    rnd = random.Random(11)
    ids = [rnd.randbytes(32) for _ in range(5000)]
    idx = IndexReader(write_idx(tmp_path, ids))
    misses = sum(1 for _ in range(5000) if not idx.candidates(rnd.randbytes(32)))
    assert misses == 5000
    assert all(idx.candidates(oid) == [n] for n, oid in enumerate(ids))
    idx.close()


def test_shared_prefixes_give_every_candidate(tmp_path):
    base = bytes(8)
    ids = [base + bytes([i]) * 24 for i in range(5)] + [b"\xff" * 32, b"\xff" * 8 + b"\x00" * 24]
    idx = IndexReader(write_idx(tmp_path, ids))
    assert sorted(idx.candidates(base + b"\x09" * 24)) == [0, 1, 2, 3, 4]
    assert sorted(idx.candidates(b"\xff" * 32)) == [5, 6]
    assert idx.candidates(b"\x00" * 7 + b"\x01" + bytes(24)) == []
    assert sorted(idx.prefix_range("00")) == [0, 1, 2, 3, 4]
    assert sorted(idx.prefix_range("f")) == [5, 6]
    assert idx.prefix_range("1") == []
    idx.close()


def test_index_layout_and_name(tmp_path):
    ids = [hashlib.sha256(bytes([i])).digest() for i in range(10)]
    name = "ab" * 32
    path = write_idx(tmp_path, ids, name)
    data = path.read_bytes()
    assert data[:8] == IDX_MAGIC
    assert len(data) == IDX_HEADER + IDX_FANOUT + 12 * 10 + IDX_TRAILER
    assert data[-32:] == hashlib.sha256(data[:-32]).digest()
    idx = IndexReader(path)
    assert idx.pack_name == name
    assert idx.checksum_ok()
    idx.close()


def test_empty_index(tmp_path):
    idx = IndexReader(write_idx(tmp_path, []))
    assert idx.count == 0
    assert idx.candidates(bytes(32)) == []
    assert idx.prefix_range("") == []
    idx.close()


@pytest.mark.parametrize("cut", [1, 12, 64, 500])
def test_truncated_index_is_corrupt(tmp_path, cut):
    ids = [hashlib.sha256(bytes([i])).digest() for i in range(40)]
    path = write_idx(tmp_path, ids)
    path.write_bytes(path.read_bytes()[:-cut])
    with pytest.raises(CorruptError):
        IndexReader(path)


def test_index_of_another_format_is_corrupt(tmp_path):
    path = write_idx(tmp_path, [bytes(32)])
    flip(path, 11)
    with pytest.raises(CorruptError, match="version"):
        IndexReader(path)


def test_index_checksum_detects_a_flip(tmp_path):
    ids = [hashlib.sha256(bytes([i])).digest() for i in range(40)]
    path = write_idx(tmp_path, ids)
    flip(path, IDX_HEADER + IDX_FANOUT + 5)
    idx = IndexReader(path)
    assert not idx.checksum_ok()
    idx.close()


def test_index_of_a_pack_maps_ids_to_its_entries(tmp_path):
    rnd = random.Random(1)
    entries = [bytes((FULL, 1)) + rnd.randbytes(rnd.randrange(1, 500)) for _ in range(300)]
    ids = [hashlib.sha256(e[1:]).digest() for e in entries]
    path = write_pack(tmp_path, entries, ids)
    rd = PackReader(path)
    idx = IndexReader(write_idx(tmp_path, ids, rd.name))
    assert idx.pack_name == rd.name
    for oid, e in zip(ids, entries, strict=False):
        (o,) = idx.candidates(oid)
        assert rd.entry(o) == e
    # the entries as the index holds them, in prefix order
    pairs = sorted((int.from_bytes(oid[:8], "big"), o) for o, oid in enumerate(ids))
    assert list(idx.prefixes) == [p for p, _o in pairs]
    assert list(idx.ordinals) == [o for _p, o in pairs]
    assert list(idx.iter_sorted()) == pairs
    rd.close()
    idx.close()


@given(
    sizes=st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=30),
    budget=st.integers(min_value=0, max_value=600),
)
def test_block_cache_resized_keeps_the_newest_within_budget(sizes, budget):
    cache = pack_mod.BlockCache(budget=10_000)
    for i, size in enumerate(sizes):
        cache.put(("p", i), (memoryview(b""), [i]), size)
    cache.resize(budget)
    kept = [i for i in range(len(sizes)) if cache.get(("p", i)) is not None]
    assert sum(sizes[i] for i in kept) <= budget
    # the least recently used go first: what is kept is a run of the newest
    assert kept == list(range(len(sizes) - len(kept), len(sizes)))
    first = len(sizes) - len(kept)
    assert first == 0 or sum(sizes[first - 1 :]) > budget  # and no more went than had to


@given(
    sizes=st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=30),
    budget=st.integers(min_value=0, max_value=300),
)
def test_block_cache_put_keeps_the_newest_within_budget(sizes, budget):
    cache = pack_mod.BlockCache(budget=budget)
    for i, size in enumerate(sizes):
        cache.put(("p", i), (memoryview(b""), [i]), size)
        kept = [j for j in range(i + 1) if cache._items.get(("p", j)) is not None]
        assert kept[-1] == i  # the block just put is kept, even alone over the budget
        assert kept == list(range(i + 1 - len(kept), i + 1))  # a run of the newest
        assert len(kept) == 1 or sum(sizes[j] for j in kept) <= budget
        first = kept[0]
        assert first == 0 or sum(sizes[first - 1 : i + 1]) > budget  # no more went than had to


@settings(max_examples=60, deadline=None)
@given(
    size=st.one_of(st.integers(0, 64), st.integers(65, 40_000), st.sampled_from([300_000, 1_500_000])),
    edits=st.lists(st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=40)), max_size=5),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_delta_is_a_zstd_frame_any_reader_resolves_and_costs_the_change(size, edits, seed):
    """delta_compress against bases of every size (a ZstdDict needs 8 bytes, a prefix is found
    only within the window and through the hash table): a frame of the kind the format names
    (content size, no checksum, no dictionary id), that python-zstandard resolves against the
    base as a raw-content dictionary by each reader's road, and that costs the change, not the
    base (the window and hash table hold all of a base of 1.5 MB)."""
    import zstandard

    base = b"\x02" + random.Random(seed).randbytes(size)
    new = bytearray(base)
    for where, data in edits:
        at = 1 + int(where * size)
        new[at : at + len(data)] = data
    full = bytes(new)
    frame = delta_compress(base, full)
    params = zstandard.get_frame_parameters(frame)
    assert (params.content_size, params.has_checksum, params.dict_id) == (len(full), False, 0)
    assert delta_decompress(base, frame) == full
    bid = hashlib.sha256(base).digest()
    decoder = DeltaDecoder()
    assert decoder.decompress(bid, base, frame) == full  # a base read the first time
    assert decoder.decompress(bid, base, frame) == full  # again: its own decompressor
    assert decoder.decompress_chain(base, [frame]) == full
    # a frame's block holds at most 128 KB: a few bytes of headers and a sequence each
    assert len(frame) <= 64 + 16 * (len(full) >> 17) + 2 * sum(len(d) + 8 for _, d in edits)
