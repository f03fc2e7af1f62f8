"""The row cache (rowcache.py): a commit through it gives the very tree a commit without it gives,
whatever the rows, the edits, the number of processes or the state of the cache file; and it
is used (rows it found unchanged are not encoded again)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapgit import Repo
from snapgit.snapshot.rowcache import cache_path


def make_db(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path)
    con.executescript(
        """
        CREATE TABLE t (id INTEGER PRIMARY KEY, d DATETIME, x REAL, s TEXT, b BLOB);
        CREATE TABLE names (name TEXT PRIMARY KEY, n INTEGER);
        CREATE TABLE bag (v TEXT);
        """
    )
    return con


def commit(monkeypatch, repo: Repo, *, cache: bool, workers: int = 0, message: str = "c"):
    monkeypatch.setenv("SNAP_ROW_CACHE", "1" if cache else "0")
    monkeypatch.setenv("SNAP_WORKERS", str(workers))
    monkeypatch.setenv("SNAP_PARALLEL_MIN_ROWS", "1")
    return repo.commit(message, allow_empty=True)


def same_as_without_cache(monkeypatch, repo: Repo, workers: int = 0):
    """Commit through the cache, then without it: both trees must be the same."""
    cached = commit(monkeypatch, repo, cache=True, workers=workers, message="cached")
    plain = commit(monkeypatch, repo, cache=False, message="plain")
    assert cached.tree_id == plain.tree_id
    return cached


# a DATETIME is read from either spelling to the same value: a block whose driver rows differ
# but whose records do not is a miss that gives the same ids
dates = st.sampled_from(["2013-01-01 05:00:00", "2013-01-01T05:00:00", "2013-06-30 23:59:59.5", None, "not a date"])
row_st = st.tuples(
    dates,
    st.one_of(st.none(), st.floats(allow_nan=True), st.integers(-3, 3)),
    st.one_of(st.none(), st.text(max_size=6)),
    st.one_of(st.none(), st.binary(max_size=4)),
)
keys_st = st.one_of(st.integers(0, 600), st.integers(-(2**62), 2**62))
rows_st = st.dictionaries(keys_st, row_st, max_size=300)
edit_st = st.tuples(st.dictionaries(keys_st, row_st, max_size=40), st.lists(keys_st, max_size=20))
names_st = st.dictionaries(st.text(max_size=5), st.integers(0, 5), max_size=60)


def upsert(con: sqlite3.Connection, rows: dict) -> None:
    con.executemany("INSERT OR REPLACE INTO t VALUES (?, ?, ?, ?, ?)", [(k, *v) for k, v in rows.items()])


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rows=rows_st, names=names_st, edits=st.lists(edit_st, min_size=1, max_size=4), workers=st.integers(0, 2))
def test_commits_through_the_cache_give_the_trees_of_commits_without(
    tmp_path_factory, monkeypatch, small_leaves, rows, names, edits, workers
) -> None:
    tmp = tmp_path_factory.mktemp("rc")
    con = make_db(tmp / "app.db")
    upsert(con, rows)
    con.executemany("INSERT INTO names VALUES (?, ?)", names.items())
    con.executemany("INSERT INTO bag VALUES (?)", [(s,) for s in names])
    con.commit()
    with Repo.init(tmp, db_url=str(tmp / "app.db")) as repo:
        same_as_without_cache(monkeypatch, repo, workers)
        for changed, deleted in edits:
            upsert(con, changed)
            con.executemany("DELETE FROM t WHERE id = ?", [(k,) for k in deleted])
            con.execute("UPDATE names SET n = n + 1 WHERE length(name) = 1")
            con.commit()
            same_as_without_cache(monkeypatch, repo, workers)
        assert not repo.verify().problems
    con.close()


def fill(con: sqlite3.Connection, n: int = 2000) -> None:
    upsert(con, {i: (f"2013-01-{1 + i % 28:02d} 05:00:00", i / 7, f"s{i % 11}", bytes([i % 256])) for i in range(n)})
    con.executemany("INSERT INTO names VALUES (?, ?)", [(f"n{i}", i) for i in range(300)])
    con.commit()


def test_unchanged_rows_are_not_encoded_again(tmp_path: Path, monkeypatch) -> None:
    con = make_db(tmp_path / "app.db")
    fill(con)
    with Repo.init(tmp_path, db_url=str(tmp_path / "app.db")) as repo:
        first = commit(monkeypatch, repo, cache=True)
        assert all(t.cached_rows == 0 for t in first.tables)
        again = commit(monkeypatch, repo, cache=True)
        cached = {t.name: t.cached_rows for t in again.tables}
        # keyless tables are not cached; keyed ones are read from the cache whole
        assert cached == {"bag": 0, "names": 300, "t": 2000}
        con.execute("UPDATE t SET x = -1 WHERE id IN (10, 1000)")
        con.commit()
        changed = same_as_without_cache(monkeypatch, repo)
        t = next(t for t in changed.tables if t.name == "t")
        assert 1000 < t.cached_rows < 2000 and t.records_written == 2
        # two processes: the seams between key ranges cost a block or two each, no more
        split = commit(monkeypatch, repo, cache=True, workers=1)
        t = next(t for t in split.tables if t.name == "t")
        assert t.processes == 2 and t.cached_rows > 1800
    con.close()


def test_a_cache_of_another_tree_is_not_used(tmp_path: Path, monkeypatch) -> None:
    """A cache is bound to the tree it describes: the cache of commit A, put back after B
    changed a row, would give C (which changes it back) B's record for that row."""
    con = make_db(tmp_path / "app.db")
    fill(con)
    with Repo.init(tmp_path, db_url=str(tmp_path / "app.db")) as repo:
        commit(monkeypatch, repo, cache=True)
        t_cache = cache_path(repo.row_cache_dir(), "t")
        saved = t_cache.read_bytes()
        con.execute("UPDATE t SET s = 'changed' WHERE id = 5")
        con.commit()
        commit(monkeypatch, repo, cache=True)
        t_cache.write_bytes(saved)
        con.execute("UPDATE t SET s = 's5' WHERE id = 5")
        con.commit()
        c = same_as_without_cache(monkeypatch, repo)
        assert next(t for t in c.tables if t.name == "t").cached_rows == 0
    con.close()


def test_a_schema_change_makes_a_new_cache(tmp_path: Path, monkeypatch) -> None:
    con = make_db(tmp_path / "app.db")
    fill(con)
    with Repo.init(tmp_path, db_url=str(tmp_path / "app.db")) as repo:
        commit(monkeypatch, repo, cache=True)
        con.execute("ALTER TABLE t ADD COLUMN extra INTEGER")
        con.commit()
        c = same_as_without_cache(monkeypatch, repo)
        assert next(t for t in c.tables if t.name == "t").cached_rows == 0
        c = commit(monkeypatch, repo, cache=True)
        assert next(t for t in c.tables if t.name == "t").cached_rows == 2000
    con.close()


def _truncate(data: bytes, other: bytes) -> bytes:
    return data[: len(data) // 2]


def _flip_middle(data: bytes, other: bytes) -> bytes:
    i = len(data) // 3
    return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]


def _flip_footer(data: bytes, other: bytes) -> bytes:
    return data[:-20] + bytes([data[-20] ^ 0x01]) + data[-19:]


DAMAGES = {
    "empty": lambda data, other: b"",
    "garbage": lambda data, other: bytes(range(256)) * 10,
    "truncated": _truncate,
    "a flipped byte in a segment": _flip_middle,
    "a flipped byte in the footer": _flip_footer,
    "another table's cache": lambda data, other: other,
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_cache_gives_the_same_tree(tmp_path: Path, monkeypatch, damage: str) -> None:
    con = make_db(tmp_path / "app.db")
    fill(con)
    with Repo.init(tmp_path, db_url=str(tmp_path / "app.db")) as repo:
        commit(monkeypatch, repo, cache=True)
        t_cache = cache_path(repo.row_cache_dir(), "t")
        other = cache_path(repo.row_cache_dir(), "names").read_bytes()
        t_cache.write_bytes(DAMAGES[damage](t_cache.read_bytes(), other))
        con.execute("UPDATE t SET x = 0.5 WHERE id % 97 = 0")
        con.commit()
        same_as_without_cache(monkeypatch, repo)
        same_as_without_cache(monkeypatch, repo, workers=1)
        assert not repo.verify().problems
    con.close()


def test_a_missing_cache_directory_is_made_again(tmp_path: Path, monkeypatch) -> None:
    con = make_db(tmp_path / "app.db")
    fill(con, 200)
    with Repo.init(tmp_path, db_url=str(tmp_path / "app.db")) as repo:
        commit(monkeypatch, repo, cache=True)
        shutil.rmtree(repo.row_cache_dir())
        commit(monkeypatch, repo, cache=True)
        c = commit(monkeypatch, repo, cache=True)
        assert next(t for t in c.tables if t.name == "t").cached_rows == 200
    con.close()


def test_cli_reports_cached_rows(tmp_path: Path) -> None:
    con = make_db(tmp_path / "app.db")
    fill(con, 500)
    con.close()

    def snap(*args: str) -> dict:
        out = subprocess.run(
            [sys.executable, "-m", "snapgit.cli", "-C", str(tmp_path), *args],
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(out.stdout) if "--json" in args else {}

    snap("init", "--db", "app.db")
    snap("commit", "-m", "one", "--json")
    again = snap("commit", "-m", "two", "--allow-empty", "--json")
    assert again["tables"]["t"]["cached_rows"] == 500


def rebind(path: Path, root: bytes) -> None:
    """Rewrite a cache file's binding to another tree (a forgery no commit writes)."""
    import struct

    import msgpack

    data = path.read_bytes()
    offset, length, magic = struct.unpack("<QI8s", data[-20:])
    version, sig, _root, directory = msgpack.unpackb(data[offset : offset + length], raw=False)
    new_dir = msgpack.packb([version, sig, root, directory], use_bin_type=True)
    path.write_bytes(data[:offset] + new_dir + struct.pack("<QI8s", offset, len(new_dir), magic))


@pytest.mark.parametrize(
    "new_keys",
    [
        "id * 2 + 100000 WHERE id % 2 = 0",  # after the parent's last key
        "id + 1 WHERE id % 2 = 0",  # between the parent's keys (it holds the even ones only)
    ],
)
def test_blocks_the_parent_tree_does_not_hold_are_encoded(tmp_path: Path, monkeypatch, new_keys: str) -> None:
    """Even a cache bound to the parent's tree is only believed where the parent's leaves hold
    exactly the block's keys: here the cache describes rows with keys the parent lacks."""
    main, other = tmp_path / "main", tmp_path / "other"
    main.mkdir()
    other.mkdir()
    con = make_db(main / "app.db")
    fill(con, 1000)
    if new_keys.startswith("id + 1"):
        con.execute("DELETE FROM t WHERE id % 2 = 1")
        con.commit()
    con.close()
    with Repo.init(main, db_url=str(main / "app.db")) as repo:
        parent = commit(monkeypatch, repo, cache=True)
        con = sqlite3.connect(main / "app.db")
        con.execute(f"UPDATE t SET id = {new_keys}")  # new keys, same rows otherwise
        con.commit()
        con.close()
        shutil.copy(main / "app.db", other / "app.db")
        with Repo.init(other, db_url=str(other / "app.db")) as elsewhere:
            commit(monkeypatch, elsewhere, cache=True)
            forged = cache_path(elsewhere.row_cache_dir(), "t")
        t_cache = cache_path(repo.row_cache_dir(), "t")
        shutil.copy(forged, t_cache)
        parent_t = next(t for t in parent.tables if t.name == "t")
        from snapgit.store.history import read_table

        rebind(t_cache, read_table(repo.objects, parent_t.table_id).root)
        same_as_without_cache(monkeypatch, repo)


def test_a_column_read_another_way_makes_a_new_cache(tmp_path: Path, monkeypatch) -> None:
    """The same driver rows under another declared type are other records (text, not a
    datetime): the cache is bound to the schema, so none is taken from the old tree."""
    con = make_db(tmp_path / "app.db")
    fill(con, 500)
    with Repo.init(tmp_path, db_url=str(tmp_path / "app.db")) as repo:
        commit(monkeypatch, repo, cache=True)
        con.executescript(
            """
            CREATE TABLE t2 (id INTEGER PRIMARY KEY, d TEXT, x REAL, s TEXT, b BLOB);
            INSERT INTO t2 SELECT * FROM t;
            DROP TABLE t;
            ALTER TABLE t2 RENAME TO t;
            """
        )
        c = same_as_without_cache(monkeypatch, repo)
        assert next(t for t in c.tables if t.name == "t").cached_rows == 0
    con.close()


def test_status_reads_through_the_cache_and_leaves_it_as_it_was(tmp_path: Path, monkeypatch) -> None:
    con = make_db(tmp_path / "app.db")
    fill(con, 1500)
    with Repo.init(tmp_path, db_url=str(tmp_path / "app.db")) as repo:
        commit(monkeypatch, repo, cache=True)
        t_cache = cache_path(repo.row_cache_dir(), "t")
        before = t_cache.read_bytes()
        con.execute("UPDATE t SET s = 'new' WHERE id IN (3, 700)")
        con.execute("DELETE FROM t WHERE id = 1400")
        con.execute("INSERT INTO t VALUES (5000, NULL, NULL, 'x', NULL)")
        con.commit()
        stats = {d.name: d.stat() for d in repo.status()}
        assert (stats["t"].added, stats["t"].removed, stats["t"].changed) == (1, 1, 2)
        assert all(stats[n].total == 0 for n in ("names", "bag"))
        assert t_cache.read_bytes() == before
        # and what status saw is what a commit without the cache records
        same_as_without_cache(monkeypatch, repo)
    con.close()


@settings(max_examples=60)
@given(
    cached=st.dictionaries(st.binary(max_size=3), st.binary(min_size=16, max_size=16), max_size=60),
    asked=st.lists(st.tuples(st.binary(max_size=3), st.booleans()), max_size=60),
    segment=st.integers(1, 7),
    calls=st.integers(1, 4),
    order=st.randoms(use_true_random=False),
)
def test_cursor_answers_as_a_dict_would(tmp_path_factory, cached, asked, segment, calls, order) -> None:
    """Cursor.matches over a file of many segments, written in any order (the chunks of a table
    read by several processes come so), asked in several calls, says what a dict of the
    cached blocks says."""
    from snapgit.snapshot.rowcache import Blocks, RowCache, RowCacheWriter

    path = tmp_path_factory.mktemp("cur") / "t.rows"
    out = RowCacheWriter(path)
    keys = sorted(cached)
    starts = list(range(0, len(keys), segment))
    order.shuffle(starts)
    for i in starts:
        b = Blocks()
        b.extend(keys[i : i + segment], [cached[k] for k in keys[i : i + segment]])
        out.add_blocks(b)
    out.finish(b"s" * 32, b"r" * 32)
    assert RowCache.open(path, b"s" * 32, b"x" * 32) is None
    cursor = RowCache.open(path, b"s" * 32, b"r" * 32).cursor()
    asked_keys = sorted({k for k, _ in asked})
    same = dict(asked)
    fps = [cached.get(k, b"\0" * 16) if same[k] else b"\1" * 16 for k in asked_keys]
    got: list[bool] = []
    step = max(1, len(asked_keys) // calls)
    for i in range(0, len(asked_keys), step):
        got += cursor.matches(asked_keys[i : i + step], fps[i : i + step])
    assert got == [k in cached and cached[k] == fp for k, fp in zip(asked_keys, fps, strict=False)]


def test_overlapping_segments_make_no_cache(tmp_path: Path) -> None:
    """A key range written twice (a chunk read again after its worker was lost) would make a
    file the cursor cannot search: none is written, and the next commit reads every row."""
    from snapgit.snapshot.rowcache import Blocks, RowCacheWriter

    out = RowCacheWriter(tmp_path / "t.rows")
    for keys in ([b"a", b"c"], [b"b", b"d"]):
        b = Blocks()
        b.extend(keys, [b"f" * 16] * len(keys))
        out.add_blocks(b)
    out.finish(b"s" * 32, b"r" * 32)
    assert list(tmp_path.iterdir()) == []


def _blocks_in_batches(keys: list[bytes], ints: list | None, sizes: list[int]) -> list[list[bytes]]:
    """The blocks a scan finds reading these keys in batches of these sizes (the rows after a
    batch's last block end wait for the next batch, as CachedScan.entries does)."""
    from snapgit.snapshot.rowcache import block_ends

    out: list[list[bytes]] = []
    pend_k: list[bytes] = []
    pend_i: list = []
    pos = 0
    for size in sizes + [len(keys)]:
        k, i = pend_k + keys[pos : pos + size], pend_i + (ints[pos : pos + size] if ints is not None else [])
        pos += size
        ends = block_ends(k, i if ints is not None else None)
        start = 0
        for e in ends:
            out.append(k[start:e])
            start = e
        pend_k, pend_i = k[start:], i[start:]
        if pos >= len(keys):
            break
    if pend_k:
        out.append(pend_k)
    return out


@settings(max_examples=100)
@given(
    values=st.lists(
        st.one_of(st.integers(-100, 400), st.integers(-(2**63), 2**63 - 1), st.text(max_size=2)),
        unique=True,
        max_size=200,
    ),
    sizes=st.lists(st.integers(1, 40), max_size=10),
    integer=st.booleans(),
)
def test_blocks_do_not_depend_on_how_the_rows_are_batched(values, sizes, integer) -> None:
    from snapgit.encoding import encode_key

    values = sorted(values, key=lambda v: encode_key([v]))
    keys = [encode_key([v]) for v in values]
    ints = values if integer else None
    whole = _blocks_in_batches(keys, ints, [])
    assert [k for b in whole for k in b] == keys
    assert _blocks_in_batches(keys, ints, sizes) == whole
    if integer:  # a block: integers of one 16-wide bucket, or a single other value
        for block in whole:
            vs = [values[keys.index(k)] for k in block]
            assert len(vs) == 1 or {v >> 4 if type(v) is int else None for v in vs} == {vs[0] >> 4}


def test_a_commit_reads_its_parent_within_the_commit_block_budget(tmp_path: Path, monkeypatch, small_leaves) -> None:
    """A commit reads its parent's leaves in key order, a block per pack at a time: it holds
    at most its own budget of decompressed blocks (not the store's default), builds the tree a
    commit with the default builds, and leaves the store's budget as it was."""
    from snapgit.snapshot import build as build_mod
    from snapgit.store import pack as pack_mod

    con = make_db(tmp_path / "app.db")
    con.executemany("INSERT INTO t (id, s) VALUES (?, ?)", [(i, "v" * 100 + str(i)) for i in range(8000)])
    con.commit()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with Repo.init(tmp_path / "a", db_url=str(tmp_path / "app.db")) as repo:
        commit(monkeypatch, repo, cache=False)
        con.execute("UPDATE t SET s = s || '!' WHERE id % 5 = 0")
        con.commit()
        default = repo.objects._blocks.budget
        budget = pack_mod.BLOCK_TARGET
        monkeypatch.setattr(build_mod, "COMMIT_BLOCK_BUDGET", budget)  # where snapshot_database reads it
        held: list[int] = []
        put_bytes: list[int] = []
        put = pack_mod.BlockCache.put

        def watched(self, key, value, size):
            put(self, key, value, size)
            held.append(self._size)
            put_bytes.append(size)

        monkeypatch.setattr(pack_mod.BlockCache, "put", watched)
        small = commit(monkeypatch, repo, cache=False, message="small budget")
        assert sum(put_bytes) > 3 * budget  # the commit read more than its budget holds
        assert max(held) <= budget + pack_mod.BLOCK_TARGET  # a block over at most
        assert repo.objects._blocks.budget == default
    monkeypatch.setattr(build_mod, "COMMIT_BLOCK_BUDGET", default)
    with Repo.init(tmp_path / "b", db_url=str(tmp_path / "app.db")) as other:
        assert commit(monkeypatch, other, cache=False).tree_id == small.tree_id


def test_a_commit_reads_only_the_parent_leaves_whose_rows_changed(tmp_path: Path, monkeypatch) -> None:
    """Leaves none of whose rows changed are taken from the parent by id, unread; a leaf whose
    rows only changed is read once, to be patched."""
    from snapgit.store.history import read_commit, read_root, read_table
    from snapgit.tree.prolly import iter_leaves

    con = make_db(tmp_path / "app.db")
    fill(con, 20_000)
    with Repo.init(tmp_path, db_url=str(tmp_path / "app.db")) as repo:
        first = commit(monkeypatch, repo, cache=True)
        root = read_table(
            repo.objects, read_root(repo.objects, read_commit(repo.objects, first.commit_id).tree).tables["t"]
        ).root
        leaves = {nid: leaf for nid, leaf in iter_leaves(repo.objects, root)}
        assert len(leaves) > 20
        read: set[bytes] = set()
        get = repo.objects.get

        def spy(oid: bytes):
            read.add(oid)
            return get(oid)

        monkeypatch.setattr(repo.objects, "get", spy)
        commit(monkeypatch, repo, cache=True)
        assert not read & leaves.keys()  # nothing changed: no leaf read
        con.execute("UPDATE t SET x = -1 WHERE id IN (777, 15000)")
        con.commit()
        commit(monkeypatch, repo, cache=True, workers=1)
        changed = {
            nid
            for nid, leaf in leaves.items()
            if {777, 15000} & {int.from_bytes(k[1:], "big") ^ (1 << 63) for k in leaf.keys}
        }
        assert len(changed) == 2
        # besides, a leaf that a seam between two key ranges cuts is read (each side holds only
        # some of its rows): the table is read in up to three ranges here
        assert changed <= read & leaves.keys() and len(read & leaves.keys() - changed) <= 3
        monkeypatch.undo()
        same_as_without_cache(monkeypatch, repo)
    con.close()
