"""Change capture never misses a change: a commit that reads the change log builds exactly the
tree a full read of the database builds.

Random workloads run against a real database with capture on: inserts, updates, deletes, key
changes, bulk statements, DELETE of every row, INSERT OR REPLACE (which deletes rows without
firing delete triggers), ADD and DROP COLUMN, triggers dropped (and left so, or created again
exactly as they were), log rows deleted, the database file replaced by an older copy, and
snapgit's own writes (restore, checkout, merge). After every step that commits, the commit's
tables must be the very table objects that a full read gives (read by a second store, which
has no parent and so reads every row), and ``snap status``'s live side, which reads through
the log too, must be them as well. Before every commit, ``snap diff`` against the live
database, which lists a captured table's changes from its log without building a tree, must
give the row changes a diff against a full read gives.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.pool import NullPool

from snapgit import Repo
from snapgit.compare.diff import diff_sides
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
    st.tuples(st.just("truncate"), st.integers(0, 5), st.integers(0, 10_000)),
    st.tuples(st.just("replace"), st.integers(1, 5), st.integers(0, 10_000)),
    st.tuples(st.just("add_column"), st.just(0), st.integers(0, 10_000)),
    st.tuples(st.just("drop_column"), st.just(0), st.just(0)),
    st.tuples(st.just("tamper_recreate"), st.integers(1, 20), st.integers(0, 10_000)),
    st.tuples(st.just("tamper_drop"), st.integers(1, 20), st.integers(0, 10_000)),
    st.tuples(st.just("reenable"), st.just(0), st.just(0)),
    st.tuples(st.just("log_gap"), st.just(0), st.just(0)),
    st.tuples(st.just("vacuum"), st.integers(1, 10), st.integers(0, 10_000)),
    st.tuples(st.just("backup"), st.just(0), st.just(0)),
    st.tuples(st.just("replace_file"), st.just(0), st.just(0)),
    st.tuples(st.just("restore"), st.just(0), st.integers(0, 10_000)),
    st.tuples(st.just("merge"), st.integers(1, 30), st.integers(0, 10_000)),
    st.tuples(st.just("commit"), st.just(0), st.just(0)),
    st.tuples(st.just("commit"), st.just(0), st.just(0)),
)


class Workload:
    """A database with capture on, two stores on it (``repo`` commits; ``oracle`` only reads it
    in full), and the steps of a workload. ``url``: a fresh database of another kind (MariaDB),
    or None for a SQLite file in ``root``."""

    def __init__(self, root: Path, url: str | None = None) -> None:
        self.root = root
        self.path = root / "app.db"
        self.url = url or str(self.path)
        self.mysql = url is not None and url.startswith("mysql")
        self.pg = url is not None and url.startswith("postgresql")
        self.engine = sa.create_engine(url, poolclass=NullPool) if url is not None else None
        if self.engine is not None:
            with self.engine.begin() as con:  # a fresh database for every example
                if self.mysql:
                    for (name,) in con.exec_driver_sql("SHOW TABLES").all():
                        con.exec_driver_sql(f"DROP TABLE `{name}`")
                else:
                    listed = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                    for (name,) in con.exec_driver_sql(listed).all():
                        con.exec_driver_sql(f'DROP TABLE "{name}" CASCADE')
        text, without_rowid = ("VARCHAR(40)", "") if self.mysql else ("TEXT", "" if self.pg else " WITHOUT ROWID")
        self.sql(
            (f"CREATE TABLE t (id INTEGER PRIMARY KEY, v {text}, n INTEGER, u VARCHAR(40) UNIQUE)", ()),
            (f"CREATE TABLE c (a VARCHAR(20), b INTEGER, w DOUBLE PRECISION, PRIMARY KEY (a, b)){without_rowid}", ()),
        )
        self.many("INSERT INTO t VALUES (?, ?, ?, ?)", [(i, f"v{i}", i % 13, f"u{i}") for i in range(ROWS)])
        self.many("INSERT INTO c VALUES (?, ?, ?)", [(f"k{i % 11}", i, i / 4) for i in range(ROWS // 3)])
        (root / "repo").mkdir()
        (root / "oracle").mkdir()
        self.repo = Repo.init(root / "repo", self.url)
        self.oracle = Repo.init(root / "oracle", self.url)
        self.repo.commit("first")
        self.repo.capture_enable()
        self.commits = [self.repo.head()]
        self.extra: list[str] = []  # columns added to t
        self.backup: Path | None = None
        self.branches = 0

    def close(self) -> None:
        self.repo.close()
        self.oracle.close()
        if self.engine is not None:
            self.engine.dispose()

    def _connect(self):
        if self.engine is not None:
            return self.engine.raw_connection()
        return sqlite3.connect(self.path)

    def _p(self, sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s") if self.engine is not None else sql

    def sql(self, *statements: tuple[str, tuple]) -> None:
        con = self._connect()
        try:
            cur = con.cursor()
            for sql, params in statements:
                if params:
                    cur.execute(self._p(sql), params)
                else:
                    cur.execute(sql)
            con.commit()
        finally:
            con.close()

    def many(self, sql: str, rows: list[tuple]) -> None:
        con = self._connect()
        try:
            con.cursor().executemany(self._p(sql), rows)
            con.commit()
        finally:
            con.close()

    def rows(self, sql: str) -> list[tuple]:
        con = self._connect()
        try:
            cur = con.cursor()
            cur.execute(sql)
            return [tuple(r) for r in cur.fetchall()]
        finally:
            con.close()

    def ids(self) -> list[int]:
        return [r[0] for r in self.rows("SELECT id FROM t ORDER BY id")]

    def triggers(self) -> list[tuple[str, str]]:
        """snapgit's triggers on t: (name, the statement that creates it again)."""
        if self.pg:  # read by xmin: no triggers
            return []
        if not self.mysql:
            return self.rows("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 't'")
        names = self.rows(
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS "
            "WHERE TRIGGER_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = 't' ORDER BY 1"
        )
        return [(n, self.rows(f"SHOW CREATE TRIGGER `{n}`")[0][2]) for (n,) in names]

    def logs(self) -> list[str]:
        if self.mysql:
            return [
                r[0]
                for r in self.rows(
                    "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND LEFT(TABLE_NAME, 13) = '_snapgit_log_'"
                )
            ]
        return [r[0] for r in self.rows("SELECT name FROM sqlite_master WHERE substr(name, 1, 13) = '_snapgit_log_'")]

    def pick(self, n: int, seed: int) -> list[int]:
        ids = self.ids()
        if not ids:
            return []
        return sorted({ids[(seed + i * 37) % len(ids)] for i in range(n)})

    def step(self, kind: str, n: int, seed: int) -> None:
        if kind == "insert":
            top = max(self.ids(), default=0) + 1
            self.sql(*[("INSERT INTO t (id, v, n) VALUES (?, ?, ?)", (top + i, f"new{seed}", i)) for i in range(n)])
            if self.pg:
                self.sql(
                    ("INSERT INTO c VALUES (?, ?, ?) ON CONFLICT DO NOTHING", (f"k{seed % 5}", seed + 10_000, 1.5))
                )
            else:
                ignore = "INSERT IGNORE" if self.mysql else "INSERT OR IGNORE"
                self.sql((f"{ignore} INTO c VALUES (?, ?, ?)", (f"k{seed % 5}", seed + 10_000, 1.5)))
        elif kind == "update":
            self.sql(*[("UPDATE t SET v = ? WHERE id = ?", (f"upd{seed}", i)) for i in self.pick(n, seed)])
            self.sql(("UPDATE c SET w = w + 1 WHERE b % ? = 0", (n + 1,)))
        elif kind == "delete":
            self.sql(*[("DELETE FROM t WHERE id = ?", (i,)) for i in self.pick(n, seed)])
            self.sql(("DELETE FROM c WHERE b % ? = 1", (n + 7,)))
        elif kind == "rekey":
            top = max(self.ids(), default=0) + 1
            self.sql(*[("UPDATE t SET id = ? WHERE id = ?", (top + k, i)) for k, i in enumerate(self.pick(n, seed))])
            lowest = self.rows("SELECT min(b) FROM c")[0][0]
            if lowest is not None:
                moved = "CONCAT(a, 'X')" if self.mysql else "a || 'X'"
                self.sql((f"UPDATE c SET a = {moved} WHERE b = ?", (lowest,)))
        elif kind == "bulk":
            self.sql(("UPDATE t SET n = n + 1 WHERE id % ? = ?", (n, seed % n)))
        elif kind == "delete_all":
            self.sql(("DELETE FROM t", ()))
        elif kind == "truncate":
            self.sql(("DELETE FROM t" if self.engine is None else "TRUNCATE TABLE t", ()))
            self.step("insert", n, seed)
        elif kind == "replace":
            # REPLACE deletes the row holding the same u without firing the delete trigger
            ids = self.pick(n, seed)
            top = max(self.ids(), default=0) + 1
            if self.pg:  # an upsert that moves the row holding u to a new key
                upsert = "INSERT INTO t (id, v, u) VALUES (?, 'r', ?) ON CONFLICT (u) DO UPDATE SET id = EXCLUDED.id"
                self.sql(*[(upsert, (top + k, f"u{i}")) for k, i in enumerate(ids)])
                return
            self.sql(
                *[
                    (
                        f"{'REPLACE' if self.mysql else 'INSERT OR REPLACE'} INTO t (id, v, u) VALUES (?, 'r', ?)",
                        (top + k, f"u{i}"),
                    )
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
            self.sql((f"DROP TRIGGER {name}", ()))
            self.step("update", n, seed)
            self.step("delete", 1, seed + 1)
            self.step("insert", 1, seed + 2)
            if kind == "tamper_recreate":
                if self.mysql:
                    # MariaDB's TRIGGERS.CREATED counts hundredths of a second: a trigger
                    # created again within the same one is not seen (docs/capture.md)
                    time.sleep(0.02)
                self.sql((sql, ()))
        elif kind == "reenable":
            self.repo.capture_enable()
        elif kind == "vacuum":
            self.step("update", n, seed)
            if self.pg:  # rewrites the table (VACUUM FULL) and freezes its rows' xmin
                with self.engine.connect() as con:  # type: ignore[union-attr]
                    con = con.execution_options(isolation_level="AUTOCOMMIT")
                    con.exec_driver_sql("VACUUM FREEZE t")
                    con.exec_driver_sql("VACUUM FULL t")
            elif self.mysql:
                self.rows("OPTIMIZE TABLE t")  # recreates the table
            else:
                self.sql(("VACUUM", ()))
        elif kind == "log_gap":
            if self.engine is not None:  # auto-increment ids have gaps in MariaDB: deleted log rows cannot be seen
                return
            self.step("update", 3, 5)
            for log in self.logs():
                self.sql((f'DELETE FROM "{log}" WHERE _snapgit_seq = (SELECT max(_snapgit_seq) FROM "{log}")', ()))
        elif kind == "backup" and self.engine is None:
            self.backup = self.root / "backup.db"
            shutil.copyfile(self.path, self.backup)
        elif kind == "replace_file" and self.engine is None:
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
            # snapgit refuses some of these (a checkout across a schema change): the database
            # is then as it was, and the workload goes on on whichever branch HEAD names
            if self.repo.head_ref() != "refs/heads/main":
                with contextlib.suppress(SnapError):
                    self.repo.checkout("main", force=True)
            return
        self.check(self.repo.head())

    def commit(self) -> None:
        head = self.repo.head()
        if head is not None:
            self.check_status(head)
        result = self.repo.commit("step", allow_empty=True)
        self.commits.append(result.commit_id or self.repo.head())
        self.check(self.repo.head())

    def check_status(self, head: bytes) -> None:
        """``snap diff`` (and status) against the live database, which lists a captured
        table's changes from its log without building its tree, gives the very row changes a
        diff against a full read gives."""
        listed = {d.name: list(d.changes()) for d in self.repo.diff()}
        full_side = self.oracle.live_side()
        full = {d.name: list(d.changes()) for d in diff_sides(self.repo.commit_side(head.hex()), full_side)}
        assert listed == full, "status through the change log differs from a full read"

    def check(self, commit: bytes | None) -> None:
        assert commit is not None
        objects = self.repo.objects
        tables = dict(read_root(objects, read_commit(objects, commit).tree).tables)
        full = self.oracle.live_side().tables
        assert tables == full, "a commit through the change log differs from a full read"
        live = self.repo.live_side(against=self.repo.commit_side(commit.hex()))
        assert live.tables == full, "status through the change log differs from a full read"


@pytest.mark.parametrize("kind", ["sqlite", "mariadb", "postgresql"])
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
@given(steps=st.lists(_step, min_size=1, max_size=14))
def test_capture_commit_is_a_full_read(kind: str, make_db_url, steps: list[tuple[str, int, int]]) -> None:
    url = None if kind == "sqlite" else make_db_url(kind)
    with tempfile.TemporaryDirectory() as d:
        w = Workload(Path(d), url)
        try:
            for step, n, seed in steps:
                w.step(step, n, seed)
            w.commit()
            w.step("update", 5, 1)
            w.commit()
        finally:
            w.close()


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
    w.close()


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
    w.close()


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
    w.close()


@pytest.mark.parametrize("step", ["vacuum", "delete", "truncate", "rekey", "replace", "add_column"])
def test_postgresql_reads_by_xmin(make_db_url, tmp_path: Path, step: str) -> None:
    """Rows written since the parent's snapshot are found by their xmin, deleted ones by the
    row count and a key scan; VACUUM FREEZE and VACUUM FULL keep each row's xmin."""
    w = Workload(tmp_path, make_db_url("postgresql"))
    try:
        w.repo.commit("after enable", allow_empty=True)
        w.step(step, 4, 11)
        r = w.repo.commit("by xmin", allow_empty=True)
        t = next(t for t in r.tables if t.name == "t")
        assert t.captured == (step != "add_column"), t.capture_note
        w.check(w.repo.head())
    finally:
        w.close()


@pytest.mark.parametrize(
    ("step", "why"),
    [
        ("rekey", None),
        ("replace", None),
        ("delete_all", None),
        ("truncate", "it was truncated or recreated, or its triggers were, since its log was last read"),
        ("tamper_drop", "its capture triggers are missing or changed"),
        ("tamper_recreate", "it was truncated or recreated, or its triggers were, since its log was last read"),
        ("add_column", "its schema or key changed since the parent commit"),
    ],
)
def test_mariadb_bypasses(make_db_url, tmp_path: Path, step: str, why: str | None) -> None:
    w = Workload(tmp_path, make_db_url("mariadb"))
    try:
        w.repo.commit("after enable", allow_empty=True)
        w.step(step, 4, 11)
        r = w.repo.commit("after the step", allow_empty=True)
        t = next(t for t in r.tables if t.name == "t")
        assert t.captured == (why is None) and t.capture_note == why
        w.check(w.repo.head())
    finally:
        w.close()


def test_mariadb_cascading_foreign_key_reads_the_child_in_full(make_db_url, tmp_path: Path) -> None:
    """MariaDB fires no trigger for rows an ON DELETE CASCADE deletes: such a child is read in full."""
    w = Workload(tmp_path, make_db_url("mariadb"))
    try:
        w.sql(
            (
                "CREATE TABLE kid (id INTEGER PRIMARY KEY, t_id INTEGER, FOREIGN KEY (t_id) REFERENCES t (id) ON DELETE CASCADE)",
                (),
            ),
            ("INSERT INTO kid SELECT id, id FROM t WHERE id < 50", ()),
        )
        w.repo.capture_enable()
        w.repo.commit("after enable", allow_empty=True)
        w.sql(("DELETE FROM t WHERE id < 10", ()))
        r = w.repo.commit("cascade")
        kid = next(t for t in r.tables if t.name == "kid")
        assert not kid.captured and kid.capture_note is not None and "foreign key" in kid.capture_note
        assert next(t for t in r.tables if t.name == "t").captured
        w.check(w.repo.head())
    finally:
        w.close()
