"""PostgreSQL user-defined types: the enum, domain and composite types a table's columns use.

A column of such a type cannot be created in a database that lacks the type, so reflection
records each definition a table needs (:class:`snapgit.schema.PgTypeDef`, in the table's schema
as ``pg_types``) and ``restore --into`` PostgreSQL creates them before the tables
(:func:`create_type_sql`), skipping one the target has with the same definition and refusing one
it has otherwise.

What is recorded, by ``pg_type.typtype``:

* ``e`` enum: its labels in their sort order;
* ``d`` domain: its base type (``format_type`` with the typmod), NOT NULL, its default (the
  expression's text) and its CHECK constraints (name and ``pg_get_constraintdef``);
* ``c`` composite (a ``CREATE TYPE ... AS (...)``, not a table's row type): its attributes' names
  and ``format_type`` in order.

Types these use (a domain over an enum, a composite holding a domain, arrays of any of them) are
recorded too, each before the types that use it. Types of PostgreSQL itself and types an
extension owns (``citext``, ``hstore``) are not: ``CREATE EXTENSION`` makes those, and the
restore refuses a column whose type the target lacks (:mod:`snapgit.db.write`). Ranges and base
types made with C functions are not recorded either. A domain's or a composite attribute's own
collation is kept as a column's is, ``text COLLATE "C"``. Not kept: comments, owners and
privileges.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from snapgit.schema import PgTypeDef

__all__ = ["Query", "create_type_sql", "existing_type_defs", "in_order", "table_type_defs", "type_defs"]

# runs one SQL statement with %s parameters on a PostgreSQL connection, returning its rows
Query = Callable[[str, Sequence[Any]], Sequence[Sequence[Any]]]

_TYPES = """
SELECT t.oid, format_type(t.oid, NULL), t.typtype, t.typbasetype, t.typtypmod, t.typelem,
       t.typcategory, t.typrelid, t.typnotnull, t.typdefault, c.relkind,
       n.nspname IN ('pg_catalog', 'information_schema') OR n.nspname LIKE 'pg\\_%%',
       EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_type'::regclass
               AND d.objid = t.oid AND d.deptype = 'e')
FROM pg_catalog.pg_type t
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
LEFT JOIN pg_catalog.pg_class c ON c.oid = t.typrelid
WHERE t.oid = ANY(%s)
"""
_LABELS = "SELECT enumlabel FROM pg_catalog.pg_enum WHERE enumtypid = %s ORDER BY enumsortorder"
_CHECKS = (
    "SELECT conname, pg_catalog.pg_get_constraintdef(oid) FROM pg_catalog.pg_constraint "
    "WHERE contypid = %s AND contype = 'c' ORDER BY conname"
)
# a collation is named (as a column's native type names it) only where it is not the type's own
_ATTRIBUTES = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid,
       CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation THEN co.collname END
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""
_DOMAIN_COLLATION = """
SELECT co.collname FROM pg_catalog.pg_type t
JOIN pg_catalog.pg_type b ON b.oid = t.typbasetype
JOIN pg_catalog.pg_collation co ON co.oid = t.typcollation
WHERE t.oid = %s AND t.typcollation <> 0 AND t.typcollation <> b.typcollation
"""


def _collated(spelled: str, collation: str | None) -> str:
    return f'{spelled} COLLATE "{collation}"' if collation else spelled


def type_defs(query: Query, column_types: Iterable[int]) -> dict[int, tuple[PgTypeDef, tuple[int, ...]]]:
    """The definitions of the user-defined types ``column_types`` (pg_type oids) use, directly
    or through others: oid -> (definition, the oids of the defined types it uses). Empty (one
    query) when the columns use built-in and extension types only."""
    out: dict[int, tuple[PgTypeDef, tuple[int, ...]]] = {}
    seen: set[int] = set()
    wanted = {o for o in column_types if o}
    while wanted:
        seen |= wanted
        rows = query(_TYPES, (sorted(wanted),))
        wanted = set()
        for oid, name, kind, base, base_mod, elem, category, relid, not_null, default, relkind, system, ext in rows:
            if category == "A" and elem:  # an array: its element may be user-defined
                wanted.add(elem)
                continue
            if system or ext:
                continue
            uses: list[int] = []
            if kind == "e":
                d = PgTypeDef(name, "enum", labels=tuple(r[0] for r in query(_LABELS, (oid,))))
            elif kind == "d":
                base_name = query("SELECT format_type(%s, %s)", (base, base_mod))[0][0]
                collation = query(_DOMAIN_COLLATION, (oid,))
                base_name = _collated(base_name, collation[0][0] if collation else None)
                checks = tuple((r[0], r[1]) for r in query(_CHECKS, (oid,)))
                uses.append(base)
                d = PgTypeDef(name, "domain", base=base_name, not_null=bool(not_null), default=default, checks=checks)
            elif kind == "c" and relkind == "c":
                attrs = query(_ATTRIBUTES, (relid,))
                uses.extend(r[2] for r in attrs)
                d = PgTypeDef(name, "composite", attributes=tuple((r[0], _collated(r[1], r[3])) for r in attrs))
            else:
                continue
            out[oid] = (d, tuple(uses))
            wanted.update(uses)
        wanted -= seen
    # keep only the uses that are themselves defined (through arrays too)
    elements = _array_elements(query, {u for _, (_, us) in out.items() for u in us} - set(out))
    return {
        oid: (d, tuple(sorted({elements.get(u, u) for u in us} & set(out), key=lambda o: out[o][0].name)))
        for oid, (d, us) in out.items()
    }


def _array_elements(query: Query, oids: set[int]) -> dict[int, int]:
    """array type oid -> element oid, for those of ``oids`` that are arrays."""
    if not oids:
        return {}
    rows = query(
        "SELECT oid, typelem FROM pg_catalog.pg_type WHERE oid = ANY(%s) AND typcategory = 'A'", (sorted(oids),)
    )
    return {r[0]: r[1] for r in rows if r[1]}


def in_order(defs: dict[int, tuple[PgTypeDef, tuple[int, ...]]], roots: Iterable[int]) -> tuple[PgTypeDef, ...]:
    """The definitions reachable from ``roots`` (a table's column types, arrays resolved by the
    caller), each after the types it uses, otherwise by name."""
    order: list[PgTypeDef] = []
    done: set[int] = set()

    def visit(oid: int) -> None:
        if oid in done or oid not in defs:
            return
        done.add(oid)  # before the uses: a cycle (impossible in PostgreSQL) cannot recurse
        for u in defs[oid][1]:
            visit(u)
        order.append(defs[oid][0])

    for oid in sorted((o for o in set(roots) if o in defs), key=lambda o: defs[o][0].name):
        visit(oid)
    return tuple(order)


_COLUMN_TYPES = """
SELECT c.relname, a.attname, a.atttypid
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relname = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped
"""


def table_type_defs(query: Query, columns: Mapping[str, Sequence[str]]) -> dict[str, tuple[PgTypeDef, ...]]:
    """table -> the definitions its ``columns`` (table -> column names) need, in the order they
    can be created; tables that need none are left out."""
    oids: dict[str, list[int]] = {}
    for table, column, oid in query(_COLUMN_TYPES, (sorted(columns),)):
        if column in columns.get(table, ()):
            oids.setdefault(table, []).append(oid)
    every = {o for os in oids.values() for o in os}
    defs = type_defs(query, every)
    if not defs:
        return {}
    elements = _array_elements(query, every - set(defs))
    out = {t: in_order(defs, [elements.get(o, o) for o in os]) for t, os in oids.items()}
    return {t: ds for t, ds in out.items() if ds}


def existing_type_defs(query: Query, names: Sequence[str]) -> dict[str, PgTypeDef | None]:
    """name -> the definition of the type of that name in the database (None: it has a type of
    that name that is no enum, domain or composite, such as a table's row type); names it has no
    type for are left out."""
    out: dict[str, PgTypeDef | None] = {}
    for name in names:
        oid = query("SELECT to_regtype(%s)::oid", (name,))[0][0]
        if oid is None:
            continue
        got = type_defs(query, [oid]).get(oid)
        out[name] = got[0] if got is not None else None
    return out


def _literal(text: str) -> str:
    """A string constant (standard_conforming_strings is on, PostgreSQL's default since 9.1)."""
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create_type_sql(d: PgTypeDef) -> str:
    """The statement that creates the type ``d`` describes."""
    if d.kind == "enum":
        return f"CREATE TYPE {d.name} AS ENUM ({', '.join(_literal(x) for x in d.labels)})"
    if d.kind == "domain":
        sql = f"CREATE DOMAIN {d.name} AS {d.base}"
        if d.default is not None:
            sql += f" DEFAULT {d.default}"
        if d.not_null:
            sql += " NOT NULL"
        for name, check in d.checks:
            sql += f" CONSTRAINT {_ident(name)} {check}"
        return sql
    if d.kind == "composite":
        return f"CREATE TYPE {d.name} AS ({', '.join(f'{_ident(n)} {t}' for n, t in d.attributes)})"
    raise ValueError(f"unknown kind of type {d.kind!r}")
