"""The C extension (snapgit/_native.c) against its Python reference (snapgit/native.py): the same
rows from SQLite, the same msgpack bytes and digests, the same trees, and a snapshot that stays
one snapshot. Under CI the extension must be built: the fast path is what users run."""

from __future__ import annotations

import datetime
import hashlib
import sqlite3
import sys
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import IN_CI
from snapgit import Repo, native
from snapgit.db import Database
from snapgit.encoding import encode_row, packable
from snapgit.objects import Node
from snapgit.store.packindex import index_entries_py

MAX_INTERVAL = datetime.timedelta(microseconds=2**63 - 1)  # the longest an interval can be

needs_native = pytest.mark.skipif(
    not native.available(), reason="the C extension snapgit._native is not built (no compiler or headers)"
)


def test_the_extension_is_built_under_ci() -> None:
    if not IN_CI:
        pytest.skip("only CI requires the extension")
    assert native.available(), "snapgit._native did not build: see the install's output"


def reference_digest(rows, starts, ends, length):
    pack = msgpack.Packer(use_bin_type=True).pack
    return [hashlib.sha256(pack(rows[a:b])).digest()[:length] for a, b in zip(starts, ends, strict=False)]


def outcome(f, *args):
    """What f gives, or the type of what it raises."""
    try:
        return f(*args)
    except Exception as exc:  # noqa: BLE001
        return type(exc)


def sizes(limit: int) -> st.SearchStrategy[int]:
    # the lengths where msgpack's headers change
    return st.sampled_from([0, 1, 2, 4, 8, 15, 16, 17, 31, 32, 33, 255, 256, 65535, 65536, limit])


ints = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from(
        [
            -(2**63) - 1,
            -(2**63),
            -(2**31) - 1,
            -(2**31),
            -(2**15) - 1,
            -(2**15),
            -129,
            -128,
            -33,
            -32,
            -1,
            0,
            127,
            128,
            255,
            256,
            65535,
            65536,
            2**32 - 1,
            2**32,
            2**63 - 1,
            2**63,
            2**64 - 1,
            2**64,
        ]
    ),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.binary(max_size=40),
    sizes(70000).map(lambda n: "é" * (n // 2)),
    sizes(70000).map(bytes),
    st.sampled_from(["\ud800", bytearray(b"x"), 1.5j]),  # msgpack refuses or packs these otherwise
    st.builds(msgpack.ExtType, st.integers(0, 127), st.one_of(sizes(300).map(bytes), st.binary(max_size=20))),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.tuples(inner, inner), st.dictionaries(st.text(max_size=2), inner, max_size=2)
    ),
    max_leaves=6,
)
rows_st = st.lists(
    st.one_of(st.tuples(), st.lists(values, max_size=20).map(tuple), st.lists(values, max_size=3)), max_size=40
)


@needs_native
@settings(max_examples=300)
@given(rows=rows_st, cuts=st.lists(st.integers(0, 40), max_size=12), length=st.integers(0, 32))
def test_pack_digest_gives_the_digests_of_msgpack(rows, cuts, length) -> None:
    cuts = sorted(min(c, len(rows)) for c in cuts)
    starts, ends = [0, *cuts], [*cuts, len(rows)]
    assert outcome(native.pack_digest, rows, starts, ends, length) == outcome(
        reference_digest, rows, starts, ends, length
    )


@needs_native
@settings(max_examples=300)
@given(rows=rows_st)
def test_records_are_the_encoder_s_bytes(rows) -> None:
    def reference(rows):
        packed = list(map(encode_row, rows))
        return [hashlib.sha256(b"\x01" + p).digest() for p in packed], packed

    assert outcome(native.records, rows, b"\x01", encode_row) == outcome(reference, rows)


plain_rows = st.lists(
    st.tuples(
        st.one_of(
            st.none(),
            st.integers(-(2**63), 2**63 - 1),
            st.floats(allow_nan=False),
            st.text(max_size=10),
            st.binary(max_size=10),
        )
    ),
    max_size=40,
)


converted = st.one_of(
    st.datetimes(),
    st.dates(),
    st.times(),
    st.decimals(allow_nan=False),
    st.uuids(),
    st.timedeltas(-MAX_INTERVAL, MAX_INTERVAL),
).map(packable)


@needs_native
@settings(max_examples=100)
@given(rows=plain_rows, more=st.lists(converted, max_size=5))
def test_the_c_packer_knows_every_value_sqlite_gives(rows, more) -> None:
    # not only the same bytes: no fallback to Python for what a driver row holds, nor for the
    # ExtTypes its converted columns become
    from snapgit import _native

    assert _native.pack_digest(rows, [0], [len(rows)], 16) is not None
    rows = [(*r, *more) for r in rows]
    got = _native.records(rows, b"\x01")
    assert got is not None
    assert got[1] == list(map(encode_row, rows))


sqlite_values = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(),
    st.binary(),
    st.sampled_from(["", b"", "\x00inside", float("inf")]),
)


@needs_native
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    columns=st.lists(st.lists(sqlite_values, min_size=1, max_size=5), min_size=0, max_size=60), batch=st.integers(1, 25)
)
def test_reader_gives_the_rows_of_python_s_sqlite3(tmp_path_factory, columns, batch) -> None:
    path = tmp_path_factory.mktemp("rd") / "t.db"
    width = max(map(len, columns), default=1)
    con = sqlite3.connect(path)
    names = ", ".join(f"c{i}" for i in range(width))
    con.execute(f"CREATE TABLE t (k INTEGER PRIMARY KEY, {names})")
    con.executemany(
        f"INSERT INTO t VALUES (?, {', '.join('?' * width)})",
        [(k, *row, *[None] * (width - len(row))) for k, row in enumerate(columns)],
    )
    con.commit()
    sql = f"SELECT {names}, typeof(c0) FROM t ORDER BY k"
    want = con.execute(sql).fetchall()
    con.close()
    reader = native.sqlite_reader(str(path))
    reader.execute(sql)
    got = []
    while chunk := reader.fetchmany(batch):
        assert len(chunk) <= batch
        got += chunk
    reader.close()
    assert got == want
    assert [tuple(map(type, r)) for r in got] == [tuple(map(type, r)) for r in want]


@needs_native
def test_reader_refuses_text_that_is_not_utf8_as_sqlite3_does(tmp_path: Path) -> None:
    con = sqlite3.connect(tmp_path / "t.db")
    con.execute("CREATE TABLE t (s TEXT)")
    con.execute("INSERT INTO t VALUES (CAST(x'66ff' AS TEXT))")
    con.commit()
    with pytest.raises(sqlite3.OperationalError):
        con.execute("SELECT s FROM t").fetchall()
    con.close()
    reader = native.sqlite_reader(str(tmp_path / "t.db"))
    reader.execute("SELECT s FROM t")
    with pytest.raises(native.NativeError, match="UTF-8 column 's'"):
        reader.fetchmany(10)
    reader.close()


@needs_native
def test_a_scan_of_a_file_in_rollback_journal_mode_reads_through_the_extension(tmp_path: Path) -> None:
    con = sqlite3.connect(tmp_path / "t.db")
    con.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}") for i in range(50)])
    con.commit()
    with Database.connect(str(tmp_path / "t.db")) as db, db.snapshot() as snap:
        (schema,) = snap.reflect()
        rows = [r for batch in snap.scan(schema, ["k"]) for r in batch]
        assert snap._native is not None
        # the snapshot holds its read lock: no writer commits until it ends
        writer = sqlite3.connect(tmp_path / "t.db", timeout=0)
        writer.execute("UPDATE t SET v = 'new' WHERE k = 1")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            writer.commit()
        writer.rollback()
        assert [r for batch in snap.scan(schema, ["k"]) for r in batch] == rows
    writer.execute("UPDATE t SET v = 'new' WHERE k = 1")
    writer.commit()
    writer.close()
    con.close()
    assert rows == [(i, f"v{i}") for i in range(50)]


def test_a_scan_in_wal_mode_sees_its_snapshot_not_a_later_commit(tmp_path: Path) -> None:
    # in WAL mode writers go on while a snapshot reads: a second connection opened later would
    # see their commits, so the scan must stay on the snapshot's own connection
    con = sqlite3.connect(tmp_path / "t.db")
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(i, "old") for i in range(20)])
    con.commit()
    with Database.connect(str(tmp_path / "t.db")) as db, db.snapshot() as snap:
        (schema,) = snap.reflect()
        con.execute("UPDATE t SET v = 'new'")
        con.commit()
        rows = [r for batch in snap.scan(schema, ["k"]) for r in batch]
        assert snap._native is None
    con.close()
    assert {v for _, v in rows} == {"old"}


@pytest.mark.parametrize("workers", [0, 1])
def test_commits_with_and_without_the_extension_give_the_same_trees(tmp_path: Path, monkeypatch, workers) -> None:
    con = sqlite3.connect(tmp_path / "app.db")
    con.executescript("""
        CREATE TABLE t (id INTEGER PRIMARY KEY, d DATETIME, x REAL, s TEXT, b BLOB, n NUMERIC, j JSON);
        CREATE TABLE bag (v TEXT);
    """)
    con.executemany(
        "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                i,
                f"2013-01-{1 + i % 28:02d} 05:00:00" if i % 5 else None,
                i / 7,
                f"s{i % 11}é",
                bytes([i % 256]),
                i * 1.25 if i % 3 else "12.50",
                '{"a": [1, 2]}' if i % 4 else None,
            )
            for i in range(3000)
        ],
    )
    con.executemany("INSERT INTO bag VALUES (?)", [(f"b{i % 7}",) for i in range(100)])
    con.commit()
    monkeypatch.setenv("SNAP_WORKERS", str(workers))
    monkeypatch.setenv("SNAP_PARALLEL_MIN_ROWS", "1")
    trees = []
    original = native._native
    for use in (True, False, True):
        monkeypatch.setattr(native, "_native", original if use else None)
        store = tmp_path / f"s{len(trees)}"
        store.mkdir()
        with Repo.init(store, db_url=str(tmp_path / "app.db")) as repo:
            first = repo.commit("first")
            con.execute("UPDATE t SET s = s || '!' WHERE id % 50 = 0")
            con.commit()
            second = repo.commit("second")
            con.execute("UPDATE t SET s = substr(s, 1, length(s) - 1) WHERE id % 50 = 0")
            con.commit()
            trees.append((first.tree_id, second.tree_id))
            assert not repo.verify().problems
    assert trees[0] == trees[1] == trees[2]


@needs_native
@settings(max_examples=100)
@given(
    ids=st.lists(
        st.one_of(
            st.binary(min_size=32, max_size=32),
            # prefixes that share their first bytes, or all 8 of them
            st.tuples(
                st.sampled_from([b"\x00" * 8, b"\xff" * 8, b"\x40" * 7, b"\x80"]), st.binary(min_size=32, max_size=32)
            ).map(lambda t: (t[0] + t[1])[:32]),
        ),
        max_size=300,
    )
)
def test_index_entries_are_those_of_the_python_sort(ids) -> None:
    joined = b"".join(ids)
    assert native.index_entries(joined) == index_entries_py(joined)
    assert native.index_entries(bytearray(joined)) == index_entries_py(bytearray(joined))


# -- block scans: Reader.fetch_blocks and Batch.records against the path of a driver's rows ----

key_values = st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(-40, 400))
# what SQLite may hold in any column, and text each converter turns into a value
cell = st.one_of(
    sqlite_values,
    st.sampled_from(
        [
            "2013-01-01 05:00:00",
            "2013-01-01T05:00",
            "2013-13-01 05:00:00",
            "2024-02-29 23:59:59.5",
            "2013-01-01",
            "12.50",
            "1e3",
            "-0",
            "0",
            "1",
            "true",
            '{"a": [1, 2]}',
            "[1, 2.5]",
            "0123456789abcdef0123456789abcdef",
            "05:30:00",
            "05:30:00+02:00",
        ]
    ),
    st.sampled_from([0, 1, 2, 1.5, -0.0]),
)
TYPED = [
    "d DATETIME",
    "t TIMESTAMP",
    "dd DATE",
    "b BOOLEAN",
    "n NUMERIC(10, 2)",
    "m NUMERIC",
    "j JSON",
    "u UUID",
    "tm TIME",
    "x REAL",
    "s TEXT",
    "bl BLOB",
]


def block_scan_table(path: Path, key_decl: str, rows: list[tuple]) -> None:
    con = sqlite3.connect(path)
    con.execute(f"CREATE TABLE t (k {key_decl}, {', '.join(TYPED)})")
    con.executemany(f"INSERT OR IGNORE INTO t VALUES ({', '.join('?' * (1 + len(TYPED)))})", rows)
    con.commit()
    con.close()


def entries_of(path: Path, monkeypatch, use_native: bool, key_range, batch_size: int):
    """Everything a cached scan of table t gives: its entries and the blocks it collected."""
    from snapgit.encoding import keys_encoder
    from snapgit.snapshot.scan import CachedScan, integer_key

    with monkeypatch.context() as m:
        if not use_native:
            m.setattr(native, "_native", None)
        with Database.connect(str(path)) as db, db.snapshot() as snap:
            (schema,) = snap.reflect()
            names = schema.sorted_names
            scan = CachedScan(
                None,
                None,
                key_range is None or key_range[1] is None,
                key_range is None or key_range[2] is None,
                integer_key=integer_key(schema, ["k"]),
            )
            kw = {"key_range": key_range} if key_range is not None else {}
            got = [
                (list(k), list(i), list(p))
                for k, i, p in scan.entries(
                    snap, schema, ["k"], keys_encoder([names.index("k")]), None, batch_size=batch_size, **kw
                )
            ]
            assert (snap._native is not None) == use_native
    keys = [k for e in got for k in e[0]]
    return (
        keys,
        [i for e in got for i in e[1]],
        [p for e in got for p in e[2]],
        (scan.blocks.keys, bytes(scan.blocks.fps), scan.broken),
    )


@needs_native
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.tuples(key_values, *[cell] * len(TYPED)), max_size=80),
    rowid=st.booleans(),
    batch=st.integers(1, 40),
    bounds=st.one_of(
        st.none(), st.tuples(st.one_of(st.none(), st.integers(-50, 300)), st.one_of(st.none(), st.integers(-50, 400)))
    ),
)
def test_a_block_scan_gives_what_the_rows_of_the_driver_give(
    tmp_path_factory, monkeypatch, rows, rowid, batch, bounds
) -> None:
    path = tmp_path_factory.mktemp("bs") / "t.db"
    # INTEGER PRIMARY KEY is the rowid: integers only; INT PRIMARY KEY also holds text and NULL
    block_scan_table(path, "INTEGER PRIMARY KEY" if rowid else "INT PRIMARY KEY", rows)
    key_range = None if bounds is None else ("k", *bounds)
    assert entries_of(path, monkeypatch, True, key_range, batch) == entries_of(
        path, monkeypatch, False, key_range, batch
    )


@needs_native
def test_a_block_scan_goes_the_way_of_the_driver_from_a_key_that_is_not_an_integer(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "t.db"
    rows = [(k, *["2013-01-01 05:00:00"] * len(TYPED)) for k in range(100)] + [("text key", *[None] * len(TYPED))]
    block_scan_table(path, "INT PRIMARY KEY", rows)
    native_way = entries_of(path, monkeypatch, True, None, 7)
    assert native_way == entries_of(path, monkeypatch, False, None, 7)
    assert len(native_way[0]) == 101


@needs_native
def test_batches_end_where_blocks_end_and_leave_the_next_row_pending(tmp_path: Path) -> None:
    from snapgit import _native

    con = sqlite3.connect(tmp_path / "t.db")
    con.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(k, f"v{k}") for k in range(0, 100, 3)])
    con.commit()
    con.close()
    reader = _native.Reader(str(tmp_path / "t.db"))
    reader.execute("SELECT k, v FROM t ORDER BY k")
    first = reader.fetch_blocks(5, 0, 4, 16)
    # 0, 3, ..., 15 are block 0: the batch takes the whole block, though 5 rows were asked for
    assert first.rows() == [(k, f"v{k}") for k in range(0, 16, 3)]
    assert first.regular and not first.final and first.ends == [6]
    assert first.fps == reference_digest(first.rows(), [0], [6], 16)
    # the row that started the next block was read and left for the next fetch, of any kind
    assert reader.fetchmany(1) == [(18, "v18")]
    rest = reader.fetch_blocks(1000, 0, 4, 16)
    assert rest.final and rest.rows()[0] == (21, "v21") and rest.rows()[-1] == (99, "v99")
    assert reader.fetch_blocks(10, 0, 4, 16) is None
    reader.close()


@needs_native
def test_block_records_fall_back_where_a_converter_gives_what_c_cannot_pack(tmp_path: Path) -> None:
    from snapgit import _native

    con = sqlite3.connect(tmp_path / "t.db")
    con.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(1, "a"), (2, "b")])
    con.commit()
    con.close()
    reader = _native.Reader(str(tmp_path / "t.db"))
    reader.execute("SELECT k, v FROM t ORDER BY k")
    batch = reader.fetch_blocks(10, 0, 4, 16)
    assert batch.records(0, 2, _native.Encoder([None, str.upper]), b"\x01") == native.records(
        [(1, "A"), (2, "B")], b"\x01", encode_row
    )
    assert batch.records(0, 2, _native.Encoder([None, lambda v: {v}]), b"\x01") is None

    def refuse(v):
        raise ZeroDivisionError(v)

    with pytest.raises(ZeroDivisionError):
        batch.records(0, 2, _native.Encoder([None, refuse]), b"\x01")
    with pytest.raises(ValueError, match="columns"):
        batch.records(0, 2, _native.Encoder([None]), b"\x01")
    with pytest.raises(IndexError):
        batch.records(1, 3, _native.Encoder([None, None]), b"\x01")
    reader.close()


@needs_native
def test_a_block_scan_refuses_text_that_is_not_utf8(tmp_path: Path) -> None:
    from snapgit.db import DatabaseError
    from snapgit.snapshot.rowcache import BLOCK_BITS, FP_LEN

    con = sqlite3.connect(tmp_path / "t.db")
    con.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, s TEXT)")
    con.execute("INSERT INTO t VALUES (1, CAST(x'66ff' AS TEXT))")
    con.commit()
    con.close()
    with Database.connect(str(tmp_path / "t.db")) as db, db.snapshot() as snap:
        (schema,) = snap.reflect()
        scan = snap.scan_blocks(schema, ["k"], BLOCK_BITS, FP_LEN)
        with pytest.raises(DatabaseError, match="UTF-8 column 's'"):
            list(scan)


@needs_native
@settings(max_examples=200)
@given(
    prefixes=st.lists(st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([0, 1, 2**63, 2**64 - 1])), max_size=300),
    wanted=st.lists(st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([0, 1, 2**63, 2**64 - 1])), max_size=60),
    shared=st.integers(0, 30),
)
def test_sorted_hits_finds_what_a_set_does(prefixes, wanted, shared) -> None:
    from array import array

    wanted = sorted(set(wanted) | set(prefixes[:shared]))
    column = array("Q", sorted(prefixes))
    if sys.byteorder != "little":
        column.byteswap()  # the index's column is little-endian
    assert native.sorted_hits(column.tobytes(), array("Q", wanted)) == set(wanted) & set(prefixes)


@needs_native
@settings(max_examples=30)
@given(count=st.integers(1, 20_000), asked=st.integers(1, 5_000), seed=st.integers(0, 2**32 - 1))
def test_sorted_hits_in_a_big_index(count: int, asked: int, seed: int) -> None:
    """Thousands of prefixes looked for at once in an index of thousands (a commit's probe),
    each searched for from where the last was found: those held, their neighbours, and others,
    at both ends of the range included."""
    from array import array
    from random import Random

    rnd = Random(seed)
    prefixes = [rnd.getrandbits(64) for _ in range(count)] + [0, 2**64 - 1]
    near = [min(max(p + rnd.choice([-1, 0, 1]), 0), 2**64 - 1) for p in rnd.choices(prefixes, k=asked)]
    wanted = sorted(set(near) | {rnd.getrandbits(64) for _ in range(asked)})
    column = array("Q", sorted(prefixes))
    if sys.byteorder != "little":
        column.byteswap()
    assert native.sorted_hits(column.tobytes(), array("Q", wanted)) == set(wanted) & set(prefixes)


@needs_native
def test_a_block_longer_than_any_batch_goes_to_python_whole(tmp_path: Path) -> None:
    # a key that is not unique (a natural key configured wrongly) makes one endless block:
    # the batch stops growing, is not cut, and its rows are all there for the Python path
    from snapgit import _native

    con = sqlite3.connect(tmp_path / "t.db")
    con.execute("CREATE TABLE t (k INT, v TEXT)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(5, f"v{i}") for i in range(200)] + [(99, "last")])
    con.commit()
    con.close()
    reader = _native.Reader(str(tmp_path / "t.db"))
    reader.execute("SELECT k, v FROM t ORDER BY k, v")
    got = []
    while (batch := reader.fetch_blocks(4, 0, 4, 16)) is not None:
        if batch.regular:
            assert batch.ends[-1] == len(batch)
        else:
            assert batch.keys is None and batch.ends is None and batch.fps is None
        got += batch.rows()
    reader.close()
    assert got == sorted([(5, f"v{i}") for i in range(200)]) + [(99, "last")]


@settings(deadline=None, max_examples=200)
@given(
    keys=st.lists(
        st.one_of(st.binary(max_size=300), st.sampled_from([b"x" * 255, b"x" * 256, b"x" * 65535, b"x" * 65536])),
        max_size=40,
    ),
    ids=st.sampled_from([0, 1, 7, 8, 2047, 2048, 4096]),
)
def test_leaf_size_is_the_length_of_the_leaf_encoded(keys: list[bytes], ids: int) -> None:
    """A leaf is patched only when its bytes are as long as its canonical encoding (else it is
    rebuilt): the length C and Python compute is the encoding's, across msgpack's header sizes."""
    rids = [bytes([i % 256]) * 32 for i in range(ids)]
    encoded = len(Node(0, keys, rids).encode())
    assert native.leaf_size(keys, 32 * ids) == encoded
    with pytest.MonkeyPatch.context() as m:
        m.setattr(native, "_native", None)
        assert native.leaf_size(keys, 32 * ids) == encoded


def _longer_bin(b: bytes) -> bytes:
    """``b`` (under 64 KB) as a msgpack bin with a header longer than it needs (bin 32)."""
    return b"\xc6" + len(b).to_bytes(4, "big") + b


LEAF_ENCODINGS = ["canonical", "long key", "long array", "level false", "trailing"]


def _encoded_leaf(keys: list[bytes], ids: list[bytes], encoding: str) -> tuple[bytes, bool]:
    """The leaf of ``keys`` and ``ids`` encoded as ``encoding`` says, and whether that is the
    canonical encoding (Node.encode's)."""
    data = Node(0, keys, ids).encode()
    if encoding == "long key" and keys:
        data = b"\x93\x00" + (bytes([0x90 | len(keys)]) if len(keys) < 16 else b"\xdc" + len(keys).to_bytes(2, "big"))
        data += _longer_bin(keys[0]) + b"".join(msgpack.packb(k, use_bin_type=True) for k in keys[1:])
        data += msgpack.packb(b"".join(ids), use_bin_type=True)
    elif encoding == "long array":
        data = b"\x93\x00\xdd" + len(keys).to_bytes(4, "big") + data[3 if len(keys) < 16 else 5 :]
    elif encoding == "level false":
        data = b"\x93\xc2" + data[2:]
    elif encoding == "trailing":
        data += b"\x00"
    return data, encoding == "canonical" or (encoding == "long key" and not keys)


@settings(max_examples=300, deadline=None)
@given(
    keys=st.lists(st.binary(min_size=0, max_size=300), max_size=40, unique=True).map(sorted),
    picks=st.lists(st.tuples(st.integers(0, 39), st.booleans()), max_size=6),
    absent=st.lists(st.binary(max_size=6), max_size=2),
    encoding=st.sampled_from(LEAF_ENCODINGS),
)
def test_patch_leaf_is_the_leaf_encoded_again(keys, picks, absent, encoding) -> None:
    """patch_leaf in C and in Python: a canonically encoded leaf with some record ids replaced
    is the leaf of those ids encoded again, with its id; a leaf encoded any other way, or an
    edit that is not one of its keys, is None (the leaf is then rebuilt), and no changed id is
    (b"", b"", [])."""
    ids = [hashlib.sha256(k).digest() for k in keys]
    data, canonical = _encoded_leaf(keys, ids, encoding)
    chosen = sorted({i % len(keys): same for i, same in picks}.items()) if keys else []
    edits = [keys[i] for i, _ in chosen]
    rids = [ids[i] if same else hashlib.sha256(b"new" + keys[i]).digest() for i, same in chosen]
    if absent:
        extra = sorted(set(absent) - set(keys))
        edits, rids = edits + extra, rids + [b"\x01" * 32] * len(extra)
        order = sorted(range(len(edits)), key=edits.__getitem__)
        edits, rids = [edits[i] for i in order], [rids[i] for i in order]
    got = native.patch_leaf(data, edits, rids)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(native, "_native", None)
        assert native.patch_leaf(data, edits, rids) == got
    if not canonical or any(e not in keys for e in edits):
        assert got is None
        return
    new_ids = list(ids)
    for e, r in zip(edits, rids, strict=True):
        new_ids[keys.index(e)] = r
    changed = [k for k, (e, r) in enumerate(zip(edits, rids, strict=True)) if ids[keys.index(e)] != r]
    if not changed:
        assert got == (b"", b"", [])
        return
    fresh = Node(0, keys, new_ids).encode()
    assert got == (fresh, hashlib.sha256(b"\x02" + fresh).digest(), changed)


@settings(max_examples=200, deadline=None)
@given(
    keys=st.lists(st.binary(min_size=0, max_size=300), max_size=40, unique=True).map(sorted),
    asked=st.lists(st.binary(max_size=4), max_size=8),
    picks=st.lists(st.integers(0, 39), max_size=8),
    encoding=st.sampled_from(LEAF_ENCODINGS),
)
def test_leaf_ids_are_the_decoded_leafs(keys, asked, picks, encoding) -> None:
    """leaf_ids in C and in Python: the record id a canonically encoded leaf holds under each
    key asked for, None for a key it does not hold, as the decoded leaf has them; None for a
    leaf encoded any other way (the caller decodes it)."""
    ids = [hashlib.sha256(k).digest() for k in keys]
    data, canonical = _encoded_leaf(keys, ids, encoding)
    wanted = sorted(set(asked) | {keys[i % len(keys)] for i in picks if keys})
    got = native.leaf_ids(data, wanted)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(native, "_native", None)
        assert native.leaf_ids(data, wanted) == got
    held = dict(zip(keys, ids, strict=True))
    assert got == ([held.get(k) for k in wanted] if canonical else None)


@needs_native
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ids=st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=400, unique=True),
    twins=st.lists(st.tuples(st.integers(0, 399), st.binary(min_size=24, max_size=24)), max_size=20),
    absent=st.lists(st.binary(min_size=32, max_size=32), max_size=20),
    first=st.sampled_from([b"", b"\x00", b"\xff", b"\x7f"]),
)
def test_index_sole_answers_as_the_candidates_do(tmp_path: Path, ids, twins, absent, first) -> None:
    """IndexReader.sole through the C look-up: the ordinal where one object has the prefix,
    -1 where none, -2 where several (ids sharing 8 bytes), as the Python look-up counts them;
    a first byte that crowds one fanout bucket included."""
    from snapgit.store.packindex import IndexReader, build_index

    ids = [first + i[len(first) :] for i in ids]
    ids = list(dict.fromkeys(ids + [ids[k % len(ids)][:8] + rest for k, rest in twins]))
    path = tmp_path / f"{hashlib.sha256(b''.join(ids)).hexdigest()}.idx"
    path.write_bytes(build_index("ab" * 32, ids))
    idx = IndexReader(path)
    try:
        for oid in ids + absent:
            found = idx.candidates(oid)
            assert idx.sole(oid) == (found[0] if len(found) == 1 else -2 if found else -1)
            assert idx.sole(oid, mapped=True) == idx.sole(oid)
    finally:
        idx.close()


_int_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(1 << 70), 1 << 70),
    st.integers(-5, 5),
    st.floats(allow_nan=False),
    st.text(max_size=3),
)


@needs_native
@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(st.lists(_int_values, min_size=3, max_size=3), max_size=30),
    as_tuples=st.booleans(),
    cols=st.lists(
        st.tuples(st.integers(0, 2), st.integers(-(1 << 63), 10), st.integers(-10, (1 << 63) - 1)), max_size=4
    ),
)
def test_ints_fit_is_the_fast_check_of_each_integer_column(rows, as_tuples, cols) -> None:
    """native.ints_fit, one pass over the rows for all of a table's integer columns, says of each
    column what fit.IntRange says of its values (int and bool within the range, None; a float,
    a text or an int beyond 64 bits is not)."""
    from snapgit.db.fit import IntRange

    batch = [tuple(r) if as_tuples else list(r) for r in rows]
    expect = [IntRange(lo, hi)([row[i] for row in batch]) for i, lo, hi in cols]
    assert native.ints_fit(batch, cols) == expect


@needs_native
def test_ints_fit_leaves_rows_it_does_not_take_to_the_caller() -> None:
    """Rows that are not tuples or lists, or too short for a column: None (checked the slow way)."""
    assert native.ints_fit([(1, 2), "ab"], [(0, 0, 9)]) is None
    assert native.ints_fit([(1, 2), (3,)], [(1, 0, 9)]) is None
    assert native.ints_fit([], [(0, 0, 9)]) == [True]
