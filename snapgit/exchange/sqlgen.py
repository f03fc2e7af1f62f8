"""SQL that turns one snapshot into another: ``snap diff --sql [--dialect D]``.

Statements come in an order foreign keys accept, the order a merge writes in: deletes,
children before parents; updates and inserts, parents before children; the deletes of tables
an updated table refers to last (:mod:`snapgit.compare.writeorder`). A changed row is one UPDATE of its changed
columns by key; a removed row of a keyless table deletes one matching occurrence. Values are
written as literals of the dialect (sqlite, postgresql or mysql), so the output can be piped to
the database's own shell. Schema changes are reported as comments: the statements move data, and
a table whose columns changed needs its DDL applied first.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain, islice
from typing import Any

from snapgit.compare.diff import RowDiff, TableDiff
from snapgit.compare.writeorder import (
    deletes_after_updates,
    generations,
    late_deletes,
    references_left,
    updates_after_inserts,
)
from snapgit.encoding import Json, Spelled
from snapgit.errors import SnapError
from snapgit.schema import TableSchema, table_order
from snapgit.tree.diff import ADDED, CHANGED, REMOVED

__all__ = ["diff_to_sql", "literal", "quote_ident", "sqlite_float", "table_order", "DIALECTS"]

DIALECTS = ("sqlite", "postgresql", "mysql")


class SqlRenderError(SnapError):
    pass


_POW62 = str(1 << 62)
_sqlite_check: sqlite3.Connection | None = None


def sqlite_float(v: float) -> str:
    """A SQLite literal that reads back as exactly ``v`` (finite).

    SQLite does not always round decimal text to the nearest double: 3.40 reads about one
    literal in 5,000 of ordinary values (``13.715808``), and one in 200 random bit patterns, one
    unit in the last place off. A ``repr`` this process's SQLite reads back exactly
    is kept (it reads the same in every SQLite that rounds as this one or correctly); any other
    becomes ``CAST(M AS REAL)`` scaled by powers of two, each step exact: ``v = M * 2**E`` with
    ``|M| < 2**53``."""
    text = repr(v)
    if v.is_integer() and abs(v) < 2**53:
        return text  # the digits are an integer and a power of ten: read exactly everywhere
    global _sqlite_check
    if _sqlite_check is None:
        _sqlite_check = sqlite3.connect(":memory:", check_same_thread=False)
    if _sqlite_check.execute("SELECT " + text).fetchone()[0] == v:
        return text
    mantissa, exponent = math.frexp(v)
    m, e = int(mantissa * 2**53), exponent - 53
    out = f"CAST({m} AS REAL)"
    while e:
        step = min(abs(e), 62)
        out += (" * " if e > 0 else " / ") + (_POW62 if step == 62 else str(1 << step))
        e += -step if e > 0 else step
    return f"({out})"


def quote_ident(name: str, dialect: str) -> str:
    if dialect == "mysql":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def _string(s: str, dialect: str) -> str:
    if dialect == "mysql":
        s = s.replace("\\", "\\\\")
    if "\x00" in s:
        if dialect == "postgresql":
            raise SqlRenderError("PostgreSQL text cannot hold a NUL character")
        if dialect == "sqlite":  # SQLite's parser ends a statement at a NUL: the text's UTF-8 bytes
            return "CAST(X'" + s.encode("utf-8").hex() + "' AS TEXT)"
    return "'" + s.replace("'", "''") + "'"


def literal(v: Any, dialect: str, sql_type: str | None = None) -> str:
    """The SQL literal of a canonical value in a dialect."""
    t = type(v)
    if v is None:
        return "NULL"
    if t is Spelled:  # its spelling where it was read, else its value
        return literal(v.spelling if v.dialect == dialect else v.value, dialect, sql_type)
    if t is bool:
        if dialect == "postgresql":
            return "TRUE" if v else "FALSE"
        return "1" if v else "0"
    if t is int:
        return str(v)
    if t is float:
        if math.isinf(v) and dialect == "sqlite":
            return "9e999" if v > 0 else "-9e999"  # SQLite's own spelling of an overflow: infinity
        if math.isnan(v) or math.isinf(v):
            if dialect != "postgresql":
                raise SqlRenderError(f"{dialect} cannot store the float {v!r}")
            return "'NaN'::float8" if math.isnan(v) else ("'Infinity'::float8" if v > 0 else "'-Infinity'::float8")
        return sqlite_float(v) if dialect == "sqlite" else repr(v)
    if t is decimal.Decimal:
        if not v.is_finite():
            if dialect != "postgresql":
                raise SqlRenderError(f"{dialect} cannot store the decimal {v}")
            return f"'{v}'::numeric"
        return str(v)
    if t is str:
        return _string(v, dialect)
    if t is bytes:
        if dialect == "postgresql":
            return "'\\x" + v.hex() + "'::bytea"
        return "X'" + v.hex() + "'"
    if t is dt.datetime:
        if v.tzinfo is not None and dialect != "postgresql":
            v = v.astimezone(dt.UTC).replace(tzinfo=None)
        text = v.isoformat(sep=" ")
        return _string(text, dialect)
    if t is dt.date or t is dt.time:
        return _string(v.isoformat(), dialect)
    if t is dt.timedelta:
        micros = v // dt.timedelta(microseconds=1)
        if dialect == "postgresql":
            return f"INTERVAL '{micros} microseconds'"
        secs, us = divmod(abs(micros), 1_000_000)
        h, rem = divmod(secs, 3600)
        m, s = divmod(rem, 60)
        sign = "-" if micros < 0 else ""
        return _string(f"{sign}{h:02d}:{m:02d}:{s:02d}.{us:06d}", dialect)
    if t is uuid.UUID:
        if dialect == "sqlite":
            return _string(v.hex, dialect)  # SQLAlchemy's Uuid on SQLite: 32 hex digits
        return _string(str(v), dialect)
    if t is Json:
        return _string(v.text, dialect)
    if t is list or t is tuple:
        if dialect != "postgresql":
            from snapgit.encoding import canonical_json
            from snapgit.jsonvalue import to_json

            return _string(canonical_json(to_json(list(v))), dialect)
        inner = ", ".join(literal(x, dialect) for x in v)
        return f"ARRAY[{inner}]" if v else "'{}'"
    raise SqlRenderError(f"cannot write a {t.__name__} value as SQL")


def _where(key: dict[str, Any], dialect: str) -> str:
    parts = []
    for col, v in key.items():
        q = quote_ident(col, dialect)
        parts.append(f"{q} IS NULL" if v is None else f"{q} = {literal(v, dialect)}")
    return " AND ".join(parts) if parts else "1 = 1"


def _delete(d: TableDiff, row: RowDiff, dialect: str) -> str:
    t = quote_ident(d.name, dialect)
    keyed = d.old_entry is not None and bool(d.old_entry.key)
    where = _where(row.key, dialect)
    if keyed:
        return f"DELETE FROM {t} WHERE {where};"
    if dialect == "mysql":
        return f"DELETE FROM {t} WHERE {where} LIMIT 1;"
    rid = "ctid" if dialect == "postgresql" else "rowid"
    return f"DELETE FROM {t} WHERE {rid} = (SELECT {rid} FROM {t} WHERE {where} LIMIT 1);"


def _insert(d: TableDiff, row: RowDiff, dialect: str) -> str:
    t = quote_ident(d.name, dialect)
    new = row.new
    assert new is not None, "an added row has its new values"
    cols = ", ".join(quote_ident(c, dialect) for c in new)
    vals = ", ".join(literal(v, dialect) for v in new.values())
    return f"INSERT INTO {t} ({cols}) VALUES ({vals});"


def _update(d: TableDiff, row: RowDiff, dialect: str) -> str:
    t = quote_ident(d.name, dialect)
    new = row.new
    assert new is not None, "a changed row has its new values"
    sets = ", ".join(f"{quote_ident(c, dialect)} = {literal(new.get(c), dialect)}" for c in row.changed_columns)
    return f"UPDATE {t} SET {sets} WHERE {_where(row.key, dialect)};"


def _self_referencing(schema: TableSchema | None) -> bool:
    return schema is not None and any(fk.ref_table == schema.name for fk in schema.foreign_keys)


def _values(row: RowDiff, schema: TableSchema, old: bool) -> list[Any]:
    """The row's values in ``sorted_names`` order (the rows :mod:`snapgit.compare.writeorder`
    orders), and the row itself after them."""
    side = (row.old if old else row.new) or {}
    return [*[side.get(c) for c in schema.sorted_names], row]


def diff_to_sql(diffs: Sequence[TableDiff], dialect: str, limit: int | None = None) -> Iterator[str]:
    """The statements that turn the old side of ``diffs`` into the new one, in an order every
    statement of which foreign keys accept (:mod:`snapgit.compare.writeorder`, as a merge
    writes them): the deletes no update waits for, children first; then per table, parents
    first, the updates, the inserts, and the updates that refer to rows inserted in the same
    table; last the deletes of the rows updated rows move away from (and of the rows those refer
    to). At most ``limit`` statements.

    Rows are streamed table by table; held are only a self-referencing table's rows, to be put
    in generations, and the deleted rows of the tables an updated table refers to."""
    if dialect not in DIALECTS:
        raise SqlRenderError(f"unknown dialect {dialect!r}", hint="use sqlite, postgresql or mysql")
    by_name = {d.name: d for d in diffs if not d.unchanged}
    new_schemas = {n: d.new_schema for n, d in by_name.items() if d.new_schema is not None}
    old_schemas = {n: d.old_schema for n, d in by_name.items() if d.old_schema is not None}
    for d in by_name.values():
        for sc in d.schema:
            yield f"-- {d.name}: schema change not expressed as SQL: {sc.describe()}"
    updated = [name for name, d in by_name.items() if any(ch.op == CHANGED for ch in d.changes())]
    # The deletes that must wait for the updates (writeorder.late_deletes) can only be in these
    # tables: their deleted rows are held, to tell which; the other tables' are streamed.
    maybe_late = deletes_after_updates({**old_schemas, **new_schemas}, updated)
    held = {
        name: [_values(row, old_schemas[name], old=True) for row in by_name[name].rows() if row.op == REMOVED]
        for name in maybe_late
        if name in by_name and name in old_schemas
    }
    left = [
        ref
        for name in updated
        if (schema := old_schemas.get(name)) is not None and schema.foreign_keys
        for row in by_name[name].rows()
        if row.op == CHANGED
        for ref in references_left(schema, _values(row, schema, old=True), _values(row, schema, old=False))
    ]
    late = late_deletes(old_schemas, held, left)

    def deletes(names: Sequence[str], waiting: bool) -> Iterator[str]:
        for name in reversed(names):
            d, schema = by_name[name], old_schemas[name]
            if name in held:
                wait = late.get(name, set())
                values = [v for n, v in enumerate(held[name]) if (n in wait) == waiting]
                if _self_referencing(schema):
                    values = [v for generation in reversed(generations(schema, values)) for v in generation]
                rows: Iterable[RowDiff] = (v[-1] for v in values)
            elif waiting:
                continue
            else:
                rows = (row for row in d.rows() if row.op == REMOVED)
                if _self_referencing(schema):
                    values = [_values(row, schema, old=True) for row in rows]
                    rows = (v[-1] for generation in reversed(generations(schema, values)) for v in generation)
            yield from (_delete(d, row, dialect) for row in rows)

    def writes() -> Iterator[str]:
        for name in table_order(new_schemas):
            d, schema = by_name[name], new_schemas[name]
            if not _self_referencing(schema):
                for row in d.rows():
                    if row.op != REMOVED:
                        yield _insert(d, row, dialect) if row.op == ADDED else _update(d, row, dialect)
                continue
            inserts = [_values(row, schema, old=False) for row in d.rows() if row.op == ADDED]
            updates = [_values(row, schema, old=False) for row in d.rows() if row.op == CHANGED]
            first, last = updates_after_inserts(schema, updates, inserts)
            yield from (_update(d, v[-1], dialect) for v in first)
            yield from (_insert(d, v[-1], dialect) for generation in generations(schema, inserts) for v in generation)
            yield from (_update(d, v[-1], dialect) for v in last)

    order = table_order(old_schemas)
    statements = chain(deletes(order, waiting=False), writes(), deletes(order, waiting=True))
    yield from statements if limit is None else islice(statements, limit)
