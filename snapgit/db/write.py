"""Writing a live database: one transaction that applies a change set, or creates tables.

:meth:`WriteTransaction.begin` (which :meth:`Database.write <snapgit.db.database.Database.write>`
calls on a connection of its pool) opens **one transaction**; it commits when the ``with`` block
ends cleanly and rolls back on any exception, leaving the database exactly as it was:

* SQLite: ``BEGIN IMMEDIATE`` (the write lock is taken up front, so the transaction cannot fail
  half way because another writer got in first);
* PostgreSQL: an ordinary READ COMMITTED transaction, session ``TimeZone`` UTC;
* MariaDB/MySQL: ``START TRANSACTION``, session ``time_zone = '+00:00'``, and a strict
  ``sql_mode`` (a value that does not fit is an error, never silently cut).

Rows are given as full rows of canonical values in ``schema.sorted_names`` order, as a scan
yields them; :mod:`snapgit.db.params` turns them into what the driver takes, one converter per
column, so that reading them back gives the same rows. Statements are batched: ``executemany``
(PostgreSQL pipelines it; PyMySQL turns an INSERT into multi-row INSERTs), deletes by key as
multi-row ``IN`` lists, and updates on MariaDB through a temporary table and one ``UPDATE ...
JOIN`` (PyMySQL would send one UPDATE per row).

What the caller must know:

* **Order.** PostgreSQL and MariaDB check foreign keys at each statement (MariaDB at each row):
  delete children before parents, insert and update parents before children, and rows of a
  self-referencing table parents first. SQLite does not enforce them (its default): call
  :meth:`WriteTransaction.check_foreign_keys` with the tables written before the block ends (it
  also checks the tables that refer to them, so deleted parents are caught); on PostgreSQL it
  also checks deferred constraints, which would otherwise fail at commit. ON DELETE actions
  (CASCADE, SET NULL) run on PostgreSQL and MariaDB, not on SQLite.
* **Exact rows.** An update or a delete by key must find exactly one row per key, and a keyless
  delete one stored row per row given; otherwise :class:`~snapgit.db.errors.RowMatchError` (the
  database changed since it was read, or the key is not unique).
* **Keyless deletes** remove one occurrence per row given (give a row twice to remove two). On
  SQLite and PostgreSQL the table is scanned once per call and rows are matched exactly as a
  scan reads them, then deleted by ``rowid`` / ``ctid``; on MariaDB each distinct row is one
  ``DELETE ... WHERE <every column matches> LIMIT n`` (text compared as bytes, JSON with
  JSON_EQUALS), which scans the table each time.
* **Errors.** Anything that fails raises a :class:`~snapgit.db.errors.DatabaseError` naming the
  table (a foreign key violation a :class:`~snapgit.db.errors.ForeignKeyViolationError`);
  after one, the transaction can only be rolled back: leave the block. A block that swallows the
  error and ends cleanly is rolled back all the same, and raises.
* **DDL.** MariaDB commits DDL at once (CREATE and DROP TABLE end the transaction), so a block
  either creates or drops tables, or writes rows, never both. ``restore --into`` runs
  ``create_tables`` in a block of its own, then writes the rows in a second block, and if that
  fails drops what it created with ``drop_tables`` in a third. ``create_tables`` cleans up after
  itself if it fails half way on MariaDB (elsewhere the rollback does).
* **Sequences.** :meth:`WriteTransaction.reset_sequences` moves PostgreSQL sequences (serial
  and identity columns) forward past the largest id, never back; ``setval`` is not undone by a
  rollback, which is harmless (a gap in ids). SQLite and MariaDB move their counters on explicit
  inserts already.
* MariaDB tables on an engine without transactions (MyISAM, Aria, ...) are refused: a rollback
  could not undo the writes.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import operator
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from snapgit.db.bulk import (
    PACKET_MAX,
    CopyStream,
    StatementPipe,
    mysql_row_formatter,
    mysql_statements,
    pg_copy,
    pg_copy_form,
    pg_tuple_columns,
)
from snapgit.db.ddl import (
    Target,
    add_foreign_key_sql,
    create_table_sql,
    key_sql,
    pg_collation_of_native,
    pg_type_of_native,
    quote,
    table_order,
    with_referenced_types,
)
from snapgit.db.errors import DatabaseError, ForeignKeyViolationError, RowMatchError, driver_reason, one_line
from snapgit.db.params import WriteValueError, canonical_write, column_write, sqlite_param_kind
from snapgit.db.pgtypes import create_type_sql, existing_type_defs
from snapgit.db.reflect import LIST_TABLES_SQL
from snapgit.db.rows import batch_converter
from snapgit.db.types import column_read
from snapgit.encoding import encode_row
from snapgit.jsonvalue import to_text
from snapgit.native import pg_copy_rows, sqlite_params
from snapgit.schema import ForeignKey, PgTypeDef, TableSchema

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = ["WriteTransaction"]

_BATCH = 10_000  # rows converted and sent per executemany
_IN_ROWS = 1_000  # keys per DELETE ... IN (...)
_MAX_PARAMS = 30_000 if sqlite3.sqlite_version_info >= (3, 32) else 999
_PROBES = 1_000  # rows looked at to name the one that failed
_tmp_ids = itertools.count(1)
_scan_ids = itertools.count(1)
_MATCH_HINT = "the database changed since it was read, or the key is not unique; nothing was written"
_UTF8 = ("utf8mb4", "utf8mb3", "utf8", "ascii", "binary")
_TRANSACTIONAL_ENGINES = ("innodb", "xtradb", "rocksdb", "tokudb", "ndbcluster", "ndb")

# _fail hands back the error it records, of the type it was given
_Failure = TypeVar("_Failure", bound=DatabaseError)


def _key_text(names: Sequence[str], values: Sequence[Any]) -> str:
    return f"({', '.join(names)})=({', '.join(to_text(v) for v in values)})"


@dataclass
class _Live:
    """What a write needs to know of a table as the database has it now."""

    columns: list[str]  # every column of the live table
    pg_types: dict[str, tuple[str, bool, bool]] = field(default_factory=dict)  # cast, is json, is array
    pg_oids: dict[str, tuple[str, int]] = field(default_factory=dict)  # type name, type oid
    my_columns: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # data type, charset
    always_identity: set[str] = field(default_factory=set)  # PostgreSQL GENERATED ALWAYS AS IDENTITY


class WriteTransaction:
    """One write transaction on a database: see the module docstring. Made by :meth:`begin`,
    never directly.

    ``dialect`` is snapgit's name of the database's dialect (sqlite, postgresql or mysql),
    ``url_redacted`` how messages name the database, and ``password`` what they must never
    show (a driver's message may quote it)."""

    def __init__(self, conn: Connection, dialect: str, url_redacted: str, password: str | None = None) -> None:
        self._conn = conn
        self.dialect = dialect
        self.url_redacted = url_redacted
        self._password = password
        self._raw: Any = None
        self._dbapi_error: type[BaseException] = conn.dialect.loaded_dbapi.Error
        self._mariadb = bool(getattr(conn.dialect, "is_mariadb", False))
        self._ph = "?" if self.dialect == "sqlite" else "%s"
        self._live_cache: dict[str, _Live] = {}
        self._did_rows = False
        self._did_ddl = False
        self._failed: DatabaseError | None = None
        self._sql_mode: str | None = None
        self._savepoints = itertools.count(1)
        self._created: list[str] = []  # MariaDB: tables this block created (committed already)
        self._packet: int | None = None  # MariaDB: the largest statement to send
        self._pipe: StatementPipe | None = None  # MariaDB: inserts still running in the background
        self._stream: CopyStream | None = None  # PostgreSQL: a COPY left open for the next batch
        # per table, insert_records' columns for pg_copy_rows (None: it cannot write the table)
        self._tuple_columns: dict[str, tuple[tuple[int, int, int], ...] | None] = {}
        self._sqlite_kinds: dict[str, bytes | None] = {}  # per table, insert_records' kinds on SQLite
        self._stream_context: tuple[str, str, TableSchema, Sequence[Sequence[Any]]] | None = None
        self._formatters: dict[str, Callable[[Sequence[Sequence[Any]]], list[str]]] = {}

    # --- the transaction ------------------------------------------------------------------------

    @classmethod
    @contextlib.contextmanager
    def begin(
        cls, conn: Connection, dialect: str, url_redacted: str, password: str | None = None
    ) -> Iterator[WriteTransaction]:
        """One write transaction on ``conn`` (SQLAlchemy's connection, which the caller closes
        afterwards) for the ``with`` block: committed when the block ends cleanly, rolled back
        on any exception, so that the database is then exactly as it was."""
        tx = cls(conn, dialect, url_redacted, password)
        try:
            tx._begin()
            try:
                yield tx
            except BaseException:
                tx._rollback()
                raise
            tx._commit()
        finally:
            tx._close()
            tx._raw = None

    def _error(self, what: str, exc: BaseException) -> DatabaseError:
        return DatabaseError(f"{what} {self.url_redacted}: {driver_reason(exc, self._password)}")

    def _begin(self) -> None:
        try:
            self._raw = self._conn.connection.dbapi_connection
            if self.dialect == "sqlite":
                if self._raw.in_transaction:
                    self._raw.rollback()
                self._exec("BEGIN IMMEDIATE")
            elif self.dialect == "postgresql":
                self._raw.rollback()  # start from an idle connection; the first statement begins
            else:
                mode = self._query("SELECT @@SESSION.sql_mode")[0][0] or ""
                if "STRICT_TRANS_TABLES" not in mode and "STRICT_ALL_TABLES" not in mode:
                    self._sql_mode = mode
                    self._exec("SET SESSION sql_mode = %s", (",".join(filter(None, [mode, "STRICT_ALL_TABLES"])),))
                self._raw.begin()
        except self._dbapi_error as exc:
            raise self._error("cannot start a write transaction on", exc) from exc

    def _commit(self) -> None:
        if self._failed is None:
            try:
                self._settle()  # the last batch of inserts may still run, and fail
            except BaseException:
                self._rollback()
                raise
        if self._failed is not None:
            self._rollback()
            raise DatabaseError(
                f"the write transaction on {self.url_redacted} was rolled back: "
                f"an earlier write failed ({self._failed.message})",
                hint="leave the write() block when a write fails; nothing was written",
            ) from self._failed
        try:
            self._raw.commit()
            self._created = []
        except self._dbapi_error as exc:
            self._rollback()
            raise self._translate(exc, "commit the writes to", None) from exc

    def _rollback(self) -> None:
        if self._stream is not None:
            self._stream.abort()
            self._stream = None
        if self._pipe is not None:
            self._pipe.wait()  # its error, if any, changes nothing now
        with contextlib.suppress(Exception):  # a broken connection is discarded by the pool
            self._raw.rollback()
        if self._created:  # MariaDB committed the CREATEs: undo them by hand
            self._drop_created()

    def _drop_created(self) -> None:
        with contextlib.suppress(Exception):
            self._exec("SET SESSION foreign_key_checks = 0")
            for name in reversed(self._created):
                self._exec(f"DROP TABLE IF EXISTS {quote(name, 'mysql')}")
        with contextlib.suppress(Exception):
            self._exec("SET SESSION foreign_key_checks = 1")
        self._created = []

    def _close(self) -> None:
        if self._sql_mode is not None:
            with contextlib.suppress(Exception):
                self._exec("SET SESSION sql_mode = %s", (self._sql_mode,))
                self._raw.commit()

    # --- plumbing -------------------------------------------------------------------------------

    def _q(self, name: str) -> str:
        """An identifier for statements with parameters: "%" doubled where it is a placeholder."""
        q = quote(name, self.dialect)
        return q if self.dialect == "sqlite" else q.replace("%", "%%")

    def _settle(self) -> None:
        """Wait for the inserts still running in the background (MariaDB), and raise their
        error as the insert that failed would have."""
        if self._stream is not None:
            stream, self._stream = self._stream, None
            assert self._stream_context is not None  # set with every write to the stream
            verb, table, schema, rows = self._stream_context
            with self._errors(verb, table, schema, rows):
                stream.close()
        if self._pipe is None:
            return
        failed = self._pipe.wait()
        if failed is not None:
            exc, (verb, table, schema, rows) = failed
            with self._errors(verb, table, schema, rows):
                raise exc

    def _exec(self, sql: str, params: Sequence[Any] | None = None) -> int:
        self._settle()
        cur = self._raw.cursor()
        try:
            cur.execute(sql) if params is None else cur.execute(sql, params)
            return cur.rowcount
        finally:
            cur.close()

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        if not rows:
            return 0
        self._settle()
        cur = self._raw.cursor()
        try:
            cur.executemany(sql, rows)
            return cur.rowcount
        finally:
            cur.close()

    def _query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        self._settle()
        cur = self._raw.cursor()
        try:
            cur.execute(sql) if params is None else cur.execute(sql, params)
            return [tuple(r) for r in cur.fetchall()]
        finally:
            cur.close()

    def _check_usable(self) -> None:
        if self._failed is not None:
            raise DatabaseError(
                f"an earlier write to {self.url_redacted} failed ({self._failed.message})",
                hint="leave the write() block: the transaction can only be rolled back",
            ) from self._failed
        if self._raw is None:
            raise DatabaseError("this write transaction is over")

    def _start_rows(self) -> None:
        self._check_usable()
        if self._did_ddl:
            raise self._mixed()
        self._did_rows = True

    def _start_ddl(self) -> None:
        self._check_usable()
        if self._did_rows:
            raise self._mixed()
        self._did_ddl = True

    def _mixed(self) -> DatabaseError:
        return DatabaseError(
            "one write() block cannot both create or drop tables and write rows",
            hint="MariaDB commits DDL at once: create the tables in one write() block, then write the rows in another",
        )

    def _fail(self, exc: _Failure) -> _Failure:
        self._failed = exc
        return exc

    def _savepoint(self) -> str:
        name = f"snapgit_sp{next(self._savepoints)}"
        self._exec(f"SAVEPOINT {name}")
        return name

    @contextlib.contextmanager
    def _errors(
        self, verb: str, table: str | None, schema: TableSchema | None = None, rows: Sequence[Sequence[Any]] = ()
    ) -> Iterator[None]:
        """Turn whatever goes wrong into one DatabaseError, and mark the transaction failed."""
        try:
            yield
        except DatabaseError as exc:
            self._failed = exc
            raise
        except (self._dbapi_error, OverflowError) as exc:  # sqlite3 raises OverflowError itself
            raise self._fail(self._translate(exc, verb, table, schema, rows)) from exc

    def _translate(
        self,
        exc: BaseException,
        verb: str,
        table: str | None,
        schema: TableSchema | None = None,
        rows: Sequence[Sequence[Any]] = (),
    ) -> DatabaseError:
        fk = self._foreign_key_error(exc, schema, rows)
        if fk is not None:
            return fk
        where = f"table {table} in " if table else ""
        return DatabaseError(f"cannot {verb} {where}{self.url_redacted}: {driver_reason(exc, self._password)}")

    # --- what the database has ------------------------------------------------------------------

    def _table_names(self) -> set[str]:
        return {r[0] for r in self._query(LIST_TABLES_SQL[self.dialect])}

    def _live(self, schema: TableSchema) -> _Live:
        table = schema.name
        live = self._live_cache.get(table)
        if live is not None:
            return live
        if self.dialect == "sqlite":
            rows = self._query("SELECT name FROM pragma_table_xinfo(?)", (table,))
            if not rows:
                raise DatabaseError(f"no table {table} in {self.url_redacted}")
            live = _Live([r[0] for r in rows])
        elif self.dialect == "postgresql":
            if self._query("SELECT to_regclass(%s)", (quote(table, "postgresql"),))[0][0] is None:
                raise DatabaseError(f"no table {table} in {self.url_redacted}")
            rows = self._query(
                "SELECT a.attname, format_type(a.atttypid, NULL), t.typname, t.typcategory, e.typname, "
                "a.attidentity = 'a', t.oid "
                "FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
                "LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem AND t.typcategory = 'A' "
                "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped",
                (quote(table, "postgresql"),),
            )
            live = _Live([r[0] for r in rows])
            live.always_identity = {r[0] for r in rows if r[5]}
            for name, spelled, typname, category, elem, _, oid in rows:
                live.pg_oids[name] = (typname, oid)
                is_array = category == "A"
                if is_array and elem in ("bpchar", "bit"):  # "character[]" would mean char(1)[]
                    spelled = {"bpchar": "bpchar[]", "bit": "varbit[]"}[elem]
                json = (elem if is_array else typname) in ("json", "jsonb")
                live.pg_types[name] = (spelled, json, is_array)
        else:
            engine = self._query(
                "SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
                (table,),
            )
            if not engine:
                raise DatabaseError(f"no table {table} in {self.url_redacted}")
            if (engine[0][0] or "").lower() not in _TRANSACTIONAL_ENGINES:
                raise DatabaseError(
                    f"table {table} in {self.url_redacted} uses the {engine[0][0]} engine, which "
                    "has no transactions: snapgit cannot write it safely",
                    hint=f"convert it: ALTER TABLE {quote(table, 'mysql')} ENGINE=InnoDB",
                )
            rows = self._query(
                "SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_SET_NAME FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
                (table,),
            )
            live = _Live([r[0] for r in rows])
            live.my_columns = {r[0]: (r[1].lower(), r[2]) for r in rows}
        self._live_cache[table] = live
        return live

    # --- values ---------------------------------------------------------------------------------

    def _converters(self, schema: TableSchema, live: _Live) -> list[Any]:
        cols = {c.name: c for c in schema.columns}
        return [column_write(self.dialect, cols[n].type) for n in schema.sorted_names]

    def _convert(
        self, schema: TableSchema, live: _Live
    ) -> Callable[[Sequence[Sequence[Any]]], Sequence[Sequence[Any]]]:
        """A function converting a batch of full rows to parameters, naming the column of a value
        that cannot be written."""
        names = schema.sorted_names
        converters = self._converters(schema, live)
        batch = batch_converter(converters)
        width = len(names)

        def convert(chunk: Sequence[Sequence[Any]]) -> Sequence[Sequence[Any]]:
            for row in chunk:
                if len(row) != width:
                    raise DatabaseError(
                        f"a row for table {schema.name} has {len(row)} values, not one per column "
                        f"({width}: {', '.join(names)})"
                    )
                break
            if batch is None:
                return list(chunk)
            try:
                return batch(chunk)
            except (ValueError, TypeError, OverflowError, ArithmeticError, AttributeError) as exc:
                raise self._value_error(schema, converters, chunk, exc) from exc

        return convert

    def _value_error(
        self, schema: TableSchema, converters: list[Any], chunk: Sequence[Sequence[Any]], exc: Exception
    ) -> DatabaseError:
        names = schema.sorted_names
        for row in chunk:
            for name, conv, value in zip(names, converters, row, strict=False):
                if conv is None:
                    continue
                try:
                    conv(value)
                except Exception as inner:  # noqa: BLE001 - it is reported, with its column
                    reason = str(inner) if isinstance(inner, WriteValueError) else f"{type(inner).__name__}: {inner}"
                    return DatabaseError(
                        f"cannot write {to_text(value)} to column {schema.name}.{name} "
                        f"({self.dialect}): {one_line(reason)}"
                    )
        return DatabaseError(f"cannot write a row to table {schema.name}: {one_line(str(exc))}")

    def _key_positions(self, schema: TableSchema, key: Sequence[str]) -> list[int]:
        names = schema.sorted_names
        if not key:
            raise DatabaseError(
                f"no key columns given for table {schema.name}",
                hint="rows of a keyless table are deleted and inserted, never updated",
            )
        out = []
        for k in key:
            if k not in names:
                raise DatabaseError(f"key column {k} is not a column of table {schema.name}")
            out.append(names.index(k))
        return out

    def _value_sql(self, live: _Live, name: str) -> str:
        """The placeholder of a value written to column ``name``: arrays on PostgreSQL are cast
        to the column's array type (psycopg would guess the element type from the values)."""
        if self.dialect == "postgresql":
            spelled, _, is_array = live.pg_types.get(name, ("", False, False))
            if is_array:
                return f"%s::{spelled}"
        return self._ph

    def _eq_parts(self, live: _Live, name: str) -> tuple[str, str]:
        """``(column, placeholder)`` of ``column = value`` for a key column (the form an index
        serves)."""
        c = self._q(name)
        if self.dialect == "postgresql":
            spelled, json, is_array = live.pg_types.get(name, ("", False, False))
            if json:  # json has no equality; jsonb does
                cast = "jsonb[]" if is_array else "jsonb"
                return f"{c}::{cast}", f"%s::{cast}"
            if is_array:
                return c, f"%s::{spelled}"
        return c, self._ph

    def _eq_sql(self, live: _Live, name: str) -> str:
        return " = ".join(self._eq_parts(live, name))

    # --- inserts --------------------------------------------------------------------------------

    def insert_rows(self, schema: TableSchema, rows: Sequence[Sequence[Any]], *, background: bool = False) -> None:
        """Insert ``rows`` (full rows in ``schema.sorted_names`` order) into ``schema.name``.

        ``background`` (PostgreSQL and MariaDB): return once the rows are sent, while the
        server inserts them, so that the caller can prepare the next batch meanwhile (MariaDB:
        a helper thread sends the statements; PostgreSQL: one COPY stays open while the rows
        are for the same table). If they fail, the next call on this transaction raises the
        error (or the end of the ``with`` block does), as this call would have."""
        self._start_rows()
        if not rows:
            return
        table = schema.name
        with self._errors("insert rows into", table, schema):
            live = self._live(schema)
            names = schema.sorted_names
            convert = self._convert(schema, live)
            t = self._q(table)
            if not names:
                sql = f"INSERT INTO {t} () VALUES ()" if self.dialect == "mysql" else f"INSERT INTO {t} DEFAULT VALUES"
                for _ in rows:
                    self._exec(sql, None if self.dialect == "sqlite" else ())
                return
            sql = self._insert_sql(schema, live)
            prefix = (
                f"INSERT INTO {quote(table, self.dialect)} ({', '.join(quote(n, self.dialect) for n in names)}) VALUES "
            )
            for start in range(0, len(rows), _BATCH):
                chunk = rows[start : start + _BATCH]
                params = convert(chunk)
                with self._errors("insert rows into", table, schema, chunk):
                    if self.dialect == "postgresql":
                        types = [live.pg_oids[n] for n in names]
                        if not background:
                            self._settle()
                            pg_copy(self._raw, table, names, types, params)
                            continue
                        binary, params = pg_copy_form(types, params)
                        form = "binary" if binary else "text"
                        if self._stream is not None and self._stream.key != (table, tuple(names), form):
                            self._settle()
                        if self._stream is None:
                            self._stream = CopyStream(self._raw, table, names, types, form)
                        self._stream_context = ("insert rows into", table, schema, chunk)
                        self._stream.write(params)
                    elif self.dialect == "mysql":
                        statements = mysql_statements(
                            prefix, self._mysql_formatter(schema)(params), self._mysql_packet()
                        )
                        self._settle()
                        if self._pipe is None:
                            self._pipe = StatementPipe(self._raw)
                        self._pipe.send(statements, ("insert rows into", table, schema, chunk))
                        if not background:
                            self._settle()
                    else:
                        self._many(sql, params)

    def _insert_sql(self, schema: TableSchema, live: _Live) -> str:
        names = schema.sorted_names
        cols = ", ".join(self._q(n) for n in names)
        values = ", ".join(self._value_sql(live, n) for n in names)
        # explicit ids: what a restore writes, into a column that otherwise refuses them
        overriding = " OVERRIDING SYSTEM VALUE" if live.always_identity & set(names) else ""
        return f"INSERT INTO {self._q(schema.name)} ({cols}){overriding} VALUES ({values})"

    def insert_records(
        self, schema: TableSchema, data: bytes, n: int, limits: dict[int, tuple[str, int, int]] | None
    ) -> bool:
        """Insert the ``n`` stored records joined in ``data`` (full rows of ``schema``, as the
        store holds them) without making their values, when every value is one
        :func:`snapgit.native.pg_copy_rows` writes (PostgreSQL, with the C extension); False:
        nothing was written, insert the decoded rows instead (:meth:`insert_rows`). Like
        ``insert_rows(background=True)``: the rows go into a COPY left open for the next call.
        ``limits``: the table's :class:`snapgit.db.fit.RowChecker` ``plain_limits`` ({}: the
        rows are not checked; None: they must be, one by one).

        SQLite (unchecked rows only): the records become the statement's parameters in C
        (:func:`snapgit.native.sqlite_params`), as the rows path converts them."""
        if self.dialect == "mysql" or limits is None or not n:
            return False
        if self.dialect == "sqlite":
            return not limits and self._insert_sqlite_records(schema, data, n)
        if self._raw.info.encoding != "utf-8":
            # the server reads a binary COPY's text in the client encoding; the records hold UTF-8
            return False
        self._start_rows()
        table = schema.name
        with self._errors("insert rows into", table, schema):
            live = self._live(schema)
            names = schema.sorted_names
            if table not in self._tuple_columns:
                types = {c.name: c.type for c in schema.columns}
                passes = [canonical_write("postgresql", types[n]) is None for n in names]
                self._tuple_columns[table] = pg_tuple_columns([live.pg_oids[n] for n in names], passes, limits)
            columns = self._tuple_columns[table]
            if columns is None:
                return False
            tuples = pg_copy_rows(data, n, columns)
            if tuples is None:
                return False
            if self._stream is not None and self._stream.key != (table, tuple(names), "tuples"):
                self._settle()
            if self._stream is None:
                self._stream = CopyStream(self._raw, table, names, [live.pg_oids[n] for n in names], "tuples")
            self._stream_context = ("insert rows into", table, schema, ())
            self._stream.write_tuples(tuples)
        return True

    def _insert_sqlite_records(self, schema: TableSchema, data: bytes, n: int) -> bool:
        table = schema.name
        if table not in self._sqlite_kinds:
            types = {c.name: c.type for c in schema.columns}
            each = [sqlite_param_kind(types[name]) for name in schema.sorted_names]
            self._sqlite_kinds[table] = bytes(k for k in each if k is not None) if each and None not in each else None
        kinds = self._sqlite_kinds[table]
        if kinds is None:
            return False
        params = sqlite_params(data, n, kinds)
        if params is None:
            return False
        self._start_rows()
        with self._errors("insert rows into", table, schema):
            self._many(self._insert_sql(schema, self._live(schema)), params)
        return True

    def _mysql_packet(self) -> int:
        """The largest statement to send: the server's max_allowed_packet, at most 16 MB."""
        if self._packet is None:
            self._packet = min(int(self._query("SELECT @@SESSION.max_allowed_packet")[0][0]), PACKET_MAX)
        return self._packet

    def _mysql_formatter(self, schema: TableSchema) -> Callable[[Sequence[Sequence[Any]]], list[str]]:
        fmt = self._formatters.get(schema.name)
        if fmt is None:
            from pymysql.constants import SERVER_STATUS
            from pymysql.converters import escape_string

            types = {c.name: c.type for c in schema.columns}
            plain = not self._raw.server_status & SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES
            fmt = mysql_row_formatter(
                [types[n] for n in schema.sorted_names], self._raw.escape, escape_string if plain else None
            )
            self._formatters[schema.name] = fmt
        return fmt

    # --- updates --------------------------------------------------------------------------------

    def update_rows(self, schema: TableSchema, key: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Set every non-key column of the row with each row's key to the row's values."""
        self._start_rows()
        table = schema.name
        positions = self._key_positions(schema, key)
        if not rows:
            return
        names = schema.sorted_names
        others = [i for i in range(len(names)) if i not in positions]
        if not others:
            return  # every column is in the key: nothing to set
        with self._errors("update rows of", table, schema):
            live = self._live(schema)
            rows = list({_key_of(r, positions): r for r in rows}.values())  # one update per key
            params = self._convert(schema, live)
            if self.dialect == "mysql":
                self._mysql_update(schema, key, positions, others, live, rows, params)
                return
            sets = ", ".join(f"{self._q(names[i])} = {self._value_sql(live, names[i])}" for i in others)
            for pattern, group in _by_null_pattern(rows, positions):
                if self.dialect == "postgresql" and not any(pattern):
                    for start in range(0, len(group), _BATCH):
                        self._pg_update_from(
                            schema, key, positions, others, live, group[start : start + _BATCH], params
                        )
                    continue
                where = " AND ".join(
                    f"{self._q(names[p])} IS NULL" if null else self._eq_sql(live, names[p])
                    for p, null in zip(positions, pattern, strict=False)
                )
                sql = f"UPDATE {self._q(table)} SET {sets} WHERE {where}"
                pick = _picker([*others, *(p for p, null in zip(positions, pattern, strict=False) if not null)])
                for start in range(0, len(group), _BATCH):
                    chunk = group[start : start + _BATCH]
                    converted = params(chunk)
                    sp = self._savepoint()
                    with self._errors("update rows of", table, schema, chunk):
                        n = self._many(sql, [pick(r) for r in converted])
                    if n != len(chunk):
                        self._exec(f"ROLLBACK TO SAVEPOINT {sp}")
                        raise self._match_error("update rows of", schema, key, positions, chunk, live)
                    self._exec(f"RELEASE SAVEPOINT {sp}")

    def _pg_update_from(
        self,
        schema: TableSchema,
        key: Sequence[str],
        positions: list[int],
        others: list[int],
        live: _Live,
        chunk: Sequence[Sequence[Any]],
        params: Callable[[Sequence[Sequence[Any]]], Sequence[Sequence[Any]]],
    ) -> None:
        """PostgreSQL, keys without NULLs: the new rows go by COPY into a temporary table with
        the table's column types, then one ``UPDATE ... FROM`` sets them (an UPDATE a row,
        pipelined, took four times as long). Every key must update exactly one row."""
        names = schema.sorted_names
        table = schema.name
        tmp = f"snapgit_update_{next(_tmp_ids)}"
        q = partial(quote, dialect="postgresql")
        cols = ", ".join(q(n) for n in names)
        sets = ", ".join(f"{q(names[i])} = n.{q(names[i])}" for i in others)
        on = []
        for p in positions:
            column, _value = self._eq_parts(live, names[p])  # json keys compare as jsonb
            cast = column[len(self._q(names[p])) :]
            on.append(f"t.{q(names[p])}{cast} = n.{q(names[p])}{cast}")
        converted = params(chunk)
        sp = self._savepoint()
        with self._errors("update rows of", table, schema, chunk):
            self._exec(f"CREATE TEMPORARY TABLE {q(tmp)} ON COMMIT DROP AS SELECT {cols} FROM {q(table)} WHERE false")
            pg_copy(self._raw, tmp, names, [live.pg_oids[n] for n in names], converted)
            n = self._exec(f"UPDATE {q(table)} AS t SET {sets} FROM {q(tmp)} AS n WHERE {' AND '.join(on)}")
            self._exec(f"DROP TABLE {q(tmp)}")
        if n != len(chunk):
            self._exec(f"ROLLBACK TO SAVEPOINT {sp}")
            raise self._match_error("update rows of", schema, key, positions, chunk, live)
        self._exec(f"RELEASE SAVEPOINT {sp}")

    def _mysql_update(
        self,
        schema: TableSchema,
        key: Sequence[str],
        positions: list[int],
        others: list[int],
        live: _Live,
        rows: list[Sequence[Any]],
        params: Callable[[Sequence[Sequence[Any]]], Sequence[Sequence[Any]]],
    ) -> None:
        """MariaDB: the new rows go into a temporary table (multi-row INSERTs), then one
        UPDATE ... JOIN sets them. CREATE TEMPORARY TABLE does not end the transaction."""
        names = schema.sorted_names
        table = schema.name
        tmp = f"snapgit_update_{next(_tmp_ids)}"
        cols = ", ".join(self._q(n) for n in names)
        self._exec(f"CREATE TEMPORARY TABLE {self._q(tmp)} AS SELECT {cols} FROM {self._q(table)} WHERE 1 = 0", ())
        try:
            # (spelled as insert_rows spells them: the same literals as PyMySQL's, faster)
            prefix = f"INSERT INTO {quote(tmp, 'mysql')} ({', '.join(quote(n, 'mysql') for n in names)}) VALUES "
            fmt = self._mysql_formatter(schema)
            for start in range(0, len(rows), _BATCH):
                for sql in mysql_statements(prefix, fmt(params(rows[start : start + _BATCH])), self._mysql_packet()):
                    self._exec(sql)
            on = " AND ".join(f"t.{self._q(names[p])} <=> n.{self._q(names[p])}" for p in positions)
            sets = ", ".join(f"t.{self._q(names[i])} = n.{self._q(names[i])}" for i in others)
            sp = self._savepoint()
            with self._errors("update rows of", table, schema, rows):
                n = self._exec(f"UPDATE {self._q(table)} t JOIN {self._q(tmp)} n ON {on} SET {sets}", ())
            if n != len(rows):
                self._exec(f"ROLLBACK TO SAVEPOINT {sp}")
                raise self._match_error("update rows of", schema, key, positions, rows, live)
        finally:
            with contextlib.suppress(Exception):
                self._exec(f"DROP TEMPORARY TABLE IF EXISTS {self._q(tmp)}", ())

    # --- deletes --------------------------------------------------------------------------------

    def delete_rows(self, schema: TableSchema, key: Sequence[str] | None, rows: Sequence[Sequence[Any]]) -> None:
        """Delete ``rows`` (full rows) from ``schema.name``: by ``key``, or, for a keyless table
        (``key`` None or empty), one stored occurrence per row given."""
        self._start_rows()
        table = schema.name
        positions = self._key_positions(schema, key) if key else None  # None or []: keyless
        if not rows:
            return
        with self._errors("delete rows from", table, schema):
            live = self._live(schema)
            if positions is None:
                if self.dialect == "mysql":
                    self._mysql_delete_keyless(schema, live, rows)
                else:
                    self._delete_keyless_by_scan(schema, live, rows)
                return
            assert key  # positions is None exactly when key is None or empty
            rows = list({_key_of(r, positions): r for r in rows}.values())  # one delete per key
            convert = self._convert(schema, live)
            names = schema.sorted_names
            t = self._q(table)
            for pattern, group in _by_null_pattern(rows, positions):
                present = [p for p, null in zip(positions, pattern, strict=False) if not null]
                nulls = [f"{self._q(names[p])} IS NULL" for p, null in zip(positions, pattern, strict=False) if null]
                pairs = [self._eq_parts(live, names[p]) for p in present]
                if len(pairs) == 1:
                    lhs, one = pairs[0]
                else:
                    lhs = "(" + ", ".join(c for c, _ in pairs) + ")"
                    one = "(" + ", ".join(v for _, v in pairs) + ")"
                pick = _picker(present)
                per = max(1, min(_IN_ROWS, _MAX_PARAMS // max(1, len(present))))
                for start in range(0, len(group), per):
                    chunk = group[start : start + per]
                    conds = list(nulls)
                    args: list[Any] = []
                    if present:  # (with no key column present, the group is one all-NULL key)
                        conds.insert(0, f"{lhs} IN ({', '.join([one] * len(chunk))})")
                        args = [v for r in convert(chunk) for v in pick(r)]
                    sp = self._savepoint()
                    with self._errors("delete rows from", table, schema, chunk):
                        n = self._exec(f"DELETE FROM {t} WHERE {' AND '.join(conds)}", args)
                    if n != len(chunk):
                        self._exec(f"ROLLBACK TO SAVEPOINT {sp}")
                        raise self._match_error("delete rows from", schema, key, positions, chunk, live)
                    self._exec(f"RELEASE SAVEPOINT {sp}")

    def _delete_keyless_by_scan(self, schema: TableSchema, live: _Live, rows: Sequence[Sequence[Any]]) -> None:
        """SQLite, PostgreSQL: read the table once as a scan reads it, pick one stored row per
        row given (matched by their canonical bytes), delete those by rowid / ctid."""
        table = schema.name
        wanted = collections.Counter(encode_row(r) for r in rows)
        remaining = sum(wanted.values())
        names = schema.sorted_names
        cols = {c.name: c for c in schema.columns}
        reads = [column_read(self.dialect, cols[n].type, cols[n].native) for n in names]
        convert = batch_converter([None, *(r.convert for r in reads)])
        if self.dialect == "sqlite":
            rid = next(r for r in ("rowid", "_rowid_", "oid") if r not in live.columns)
        else:
            rid = "ctid::text"
        select = ", ".join([rid, *(r.select.format(c=self._q(n)) for r, n in zip(reads, names, strict=False))])
        sql = f"SELECT {select} FROM {self._q(table)}"
        found: list[Any] = []
        if self.dialect == "postgresql":
            cur = self._raw.cursor(name=f"snapgit_delete_scan_{next(_scan_ids)}")
            cur.itersize = _BATCH
        else:
            cur = self._raw.cursor()
        try:
            cur.execute(sql) if self.dialect == "sqlite" else cur.execute(sql, ())
            while remaining:
                batch = cur.fetchmany(_BATCH)
                if not batch:
                    break
                if convert is not None:
                    batch = convert(batch)
                for r in batch:
                    b = encode_row(r[1:])
                    if wanted.get(b):
                        wanted[b] -= 1
                        remaining -= 1
                        found.append(r[0])
        finally:
            cur.close()
        if remaining:
            missing = next(r for r in rows if wanted.get(encode_row(r)))
            raise RowMatchError(
                f"cannot delete from table {table} in {self.url_redacted}: row "
                f"{_key_text(names, missing)} is not there (as many times as it is to be deleted)",
                hint=_MATCH_HINT,
            )
        where = f"{rid} = ?" if self.dialect == "sqlite" else "ctid = %s::tid"
        sql = f"DELETE FROM {self._q(table)} WHERE {where}"
        for start in range(0, len(found), _BATCH):
            chunk = [(x,) for x in found[start : start + _BATCH]]
            with self._errors("delete rows from", table, schema, rows):
                n = self._many(sql, chunk)
            if n != len(chunk):
                raise RowMatchError(
                    f"cannot delete from table {table} in {self.url_redacted}: rows changed while "
                    "they were being deleted",
                    hint=_MATCH_HINT,
                )

    def _mysql_delete_keyless(self, schema: TableSchema, live: _Live, rows: Sequence[Sequence[Any]]) -> None:
        """MariaDB: ``DELETE ... WHERE <each column matches exactly> LIMIT n`` per distinct row."""
        table = schema.name
        names = schema.sorted_names
        cols = {c.name: c for c in schema.columns}
        counts: dict[bytes, list[Any]] = {}
        for r in rows:
            entry = counts.setdefault(encode_row(r), [r, 0])
            entry[1] += 1
        distinct = [e[0] for e in counts.values()]
        params = self._convert(schema, live)(distinct)
        for (row, n), values in zip(counts.values(), params, strict=False):
            conds, args = [], []
            for name, v in zip(names, values, strict=False):
                c = self._q(name)
                if v is None:
                    conds.append(f"{c} IS NULL")
                    continue
                conds.append(self._mysql_match(c, cols[name].type, live.my_columns.get(name)))
                args.append(v)
            where = " AND ".join(conds) or "1 = 1"
            with self._errors("delete rows from", table, schema, [row]):
                deleted = self._exec(f"DELETE FROM {self._q(table)} WHERE {where} LIMIT {int(n)}", args)
            if deleted != n:
                raise RowMatchError(
                    f"cannot delete from table {table} in {self.url_redacted}: row "
                    f"{_key_text(names, row)} is there {deleted} time(s), not the {n} to delete",
                    hint=_MATCH_HINT,
                )

    def _mysql_match(self, c: str, portable: str, live: tuple[str, str | None] | None) -> str:
        """A condition true exactly when the column holds the value a scan would read as the
        parameter: text byte for byte (not by the collation, which may ignore case or trailing
        spaces), JSON by value on MySQL and by its text on MariaDB (which keeps the text a scan
        reads: its spelling, or the canonical text the parameter then is)."""
        base = portable.split("(", 1)[0]
        data_type, charset = live or ("", None)
        if base == "json" or data_type == "json":
            return f"CAST({c} AS BINARY) = CAST(%s AS BINARY)" if self._mariadb else f"{c} = CAST(%s AS JSON)"
        if base in ("text", "varchar", "char"):
            if data_type in ("inet4", "inet6"):
                return f"CAST(CAST({c} AS CHAR) AS BINARY) = CAST(%s AS BINARY)"
            if charset is None or charset in _UTF8:
                return f"CAST({c} AS BINARY) = CAST(%s AS BINARY)"
            return f"CAST(CONVERT({c} USING utf8mb4) AS BINARY) = CAST(%s AS BINARY)"
        return f"{c} = %s"

    # --- errors naming the row ------------------------------------------------------------------

    def _match_error(
        self,
        verb: str,
        schema: TableSchema,
        key: Sequence[str],
        positions: list[int],
        rows: Sequence[Sequence[Any]],
        live: _Live,
    ) -> RowMatchError:
        """The first row whose key does not pick exactly one stored row (the caller rolled back
        to before the statement, so the table is as it was)."""
        names = schema.sorted_names
        table = schema.name
        convert = self._convert(schema, live)
        for row, converted in zip(rows[:_PROBES], convert(list(rows[:_PROBES])), strict=False):
            conds, args = [], []
            for p in positions:
                if converted[p] is None:
                    conds.append(f"{self._q(names[p])} IS NULL")
                else:
                    conds.append(self._eq_sql(live, names[p]))
                    args.append(converted[p])
            n = self._query(f"SELECT count(*) FROM {self._q(table)} WHERE {' AND '.join(conds)}", args)[0][0]
            if n != 1:
                what = "is not there" if n == 0 else f"matches {n} rows"
                exc = RowMatchError(
                    f"cannot {verb} table {table} in {self.url_redacted}: key "
                    f"{_key_text(key, [row[p] for p in positions])} {what}",
                    hint=_MATCH_HINT,
                )
                return self._fail(exc)
        exc = RowMatchError(
            f"cannot {verb} table {table} in {self.url_redacted}: not every key picks exactly one row",
            hint=_MATCH_HINT,
        )
        return self._fail(exc)

    def _foreign_key_error(
        self, exc: BaseException, schema: TableSchema | None, rows: Sequence[Sequence[Any]]
    ) -> ForeignKeyViolationError | None:
        if self.dialect == "postgresql":
            if getattr(exc, "sqlstate", None) != "23503":
                return None
            diag = exc.diag  # type: ignore[attr-defined]
            detail = diag.message_detail or ""
            m = re.match(r'Key \((.*)\)=\((.*)\) is not present in table "(.*)"\.', detail)
            if m:
                return ForeignKeyViolationError(
                    diag.table_name or "?",
                    m.group(3),
                    f"({m.group(1)})=({m.group(2)})",
                    constraint=diag.constraint_name,
                )
            m = re.match(r'Key \((.*)\)=\((.*)\) is still referenced from table "(.*)"\.', detail)
            on_parent = re.search(r'(?:update or delete on|on) table "(.*?)" violates', diag.message_primary or "")
            if m:
                return ForeignKeyViolationError(
                    m.group(3),
                    on_parent.group(1) if on_parent else None,
                    f"({m.group(1)})=({m.group(2)})",
                    constraint=diag.constraint_name,
                    deleted=True,
                )
            return ForeignKeyViolationError(
                diag.table_name or "?",
                None,
                None,
                constraint=diag.constraint_name,
                reason=one_line(detail or diag.message_primary or str(exc)),
            )
        if self.dialect == "mysql":
            args = exc.args
            code = args[0] if args else None
            if code not in (1216, 1217, 1451, 1452):
                return None
            text = str(args[1]) if len(args) > 1 else ""
            m = re.search(
                r"\(`(?:[^`]|``)*`\.`((?:[^`]|``)*)`, CONSTRAINT `((?:[^`]|``)*)` FOREIGN KEY \((.*?)\) "
                r"REFERENCES `((?:[^`]|``)*)` \((.*?)\)",
                text,
            )
            if not m:
                if schema is None:
                    return None
                return ForeignKeyViolationError(schema.name, None, None, reason=one_line(text))
            child, name, fk_cols, parent, ref_cols = m.groups()
            child, name, parent = (x.replace("``", "`") for x in (child, name, parent))
            fk_cols_l = re.findall(r"`((?:[^`]|``)*)`", fk_cols)
            ref_cols_l = re.findall(r"`((?:[^`]|``)*)`", ref_cols)
            deleted = code in (1217, 1451)
            key = self._mysql_offender(schema, rows, child, fk_cols_l, parent, ref_cols_l, deleted)
            return ForeignKeyViolationError(child, parent, key, constraint=name, deleted=deleted)
        if "FOREIGN KEY constraint failed" in str(exc) and schema is not None:  # PRAGMA foreign_keys=ON
            return ForeignKeyViolationError(schema.name, None, None, reason=str(exc))
        return None

    def _mysql_offender(
        self,
        schema: TableSchema | None,
        rows: Sequence[Sequence[Any]],
        child: str,
        fk_cols: list[str],
        parent: str,
        ref_cols: list[str],
        deleted: bool,
    ) -> str | None:
        """The key of the first row of the failed statement that breaks the foreign key: a
        child row whose parent is missing, or a parent row that children still refer to. InnoDB
        undid the statement, so the tables are as they were before it."""
        if schema is None or not rows:
            return None
        mine, other_table, other_cols = (ref_cols, child, fk_cols) if deleted else (fk_cols, parent, ref_cols)
        names = schema.sorted_names
        if any(c not in names for c in mine):
            return None
        with contextlib.suppress(Exception):
            live = self._live(schema)
            convert = self._convert(schema, live)
            probe = " AND ".join(f"{self._q(c)} = %s" for c in other_cols)
            sql = f"SELECT 1 FROM {self._q(other_table)} WHERE {probe} LIMIT 1"
            positions = [names.index(c) for c in mine]
            for row, converted in zip(rows[:_PROBES], convert(list(rows[:_PROBES])), strict=False):
                values = [converted[p] for p in positions]
                if any(v is None for v in values):
                    continue
                exists = bool(self._query(sql, values))
                if exists == deleted:
                    return _key_text(mine, [row[p] for p in positions])
        return None

    # --- foreign keys and sequences -------------------------------------------------------------

    def check_foreign_keys(self, tables: Sequence[str]) -> None:
        """Raise :class:`ForeignKeyViolationError` if a row of ``tables``, or of a table that
        refers to one of them, points at a row that does not exist. SQLite: PRAGMA
        foreign_key_check. PostgreSQL: deferred constraints are checked now. MariaDB checks every
        statement already."""
        self._check_usable()
        if self.dialect == "postgresql":
            with self._errors("check the foreign keys of", None):
                self._exec("SET CONSTRAINTS ALL IMMEDIATE")
            return
        if self.dialect != "sqlite" or not tables:
            return
        with self._errors("check the foreign keys of", None):
            wanted = set(tables)
            marks = ", ".join("?" * len(wanted))
            referring = self._query(
                "SELECT DISTINCT m.name FROM sqlite_master m, pragma_foreign_key_list(m.name) f "
                f"WHERE m.type = 'table' AND f.\"table\" IN ({marks})",
                sorted(wanted),
            )
            for table in sorted(wanted | {r[0] for r in referring}):
                violations = self._query(f"PRAGMA foreign_key_check({quote(table, 'sqlite')})")
                if violations:
                    raise self._sqlite_violation(table, violations)

    def _sqlite_violation(self, table: str, violations: list[tuple[Any, ...]]) -> ForeignKeyViolationError:
        _, rowid, parent, fkid = violations[0]
        fk = self._query('SELECT "from", "to" FROM pragma_foreign_key_list(?) WHERE id = ? ORDER BY seq', (table, fkid))
        fk_cols = [r[0] for r in fk]
        t = quote(table, "sqlite")
        key = None
        if rowid is not None and fk_cols:
            pk = [r[0] for r in self._query("SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk", (table,))]
            cols = fk_cols + pk
            got = self._query(
                f"SELECT {', '.join(quote(c, 'sqlite') for c in cols)} FROM {t} WHERE rowid = ?", (rowid,)
            )
            if got:
                values = got[0]
                key = _key_text(fk_cols, values[: len(fk_cols)])
                if pk:
                    key = f"{key} of row {_key_text(pk, values[len(fk_cols) :])}"
        return ForeignKeyViolationError(table, parent, key or f"({', '.join(fk_cols)})", more=len(violations) - 1)

    def reset_sequences(self, schema: TableSchema) -> None:
        """Move the sequences of ``schema.name``'s serial and identity columns (PostgreSQL) past
        the largest value in the table, never back. SQLite and MariaDB move their counters on
        explicit inserts, so there is nothing to do there."""
        self._check_usable()
        if self.dialect != "postgresql":
            return
        table = schema.name
        with self._errors("reset the sequences of", table):
            self._live(schema)
            regclass = quote(table, "postgresql")
            seqs = self._query(
                "SELECT a.attname, coalesce(pg_get_serial_sequence(%s, a.attname), "
                "  substring(pg_get_expr(d.adbin, d.adrelid) from $$^nextval\\('(.*)'::regclass\\)$$)) "
                "FROM pg_catalog.pg_attribute a "
                "LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
                "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped",
                (regclass, regclass),
            )
            for column, seq in seqs:
                if not seq:
                    continue
                c = self._q(column)
                self._query(
                    f"SELECT setval(%s::regclass, m.v) FROM (SELECT max({c})::bigint AS v FROM {self._q(table)}) m, "
                    f"{seq.replace('%', '%%')} s "
                    "WHERE m.v IS NOT NULL AND (m.v > s.last_value OR (m.v = s.last_value AND NOT s.is_called))",
                    (seq,),
                )

    # --- tables ---------------------------------------------------------------------------------

    def create_tables(
        self,
        schemas: Sequence[TableSchema],
        *,
        foreign_keys_later: bool = False,
        keys_later: bool = False,
        source_dialect: str | None = None,
    ) -> list[tuple[str, ForeignKey]]:
        """Create ``schemas``' tables (see :mod:`snapgit.db.ddl` for the types), parents first.
        Refuses if one exists already. On MariaDB every CREATE commits at once: call this in a
        ``write()`` block of its own. If the block fails, the tables are gone again on every
        database (on MariaDB they are dropped).

        ``foreign_keys_later``: create the tables without their foreign keys (except on SQLite,
        which cannot add one to a table, and checks them only when asked), and return them, for
        :meth:`add_foreign_keys` once the rows are in: rows can then be loaded in any order (a
        self-referencing table's children before their parents), and are checked once, as the
        constraint is added.

        ``keys_later`` (with ``foreign_keys_later``; PostgreSQL, elsewhere it changes nothing):
        create the tables without their primary keys, unique constraints and indexes too, for
        :meth:`add_keys` once the rows are in, before the foreign keys.

        ``source_dialect``: the dialect ``schemas`` were read from, when known; MariaDB creates
        the columns of schemas read from MariaDB/MySQL with their native types
        (:func:`snapgit.db.ddl.mysql_native_type`). Foreign-key columns are created with the
        type of the key they refer to (:func:`snapgit.db.ddl.with_referenced_types`).
        PostgreSQL does the same for schemas read from PostgreSQL, and a type or collation it
        does not have refuses the whole call first."""
        self._start_ddl()
        if not schemas:
            return []
        names = [s.name for s in schemas]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise DatabaseError(f"table {dupes[0]} is given twice")
        target = replace(self._target(), source=source_dialect)
        schemas = with_referenced_types(schemas)
        with self._errors("create tables in", None):
            existing = self._table_names()
            there = sorted(set(names) & existing)
            if there:
                raise DatabaseError(
                    f"table {there[0]} exists already in {self.url_redacted}"
                    if len(there) == 1
                    else f"tables {', '.join(there)} exist already in {self.url_redacted}",
                    hint="restore into an empty database, or drop the tables first",
                )
            for s in schemas:
                for fk in s.foreign_keys:
                    if fk.ref_table not in names and fk.ref_table not in existing:
                        raise DatabaseError(
                            f"table {s.name} has a foreign key to table {fk.ref_table}, which is "
                            f"neither being created nor in {self.url_redacted}"
                        )
            if target.source == "postgresql" == self.dialect:
                self._pg_create_types(schemas)
                self._pg_check_native_types(schemas)
            if self.dialect == "mysql":
                with contextlib.suppress(self._dbapi_error):
                    self._exec("SET SESSION explicit_defaults_for_timestamp = 1")
            later: list[tuple[str, ForeignKey]] = []
            pending: list[tuple[str, ForeignKey]] = []
            made = set(existing)
            for s in table_order(schemas):
                inline = []
                for fk in s.foreign_keys:
                    if self.dialect == "sqlite":
                        inline.append(fk)
                    elif foreign_keys_later:
                        pending.append((s.name, fk))
                    elif fk.ref_table in made or fk.ref_table == s.name:
                        inline.append(fk)
                    else:
                        later.append((s.name, fk))
                keys = not (keys_later and foreign_keys_later and self.dialect == "postgresql")
                for sql in create_table_sql(s, target, inline, keys=keys):
                    with self._errors("create", s.name):
                        self._exec(sql)
                if self.dialect == "mysql":
                    self._created.append(s.name)
                made.add(s.name)
            self.add_foreign_keys(later)
        return pending

    def add_keys(self, schemas: Sequence[TableSchema]) -> None:
        """Add the primary keys, unique constraints and indexes that ``create_tables(...,
        keys_later=True)`` left out (PostgreSQL; elsewhere they are there already). DDL, like
        :meth:`add_foreign_keys`, which comes after: a foreign key needs its parent's key."""
        self._start_ddl()
        if self.dialect != "postgresql":
            return
        target = self._target()
        for schema in schemas:
            for sql in key_sql(schema, target):
                with self._errors("add the keys of", schema.name):
                    self._exec(sql)

    def add_foreign_keys(self, foreign_keys: Sequence[tuple[str, ForeignKey]]) -> None:
        """Add foreign keys (table, key) to existing tables; the database checks their rows as it
        does. DDL: on MariaDB each commits at once, so not in a block that writes rows.

        MariaDB checks the rows by copying the whole table (ALTER TABLE ... ALGORITHM=COPY),
        seconds a million rows. So there every key's rows are checked first by one query (rows
        whose key columns are all set and match no row of the parent: what InnoDB refuses),
        and the keys then added without their check, in place."""
        self._start_ddl()
        if self.dialect == "mysql" and foreign_keys:
            for table, fk in foreign_keys:
                with self._errors("check the foreign keys of", table):
                    self._mysql_check_foreign_key(table, fk)
            with self._errors("add a foreign key to", None):
                self._exec("SET SESSION foreign_key_checks = 0")
            try:
                for table, fk in foreign_keys:
                    with self._errors("add a foreign key to", table):
                        self._exec(add_foreign_key_sql(table, fk, self.dialect))
            finally:
                with contextlib.suppress(Exception):
                    self._exec("SET SESSION foreign_key_checks = 1")
            return
        for table, fk in foreign_keys:
            with self._errors("add a foreign key to", table):
                self._exec(add_foreign_key_sql(table, fk, self.dialect))

    def _mysql_check_foreign_key(self, table: str, fk: ForeignKey) -> None:
        c = [f"c.{quote(n, 'mysql')}" for n in fk.columns]
        match = " AND ".join(f"p.{quote(r, 'mysql')} = {x}" for r, x in zip(fk.ref_columns, c, strict=True))
        set_ = " AND ".join(f"{x} IS NOT NULL" for x in c)
        bad = self._query(
            f"SELECT {', '.join(c)} FROM {quote(table, 'mysql')} c WHERE {set_} AND NOT EXISTS "
            f"(SELECT 1 FROM {quote(fk.ref_table, 'mysql')} p WHERE {match}) LIMIT 1"
        )
        if bad:
            raise self._fail(
                ForeignKeyViolationError(table, fk.ref_table, _key_text(fk.columns, bad[0]), constraint=fk.name)
            )

    def drop_tables(self, names: Sequence[str]) -> None:
        """Drop the tables ``names`` that exist; refused if a table not among ``names`` refers to
        one of them. For cleaning up after a failed ``restore --into``; like create_tables, in a
        ``write()`` block of its own. MariaDB drops at once: a rollback of the block does not
        bring the tables back there."""
        self._start_ddl()
        with self._errors("drop tables in", None):
            existing = self._table_names()
            todo = [n for n in dict.fromkeys(names) if n in existing]
            if not todo:
                return
            if self.dialect == "postgresql":  # one statement: foreign keys among them are fine
                self._exec(f"DROP TABLE {', '.join(quote(n, self.dialect) for n in todo)}")
                return
            if self.dialect == "sqlite":
                pairs = self._query(
                    'SELECT m.name, f."table" FROM sqlite_master m, pragma_foreign_key_list(m.name) f '
                    "WHERE m.type = 'table'"
                )
            else:
                pairs = self._query(
                    "SELECT TABLE_NAME, REFERENCED_TABLE_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS "
                    "WHERE CONSTRAINT_SCHEMA = DATABASE()"
                )
            kept = sorted((child, parent) for child, parent in pairs if parent in todo and child not in todo)
            if kept:
                child, parent = kept[0]
                raise DatabaseError(f"cannot drop table {parent} in {self.url_redacted}: table {child} refers to it")
            if self.dialect == "mysql":  # foreign keys among them (cycles too) are fine
                self._exec("SET SESSION foreign_key_checks = 0")
                try:
                    self._exec(f"DROP TABLE {', '.join(quote(n, self.dialect) for n in todo)}")
                finally:
                    self._exec("SET SESSION foreign_key_checks = 1")
            else:  # SQLite does not enforce foreign keys on this connection
                for name in todo:
                    self._exec(f"DROP TABLE {quote(name, 'sqlite')}")

    def _pg_create_types(self, schemas: Sequence[TableSchema]) -> None:
        """Create the enum, domain and composite types the schemas record (``pg_types``), each
        after the types it uses; one the database has with the same definition is used as it
        is, one it has otherwise refuses the whole call. PostgreSQL's DDL is transactional: a
        failed block takes the new types away with the tables."""
        wanted: dict[str, PgTypeDef] = {}
        for s in schemas:  # a table lists a type after those it uses, so first seen is in order
            for d in s.pg_types:
                wanted.setdefault(d.name, d)
        if not wanted:
            return
        existing = existing_type_defs(self._query, list(wanted))
        for name, d in wanted.items():
            if name in existing:
                if existing[name] != d:
                    raise DatabaseError(
                        f"type {name} exists in {self.url_redacted} with another definition than the snapshot's {d.kind}",
                        hint="drop or rename the type there, or restore into a database without it",
                    )
                continue
            with self._errors(f"create type {name} in", None):
                self._exec(create_type_sql(d))

    def _pg_check_native_types(self, schemas: Sequence[TableSchema]) -> None:
        """Refuse, naming table, column and type, a native type or collation this PostgreSQL
        database does not have: an enum, domain or composite type is not in the schema, nor is
        an extension's type (citext), so the target must have them before tables use them."""
        for s in schemas:
            for col in s.columns:
                if not col.native:
                    continue
                spelled = pg_type_of_native(col.native)
                known = self._query("SELECT to_regtype(%s) IS NOT NULL", (spelled,))[0][0]
                if not known:
                    raise DatabaseError(
                        f"column {s.name}.{col.name} has type {spelled}, which {self.url_redacted} does not have",
                        hint="create the type there first (CREATE TYPE, CREATE DOMAIN or CREATE EXTENSION), "
                        "or restore into a database that has it",
                    )
                collation = pg_collation_of_native(col.native)
                if collation is not None and not self._query(
                    "SELECT 1 FROM pg_catalog.pg_collation WHERE collname = %s", (collation,)
                ):
                    raise DatabaseError(
                        f'column {s.name}.{col.name} has collation "{collation}", which {self.url_redacted} does not have',
                        hint="create the collation there first (CREATE COLLATION), or restore into a database that has it",
                    )

    def _target(self) -> Target:
        if self.dialect != "mysql":
            return Target(self.dialect)
        version = str(self._query("SELECT VERSION()")[0][0])
        m = re.match(r"(\d+)\.(\d+)", version)
        has_uuid = m is not None and self._mariadb and (int(m.group(1)), int(m.group(2))) >= (10, 7)
        return Target("mysql", mariadb=self._mariadb, has_uuid=has_uuid)


def _key_of(row: Sequence[Any], positions: list[int]) -> bytes:
    return encode_row([row[p] for p in positions])


def _picker(positions: Sequence[int]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """``row -> tuple of the values at positions`` (itemgetter, which returns a bare value for one
    position)."""
    if len(positions) == 1:
        (p,) = positions
        return lambda row: (row[p],)
    return operator.itemgetter(*positions)


def _by_null_pattern(
    rows: Sequence[Sequence[Any]], positions: list[int]
) -> Iterable[tuple[tuple[bool, ...], list[Sequence[Any]]]]:
    """Rows grouped by which key columns are NULL (``= NULL`` is never true; each pattern gets
    its own statement with ``IS NULL``). Almost always one group with no NULLs."""
    groups: dict[tuple[bool, ...], list[Sequence[Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r[p] is None for p in positions), []).append(r)
    return sorted(groups.items())
