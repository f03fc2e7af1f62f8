"""Change capture inside the live database: triggers that log the keys of changed rows.

When capture is on for a table, three row triggers (AFTER INSERT, UPDATE, DELETE) append the
*key* of every row written to a log table: the new key on insert, the old one on delete, and on
update the new key and, when the key itself changed, the old one too. Values are never logged:
the commit reads the rows of the logged keys as they are in its own read snapshot, so a key
logged twice, or logged by a transaction that the snapshot already shows, costs a re-read and
nothing else. Only a change that is *not* logged can make a commit wrong; everything below is
about seeing when that may have happened.

What snapgit owns in the database (names starting ``_snapgit_``, which are never read as user
tables, see :data:`snapgit.db.reflect.LIST_TABLES_SQL`):

* ``_snapgit_capture``: one row per captured table: its name, the number ``n`` that names its
  log and triggers, its key columns (JSON), ``base`` (the id of the stored table object the log
  is relative to: the table as the last reading of the log left it, or NULL), ``gen`` (bumped
  by each reading that consumes the log, so that two never both do), ``next_seq`` (the first
  log row not yet consumed) and ``schema_version`` (SQLite's schema cookie when it was read);
* ``_snapgit_capture_db``: one row, a random token made by ``enable`` (shown by ``status``);
* ``_snapgit_log_<n>``: ``_snapgit_seq`` (AUTOINCREMENT) and the key columns, untyped, so
  that every value is kept as the table stored it;
* triggers ``_snapgit_<n>_ins``, ``_snapgit_<n>_upd``, ``_snapgit_<n>_del``.

A reading (:func:`read_capture`, inside the commit's read snapshot) trusts a table's log only
when every one of these holds, and says why not otherwise (:attr:`TableLog.problem`):

* its three triggers exist with exactly the text snapgit wrote (dropped, changed or renamed
  triggers are seen);
* SQLite's ``PRAGMA schema_version`` is the one recorded when the log was last consumed: any DDL
  since (ALTER TABLE, a trigger dropped and created again, the log table replaced) bumps it;
* the log has no gap: its rows are exactly ``next_seq`` .. the AUTOINCREMENT counter (SQLite
  serialises writers and a rollback rolls the counter back too, so rows deleted by hand show);
* and, checked by the caller, the parent commit's table is exactly ``base`` with the schema the
  table has now (a replaced database file, a restore of an older copy, a commit that failed
  before consuming: the log is relative to another state).

:func:`consume` runs after the reading: in one write transaction it deletes exactly the log
rows the reading saw, by their ids (as runs of consecutive ids), and sets ``base`` to the table
it built, unless another reading consumed since (``gen`` moved: then it does nothing, and the
next reading falls back). A crash before or after it loses nothing: the log rows stay, or the
base no longer matches, and the next commit reads the table in full.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from snapgit.db.errors import DatabaseError

if TYPE_CHECKING:
    from snapgit.db.database import Database, ReadSnapshot

__all__ = [
    "STATE_TABLE",
    "DB_TABLE",
    "SEQ",
    "TableLog",
    "CaptureView",
    "Consumed",
    "CaptureError",
    "supported",
    "log_table",
    "trigger_sql",
    "enable",
    "disable",
    "read_capture",
    "consume",
]

STATE_TABLE = "_snapgit_capture"
DB_TABLE = "_snapgit_capture_db"
SEQ = "_snapgit_seq"


class CaptureError(DatabaseError):
    pass


def supported(dialect: str) -> bool:
    return dialect == "sqlite"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def log_table(n: int) -> str:
    return f"_snapgit_log_{n}"


def _trigger_names(n: int) -> tuple[str, str, str]:
    return f"_snapgit_{n}_ins", f"_snapgit_{n}_upd", f"_snapgit_{n}_del"


def trigger_sql(dialect: str, table: str, n: int, key: Sequence[str]) -> dict[str, str]:
    """The triggers of a captured table, by name, exactly as snapgit creates them (and as
    SQLite keeps them in ``sqlite_master``: one space between words, no IF NOT EXISTS)."""
    if not supported(dialect):
        raise CaptureError(f"change capture is not available on {dialect} yet")
    log, t = _q(log_table(n)), _q(table)
    cols = ", ".join(_q(k) for k in key)

    def values(side: str) -> str:
        return ", ".join(f"{side}.{_q(k)}" for k in key)

    key_moved = " OR ".join(f"OLD.{_q(k)} IS NOT NEW.{_q(k)}" for k in key)
    ins, upd, dele = _trigger_names(n)
    return {
        ins: f"CREATE TRIGGER {_q(ins)} AFTER INSERT ON {t} BEGIN "
        f"INSERT INTO {log} ({cols}) VALUES ({values('NEW')}); END",
        upd: f"CREATE TRIGGER {_q(upd)} AFTER UPDATE ON {t} BEGIN "
        f"INSERT INTO {log} ({cols}) VALUES ({values('NEW')}); "
        f"INSERT INTO {log} ({cols}) SELECT {values('OLD')} WHERE {key_moved}; END",
        dele: f"CREATE TRIGGER {_q(dele)} AFTER DELETE ON {t} BEGIN "
        f"INSERT INTO {log} ({cols}) VALUES ({values('OLD')}); END",
    }


# --- enable and disable -------------------------------------------------------------------------


def _exec(cur: Any, sql: str, params: Sequence[Any] = ()) -> Any:
    cur.execute(sql, tuple(params))
    return cur


def _state_exists(cur: Any) -> bool:
    rows = _exec(cur, "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?", (STATE_TABLE,)).fetchall()
    return bool(rows)


def _create_state(cur: Any) -> None:
    _exec(
        cur,
        f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (tbl TEXT PRIMARY KEY, n INTEGER NOT NULL UNIQUE, "
        "key TEXT NOT NULL, base BLOB, gen INTEGER NOT NULL, next_seq INTEGER NOT NULL, schema_version INTEGER)",
    )
    _exec(cur, f"CREATE TABLE IF NOT EXISTS {DB_TABLE} (token TEXT NOT NULL)")
    if not _exec(cur, f"SELECT token FROM {DB_TABLE}").fetchall():
        _exec(cur, f"INSERT INTO {DB_TABLE} (token) VALUES (?)", (secrets.token_hex(16),))


def _drop_table_capture(cur: Any, n: int) -> None:
    for name in _trigger_names(n):
        _exec(cur, f"DROP TRIGGER IF EXISTS {_q(name)}")
    _exec(cur, f"DROP TABLE IF EXISTS {_q(log_table(n))}")


def _run(db: Database, what: str, body: Any) -> Any:
    """``body(cursor)`` in one write transaction (BEGIN IMMEDIATE: the write lock up front)."""
    if not supported(db.dialect):
        raise CaptureError(
            f"change capture is not available on {db.dialect} yet",
            hint="it works on SQLite; commits of this database read every row",
        )
    with db.connection() as conn:
        cur = conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
            try:
                result = body(cur)
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
            return result
        except sqlite3.Error as exc:
            raise db.error(f"cannot {what} on", exc) from exc
        finally:
            cur.close()


def enable(db: Database, tables: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    """Capture changes of these (table, key columns), in one transaction; a table captured
    already is set up again (its triggers and log made anew, its base cleared: the next commit
    reads it in full). Returns the tables set up."""
    for table, key in tables:
        if not key:
            raise CaptureError(
                f"table {table} has no primary key (nor a key in config.toml): its changed rows cannot be named",
                hint="leave it out with --tables; its commits read every row",
            )
        if SEQ in key:
            raise CaptureError(f"table {table} has a key column named {SEQ}, which capture's log uses")

    def body(cur: Any) -> list[str]:
        _create_state(cur)
        done = []
        for table, key in tables:
            row = _exec(cur, f"SELECT n FROM {STATE_TABLE} WHERE tbl = ?", (table,)).fetchone()
            if row is not None:
                _drop_table_capture(cur, int(row[0]))
                _exec(cur, f"DELETE FROM {STATE_TABLE} WHERE tbl = ?", (table,))
            n = int(_exec(cur, f"SELECT coalesce(max(n), 0) + 1 FROM {STATE_TABLE}").fetchone()[0])
            cols = ", ".join(_q(k) for k in key)
            _exec(cur, f"CREATE TABLE {_q(log_table(n))} ({SEQ} INTEGER PRIMARY KEY AUTOINCREMENT, {cols})")
            for sql in trigger_sql(db.dialect, table, n, key).values():
                _exec(cur, sql)
            _exec(
                cur,
                f"INSERT INTO {STATE_TABLE} (tbl, n, key, base, gen, next_seq, schema_version) "
                "VALUES (?, ?, ?, NULL, 0, 1, NULL)",
                (table, n, json.dumps(list(key))),
            )
            done.append(table)
        return done

    return list(_run(db, "enable change capture", body))


def disable(db: Database, tables: Sequence[str] | None = None) -> list[str]:
    """Stop capturing these tables (None: every one, and drop snapgit's state tables too):
    their triggers and logs are dropped. Returns the tables that were captured."""

    def body(cur: Any) -> list[str]:
        if not _state_exists(cur):
            return []
        rows = _exec(cur, f"SELECT tbl, n FROM {STATE_TABLE} ORDER BY tbl").fetchall()
        done = []
        for table, n in rows:
            if tables is None or table in tables:
                _drop_table_capture(cur, int(n))
                _exec(cur, f"DELETE FROM {STATE_TABLE} WHERE tbl = ?", (table,))
                done.append(table)
        if tables is None:
            _exec(cur, f"DROP TABLE IF EXISTS {STATE_TABLE}")
            _exec(cur, f"DROP TABLE IF EXISTS {DB_TABLE}")
        return done

    return list(_run(db, "disable change capture", body))


# --- reading the log in a snapshot --------------------------------------------------------------


@dataclass
class TableLog:
    """A captured table's log as one read snapshot sees it."""

    table: str
    n: int
    key: list[str]
    base: bytes | None  # the table object the log is relative to
    gen: int
    seqs: list[int]  # the ids of the log rows the snapshot sees
    last_seq: int  # the AUTOINCREMENT counter the snapshot sees
    schema_version: int
    problem: str | None  # why the log cannot be trusted (None: it can, if base matches)
    triggers_ok: bool  # its log and triggers were all there, as snapgit made them

    @property
    def log(self) -> str:
        return log_table(self.n)


@dataclass
class CaptureView:
    """What one read snapshot sees of change capture: the token and every captured table."""

    token: str
    tables: dict[str, TableLog] = field(default_factory=dict)


def read_capture(snap: ReadSnapshot) -> CaptureView | None:
    """Capture's state and logs as ``snap`` sees them; None when capture was never enabled."""
    if snap.dialect != "sqlite":
        return None
    owned = {
        r[0]
        for r in snap.query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (?, ?)", (STATE_TABLE, DB_TABLE)
        )
    }
    if STATE_TABLE not in owned:
        return None
    token_rows = snap.query(f"SELECT token FROM {DB_TABLE}") if DB_TABLE in owned else []
    view = CaptureView(str(token_rows[0][0]) if token_rows else "")
    version = int(snap.query("PRAGMA schema_version")[0][0])
    triggers = {
        name: (tbl, sql)
        for name, tbl, sql in snap.query(
            "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger' AND substr(name, 1, 9) = '_snapgit_'"
        )
    }
    logs = {
        name
        for (name,) in snap.query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, 13) = '_snapgit_log_'"
        )
    }
    counters = (
        {
            name: int(seq)
            for name, seq in snap.query(
                "SELECT name, seq FROM sqlite_sequence WHERE substr(name, 1, 13) = '_snapgit_log_'"
            )
        }
        if _has_sequence(snap)
        else {}
    )
    for table, n, key_json, base, gen, next_seq, recorded in snap.query(
        f"SELECT tbl, n, key, base, gen, next_seq, schema_version FROM {STATE_TABLE} ORDER BY tbl"
    ):
        n, key = int(n), list(json.loads(key_json))
        log = log_table(n)
        problem: str | None = None
        seqs: list[int] = []
        last = counters.get(log, 0)
        expected = trigger_sql(snap.dialect, table, n, key)
        triggers_ok = False
        if log not in logs:
            problem = f"its change log {log} is gone"
        elif any(triggers.get(name) != (table, sql) for name, sql in expected.items()):
            problem = "its capture triggers are missing or changed"
        else:
            # From here on every change is logged: a reading in full now can be the log's base.
            triggers_ok = True
            seqs = [int(r[0]) for r in snap.query(f"SELECT {SEQ} FROM {_q(log)} ORDER BY {SEQ}")]
            if recorded is not None and int(recorded) != version:
                problem = "the database's schema changed since its log was last read"
            elif seqs != list(range(int(next_seq), last + 1)) or last < int(next_seq) - 1:
                problem = f"its change log {log} has a gap (log rows were deleted or the log was replaced)"
            elif base is None:
                problem = "its log has not been read by a commit yet"
        view.tables[table] = TableLog(
            table,
            n,
            key,
            bytes(base) if base is not None else None,
            int(gen),
            seqs,
            last,
            version,
            problem,
            triggers_ok,
        )
    return view


def _has_sequence(snap: ReadSnapshot) -> bool:
    return bool(snap.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'"))


@dataclass
class Consumed:
    """What a reading did with a captured table's log: the log rows it saw (now in its tree),
    and the table object it built (None: do not trust the log until a later reading)."""

    log: TableLog
    base: bytes | None


def consume(db: Database, consumed: Sequence[Consumed]) -> list[str]:
    """Delete the log rows each reading saw and move its table's base, in one transaction; a
    table whose ``gen`` moved since (another reading consumed) is left alone. Returns the
    tables consumed."""
    if not consumed:
        return []

    def body(cur: Any) -> list[str]:
        done = []
        for c in consumed:
            t = c.log
            cur.execute(
                f"UPDATE {STATE_TABLE} SET base = ?, gen = gen + 1, next_seq = ?, schema_version = ? "
                "WHERE tbl = ? AND gen = ? AND n = ?",
                (c.base, t.last_seq + 1, t.schema_version, t.table, t.gen, t.n),
            )
            if cur.rowcount != 1:
                continue
            for lo, hi in _runs(t.seqs):
                cur.execute(f"DELETE FROM {_q(t.log)} WHERE {SEQ} BETWEEN ? AND ?", (lo, hi))
            done.append(t.table)
        return done

    return list(_run(db, "consume the change log", body))


def _runs(ids: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted distinct ids as runs of consecutive ones: deleting ``BETWEEN lo AND hi`` of a run
    deletes exactly its ids, whatever other ids exist."""
    out: list[tuple[int, int]] = []
    for i in ids:
        if out and out[-1][1] == i - 1:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out
