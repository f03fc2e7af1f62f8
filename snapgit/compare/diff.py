"""``diff`` and ``status``: what changed between two snapshots, schema and rows, cell by cell.

A side of a diff is a snapshot tree (:class:`Side`): a commit's, or the live database's built
by the commit code into a scratch store (or an in-memory overlay: :func:`snapgit.ops.commit.live_side`). Tables are paired by name; for each pair the
schemas are compared (:func:`schema_changes`) and the trees diffed (:mod:`snapgit.tree.diff`), which costs
the size of the change. Row changes come out lazily, decoded on demand: ``--stat`` never
decodes a record, ``--limit`` stops reading early.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from snapgit.encoding import decode_row
from snapgit.errors import NotFoundError
from snapgit.objects import ObjType, TableEntry, decode_schema
from snapgit.schema import TableSchema
from snapgit.store.history import read_table
from snapgit.store.objectstore import ObjectReader
from snapgit.tree.diff import ADDED, CHANGED, REMOVED, RowChange, diff_trees, diff_trees_shared

__all__ = [
    "Side",
    "SchemaChange",
    "RowDiff",
    "TableStat",
    "TableDiff",
    "diff_sides",
    "schema_changes",
    "UnknownTableError",
]


class UnknownTableError(NotFoundError):
    pass


@dataclass
class Side:
    """One side of a diff: something that reads objects, and its tables (name -> table id).

    ``changes``: tables this side holds as their row changes against the other side's (the
    live database read through change capture, :func:`snapgit.ops.commit.live_side`): their
    table id is the other side's, whose schema and key they have, and their rows are those
    with the changes applied."""

    reader: ObjectReader
    tables: dict[str, bytes]
    label: str
    changes: dict[str, list[RowChange]] = field(default_factory=dict)


@dataclass(frozen=True)
class SchemaChange:
    table: str
    kind: str  # table_added table_removed column_added column_removed type_changed nullable_changed key_changed
    column: str | None = None
    old: Any = None
    new: Any = None

    def describe(self) -> str:
        if self.kind == "table_added":
            return f"table {self.table} added"
        if self.kind == "table_removed":
            return f"table {self.table} removed"
        if self.kind == "column_added":
            return f"column {self.column} added ({self.new})"
        if self.kind == "column_removed":
            return f"column {self.column} removed (was {self.old})"
        if self.kind == "type_changed":
            return f"column {self.column}: type {self.old} -> {self.new}"
        if self.kind == "nullable_changed":
            return f"column {self.column}: {'NULL' if self.old else 'NOT NULL'} -> {'NULL' if self.new else 'NOT NULL'}"
        if self.kind == "key_changed":
            return f"key ({', '.join(self.old or []) or 'none'}) -> ({', '.join(self.new or []) or 'none'})"
        return f"{self.kind} {self.column or ''}".strip()

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "op": "schema",
            "kind": self.kind,
            "column": self.column,
            "old": self.old,
            "new": self.new,
        }


@dataclass
class RowDiff:
    """One row change, decoded: key and full old/new rows as {column: value}."""

    table: str
    op: str
    key: dict[str, Any]
    old: dict[str, Any] | None
    new: dict[str, Any] | None

    @property
    def changed_columns(self) -> list[str]:
        if self.op != CHANGED or self.old is None or self.new is None:
            return []
        names = list(self.new) + [c for c in self.old if c not in self.new]
        return [c for c in names if c not in self.old or c not in self.new or not _same(self.old[c], self.new[c])]


def _same(a: Any, b: Any) -> bool:
    """Equality as the store sees it: by canonical bytes (NaN equals NaN, 1.5 != 1.50)."""
    from snapgit.encoding import encode_value

    if type(a) is not type(b):
        return False
    try:
        return encode_value(a) == encode_value(b)
    except Exception:  # noqa: BLE001 - a value the encoder refuses is compared as Python sees it
        return a == b


@dataclass
class TableStat:
    table: str
    added: int = 0
    removed: int = 0
    changed: int = 0
    schema: list[SchemaChange] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.added + self.removed + self.changed


def schema_changes(
    name: str, old: TableSchema | None, new: TableSchema | None, old_key: list[str] | None, new_key: list[str] | None
) -> list[SchemaChange]:
    if old is None and new is None:
        return []
    if old is None:
        return [SchemaChange(name, "table_added")]
    if new is None:
        return [SchemaChange(name, "table_removed")]
    out = []
    oc = {c.name: c for c in old.columns}
    nc = {c.name: c for c in new.columns}
    for c in old.columns:
        if c.name not in nc:
            out.append(SchemaChange(name, "column_removed", c.name, c.type, None))
    for c in new.columns:
        if c.name not in oc:
            out.append(SchemaChange(name, "column_added", c.name, None, c.type))
            continue
        o = oc[c.name]
        if o.type != c.type:
            out.append(SchemaChange(name, "type_changed", c.name, o.type, c.type))
        if o.nullable != c.nullable:
            out.append(SchemaChange(name, "nullable_changed", c.name, o.nullable, c.nullable))
    if (old_key or None) != (new_key or None):
        out.append(SchemaChange(name, "key_changed", None, old_key, new_key))
    return out


class TableDiff:
    """The difference of one table between two sides."""

    def __init__(self, name: str, a: Side, b: Side) -> None:
        self.name = name
        self.a, self.b = a, b
        self.old_entry = read_table(a.reader, a.tables[name]) if name in a.tables else None
        self.new_entry = read_table(b.reader, b.tables[name]) if name in b.tables else None
        self.old_schema = self._schema(a.reader, self.old_entry)
        self.new_schema = self._schema(b.reader, self.new_entry)
        self.schema = schema_changes(
            name,
            self.old_schema,
            self.new_schema,
            self.old_entry.key if self.old_entry else None,
            self.new_entry.key if self.new_entry else None,
        )

    @staticmethod
    def _schema(reader: ObjectReader, entry: TableEntry | None) -> TableSchema | None:
        if entry is None:
            return None
        otype, data = reader.get(entry.schema)
        if otype != ObjType.SCHEMA:
            from snapgit.errors import CorruptError

            raise CorruptError(f"object {entry.schema.hex()} is not a schema")
        return decode_schema(data)

    @property
    def unchanged(self) -> bool:
        listed = self._listed()
        if listed is not None:
            return not listed
        a, b = self.a.tables.get(self.name), self.b.tables.get(self.name)
        return a is not None and a == b

    def _listed(self) -> list[RowChange] | None:
        """The changes a side listed against the other (see :class:`Side`), or None."""
        if self.name in self.b.changes:
            return self.b.changes[self.name]
        if self.name in self.a.changes:  # listed against b: a is b with them applied
            return [_reversed(ch) for ch in self.a.changes[self.name]]
        return None

    def changes(self) -> Iterator[RowChange]:
        """Row changes by key, undecoded. Tables keyed differently are compared as remove + add."""
        listed = self._listed()
        if listed is not None:
            yield from listed
            return
        old_root = self.old_entry.root if self.old_entry else None
        new_root = self.new_entry.root if self.new_entry else None
        if self.old_entry and self.new_entry and self.old_entry.key != self.new_entry.key:
            yield from diff_trees(self.a.reader, old_root, self.b.reader, None)
            yield from diff_trees(self.a.reader, None, self.b.reader, new_root)
            return
        yield from diff_trees_shared(self.a.reader, old_root, self.b.reader, new_root)

    def stat(self) -> TableStat:
        st = TableStat(self.name, schema=list(self.schema))
        if self.unchanged:
            return st
        for ch in self.changes():
            if ch.op == ADDED:
                st.added += 1
            elif ch.op == REMOVED:
                st.removed += 1
            else:
                st.changed += 1
        return st

    def _row(self, reader: ObjectReader, schema: TableSchema | None, rid: bytes) -> dict[str, Any]:
        assert schema is not None, "a side that holds a row of the table holds its schema"
        otype, data = reader.get(rid)
        by_name = dict(zip(schema.sorted_names, decode_row(data), strict=False))
        return {c: by_name[c] for c in schema.column_names}

    def _key(self, row: dict[str, Any], entry: TableEntry | None) -> dict[str, Any]:
        if entry is None or not entry.key:
            return dict(row)  # keyless: the row is its own key
        return {k: row.get(k) for k in entry.key}

    def rows(self) -> Iterator[RowDiff]:
        """Decoded row changes, in key order."""
        if self.unchanged:
            return
        for ch in self.changes():
            old = self._row(self.a.reader, self.old_schema, ch.old) if ch.old is not None else None
            new = self._row(self.b.reader, self.new_schema, ch.new) if ch.new is not None else None
            entry = self.new_entry if new is not None else self.old_entry
            row = new if new is not None else old
            assert row is not None, "a change has a row on one side at least"
            key = self._key(row, entry)
            yield RowDiff(self.name, ch.op, key, old, new)


def _reversed(ch: RowChange) -> RowChange:
    op = REMOVED if ch.op == ADDED else ADDED if ch.op == REMOVED else CHANGED
    return RowChange(op, ch.key, ch.new, ch.old)


def diff_sides(a: Side, b: Side, tables: list[str] | None = None) -> list[TableDiff]:
    """Per-table diffs of two sides, for every table on either side (or those named)."""
    names = sorted(set(a.tables) | set(b.tables))
    if tables:
        missing = [t for t in tables if t not in names]
        if missing:
            raise UnknownTableError(
                f"no table {missing[0]!r} in {a.label} or {b.label}",
                hint="tables: " + (", ".join(names) if names else "(none)"),
            )
        names = [n for n in names if n in tables]
    return [TableDiff(n, a, b) for n in names]
