"""Change capture inside the live database: what changed since a table was last read.

SQLite and MariaDB/MySQL: three row triggers (AFTER INSERT, UPDATE, DELETE) append the *key* of
every row written to a log table: the new key on insert, the old one on delete, and on update
the new key and, when the key itself changed (byte for byte), the old one too. Values are never
logged: the commit reads the rows of the logged keys as they are in its own read snapshot, so a
key logged twice, or logged by a transaction that the snapshot already shows, costs a re-read
and nothing else. Only a change that is *not* logged can make a commit wrong; everything below
is about seeing when that may have happened. PostgreSQL needs no trigger: a row's ``xmin`` tells
that it was written after a snapshot (:class:`PgPosition`).

What snapgit owns in the database (names starting ``_snapgit_``, which are never read as user
tables, see :data:`snapgit.db.reflect.LIST_TABLES_SQL`):

* ``_snapgit_capture``: one row per captured table: its name, the number ``n`` that names its
  log and triggers, its key columns (JSON), ``base`` (the id of the stored table object the log
  is relative to: the table as the last reading left it, or NULL), ``gen`` (bumped by each
  reading that consumes the log, so that two never both do), ``next_seq`` (SQLite: the first
  log row not yet consumed) and ``version`` (what DDL changes, as of that reading: SQLite's
  schema cookie; MariaDB the InnoDB table id and the triggers' creation times; PostgreSQL the
  snapshot's xmin and the cluster's system identifier);
* ``_snapgit_capture_db``: one row, a random token made by ``enable`` (shown by ``status``);
* ``_snapgit_log_<n>``: ``_snapgit_seq`` (auto-increment) and the key columns (SQLite: untyped,
  so every value is kept as the table stored it; MariaDB: of the key's types and collations);
* triggers ``_snapgit_<n>_ins``, ``_snapgit_<n>_upd``, ``_snapgit_<n>_del``.

A reading (:func:`read_capture`, inside the commit's read snapshot) trusts a table's log only
when every one of these holds, and says why not otherwise (:attr:`TableLog.problem`):

* its three triggers exist with exactly the text snapgit wrote (dropped, changed or renamed
  triggers are seen);
* ``version`` is the one recorded when the log was last consumed: on SQLite any DDL since
  (ALTER TABLE, a trigger dropped and created again, the log table replaced) bumps the cookie;
  on MariaDB TRUNCATE or DROP + CREATE gives a new table id, a trigger created again a new time;
* SQLite: the log has no gap: its rows are exactly ``next_seq`` .. the AUTOINCREMENT counter
  (SQLite serialises writers and a rollback rolls the counter back too, so rows deleted by hand
  show); MariaDB: no foreign key action changes the table's rows (they fire no trigger);
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
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from snapgit.db.errors import DatabaseError

if TYPE_CHECKING:
    from snapgit.db.database import Database, ReadSnapshot

__all__ = [
    "CatalogBefore",
    "catalog_before",
    "PgPosition",
    "pg_position",
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

_DIALECTS = ("sqlite", "mysql", "postgresql")


class CaptureError(DatabaseError):
    pass


def supported(dialect: str) -> bool:
    return dialect in _DIALECTS


def _quoter(dialect: str) -> Callable[[str], str]:
    if dialect == "mysql":
        return lambda name: "`" + name.replace("`", "``") + "`"
    return lambda name: '"' + name.replace('"', '""') + '"'


def log_table(n: int) -> str:
    return f"_snapgit_log_{n}"


def _trigger_names(n: int) -> tuple[str, str, str]:
    return f"_snapgit_{n}_ins", f"_snapgit_{n}_upd", f"_snapgit_{n}_del"


def trigger_sql(dialect: str, table: str, n: int, key: Sequence[str]) -> dict[str, str]:
    """The triggers of a captured table, by name, exactly as snapgit creates them: SQLite keeps
    the statement in ``sqlite_master`` as written (one space between words, no IF NOT EXISTS);
    MariaDB keeps the part after ``FOR EACH ROW`` as ``information_schema.TRIGGERS``'s
    ``ACTION_STATEMENT`` (:func:`trigger_body`)."""
    if dialect not in ("sqlite", "mysql"):
        raise CaptureError(f"change capture uses no triggers on {dialect}")
    q = _quoter(dialect)
    log, t = q(log_table(n)), q(table)
    cols = ", ".join(q(k) for k in key)

    def values(side: str) -> str:
        return ", ".join(f"{side}.{q(k)}" for k in key)

    ins, upd, dele = _trigger_names(n)
    if dialect == "sqlite":
        key_moved = " OR ".join(f"OLD.{q(k)} IS NOT NEW.{q(k)}" for k in key)
        return {
            ins: f"CREATE TRIGGER {q(ins)} AFTER INSERT ON {t} BEGIN "
            f"INSERT INTO {log} ({cols}) VALUES ({values('NEW')}); END",
            upd: f"CREATE TRIGGER {q(upd)} AFTER UPDATE ON {t} BEGIN "
            f"INSERT INTO {log} ({cols}) VALUES ({values('NEW')}); "
            f"INSERT INTO {log} ({cols}) SELECT {values('OLD')} WHERE {key_moved}; END",
            dele: f"CREATE TRIGGER {q(dele)} AFTER DELETE ON {t} BEGIN "
            f"INSERT INTO {log} ({cols}) VALUES ({values('OLD')}); END",
        }
    # MariaDB compares text by its collation ('a' = 'A' in most): the key moved when its bytes did
    same_key = " AND ".join(f"BINARY OLD.{q(k)} <=> BINARY NEW.{q(k)}" for k in key)
    return {
        ins: f"CREATE TRIGGER {q(ins)} AFTER INSERT ON {t} FOR EACH ROW "
        f"INSERT INTO {log} ({cols}) VALUES ({values('NEW')})",
        upd: f"CREATE TRIGGER {q(upd)} AFTER UPDATE ON {t} FOR EACH ROW "
        f"BEGIN INSERT INTO {log} ({cols}) VALUES ({values('NEW')}); "
        f"IF NOT ({same_key}) THEN INSERT INTO {log} ({cols}) VALUES ({values('OLD')}); END IF; END",
        dele: f"CREATE TRIGGER {q(dele)} AFTER DELETE ON {t} FOR EACH ROW "
        f"INSERT INTO {log} ({cols}) VALUES ({values('OLD')})",
    }


def trigger_body(dialect: str, sql: str) -> str:
    """What the database shows of a trigger created by ``sql``: SQLite the statement, MariaDB
    its body (``ACTION_STATEMENT``)."""
    return sql if dialect == "sqlite" else sql.split(" FOR EACH ROW ", 1)[1]


# --- enable and disable -------------------------------------------------------------------------


class _Cursor:
    """A DB-API cursor that takes ``?`` placeholders on every engine (PyMySQL's are ``%s``)."""

    def __init__(self, cur: Any, dialect: str) -> None:
        self.cur = cur
        self.dialect = dialect
        self.q = _quoter(dialect)

    def run(self, sql: str, params: Sequence[Any] = ()) -> _Cursor:
        if self.dialect != "sqlite" and params:
            sql = sql.replace("%", "%%").replace("?", "%s")
        self.cur.execute(sql, tuple(params)) if params else self.cur.execute(sql)
        return self

    def all(self) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.cur.fetchall()]

    @property
    def rowcount(self) -> int:
        return int(self.cur.rowcount)


_OWNED_SQL = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (?, ?)",
    "mysql": "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (?, ?)",
    "postgresql": "SELECT table_name FROM information_schema.tables "
    "WHERE table_schema = current_schema() AND table_name IN (?, ?)",
}


def _owned(cur: _Cursor) -> set[str]:
    return {str(r[0]) for r in cur.run(_OWNED_SQL[cur.dialect], (STATE_TABLE, DB_TABLE)).all()}


def _create_state(cur: _Cursor) -> None:
    innodb = " ENGINE=InnoDB" if cur.dialect == "mysql" else ""
    cur.run(
        f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (tbl VARCHAR(255) PRIMARY KEY, n INTEGER NOT NULL UNIQUE, "
        f"key_columns TEXT NOT NULL, base {'BYTEA' if cur.dialect == 'postgresql' else 'VARBINARY(64)'}, "
        "gen BIGINT NOT NULL, next_seq BIGINT NOT NULL, "
        f"version TEXT){innodb}"
    )
    cur.run(f"CREATE TABLE IF NOT EXISTS {DB_TABLE} (token VARCHAR(64) NOT NULL){innodb}")
    if not cur.run(f"SELECT token FROM {DB_TABLE}").all():
        cur.run(f"INSERT INTO {DB_TABLE} (token) VALUES (?)", (os.urandom(16).hex(),))


def _drop_table_capture(cur: _Cursor, n: int) -> None:
    if cur.dialect == "postgresql":  # nothing was installed (read by xmin)
        return
    for name in _trigger_names(n):
        cur.run(f"DROP TRIGGER IF EXISTS {cur.q(name)}")
    cur.run(f"DROP TABLE IF EXISTS {cur.q(log_table(n))}")


def _log_columns(cur: _Cursor, table: str, key: Sequence[str]) -> str:
    """The key columns of a table's log: untyped in SQLite (values are kept as stored); in
    MariaDB of the key columns' own types, character sets and collations, so that comparing
    them with the table's is comparing like with like."""
    if cur.dialect == "sqlite":
        return ", ".join(cur.q(k) for k in key)
    rows = cur.run(
        "SELECT COLUMN_NAME, COLUMN_TYPE, CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
        (table,),
    ).all()
    types = {str(r[0]): r for r in rows}
    out = []
    for k in key:
        _name, ctype, charset, collation = types[k]
        text = f" CHARACTER SET {charset} COLLATE {collation}" if charset else ""
        out.append(f"{cur.q(k)} {ctype}{text} NULL")
    return ", ".join(out)


def _run(db: Database, what: str, body: Callable[[_Cursor], Any]) -> Any:
    """``body(cursor)`` in one write transaction (SQLite: BEGIN IMMEDIATE, the write lock up
    front; MariaDB: DDL commits as it goes, so ``enable`` and ``disable`` are not atomic there,
    and running them again finishes what a failure left)."""
    if not supported(db.dialect):
        raise CaptureError(
            f"change capture is not available on {db.dialect} yet",
            hint="it works on SQLite and MariaDB/MySQL; commits of this database read every row",
        )
    with db.connection() as conn:
        raw = conn.cursor()
        cur = _Cursor(raw, db.dialect)
        try:
            if db.dialect != "postgresql":  # psycopg begins a transaction by itself
                cur.run("BEGIN IMMEDIATE" if db.dialect == "sqlite" else "START TRANSACTION")
            try:
                result = body(cur)
            except BaseException:
                conn.rollback() if db.dialect != "sqlite" else cur.run("ROLLBACK")
                raise
            conn.commit() if db.dialect != "sqlite" else cur.run("COMMIT")
            return result
        except CaptureError:
            raise
        except Exception as exc:
            raise db.error(f"cannot {what} on", exc) from exc
        finally:
            raw.close()


def enable(db: Database, tables: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    """Capture changes of these (table, key columns); a table captured already is set up again
    (its triggers and log made anew, its base cleared: the next commit reads it in full).
    Returns the tables set up."""
    for table, key in tables:
        if not key:
            raise CaptureError(
                f"table {table} has no primary key (nor a key in config.toml): its changed rows cannot be named",
                hint="leave it out with --tables; its commits read every row",
            )
        if SEQ in key:
            raise CaptureError(f"table {table} has a key column named {SEQ}, which capture's log uses")

    def body(cur: _Cursor) -> list[str]:
        _create_state(cur)
        innodb = " ENGINE=InnoDB" if cur.dialect == "mysql" else ""
        autoinc = (
            "INTEGER PRIMARY KEY AUTOINCREMENT"
            if cur.dialect == "sqlite"
            else "BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY"
        )
        done = []
        for table, key in tables:
            row = cur.run(f"SELECT n FROM {STATE_TABLE} WHERE tbl = ?", (table,)).all()
            if row:
                _drop_table_capture(cur, int(row[0][0]))
                cur.run(f"DELETE FROM {STATE_TABLE} WHERE tbl = ?", (table,))
            n = int(cur.run(f"SELECT coalesce(max(n), 0) + 1 FROM {STATE_TABLE}").all()[0][0])
            if cur.dialect == "postgresql":  # read by xmin: nothing is installed on the table
                cur.run(
                    f"INSERT INTO {STATE_TABLE} (tbl, n, key_columns, base, gen, next_seq, version) "
                    "VALUES (?, ?, ?, NULL, 0, 1, NULL)",
                    (table, n, json.dumps(list(key))),
                )
                done.append(table)
                continue
            _drop_table_capture(cur, n)  # left by an enable that failed half way (MariaDB)
            cols = _log_columns(cur, table, key)
            cur.run(f"CREATE TABLE {cur.q(log_table(n))} ({SEQ} {autoinc}, {cols}){innodb}")
            for sql in trigger_sql(cur.dialect, table, n, key).values():
                cur.run(sql)
            cur.run(
                f"INSERT INTO {STATE_TABLE} (tbl, n, key_columns, base, gen, next_seq, version) "
                "VALUES (?, ?, ?, NULL, 0, 1, NULL)",
                (table, n, json.dumps(list(key))),
            )
            done.append(table)
        return done

    return list(_run(db, "enable change capture", body))


def disable(db: Database, tables: Sequence[str] | None = None) -> list[str]:
    """Stop capturing these tables (None: every one, and drop snapgit's state tables too):
    their triggers and logs are dropped. Returns the tables that were captured."""

    def body(cur: _Cursor) -> list[str]:
        if STATE_TABLE not in _owned(cur):
            return []
        rows = cur.run(f"SELECT tbl, n FROM {STATE_TABLE} ORDER BY tbl").all()
        done = []
        for table, n in rows:
            if tables is None or table in tables:
                _drop_table_capture(cur, int(n))
                cur.run(f"DELETE FROM {STATE_TABLE} WHERE tbl = ?", (table,))
                done.append(str(table))
        if tables is None:
            cur.run(f"DROP TABLE IF EXISTS {STATE_TABLE}")
            cur.run(f"DROP TABLE IF EXISTS {DB_TABLE}")
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
    last_seq: int  # SQLite: the AUTOINCREMENT counter the snapshot sees
    version: str  # what DDL changes: SQLite's schema cookie; MariaDB the table's and triggers' ids
    problem: str | None  # why the log cannot be trusted (None: it can, if base matches)
    triggers_ok: bool  # its log and triggers were all there, as snapgit made them
    xmin_since: int | None = None  # PostgreSQL: the xmin of the snapshot that built ``base``

    @property
    def log(self) -> str:
        return log_table(self.n)


@dataclass
class CaptureView:
    """What one read snapshot sees of change capture: the token and every captured table."""

    token: str
    tables: dict[str, TableLog] = field(default_factory=dict)
    position: PgPosition | None = None  # PostgreSQL: where its transaction ids were


@dataclass(frozen=True)
class PgPosition:
    """Where a PostgreSQL read snapshot stands: its xmin as a 64-bit transaction id (every
    transaction it does not see has an id at or above it) and the cluster's identity."""

    xmin: int
    system: str | None

    def version(self) -> str:
        """As recorded with a table's base: ``xmin system``."""
        return f"{self.xmin} {self.system or '-'}"


def _since(now: PgPosition, recorded: str | None) -> tuple[int | None, str | None]:
    """(the recorded xmin, or None and why the rows written since it cannot be told)."""
    if recorded is None:
        return None, None
    try:
        xmin_text, system = recorded.split(" ", 1)
        xmin = int(xmin_text)
    except ValueError:
        return None, "its recorded transaction position is unreadable"
    if system != (now.system or "-"):
        return None, "the database is now another PostgreSQL cluster"
    if now.xmin < xmin:
        return None, "PostgreSQL's transaction ids went back since it was read (a restored cluster?)"
    if now.xmin - xmin >= 2**31:
        return None, "more than 2^31 transactions ran since it was read (xmin wraps around)"
    return xmin, None


def pg_position(snap: ReadSnapshot) -> PgPosition:
    xmin = int(_query(snap, "SELECT pg_snapshot_xmin(pg_current_snapshot())::text")[0][0])
    # (asked first: an error would end the read transaction) a role that may not read the
    # control file compares the transaction ids alone
    allowed = _query(snap, "SELECT has_function_privilege('pg_control_system()', 'EXECUTE')")[0][0]
    system = str(_query(snap, "SELECT system_identifier::text FROM pg_control_system()")[0][0]) if allowed else None
    return PgPosition(xmin, system)


def _query(snap: ReadSnapshot, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    if snap.dialect != "sqlite" and params:
        sql = sql.replace("%", "%%").replace("?", "%s")
    return snap.query(sql, params)


class _Catalog:
    """What the database's catalog says of snapgit's objects, read once per snapshot."""

    def __init__(self, dialect: str, query: Callable[..., list[tuple[Any, ...]]]) -> None:
        self.dialect = dialect
        if dialect == "sqlite":
            self.cookie = str(query("PRAGMA schema_version")[0][0])
            self.triggers = {
                str(name): (str(tbl), str(sql), "")
                for name, tbl, sql in query(
                    "SELECT name, tbl_name, sql FROM sqlite_master "
                    "WHERE type = 'trigger' AND substr(name, 1, 9) = '_snapgit_'",
                )
            }
            self.logs = {
                str(r[0])
                for r in query(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, 13) = '_snapgit_log_'",
                )
            }
            has_sequence = query("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'")
            self.counters = (
                {
                    str(name): int(seq)
                    for name, seq in query(
                        "SELECT name, seq FROM sqlite_sequence WHERE substr(name, 1, 13) = '_snapgit_log_'"
                    )
                }
                if has_sequence
                else {}
            )
            return
        self.triggers = {
            str(name): (str(tbl), str(body), f"{timing} {event} {created}")
            for name, tbl, body, timing, event, created in query(
                "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_STATEMENT, ACTION_TIMING, EVENT_MANIPULATION, "
                "CREATED FROM information_schema.TRIGGERS "
                "WHERE TRIGGER_SCHEMA = DATABASE() AND LEFT(TRIGGER_NAME, 9) = '_snapgit_'",
            )
        }
        self.logs = {
            str(r[0])
            for r in query(
                "SELECT TABLE_NAME FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND LEFT(TABLE_NAME, 13) = '_snapgit_log_'",
            )
        }
        # TRUNCATE (which fires no trigger) and DROP + CREATE give the table a new InnoDB id. It
        # takes the PROCESS privilege to see them: without it, a TRUNCATE shows only in the row
        # count (rows gone that no trigger logged), which every reading checks.
        self.table_ids: dict[str, str] = {}
        if query("SELECT 1 FROM information_schema.USER_PRIVILEGES WHERE PRIVILEGE_TYPE = 'PROCESS' LIMIT 1"):
            self.table_ids = {
                str(name).split("/", 1)[1]: str(tid)
                for name, tid in query(
                    "SELECT NAME, TABLE_ID FROM information_schema.INNODB_SYS_TABLES "
                    "WHERE NAME LIKE CONCAT(DATABASE(), '/%')",
                )
            }
        # MariaDB fires no trigger for the rows a foreign key's action changes in its table
        self.cascaded = {
            str(r[0])
            for r in query(
                "SELECT TABLE_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS "
                "WHERE CONSTRAINT_SCHEMA = DATABASE() "
                "AND (UPDATE_RULE NOT IN ('RESTRICT', 'NO ACTION') OR DELETE_RULE NOT IN ('RESTRICT', 'NO ACTION'))",
            )
        }
        self.counters = {}

    def version(self, table: str, n: int) -> str:
        """What changes when DDL may have let changes of ``table`` go unlogged."""
        if self.dialect == "sqlite":
            return self.cookie
        created = [self.triggers.get(name, ("", "", "-"))[2] for name in _trigger_names(n)]
        return " ".join([self.table_ids.get(table, "?"), *created])

    def problem(self, table: str, n: int, key: list[str]) -> str | None:
        """Why the log cannot be trusted whatever its rows say, or None."""
        log = log_table(n)
        if log not in self.logs:
            return f"its change log {log} is gone"
        for name, sql in trigger_sql(self.dialect, table, n, key).items():
            found = self.triggers.get(name)
            if found is None or found[:2] != (table, trigger_body(self.dialect, sql)):
                return "its capture triggers are missing or changed"
            if self.dialect == "mysql" and not found[2].startswith("AFTER "):
                return "its capture triggers are missing or changed"
        if self.dialect == "mysql" and table in self.cascaded:
            return "a foreign key's ON DELETE/UPDATE action changes its rows, which fires no trigger in MariaDB"
        return None


class CatalogBefore:
    """MariaDB's catalog (trigger creation times, InnoDB table ids) read just before a read
    snapshot starts: the catalog is not part of the snapshot, so it is read again inside, and a
    difference means DDL while snapgit read (a trigger created again, a TRUNCATE), whose effects
    the snapshot may straddle. (SQLite's schema cookie is read inside the snapshot itself.)"""

    def __init__(self, catalog: Any) -> None:
        self.catalog = catalog


def catalog_before(db: Database) -> CatalogBefore | None:
    """Read before :meth:`Database.snapshot` where the engine needs it (MariaDB), else None."""
    if db.dialect != "mysql":
        return None
    with db.connection() as conn:
        cur = _Cursor(conn.cursor(), db.dialect)
        try:
            if STATE_TABLE not in _owned(cur):  # capture is off: nothing to compare
                return None
            return CatalogBefore(_Catalog(db.dialect, lambda sql, params=(): cur.run(sql, params).all()))
        except Exception as exc:
            raise db.error("cannot read the catalog of", exc) from exc
        finally:
            cur.cur.close()


def read_capture(snap: ReadSnapshot, before: CatalogBefore | None = None) -> CaptureView | None:
    """Capture's state and logs as ``snap`` sees them; None when capture was never enabled.
    ``before``: on MariaDB, the catalog as :func:`catalog_before` read it just before the
    snapshot began (without it, every captured table is read in full)."""
    if not supported(snap.dialect):
        return None
    owned = {str(r[0]) for r in _query(snap, _OWNED_SQL[snap.dialect], (STATE_TABLE, DB_TABLE))}
    if STATE_TABLE not in owned:
        return None
    token_rows = _query(snap, f"SELECT token FROM {DB_TABLE}") if DB_TABLE in owned else []
    view = CaptureView(str(token_rows[0][0]) if token_rows else "")
    if snap.dialect == "postgresql":
        view.position = pos = pg_position(snap)
        for table, n, key_json, base, gen, recorded in _query(
            snap, f"SELECT tbl, n, key_columns, base, gen, version FROM {STATE_TABLE} ORDER BY tbl"
        ):
            t = TableLog(
                str(table), int(n), list(json.loads(key_json)), None, int(gen), [], 0, pos.version(), None, True
            )
            t.base = bytes(base) if base is not None else None
            t.xmin_since, t.problem = _since(pos, str(recorded) if recorded is not None else None)
            if t.problem is None and t.base is None:
                t.problem = "it has not been read by a commit since capture was enabled"
            view.tables[t.table] = t
        return view
    catalog = _Catalog(snap.dialect, lambda sql, params=(): _query(snap, sql, params))
    q = _quoter(snap.dialect)
    for table, n, key_json, base, gen, next_seq, recorded in _query(
        snap, f"SELECT tbl, n, key_columns, base, gen, next_seq, version FROM {STATE_TABLE} ORDER BY tbl"
    ):
        table, n, key, next_seq = str(table), int(n), list(json.loads(key_json)), int(next_seq)
        log = log_table(n)
        seqs: list[int] = []
        last = catalog.counters.get(log, 0)
        version = catalog.version(table, n)
        problem = catalog.problem(table, n, key)
        if (
            problem is None
            and snap.dialect == "mysql"
            and (before is None or before.catalog.version(table, n) != version)
        ):
            problem = "its table or capture triggers changed while snapgit read it"
        triggers_ok = problem is None
        if triggers_ok:
            # From here on every change is logged: a reading in full now can be the log's base.
            seqs = [int(r[0]) for r in _query(snap, f"SELECT {SEQ} FROM {q(log)} ORDER BY {SEQ}")]
            if recorded is not None and str(recorded) != version:
                problem = (
                    "the database's schema changed since its log was last read"
                    if snap.dialect == "sqlite"
                    else "it was truncated or recreated, or its triggers were, since its log was last read"
                )
            elif snap.dialect == "sqlite" and (seqs != list(range(next_seq, last + 1)) or last < next_seq - 1):
                # SQLite serialises writers and rolls the counter back with a transaction: the
                # log's ids run without a hole from the first unread one to the counter
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

    def body(cur: _Cursor) -> list[str]:
        done = []
        for c in consumed:
            t = c.log
            cur.run(
                f"UPDATE {STATE_TABLE} SET base = ?, gen = gen + 1, next_seq = ?, version = ? "
                "WHERE tbl = ? AND gen = ? AND n = ?",
                (c.base, t.last_seq + 1, t.version, t.table, t.gen, t.n),
            )
            if cur.rowcount != 1:
                continue
            for lo, hi in _runs(t.seqs):
                cur.run(f"DELETE FROM {cur.q(t.log)} WHERE {SEQ} BETWEEN ? AND ?", (lo, hi))
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
