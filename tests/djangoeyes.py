"""Tables as the database itself sees them, for comparing restores without snapgit's eyes.

``values(url)``: every row of every table, keyed by its primary key, each value spelled by the
engine (SQLite ``typeof``/``quote()``, PostgreSQL ``::text``, MariaDB ``HEX(CAST(... AS BINARY))``).
``columns(url)``: every column's definition from the catalogue (SQLite ``PRAGMA table_xinfo``,
PostgreSQL ``format_type`` and collation, MariaDB ``information_schema.COLUMNS``).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from conftest import utc_engine


def _q(name: str, kind: str) -> str:
    return f"`{name}`" if kind == "mysql" else f'"{name}"'


def spelled(kind: str, col: str) -> str:
    """The SQL that makes the engine spell one column's value exactly."""
    c = _q(col, kind)
    if kind == "sqlite":
        return f"typeof({c}) || ':' || quote({c})"
    if kind == "postgresql":
        return f"{c}::text"
    return f"HEX(CAST({c} AS BINARY))"


def values(url: str) -> dict[str, dict[tuple[str, ...], dict[str, Any]]]:
    engine = utc_engine(url)
    kind = engine.dialect.name if engine.dialect.name != "mariadb" else "mysql"
    out: dict[str, dict[tuple[str, ...], dict[str, Any]]] = {}
    try:
        insp = sa.inspect(engine)
        with engine.connect() as conn:
            for table in insp.get_table_names():
                cols = [c["name"] for c in insp.get_columns(table)]
                key = insp.get_pk_constraint(table)["constrained_columns"] or cols
                select = ", ".join([*(_q(k, kind) for k in key), *(spelled(kind, c) for c in cols)])
                rows = conn.exec_driver_sql(f"SELECT {select} FROM {_q(table, kind)}").all()
                out[table] = {
                    tuple(str(v) for v in row[: len(key)]): dict(zip(cols, row[len(key) :], strict=True))
                    for row in rows
                }
    finally:
        engine.dispose()
    return out


def columns(url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = utc_engine(url)
    kind = engine.dialect.name
    out: dict[str, list[tuple[Any, ...]]] = {}
    try:
        with engine.connect() as conn:
            if kind == "sqlite":
                names = (
                    conn.exec_driver_sql(
                        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                    )
                    .scalars()
                    .all()
                )
                for t in names:
                    out[t] = [tuple(r) for r in conn.exec_driver_sql(f'PRAGMA table_xinfo("{t}")')]
            elif kind == "postgresql":
                rows = conn.exec_driver_sql(
                    "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, co.collname "
                    "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_collation co ON co.oid = a.attcollation "
                    "WHERE n.nspname = 'public' AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped "
                    "ORDER BY c.relname, a.attnum"
                ).all()
                for r in rows:
                    out.setdefault(r[0], []).append(tuple(r[1:]))
            else:
                rows = conn.exec_driver_sql(
                    "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, CHARACTER_SET_NAME, COLLATION_NAME "
                    "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
                    "ORDER BY TABLE_NAME, ORDINAL_POSITION"
                ).all()
                for r in rows:
                    out.setdefault(r[0], []).append(tuple(r[1:]))
    finally:
        engine.dispose()
    return out
