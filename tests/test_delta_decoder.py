"""The decoder of delta entries (snapgit/store/pack.py DeltaDecoder) and the disk store that
uses it: a kept decompressor gives the bytes a fresh one gives, the cache stays bounded, and
damage is still found with a decompressor kept for the base."""

from __future__ import annotations

import hashlib
import random

import pytest
import zstandard as zstd
from hypothesis import given, settings
from hypothesis import strategies as st

from snapgit.errors import CorruptError
from snapgit.objects import ObjType
from snapgit.store import pack as pack_mod
from snapgit.store.objectstore import DiskObjectStore
from snapgit.store.pack import DeltaDecoder, PackReader, delta_compress, delta_decompress

NODE = int(ObjType.NODE)


def oid_of(otype: int, data: bytes) -> bytes:
    return hashlib.sha256(bytes((otype,)) + data).digest()


def edit(data: bytes, seed: int, n: int = 3) -> bytes:
    rnd = random.Random(seed)
    out = bytearray(data)
    for _ in range(n):
        out[rnd.randrange(len(out))] ^= 0xFF
    return bytes(out)


@settings(max_examples=60, deadline=None)
@given(
    bases=st.lists(st.binary(min_size=1, max_size=600), min_size=1, max_size=5),
    reads=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 1000)), min_size=1, max_size=30),
    size=st.integers(1, 3),
)
def test_decoder_gives_what_a_fresh_decompressor_gives(bases, reads, size):
    """Any order of reads against a few bases, with a cache smaller than their number (so
    entries are evicted and made again): every answer is the edited object itself."""
    dec = DeltaDecoder(size)
    ids = [hashlib.sha256(b).digest() for b in bases]
    for which, seed in reads:
        i = which % len(bases)
        full = edit(bases[i], seed, 1) + bytes([seed % 256])
        frame = delta_compress(bases[i], full)
        assert dec.decompress(ids[i], bases[i], frame) == full == delta_decompress(bases[i], frame)
        assert len(dec) <= size


def test_decoder_evicts_the_least_recently_used_base():
    bases = [random.Random(k).randbytes(500) for k in range(3)]
    ids = [hashlib.sha256(b).digest() for b in bases]
    frames = [delta_compress(b, edit(b, 1)) for b in bases]
    dec = DeltaDecoder(2)
    dec.decompress(ids[0], bases[0], frames[0])
    dec.decompress(ids[1], bases[1], frames[1])
    dec.decompress(ids[0], bases[0], frames[0])  # base 0 used last: base 1 goes first
    dec.decompress(ids[2], bases[2], frames[2])
    assert len(dec) == 2
    assert ids[0] in dec and ids[2] in dec and ids[1] not in dec
    # an evicted base is made again, with the right answer
    assert dec.decompress(ids[1], bases[1], frames[1]) == edit(bases[1], 1)
    dec.clear()
    assert len(dec) == 0


def test_decoder_with_a_kept_base_still_rejects_a_damaged_frame():
    base = random.Random(5).randbytes(2000)
    bid = hashlib.sha256(base).digest()
    dec = DeltaDecoder()
    good = delta_compress(base, edit(base, 2))
    assert dec.decompress(bid, base, good) == edit(base, 2)
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x55
    bad[-1] ^= 0x55  # the frame's checksum too: damage anywhere is found
    with pytest.raises(zstd.ZstdError):
        dec.decompress(bid, base, bytes(bad))


def make_store(root):
    (root / "objects" / "pack").mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)
    return DiskObjectStore(root)


def test_store_reads_deltas_against_one_base_and_finds_damage(tmp_path, monkeypatch):
    """Star deltas, as the two sides of a diff read them: two versions against one base, each
    in a pack of its own. Both read right through one kept decompressor; a damaged block of
    the second, read after the first warmed the decompressor, is CorruptError, and a damaged
    base is CorruptError for a handle that reads it."""
    monkeypatch.setattr(pack_mod, "BLOCK_TARGET", 256)
    base = random.Random(7).randbytes(3000)
    v1, v2 = edit(base, 1), edit(base, 2)
    s = make_store(tmp_path)
    w = s.writer()
    bid = w.add(NODE, base)
    w.commit()
    packs = set(s.pack_dir.glob("*.pack"))
    (base_pack,) = packs
    ids = []
    for v in (v1, v2):
        w = s.writer()
        ids.append(w.add_delta(NODE, v, oid_of(NODE, v), bid))
        w.commit()
        (new_pack,) = set(s.pack_dir.glob("*.pack")) - packs
        packs.add(new_pack)
    v2_pack = new_pack
    assert [s.delta_base(i) for i in ids] == [bid, bid]
    s.close()

    fresh = DiskObjectStore(tmp_path)
    assert fresh.get(ids[0]) == (NODE, v1)
    assert fresh.get(ids[1]) == (NODE, v2)
    fresh.close()

    fresh = DiskObjectStore(tmp_path)
    assert fresh.get(ids[0]) == (NODE, v1)  # keeps a decompressor for the base
    _flip_block(v2_pack)
    with pytest.raises(CorruptError):
        fresh.get(ids[1])
    fresh.close()
    _flip_block(v2_pack)

    _flip_block(base_pack)
    fresh = DiskObjectStore(tmp_path)
    for oid in ids:
        with pytest.raises(CorruptError):
            fresh.get(oid)
    fresh.close()


def _flip_block(path) -> None:
    rd = PackReader(path)
    off, clen = rd._blocks[0][0], rd._blocks[0][1]
    rd.close()
    path.chmod(0o600)
    with open(path, "r+b") as f:
        f.seek(off + clen // 2)
        b = f.read(1)
        f.seek(off + clen // 2)
        f.write(bytes((b[0] ^ 0x01,)))


@settings(max_examples=60, deadline=None)
@given(
    root=st.binary(min_size=0, max_size=300_000),
    seeds=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=10),
)
def test_a_chain_decompressed_in_one_call_is_the_chain_resolved_link_by_link(root, seeds):
    """decompress_chain gives the object at the end of a chain without making those between:
    the same bytes as resolving each link against the one before (roots past zstd's 128 KB raw
    block included)."""
    versions = [root or b"\x00"]
    for s in seeds:
        versions.append(edit(versions[-1], s) + random.Random(s).randbytes(s % 50))
    frames = [delta_compress(a, b) for a, b in zip(versions, versions[1:], strict=False)]
    decoder = DeltaDecoder()
    for k in range(1, len(versions)):
        assert decoder.decompress_chain(versions[0], frames[:k]) == versions[k]
        assert delta_decompress(versions[k - 1], frames[k - 1]) == versions[k]
    with pytest.raises(zstd.ZstdError):
        decoder.decompress_chain(versions[0], [*frames[:-1], frames[-1][:-3]])
