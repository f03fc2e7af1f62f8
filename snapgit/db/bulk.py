"""Bulk inserts: how a batch of rows gets into PostgreSQL and MariaDB fast, and exactly.

:meth:`WriteTransaction.insert_rows <snapgit.db.write.WriteTransaction.insert_rows>` hands
each batch of converted rows (statement parameters, :mod:`snapgit.db.params`) to the writer of
its dialect here. Both keep the contract of the row-by-row statements they replace: reading the
rows back gives the same values, every constraint and foreign key is checked as an INSERT
checks it, and everything happens in the caller's transaction.

**PostgreSQL: COPY.** ``COPY ... FROM STDIN`` through psycopg's ``cursor.copy()``, in one of two
formats chosen per batch:

* *binary* when every column of the live table has a type whose binary form psycopg writes
  exactly (:data:`BINARY_TYPES`) and every value of the batch in it has the Python type that
  form is made from (integers also within the column's range: psycopg's binary integer dumpers
  wrap around silently, where the server would refuse). About twice as fast as text, for the
  client and the server.
* *text* otherwise (enums, domains, arrays, JSON, numeric, a value that is text where the column
  is a date...): each value's text is parsed by the column's input function, as the old
  ``INSERT`` parsed an untyped parameter. One difference to a typed parameter is made up here:
  an aware datetime for a ``timestamp`` column was cast in the session's time zone (UTC), while
  ``timestamp``'s input would drop the offset, so it is written as its UTC wall time.

COPY writes the given values into identity columns, as ``OVERRIDING SYSTEM VALUE`` does.

**MariaDB: multi-row INSERT by bytes.** ``INSERT INTO t (...) VALUES (...), (...), ...``
statements as large as the server takes (``max_allowed_packet``, at most 16 MB), each value
written as PyMySQL's own ``escape`` writes it (so the server reads the same literal), with the
common types (integers, text, NULL) formatted inline instead of through one Python call each.
``LOAD DATA LOCAL INFILE`` is not used: with LOCAL the server turns errors into warnings
(a value cut to fit, a duplicate key skipped), which the strict transaction must never allow.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import operator
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from snapgit.db.ddl import quote
from snapgit.native import PG_KINDS

__all__ = ["BINARY_TYPES", "CopyStream", "pg_copy", "pg_copy_form", "pg_tuple_columns"]

_NONE = type(None)
_tzinfo = operator.attrgetter("tzinfo")

# PostgreSQL type name -> (the Python type of its values, (lowest, highest) for integers)
BINARY_TYPES: dict[str, tuple[type, tuple[int, int] | None]] = {
    "int2": (int, (-(2**15), 2**15 - 1)),
    "int4": (int, (-(2**31), 2**31 - 1)),
    "int8": (int, (-(2**63), 2**63 - 1)),
    "float8": (float, None),
    "bool": (bool, None),
    "text": (str, None),
    "varchar": (str, None),
    "bytea": (bytes, None),
    "date": (_dt.date, None),
    "timestamp": (_dt.datetime, None),
    "timestamptz": (_dt.datetime, None),
    "uuid": (uuid.UUID, None),
}


def _binary_fits(typname: str, column: Sequence[Any]) -> bool:
    """Whether every value of ``column`` can go in binary form to a column of ``typname``.
    Each test is a pass in C over the column: this runs on every value a restore writes."""
    want = BINARY_TYPES.get(typname)
    if want is None:
        return False
    types = set(map(type, column))
    types.discard(_NONE)
    if not types:
        return True  # NULLs only
    if types != {want[0]}:
        return False
    bounds = want[1]
    if bounds is not None:  # (filter(None) drops the NULLs, and zeros, which fit any column)
        return bounds[0] <= min(filter(None, column), default=0) and max(filter(None, column), default=0) <= bounds[1]
    if typname == "timestamp":  # naive values only; aware ones take the text path
        return set(map(_tzinfo, filter(None, column))) == {None}
    if typname == "timestamptz":
        return None not in set(map(_tzinfo, filter(None, column)))
    return True


def _utc_wall(v: Any) -> Any:
    if type(v) is _dt.datetime and v.tzinfo is not None:
        return v.astimezone(_dt.UTC).replace(tzinfo=None)
    return v


def pg_copy_form(
    types: Sequence[tuple[str, int]], rows: Sequence[Sequence[Any]]
) -> tuple[bool, Sequence[Sequence[Any]]]:
    """(whether ``rows`` go in binary form, the rows to send) for columns of ``types``
    ((type name, oid) of each column as the live table has them)."""
    if not rows:
        return True, rows
    columns = list(zip(*rows, strict=True))
    if all(_binary_fits(t, col) for (t, _oid), col in zip(types, columns, strict=True)):
        return True, rows
    return False, _aware_to_utc_wall(rows, types, columns)


# the start and the end of a binary COPY's data (PostgreSQL's "COPY" page: the file format)
_SIGNATURE = b"PGCOPY\n\xff\r\n\0" + b"\0\0\0\0" + b"\0\0\0\0"
_TRAILER = b"\xff\xff"


class CopyStream:
    """One ``COPY ... FROM STDIN`` into ``table``, open until :meth:`close`: rows written go
    to the server as psycopg's buffer fills, so the server parses and inserts them while the
    caller prepares the next batch. ``key`` tells which table, columns and form it is for.

    ``form``: "binary" or "text" for rows given as values (:meth:`write`), "tuples" for a
    binary COPY given as its tuples' bytes (:meth:`write_tuples`, from
    :func:`snapgit.native.pg_copy_rows`); this stream then writes the format's signature and
    trailer itself, as psycopg leaves them to whoever writes raw data."""

    def __init__(self, raw: Any, table: str, names: Sequence[str], types: Sequence[tuple[str, int]], form: str) -> None:
        self.key = (table, tuple(names), form)
        self._tuples = form == "tuples"
        cols = ", ".join(quote(n, "postgresql") for n in names)
        binary = form != "text"
        sql = f"COPY {quote(table, 'postgresql')} ({cols}) FROM STDIN" + (" (FORMAT BINARY)" if binary else "")
        self._cur = raw.cursor()
        try:
            self._ctx = self._cur.copy(sql)
            self._copy = self._ctx.__enter__()
            if self._tuples:
                self._copy.write(_SIGNATURE)
            elif binary:
                self._copy.set_types([oid for _t, oid in types])
        except BaseException:
            self._cur.close()
            raise

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        write = self._copy.write_row
        for r in rows:
            write(r)

    def write_tuples(self, data: bytes) -> None:
        self._copy.write(data)

    def close(self) -> None:
        """End the COPY: the server's verdict on every row (constraints, foreign keys)."""
        try:
            if self._tuples:
                self._copy.write(_TRAILER)
            self._ctx.__exit__(None, None, None)
        finally:
            self._cur.close()

    def abort(self) -> None:
        """Give the COPY up (the transaction is being rolled back)."""
        with contextlib.suppress(BaseException):
            error = RuntimeError("the write transaction is rolled back")
            self._ctx.__exit__(RuntimeError, error, None)
        with contextlib.suppress(BaseException):
            self._cur.close()


def pg_copy(
    raw: Any, table: str, names: Sequence[str], types: Sequence[tuple[str, int]], rows: Sequence[Sequence[Any]]
) -> None:
    """COPY ``rows`` (parameters, one per column of ``names``) into ``table`` on the psycopg
    connection ``raw``, in one statement. ``types``: as for :func:`pg_copy_form`."""
    if not rows:
        return
    binary, rows = pg_copy_form(types, rows)
    stream = CopyStream(raw, table, names, types, "binary" if binary else "text")
    try:
        stream.write(rows)
    except BaseException:
        stream.abort()
        raise
    stream.close()


def pg_tuple_columns(
    types: Sequence[tuple[str, int]], passes: Sequence[bool], limits: dict[int, tuple[str, int, int]]
) -> tuple[tuple[int, int, int], ...] | None:
    """The columns (kind, low, high) for :func:`snapgit.native.pg_copy_rows` of a table whose
    columns have ``types`` ((type name, oid) as the live table has them), or None when one is
    not a kind it writes. ``passes``: per column, whether its canonical values are written as
    they are (no converter); ``limits``: by column position, what the table's
    :class:`snapgit.db.fit.RowChecker` asks (its ``plain_limits``; a column without is not
    checked). A value the tuples accept is one the rows path writes unchanged in binary form."""
    out = []
    for i, ((typname, _oid), plain) in enumerate(zip(types, passes, strict=True)):
        kind = PG_KINDS.get(typname)
        if kind is None or not plain:
            return None
        limit = limits.get(i)
        want = None if limit is None else limit[0]
        low, high = 0, 0
        bounds = BINARY_TYPES[typname][1]
        if bounds is not None:
            low, high = bounds
            if limit is not None:
                if want != "int":
                    return None
                low, high = max(low, limit[1]), min(high, limit[2])
        elif typname in ("text", "varchar"):
            if want not in (None, "text"):
                return None
            high = -1 if limit is None else limit[1]
        elif typname == "float8":
            if want not in (None, "float"):
                return None
        elif typname == "bytea":
            if want is not None:
                return None
        elif want not in (None, "type"):
            return None
        out.append((kind, low, high))
    return tuple(out)


def _aware_to_utc_wall(
    rows: Sequence[Sequence[Any]], types: Sequence[tuple[str, int]], columns: list[tuple[Any, ...]]
) -> Sequence[Sequence[Any]]:
    """``rows`` with the aware datetimes of ``timestamp`` columns as their UTC wall time."""
    fix = {
        i
        for i, (t, _oid) in enumerate(types)
        if t == "timestamp" and any(type(v) is _dt.datetime and v.tzinfo is not None for v in columns[i])
    }
    if not fix:
        return rows
    return [tuple(_utc_wall(v) if i in fix else v for i, v in enumerate(r)) for r in rows]


# --- MariaDB ----------------------------------------------------------------------------------

_INT_TYPES = frozenset({"smallint", "integer", "bigint"})
_TEXT_TYPES = frozenset({"text", "varchar", "char"})
_MEMO_TYPES = frozenset({"date", "timestamp", "timestamptz"})  # values that repeat: formatted once
_MEMO_MAX = 1 << 16
PACKET_MAX = 16 * 1024 * 1024  # the largest statement sent, whatever the server would take


def _memo(escape: Callable[[Any], str]) -> tuple[Callable[[Any], str | None], Callable[[Any], str]]:
    memo: dict[Any, str] = {}

    def miss(v: Any) -> str:
        out = escape(v)
        if type(v) in (_dt.datetime, _dt.date):
            if len(memo) >= _MEMO_MAX:
                memo.clear()
            memo[v] = out
        return out

    return memo.get, miss


def mysql_row_formatter(
    portable: Sequence[str], escape: Callable[[Any], str], escape_text: Callable[[str], str] | None
) -> Callable[[Sequence[Sequence[Any]]], list[str]]:
    """A function turning rows of parameters into ``(v1,v2,...)`` literals, each value spelled
    as ``escape`` (PyMySQL's ``Connection.escape``) spells it, for columns of these portable
    types. Integers, NULLs and text (with ``escape_text``, the server's quoting of a text
    without the quotes; None: through ``escape``) are formatted inline, dates and timestamps
    once per distinct value, anything else by ``escape``."""
    namespace: dict[str, Any] = {"e": escape, "t": escape_text}
    parts = []
    for i, p in enumerate(portable):
        v = f"v{i}"
        base = p.split("(", 1)[0]
        if base in _INT_TYPES:
            parts.append(f"('NULL' if {v} is None else str({v}) if type({v}) is int else e({v}))")
        elif base in _TEXT_TYPES and escape_text is not None:
            parts.append(f"('NULL' if {v} is None else \"'\" + t({v}) + \"'\" if type({v}) is str else e({v}))")
        elif base in _MEMO_TYPES:
            namespace[f"g{i}"], namespace[f"m{i}"] = _memo(escape)
            parts.append(f"('NULL' if {v} is None else g{i}({v}) or m{i}({v}))")
        else:
            parts.append(f"e({v})")
    target = "".join(f"v{i}, " for i in range(len(portable)))
    source = f"def fmt(rows):\n    return ['(' + ','.join(({', '.join(parts)},)) + ')' for ({target}) in rows]\n"
    exec(compile(source, "<snapgit.db.bulk>", "exec"), namespace)
    return namespace["fmt"]


def mysql_statements(prefix: str, literals: Sequence[str], max_bytes: int) -> list[str]:
    """``prefix`` (``INSERT INTO t (...) VALUES ``) with ``literals`` in as few statements as
    fit in ``max_bytes`` each (text counted at 4 bytes a character, UTF-8's most)."""
    budget = max(1, max_bytes // 4 - len(prefix))
    out = []
    start, size = 0, 0
    for i, lit in enumerate(literals):
        size += len(lit) + 1
        if size > budget and i > start:
            out.append(prefix + ",".join(literals[start:i]))
            start, size = i, len(lit) + 1
    if start < len(literals):
        out.append(prefix + ",".join(literals[start:]))
    return out


def mysql_insert(raw: Any, prefix: str, literals: Sequence[str], max_bytes: int) -> int:
    """Run :func:`mysql_statements` on the PyMySQL connection ``raw``: the rows inserted."""
    cur = raw.cursor()
    try:
        return sum(cur.execute(sql) for sql in mysql_statements(prefix, literals, max_bytes))
    finally:
        cur.close()


class StatementPipe:
    """Statements run by a helper thread, one batch at a time, so that the caller decodes and
    formats the next batch while the server inserts the last (MariaDB parses and inserts a
    multi-row INSERT for longer than the client takes to build it). The connection is the
    helper's between :meth:`send` and :meth:`wait`: the caller waits before any other use of
    it, and learns then whether the batch failed."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._context: Any = None

    def send(self, statements: list[str], context: Any) -> None:
        """Run ``statements`` in the background; ``context`` comes back with their error.
        The previous batch must have been waited for."""
        if self._thread is not None:
            raise RuntimeError("the previous batch was not waited for")
        self._context = context
        self._thread = threading.Thread(target=self._run, args=(statements,), name="snapgit-insert", daemon=True)
        self._thread.start()

    def _run(self, statements: list[str]) -> None:
        try:
            cur = self._raw.cursor()
            try:
                for sql in statements:
                    cur.execute(sql)
            finally:
                cur.close()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by wait()
            self._error = exc

    def wait(self) -> tuple[BaseException, Any] | None:
        """Wait for the batch sent last: (its error, its context) if it failed, else None."""
        if self._thread is None:
            return None
        self._thread.join()
        self._thread = None
        error, self._error = self._error, None
        return None if error is None else (error, self._context)
