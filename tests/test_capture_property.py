"""Change capture never misses a change: a commit that reads the change log builds exactly the
tree a full read of the database builds.

Random workloads run against a real database with capture on: inserts, updates, deletes, key
changes, bulk statements, DELETE of every row, INSERT OR REPLACE (which deletes rows without
firing delete triggers), ADD and DROP COLUMN, triggers dropped (and left so, or created again
exactly as they were), log rows deleted, the database file replaced by an older copy, and
snapgit's own writes (restore, checkout, merge). After every step that commits, the commit's
tables must be the very table objects that a full read gives (read by a second store, which
has no parent and so reads every row), and ``snap status``'s live side, which reads through
the log too, must be them as well.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapgit import Repo
from snapgit.errors import SnapError
from snapgit.store.history import read_commit, read_root

ROWS = 1500  # several leaves per table (a leaf holds 256 keys on average)

_step = st.one_of(
    st.tuples(st.just("insert"), st.integers(1, 40), st.integers(0, 10_000)),
    st.tuples(st.just("update"), st.integers(1, 60), st.integers(0, 10_000)),
    st.tuples(st.just("delete"), st.integers(1, 40), st.integers(0, 10_000)),
    st.tuples(st.just("rekey"), st.integers(1, 10), st.integers(0, 10_000)),
    st.tuples(st.just("bulk"), st.integers(2, 7), st.integers(0, 6)),
    st.tuples(st.just("delete_all"), st.just(0), st.just(0)),
    st.tuples(st.just("replace"), st.integers(1, 5), st.integers(0, 10_000)),
    st.tuples(st.just("add_column"), st.just(0), st.integers(0, 10_000)),
    st.tuples(st.just("drop_column"), st.just(0), st.just(0)),
    st.tuples(st.just("tamper_recreate"), st.integers(1, 20), st.integers(0, 10_000)),
    st.tuples(st.just("tamper_drop"), st.integers(1, 20), st.integers(0, 10_000)),
    st.tuples(st.just("reenable"), st.just(0), st.just(0)),
    st.tuples(st.just("log_gap"), st.just(0), st.just(0)),
    st.tuples(st.just("backup"), st.just(0), st.just(0)),
    st.tuples(st.just("replace_file"), st.just(0), st.just(0)),
    st.tuples(st.just("restore"), st.just(0), st.integers(0, 10_000)),
    st.tuples(st.just("merge"), st.integers(1, 30), st.integers(0, 10_000)),
    st.tuples(st.just("commit"), st.just(0), st.just(0)),
    st.tuples(st.just("commit"), st.just(0), st.just(0)),
)


class Workload:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / "app.db"
        con = sqlite3.connect(self.path)
        con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, n INTEGER, u TEXT UNIQUE)")
        con.execute("CREATE TABLE c (a TEXT, b INTEGER, w REAL, PRIMARY KEY (a, b)) WITHOUT ROWID")
        con.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", [(i, f"v{i}", i % 13, f"u{i}") for i in range(ROWS)])
        con.executemany("INSERT INTO c VALUES (?, ?, ?)", [(f"k{i % 11}", i, i / 4) for i in range(ROWS // 3)])
        con.commit()
        con.close()
        (root / "repo").mkdir()
        (root / "oracle").mkdir()
        self.repo = Repo.init(root / "repo", str(self.path))
        self.oracle = Repo.init(root / "oracle", str(self.path))
        self.repo.commit("first")
        self.repo.capture_enable()
        self.commits = [self.repo.head()]
        self.extra: list[str] = []  # columns added to t
        self.backup: Path | None = None
        self.branches = 0

    def sql(self, *statements: tuple[str, tuple]) -> None:
        con = sqlite3.connect(self.path)
        try:
            for sql, params in statements:
                con.execute(sql, params)
            con.commit()
        finally:
            con.close()

    def ids(self) -> list[int]:
        con = sqlite3.connect(self.path)
        try:
            return [r[0] for r in con.execute("SELECT id FROM t ORDER BY id")]
        finally:
            con.close()

    def triggers(self) -> list[tuple[str, str]]:
        con = sqlite3.connect(self.path)
        try:
            return con.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 't'"
            ).fetchall()
        finally:
            con.close()

    def pick(self, n: int, seed: int) -> list[int]:
        ids = self.ids()
        if not ids:
            return []
        return sorted({ids[(seed + i * 37) % len(ids)] for i in range(n)})

    def step(self, kind: str, n: int, seed: int) -> None:
        if kind == "insert":
            top = max(self.ids(), default=0) + 1
            self.sql(*[("INSERT INTO t (id, v, n) VALUES (?, ?, ?)", (top + i, f"new{seed}", i)) for i in range(n)])
            self.sql(("INSERT OR IGNORE INTO c VALUES (?, ?, ?)", (f"k{seed % 5}", seed + 10_000, 1.5)))
        elif kind == "update":
            self.sql(*[("UPDATE t SET v = ? WHERE id = ?", (f"upd{seed}", i)) for i in self.pick(n, seed)])
            self.sql(("UPDATE c SET w = w + 1 WHERE b % ? = 0", (n + 1,)))
        elif kind == "delete":
            self.sql(*[("DELETE FROM t WHERE id = ?", (i,)) for i in self.pick(n, seed)])
            self.sql(("DELETE FROM c WHERE b % ? = 1", (n + 7,)))
        elif kind == "rekey":
            top = max(self.ids(), default=0) + 1
            self.sql(*[("UPDATE t SET id = ? WHERE id = ?", (top + k, i)) for k, i in enumerate(self.pick(n, seed))])
            self.sql(("UPDATE c SET a = a || 'x' WHERE b = (SELECT min(b) FROM c)", ()))
        elif kind == "bulk":
            self.sql(("UPDATE t SET n = n + 1 WHERE id % ? = ?", (n, seed % n)))
        elif kind == "delete_all":
            self.sql(("DELETE FROM t", ()))
        elif kind == "replace":
            # REPLACE deletes the row holding the same u without firing the delete trigger
            ids = self.pick(n, seed)
            top = max(self.ids(), default=0) + 1
            self.sql(
                *[
                    ("INSERT OR REPLACE INTO t (id, v, u) VALUES (?, 'r', ?)", (top + k, f"u{i}"))
                    for k, i in enumerate(ids)
                ]
            )
        elif kind == "add_column":
            name = f"x{len(self.extra)}"
            self.sql((f"ALTER TABLE t ADD COLUMN {name} INTEGER DEFAULT {seed}", ()))
            self.extra.append(name)
        elif kind == "drop_column":
            if self.extra:
                self.sql((f"ALTER TABLE t DROP COLUMN {self.extra.pop()}", ()))
        elif kind in ("tamper_recreate", "tamper_drop"):
            trig = self.triggers()
            if not trig:
                return
            name, sql = trig[seed % len(trig)]
            self.sql((f'DROP TRIGGER "{name}"', ()))
            self.step("update", n, seed)
            self.step("delete", 1, seed + 1)
            self.step("insert", 1, seed + 2)
            if kind == "tamper_recreate":
                self.sql((sql, ()))
        elif kind == "reenable":
            self.repo.capture_enable()
        elif kind == "log_gap":
            con = sqlite3.connect(self.path)
            try:
                logs = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE name LIKE '_snapgit_log_%'")]
            finally:
                con.close()
            self.step("update", 3, 5)
            for log in logs:
                self.sql((f'DELETE FROM "{log}" WHERE _snapgit_seq = (SELECT max(_snapgit_seq) FROM "{log}")', ()))
        elif kind == "backup":
            self.backup = self.root / "backup.db"
            shutil.copyfile(self.path, self.backup)
        elif kind == "replace_file":
            if self.backup is not None:
                tmp = self.root / "incoming.db"
                shutil.copyfile(self.backup, tmp)
                tmp.replace(self.path)
        elif kind == "restore":
            target = self.commits[seed % len(self.commits)]
            try:
                self.repo.restore(target.hex())
            except SnapError:
                pass
        elif kind == "merge":
            self.merge(n, seed)
        elif kind == "commit":
            self.commit()

    def merge(self, n: int, seed: int) -> None:
        """A side branch from an earlier commit, changed and committed, merged back into main."""
        self.branches += 1
        side = f"side{self.branches}"
        base = self.commits[seed % len(self.commits)]
        try:
            self.repo.create_branch(side, base.hex())
            self.repo.checkout(side, force=True)
            self.step("update", n, seed)
            self.step("insert", 2, seed)
            self.commit()
            self.repo.checkout("main", force=True)
            self.check(self.repo.head())
            self.repo.merge(side, strategy="backup_wins")
        except SnapError:
            if self.repo.head_ref() != "refs/heads/main":
                self.repo.checkout("main", force=True)
            return
        self.check(self.repo.head())

    def commit(self) -> None:
        result = self.repo.commit("step", allow_empty=True)
        self.commits.append(result.commit_id or self.repo.head())
        self.check(self.repo.head())

    def check(self, commit: bytes | None) -> None:
        assert commit is not None
        objects = self.repo.objects
        tables = dict(read_root(objects, read_commit(objects, commit).tree).tables)
        full = self.oracle.live_side().tables
        assert tables == full, "a commit through the change log differs from a full read"
        live = self.repo.live_side(against=self.repo.commit_side(commit.hex()))
        assert live.tables == full, "status through the change log differs from a full read"


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(_step, min_size=1, max_size=14))
def test_capture_commit_is_a_full_read_sqlite(steps: list[tuple[str, int, int]]) -> None:
    with tempfile.TemporaryDirectory() as d:
        w = Workload(Path(d))
        try:
            for kind, n, seed in steps:
                w.step(kind, n, seed)
            w.commit()
            w.step("update", 5, 1)
            w.commit()
        finally:
            w.repo.close()
            w.oracle.close()


def test_capture_reads_only_the_logged_rows(tmp_path: Path) -> None:
    """After the first commit that reads the log in full, commits read through the log."""
    w = Workload(tmp_path)
    r = w.repo.commit("after enable")
    assert {t.name: t.captured for t in r.tables} == {"c": False, "t": False}
    assert all(t.capture_note == "its log has not been read by a commit yet" for t in r.tables)
    w.step("update", 10, 3)
    w.step("delete", 3, 4)
    w.step("rekey", 2, 5)
    r = w.repo.commit("through the log")
    assert {t.name: t.captured for t in r.tables} == {"c": True, "t": True}
    w.check(w.repo.head())
    con = sqlite3.connect(w.path)
    logs = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE name LIKE '_snapgit_log_%'")]
    assert [con.execute(f'SELECT count(*) FROM "{log}"').fetchone()[0] for log in logs] == [0, 0]
    con.close()
    w.repo.close()
    w.oracle.close()


@pytest.mark.parametrize(
    ("kind", "why"),
    [
        ("tamper_drop", "its capture triggers are missing or changed"),
        ("tamper_recreate", "the database's schema changed since its log was last read"),
        ("log_gap", "has a gap"),
        ("add_column", "the database's schema changed since its log was last read"),
        ("replace", "rows deleted unseen by the triggers"),
    ],
)
def test_each_bypass_reads_in_full_and_says_why(tmp_path: Path, kind: str, why: str) -> None:
    w = Workload(tmp_path)
    w.repo.commit("after enable")
    w.step(kind, 3, 7)
    r = w.repo.commit("after the bypass", allow_empty=True)
    t = next(t for t in r.tables if t.name == "t")
    assert not t.captured and t.capture_note is not None and why in t.capture_note
    w.check(w.repo.head())
    w.repo.close()
    w.oracle.close()


def test_database_file_replaced_by_an_older_copy(tmp_path: Path) -> None:
    """The copy's log is relative to the table its state names, not to HEAD's: read in full."""
    w = Workload(tmp_path)
    w.repo.commit("after enable")
    w.step("update", 5, 1)
    w.repo.commit("read through the log")
    w.step("backup", 0, 0)
    w.step("update", 20, 2)
    w.step("delete", 5, 3)
    r = w.repo.commit("after the backup")
    assert all(t.captured for t in r.tables)
    w.step("replace_file", 0, 0)
    w.step("update", 2, 9)
    r = w.repo.commit("the older copy")
    t = next(t for t in r.tables if t.name == "t")
    assert not t.captured and t.capture_note == "the parent commit's table is not the one its log was last read into"
    w.check(w.repo.head())
    w.repo.close()
    w.oracle.close()
