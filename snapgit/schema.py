"""The portable description of a table: columns, keys, foreign keys, indexes.

A schema is what ``snap show`` prints, what a schema object stores, and what ``restore --into``
creates tables from. Column types are portable names, so that a table read from SQLite and one
read from PostgreSQL compare equal when their types agree:

    smallint integer bigint boolean real double numeric numeric(p,s) text varchar(n) char(n)
    bytes date time timetz timestamp timestamptz interval uuid json array<T>

Each column also keeps ``native``, the type as the source database spelled it, for a faithful
restore into the same kind of database. ``native`` is not part of what makes two schemas "agree"
(see :meth:`TableSchema.portable`), but it is stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Column", "ForeignKey", "Index", "PgTypeDef", "TableSchema", "table_order"]


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool = True
    default: str | None = None
    native: str | None = None
    autoincrement: bool = False

    def to_obj(self) -> dict[str, Any]:
        return {
            "autoincrement": self.autoincrement,
            "default": self.default,
            "name": self.name,
            "native": self.native,
            "nullable": self.nullable,
            "type": self.type,
        }

    @classmethod
    def from_obj(cls, o: dict[str, Any]) -> Column:
        return cls(
            name=o["name"],
            type=o["type"],
            nullable=bool(o.get("nullable", True)),
            default=o.get("default"),
            native=o.get("native"),
            autoincrement=bool(o.get("autoincrement", False)),
        )


@dataclass(frozen=True)
class ForeignKey:
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]
    name: str | None = None

    def to_obj(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "name": self.name,
            "ref_columns": list(self.ref_columns),
            "ref_table": self.ref_table,
        }

    @classmethod
    def from_obj(cls, o: dict[str, Any]) -> ForeignKey:
        return cls(tuple(o["columns"]), o["ref_table"], tuple(o["ref_columns"]), o.get("name"))


@dataclass(frozen=True)
class Index:
    columns: tuple[str, ...]
    unique: bool = False
    name: str | None = None

    def to_obj(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "name": self.name, "unique": self.unique}

    @classmethod
    def from_obj(cls, o: dict[str, Any]) -> Index:
        return cls(tuple(o["columns"]), bool(o.get("unique", False)), o.get("name"))


@dataclass(frozen=True)
class PgTypeDef:
    """A PostgreSQL type a table's columns use that a database must have before the table can be
    created there: an ``enum`` (its ``labels`` in order), a ``domain`` (its ``base`` type,
    ``not_null``, ``default`` and ``checks``: (constraint name, ``CHECK (...)``)) or a
    ``composite`` (its ``attributes``: (name, type)). ``name`` and the types are spelled as
    ``format_type`` spells them. Read and created by :mod:`snapgit.db.pgtypes`."""

    name: str
    kind: str
    labels: tuple[str, ...] = ()
    base: str | None = None
    not_null: bool = False
    default: str | None = None
    checks: tuple[tuple[str, str], ...] = ()
    attributes: tuple[tuple[str, str], ...] = ()

    def to_obj(self) -> dict[str, Any]:
        o: dict[str, Any] = {"kind": self.kind, "name": self.name}
        if self.kind == "enum":
            o["labels"] = list(self.labels)
        elif self.kind == "domain":
            o["base"] = self.base
            o["checks"] = [{"definition": d, "name": n} for n, d in self.checks]
            o["default"] = self.default
            o["not_null"] = self.not_null
        elif self.kind == "composite":
            o["attributes"] = [{"name": n, "type": t} for n, t in self.attributes]
        return o

    @classmethod
    def from_obj(cls, o: dict[str, Any]) -> PgTypeDef:
        return cls(
            name=o["name"],
            kind=o["kind"],
            labels=tuple(o.get("labels", ())),
            base=o.get("base"),
            not_null=bool(o.get("not_null", False)),
            default=o.get("default"),
            checks=tuple((c["name"], c["definition"]) for c in o.get("checks", ())),
            attributes=tuple((a["name"], a["type"]) for a in o.get("attributes", ())),
        )


@dataclass(frozen=True)
class TableSchema:
    """A table as snapgit sees it. ``columns`` keep the database's order; rows are encoded in
    :attr:`sorted_names` order."""

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    unique: tuple[tuple[str, ...], ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    indexes: tuple[Index, ...] = field(default=())
    # PostgreSQL: the user-defined types the columns use, each after the types it uses
    pg_types: tuple[PgTypeDef, ...] = ()

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def sorted_names(self) -> list[str]:
        """Column names in the order rows are encoded: sorted by UTF-8 bytes."""
        return sorted((c.name for c in self.columns), key=lambda n: n.encode("utf-8"))

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_obj(self) -> dict[str, Any]:
        o: dict[str, Any] = {
            "columns": [c.to_obj() for c in self.columns],
            "foreign_keys": [f.to_obj() for f in self.foreign_keys],
            "indexes": [i.to_obj() for i in self.indexes],
            "name": self.name,
            "primary_key": list(self.primary_key),
            "unique": [list(u) for u in self.unique],
        }
        if self.pg_types:  # only when present: other schemas keep their bytes and ids
            o["pg_types"] = [d.to_obj() for d in self.pg_types]
        return o

    @classmethod
    def from_obj(cls, o: dict[str, Any]) -> TableSchema:
        return cls(
            name=o["name"],
            columns=tuple(Column.from_obj(c) for c in o["columns"]),
            primary_key=tuple(o.get("primary_key", ())),
            unique=tuple(tuple(u) for u in o.get("unique", ())),
            foreign_keys=tuple(ForeignKey.from_obj(f) for f in o.get("foreign_keys", ())),
            indexes=tuple(Index.from_obj(i) for i in o.get("indexes", ())),
            pg_types=tuple(PgTypeDef.from_obj(d) for d in o.get("pg_types", ())),
        )

    def portable(self) -> TableSchema:
        """The schema without database-specific spellings, for comparing across databases."""
        cols = tuple(Column(c.name, c.type, c.nullable, None, None, c.autoincrement) for c in self.columns)
        return TableSchema(self.name, cols, self.primary_key, self.unique, self.foreign_keys, ())


def table_order(schemas: dict[str, TableSchema]) -> list[str]:
    """Table names with parents before children (by foreign keys among these tables); tables in
    a cycle keep name order. Inserts go in this order, deletes in reverse."""
    deps = {
        name: sorted({fk.ref_table for fk in s.foreign_keys if fk.ref_table in schemas and fk.ref_table != name})
        for name, s in schemas.items()
    }
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(n: str) -> None:
        if state.get(n):
            return  # done, or on the current path (a cycle)
        state[n] = 1
        for d in deps[n]:
            visit(d)
        state[n] = 2
        order.append(n)

    for n in sorted(schemas):
        visit(n)
    return order
