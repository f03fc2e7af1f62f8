"""Reflection: a database's tables as :class:`snapgit.schema.TableSchema` objects.

Two sources, each for what it does best:

* the **catalog** of each database (``pragma_table_xinfo``, ``pg_attribute``/``pg_type``,
  ``information_schema.COLUMNS``) for the columns and their exact native types, which
  :mod:`snapgit.db.types` maps to portable types;
* the **SQLAlchemy inspector** for nullability, defaults, the primary key, unique constraints,
  foreign keys and indexes;
* on PostgreSQL, the definitions of the enum, domain and composite types the columns use
  (:mod:`snapgit.db.pgtypes`).

Which tables: the user tables of the database the URL names (SQLite: the main database without
its ``sqlite_*`` tables; PostgreSQL: the current schema, normally ``public``, without the
partitions of partitioned tables, whose rows the parent reads; MariaDB: the URL's database).
Generated (computed) columns are left out: they are derived from the other columns, and a restore
could not write them. Everything is sorted, so that reflecting the same database twice gives equal
schemas (and equal schema ids).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from snapgit.db.errors import UnsupportedTypeError
from snapgit.db.pgtypes import table_type_defs
from snapgit.db.types import PgType, mysql_native, mysql_portable, postgresql_portable, sqlite_portable
from snapgit.schema import Column, ForeignKey, Index, TableSchema

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = ["LIST_TABLES_SQL", "list_tables", "reflect_tables"]


# the user tables of the database a connection is on (see the module docstring), one per row;
# tables named _snapgit_* are snapgit's own (change capture's log and state: db/capture.py)
LIST_TABLES_SQL = {
    "sqlite": (
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
        "AND substr(name, 1, 9) <> '_snapgit_'"
    ),
    "postgresql": (
        "SELECT c.relname FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
        "AND left(c.relname, 9) <> '_snapgit_'"
    ),
    "mysql": (
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') "
        "AND LEFT(TABLE_NAME, 9) <> '_snapgit_'"
    ),
}


def list_tables(conn: Connection, dialect: str) -> list[str]:
    """The user tables, sorted by code point."""
    return sorted(r[0] for r in conn.exec_driver_sql(LIST_TABLES_SQL[dialect]))


# A column as the catalog describes it: (name, portable type or None, native, generated, autoinc)
_CatalogColumn = tuple[str, "str | None", str, bool, bool]


def _sqlite_catalog(conn: Connection, tables: Sequence[str]) -> dict[str, list[_CatalogColumn]]:
    out: dict[str, list[_CatalogColumn]] = {}
    for t in tables:
        rows = conn.exec_driver_sql("SELECT name, type, pk, hidden FROM pragma_table_xinfo(?) ORDER BY cid", (t,)).all()
        pk = [r for r in rows if r[2]]
        # a single INTEGER PRIMARY KEY is the rowid: SQLite assigns it
        rowid = pk[0][0] if len(pk) == 1 and (pk[0][1] or "").strip().upper() == "INTEGER" else None
        out[t] = [
            (name, sqlite_portable(decl or ""), decl or "", hidden in (2, 3), name == rowid)
            for name, decl, _, hidden in rows
            if hidden != 1  # 1: hidden column of a virtual table
        ]
    return out


_PG_COLUMNS = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid, a.atttypmod,
       a.attgenerated <> '', a.attidentity <> '',
       CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation THEN co.collname END
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
WHERE n.nspname = current_schema() AND c.relname = ANY(%(names)s)
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY c.relname, a.attnum
"""
_PG_TYPES = """
SELECT oid, typname, typtype, typbasetype, typtypmod, typelem, typcategory
FROM pg_catalog.pg_type WHERE oid = ANY(%(oids)s)
"""


def _pg_catalog(conn: Connection, tables: Sequence[str]) -> dict[str, list[_CatalogColumn]]:
    rows = conn.exec_driver_sql(_PG_COLUMNS, {"names": list(tables)}).all()
    types: dict[int, tuple[Any, ...]] = {}
    wanted = {r[3] for r in rows}
    while wanted:  # fetch the types, then the bases of domains and the elements of arrays
        found = conn.exec_driver_sql(_PG_TYPES, {"oids": sorted(wanted)}).all()
        for r in found:
            types[r[0]] = r
        wanted = {o for r in found for o in (r[3], r[5]) if o and o not in types}

    def resolve(oid: int, mod: int, depth: int = 0) -> PgType:
        _, name, kind, base, base_mod, elem, category = types[oid]
        if kind == "d" and depth < 10:  # a domain: its base type, and the domain's typmod
            return resolve(base, mod if mod >= 0 else base_mod, depth + 1)
        element = resolve(elem, mod, depth + 1) if category == "A" and elem and depth < 10 else None
        return PgType(name, kind, mod, element)

    out: dict[str, list[_CatalogColumn]] = {t: [] for t in tables}
    for table, name, native, oid, mod, generated, identity, collation in rows:
        if collation:
            native = f'{native} COLLATE "{collation}"'
        out[table].append((name, postgresql_portable(resolve(oid, mod)), native, generated, identity))
    return out


def _mysql_catalog(conn: Connection, tables: Sequence[str]) -> dict[str, list[_CatalogColumn]]:
    names = tuple(tables)
    rows = conn.exec_driver_sql(
        "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_SET_NAME, COLLATION_NAME, "
        "EXTRA FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN %s "
        "ORDER BY TABLE_NAME, ORDINAL_POSITION",
        (names,),
    ).all()
    json_cols: set[tuple[str, str]] = set()
    if getattr(conn.dialect, "is_mariadb", False):  # MariaDB's JSON is longtext + json_valid()
        checks = conn.exec_driver_sql(
            "SELECT TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME IN %s",
            (names,),
        ).all()
        for table, clause in checks:
            m = re.fullmatch(r"\s*json_valid\(`((?:[^`]|``)+)`\)\s*", clause or "")
            if m:
                json_cols.add((table, m.group(1).replace("``", "`")))
    out: dict[str, list[_CatalogColumn]] = {t: [] for t in tables}
    for table, name, data_type, column_type, charset, collation, extra in rows:
        is_json = (table, name) in json_cols and data_type.lower() == "longtext"
        extra = (extra or "").upper()
        out[table].append(
            (
                name,
                mysql_portable(data_type, column_type, is_json),
                mysql_native(column_type, charset, collation, is_json),
                "GENERATED" in extra and "DEFAULT_GENERATED" not in extra,
                "AUTO_INCREMENT" in extra,
            )
        )
    return out


_CATALOGS = {"sqlite": _sqlite_catalog, "postgresql": _pg_catalog, "mysql": _mysql_catalog}


def _index_columns(ix: Mapping[str, Any]) -> tuple[str, ...]:
    cols = ix.get("expressions") or ix.get("column_names") or []
    return tuple(c if c is not None else "<expression>" for c in cols)


def reflect_tables(
    conn: Connection, dialect: str, tables: Sequence[str], ignored: Mapping[str, Collection[str]] | None = None
) -> list[TableSchema]:
    """Schemas of ``tables`` (which must exist), sorted by name. Raises
    :class:`UnsupportedTypeError` for the first column, in table and column order, whose type
    snapgit cannot store, unless ``ignored`` (table -> column names, the ``ignore`` lists of
    config.toml) names it: such a column is left out of the schema, so it is never read, as its
    error's hint promises. Ignored columns of types snapgit can store stay in: merges compare
    rows without them, but restores give them back."""
    import sqlalchemy as sa

    tables = sorted(set(tables))
    if not tables:
        return []
    catalog = _CATALOGS[dialect](conn, tables)
    insp = sa.inspect(conn)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sa.exc.SAWarning)  # "did not recognize type ..."
        cols = insp.get_multi_columns(filter_names=tables)
        pks = insp.get_multi_pk_constraint(filter_names=tables)
        uqs = insp.get_multi_unique_constraints(filter_names=tables)
        fks = insp.get_multi_foreign_keys(filter_names=tables)
        ixs = insp.get_multi_indexes(filter_names=tables)
    kept: dict[str, list[str]] = {}
    schemas = []
    for t in tables:
        key = (None, t)
        info = {c["name"]: c for c in cols.get(key, [])}
        columns = []
        for name, portable, native, generated, autoinc in catalog[t]:
            col: Mapping[str, Any] = info.get(name, {})
            if generated or col.get("computed"):
                continue
            if portable is None:
                if ignored is not None and name in ignored.get(t, ()):
                    continue
                raise UnsupportedTypeError(t, name, native)
            default = col.get("default")
            columns.append(
                Column(
                    name=name,
                    type=portable,
                    nullable=bool(col.get("nullable", True)),
                    default=None if default is None else str(default),
                    native=native,
                    autoincrement=bool(autoinc or (dialect == "postgresql" and col.get("autoincrement") is True)),
                )
            )
        pk_info: Mapping[str, Any] = pks.get(key) or {}
        pk = tuple(pk_info.get("constrained_columns") or ())
        unique_list = uqs.get(key, [])
        unique = tuple(sorted({tuple(u["column_names"]) for u in unique_list}))
        unique_index_names = {u.get("duplicates_index") or u.get("name") for u in unique_list}
        foreign = tuple(
            sorted(
                (
                    ForeignKey(
                        tuple(f["constrained_columns"]),
                        f["referred_table"],
                        tuple(f["referred_columns"]),
                        f.get("name"),
                    )
                    for f in fks.get(key, [])
                ),
                key=lambda f: (f.columns, f.ref_table, f.ref_columns, f.name or ""),
            )
        )
        indexes = tuple(
            sorted(
                (
                    Index(_index_columns(ix), bool(ix.get("unique")), ix.get("name"))
                    for ix in ixs.get(key, [])
                    if not ix.get("duplicates_constraint")
                    and not (dialect == "mysql" and ix.get("unique") and ix.get("name") in unique_index_names)
                ),
                key=lambda i: (i.name or "", i.columns),
            )
        )
        schemas.append(TableSchema(t, tuple(columns), pk, unique, foreign, indexes))
        kept[t] = [c.name for c in columns]
    if dialect == "postgresql":
        defs = table_type_defs(lambda sql, params: conn.exec_driver_sql(sql, tuple(params)).all(), kept)
        schemas = [replace(s, pg_types=defs[s.name]) if s.name in defs else s for s in schemas]
    return schemas
