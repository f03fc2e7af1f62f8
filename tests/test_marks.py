"""gc's marks (snapgit.ops.marks): a set of object ids by 8-byte prefix, held in sorted arrays.

Held to a plain Python set of prefixes, with and without the C extension (which sorts the
batches and merges the columns), over ids that repeat and ids that share a prefix, added in
batches small enough that buckets are tidied many times.
"""

from __future__ import annotations

import hashlib
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapgit import native
from snapgit.ops import marks as marks_module
from snapgit.ops.marks import Marks, repeated_prefixes


def _id(n: int, prefix_of: int | None = None) -> bytes:
    """An id; with ``prefix_of``, one that shares the first 8 bytes of that one's id."""
    oid = hashlib.sha256(str(n).encode()).digest()
    if prefix_of is not None:
        oid = hashlib.sha256(str(prefix_of).encode()).digest()[:8] + oid[8:]
    return oid


def _prefix(oid: bytes) -> int:
    return int.from_bytes(oid[:8], "big")


def _column(prefixes: list[int]) -> bytes:
    return array("Q", sorted(prefixes)).tobytes()  # a pack index's column, on little-endian hosts


ids = st.builds(_id, st.integers(0, 300), st.none() | st.integers(0, 300))


@pytest.mark.parametrize("use_native", [True, False])
def test_marks_agree_with_a_set_of_prefixes(monkeypatch, use_native: bool) -> None:
    if use_native and not native.available():
        pytest.skip("the C extension is not built")
    monkeypatch.setattr(marks_module, "_FLUSH", 7)  # sort batches often ...
    monkeypatch.setattr(marks_module, "_SLACK", 3)  # ... and tidy buckets often
    original = native._native
    monkeypatch.setattr(native, "_native", original if use_native else None)

    @settings(max_examples=60)
    @given(
        st.lists(st.tuples(st.booleans(), st.lists(ids, max_size=20)), max_size=12),
        st.lists(ids, max_size=30),
        st.lists(ids, max_size=10),
    )
    def check(batches: list[tuple[bool, list[bytes]]], probes: list[bytes], late: list[bytes]) -> None:
        m = Marks()
        want: set[int] = set()
        for one_by_one, batch in batches:
            for oid in batch if one_by_one else []:
                m.add(oid)
            if not one_by_one:
                m.add_joined(b"".join(batch))
            want.update(map(_prefix, batch))
        m.finish()
        m.add_final(late)  # gc's late marks: merged into the final array, which stays sorted and distinct
        want.update(map(_prefix, late))
        assert len(m) == len(want)
        for oid in probes:
            assert (oid in m) == (_prefix(oid) in want)
        column = [_prefix(o) for o in probes] * 2  # a prefix the column holds twice counts twice
        assert m.hits(_column(column)) == want & set(column)
        assert m.count_in(_column(column)) == sum(p in want for p in column)

    check()


def test_marks_answer_only_when_final_and_take_nothing_after() -> None:
    m = Marks()
    m.add(_id(1))
    with pytest.raises(ValueError, match="finish"):
        len(m)
    m.finish()
    assert _id(1) in m and _id(2) not in m
    with pytest.raises(ValueError, match="final"):
        m.add(_id(3))


@settings(max_examples=60)
@given(
    st.lists(st.lists(st.integers(0, 2**64 - 1) | st.sampled_from([0, 5, 2**63, 2**64 - 1]), max_size=15), max_size=5)
)
def test_repeated_prefixes_are_those_in_more_than_one_place(columns: list[list[int]]) -> None:
    counts: dict[int, int] = {}
    for column in columns:
        for p in column:
            counts[p] = counts.get(p, 0) + 1
    assert repeated_prefixes([_column(c) for c in columns]) == {p for p, n in counts.items() if n > 1}
