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

import datetime as _dt
import operator
import uuid
from collections.abc import Sequence
from typing import Any

from snapgit.db.ddl import quote

__all__ = ["BINARY_TYPES", "pg_copy"]

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


def pg_copy(
    raw: Any, table: str, names: Sequence[str], types: Sequence[tuple[str, int]], rows: Sequence[Sequence[Any]]
) -> None:
    """COPY ``rows`` (parameters, one per column of ``names``) into ``table`` on the psycopg
    connection ``raw``. ``types``: (type name, oid) of each column as the live table has them."""
    if not rows:
        return
    columns = list(zip(*rows, strict=True))
    binary = all(_binary_fits(t, col) for (t, _oid), col in zip(types, columns, strict=True))
    if not binary:
        rows = _aware_to_utc_wall(rows, types, columns)
    cols = ", ".join(quote(n, "postgresql") for n in names)
    sql = f"COPY {quote(table, 'postgresql')} ({cols}) FROM STDIN" + (" (FORMAT BINARY)" if binary else "")
    cur = raw.cursor()
    try:
        with cur.copy(sql) as copy:
            if binary:
                copy.set_types([oid for _t, oid in types])
            write = copy.write_row
            for r in rows:
                write(r)
    finally:
        cur.close()


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
