"""Three-way merge of table snapshots: what to write into the live database, and what conflicts.

For each table, base -> ours and base -> theirs are diffed (:mod:`snapgit.tree.diff`, so shared subtrees cost
nothing) and the two streams are joined by key. Per key, one outcome:

==========================  =================================================================
ours \\ theirs               outcome
==========================  =================================================================
unchanged / changed          theirs' change is applied (insert, update or delete)
changed / unchanged          kept as it is (skipped)
same change on both          skipped (converged)
both modified                merged cell by cell: a column changed on one side takes that side;
                             the same column changed differently is a conflict
added on both, different     conflict (add/add)
deleted / modified           conflict (delete/modify), either way round
==========================  =================================================================

A strategy resolves conflicts only: ``backup_wins`` takes theirs (their delete deletes; their
cells win, the other side's non-conflicting cells stay merged), ``database_wins`` takes ours,
``manual`` resolves nothing and the merge stops with the conflicts listed. Everything that does
not conflict merges whatever the strategy.

The engine only plans: :class:`TablePlan` lists the rows to insert, update and delete and the
conflicts; applying the plan to a database is the caller's business.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from snapgit.compare.writeorder import Reference, references_left
from snapgit.encoding import decode_row, encode_row
from snapgit.errors import CorruptError, SnapError
from snapgit.objects import ObjType, TableEntry, decode_schema
from snapgit.schema import TableSchema
from snapgit.store.history import read_table
from snapgit.store.objectstore import ObjectReader
from snapgit.tree.diff import ADDED, CHANGED, REMOVED, RowChange, diff_trees_shared

__all__ = [
    "STRATEGIES",
    "Conflict",
    "TablePlan",
    "MergeError",
    "plan_table",
    "plan_merge",
]

STRATEGIES = ("backup_wins", "database_wins", "manual")


class MergeError(SnapError):
    pass


@dataclass
class Conflict:
    table: str
    key: bytes
    kind: str  # "cells", "add/add", "delete/modify", "modify/delete"
    base: list[Any] | None  # rows as values in sorted-column order
    ours: list[Any] | None
    theirs: list[Any] | None
    columns: list[str]  # the cells in conflict (every column for add/add and deletes)
    resolution: str | None = None  # "ours" | "theirs" once resolved


@dataclass
class TablePlan:
    name: str
    schema: TableSchema
    key: list[str] | None
    inserts: list[list[Any]] = field(default_factory=list)
    updates: list[list[Any]] = field(default_factory=list)
    deletes: list[list[Any]] = field(default_factory=list)  # full rows as they are in the database
    # one outcome per key considered: added + updated + deleted + skipped + conflicts
    added: int = 0
    updated: int = 0
    deleted: int = 0
    skipped: int = 0
    conflicts: list[Conflict] = field(default_factory=list)
    resolved_ours: int = 0
    resolved_theirs: int = 0
    # what the updated rows referred to and no longer will: a deleted row among those must wait
    # for the updates (snapgit.compare.writeorder.late_deletes)
    left: list[Reference] = field(default_factory=list)

    def update(self, row: list[Any], was: list[Any]) -> None:
        """Plan ``row`` to replace ``was``, the row as the database holds it."""
        self.updates.append(row)
        if self.schema.foreign_keys:
            self.left.extend(references_left(self.schema, was, row))

    @property
    def considered(self) -> int:
        return self.added + self.updated + self.deleted + self.skipped + len(self.conflicts)

    @property
    def unresolved(self) -> list[Conflict]:
        return [c for c in self.conflicts if c.resolution is None]

    @property
    def writes(self) -> int:
        return len(self.inserts) + len(self.updates) + len(self.deletes)


def _row(reader: ObjectReader, rid: bytes | None) -> list[Any] | None:
    if rid is None:
        return None
    otype, data = reader.get(rid)
    return decode_row(data)


def _row_of(reader: ObjectReader, rid: bytes | None) -> list[Any]:
    """The row of a record id that the change's kind guarantees: the new one of an added or
    changed row, the old one of a removed or changed row."""
    assert rid is not None, "a change without the record id its kind implies"
    return decode_row(reader.get(rid)[1])


def _same(a: list[Any] | None, b: list[Any] | None, ignore: frozenset[int]) -> bool:
    """Rows equal but for the ignored columns (by canonical bytes)."""
    if a is None or b is None:
        return a is b
    return all(
        encode_row([x]) == encode_row([y]) for i, (x, y) in enumerate(zip(a, b, strict=False)) if i not in ignore
    )


def _cells_merge(
    names: list[str], base: list[Any], ours: list[Any], theirs: list[Any], ignore: frozenset[int] = frozenset()
) -> tuple[list[Any], list[str]]:
    """(merged row with ours in conflicting cells, conflicting column names). Ignored columns
    never conflict: they keep the database's value."""
    merged = []
    conflicts = []
    for i, name in enumerate(names):
        if i in ignore:
            merged.append(ours[i])
            continue
        b, o, t = base[i], ours[i], theirs[i]
        bb, ob, tb = encode_row([b]), encode_row([o]), encode_row([t])
        if ob == bb:
            merged.append(t)
        elif tb == bb or ob == tb:
            merged.append(o)
        else:
            merged.append(o)
            conflicts.append(name)
    return merged, conflicts


def _join(a: Iterator[RowChange], b: Iterator[RowChange]) -> Iterator[tuple[bytes, RowChange | None, RowChange | None]]:
    """Both change streams joined by key (both are in key order)."""
    x = next(a, None)
    y = next(b, None)
    while x is not None or y is not None:
        if y is None or (x is not None and x.key < y.key):
            yield x.key, x, None  # type: ignore[union-attr]
            x = next(a, None)
        elif x is None or y.key < x.key:
            yield y.key, None, y
            y = next(b, None)
        else:
            yield x.key, x, y
            x = next(a, None)
            y = next(b, None)


def plan_table(
    name: str,
    reader: ObjectReader,
    base: TableEntry | None,
    ours: TableEntry,
    theirs: TableEntry,
    strategy: str,
    resolutions: dict[bytes, str] | None = None,
    ignore: list[str] | None = None,
) -> TablePlan:
    """The rows to write into ``ours`` (the live database) to merge ``theirs`` into it.

    ``ignore`` names columns left out when comparing (e.g. ``updated_at``): a change to them
    alone is no change, and they never conflict.
    """
    schema = _schema(reader, theirs)
    ours_schema = _schema(reader, ours)
    if sorted(schema.column_names) != sorted(ours_schema.column_names):
        raise MergeError(
            f"table {name!r} has different columns in the database and in the snapshot",
            hint="bring the schemas in line first (snapgit merges data, not schema changes)",
        )
    if ours.key != theirs.key:
        raise MergeError(
            f"table {name!r} is keyed differently in the database ({ours.key}) and the snapshot ({theirs.key})",
            hint="the key (primary or natural, from config.toml) must be the same on both sides",
        )
    if base is not None and base.key != theirs.key:
        raise MergeError(
            f"table {name!r} is keyed by {theirs.key} on both sides but by {base.key} in their common base",
            hint="rows cannot be matched with the base's: `snap restore` the snapshot instead (theirs wins "
            "everywhere), or key the table as the base did in config.toml",
        )
    names = schema.sorted_names
    unknown = [c for c in ignore or () if c not in names]
    if unknown:
        raise MergeError(f"table {name!r} has no column {unknown[0]!r} to ignore", hint="fix ignore in config.toml")
    ign = frozenset(names.index(c) for c in ignore or ())
    plan = TablePlan(name, schema, theirs.key)
    base_root = base.root if base is not None else None
    # each read by two processes on a big table (the keys below and above its middle row)
    d_ours = diff_trees_shared(reader, base_root, reader, ours.root)
    d_theirs = diff_trees_shared(reader, base_root, reader, theirs.root)
    resolutions = resolutions or {}
    for key, o, t in _join(d_ours, d_theirs):
        if t is None:
            plan.skipped += 1  # changed in the database only: keep
            continue
        if o is None:
            if ign and t.op == CHANGED and _same(_row(reader, t.old), _row(reader, t.new), ign):
                plan.skipped += 1  # only ignored columns changed
                continue
            _apply_theirs(plan, reader, t)
            continue
        if o.new == t.new:
            plan.skipped += 1  # the same change on both sides
            continue
        if ign:
            o_new, t_new = _row(reader, o.new), _row(reader, t.new)
            if _same(o_new, t_new, ign):
                plan.skipped += 1  # the same change but for ignored columns
                continue
            if o.op == REMOVED and _same(_row(reader, t.old), t_new, ign):
                plan.skipped += 1  # we deleted it; they only touched ignored columns
                continue
            if t.op == REMOVED and _same(_row(reader, o.old), o_new, ign):
                _apply_theirs(plan, reader, t)  # they deleted it; we only touched ignored columns
                continue
        # both sides changed this key, differently
        if o.op == CHANGED and t.op == CHANGED:
            b_row, o_row, t_row = _row_of(reader, o.old), _row_of(reader, o.new), _row_of(reader, t.new)
            merged, cols = _cells_merge(names, b_row, o_row, t_row, ign)
            if cols:
                c = Conflict(name, key, "cells", b_row, o_row, t_row, cols)
                _resolve(plan, c, strategy, resolutions, merged=merged, names=names)
            elif encode_row(merged) == encode_row(o_row):
                plan.skipped += 1
            else:
                plan.update(merged, o_row)
                plan.updated += 1
            continue
        kind = {
            (ADDED, ADDED): "add/add",
            (REMOVED, CHANGED): "delete/modify",
            (CHANGED, REMOVED): "modify/delete",
        }.get((o.op, t.op))
        if kind is None:  # e.g. removed on both with different old ids cannot happen; be safe
            raise MergeError(f"table {name!r}: unexpected change pair {o.op}/{t.op}")
        c = Conflict(name, key, kind, _row(reader, o.old), _row(reader, o.new), _row(reader, t.new), list(names))
        _resolve(plan, c, strategy, resolutions)
    return plan


def _apply_theirs(plan: TablePlan, reader: ObjectReader, t: RowChange) -> None:
    if t.op == ADDED:
        plan.inserts.append(_row_of(reader, t.new))
        plan.added += 1
    elif t.op == REMOVED:
        plan.deletes.append(_row_of(reader, t.old))
        plan.deleted += 1
    else:  # the database holds the base row: only theirs changed it
        plan.update(_row_of(reader, t.new), _row_of(reader, t.old) if plan.schema.foreign_keys else [])
        plan.updated += 1


def _resolve(
    plan: TablePlan,
    c: Conflict,
    strategy: str,
    resolutions: dict[bytes, str],
    merged: list[Any] | None = None,
    names: list[str] | None = None,
) -> None:
    """Apply a conflict's resolution (by the recorded per-key choice, else the strategy)."""
    plan.conflicts.append(c)
    choice = resolutions.get(c.key) or {"backup_wins": "theirs", "database_wins": "ours"}.get(strategy)
    c.resolution = choice
    if choice is None:
        return  # manual and unresolved: nothing is written for it
    if choice == "ours":
        plan.resolved_ours += 1
        if c.kind == "cells":
            # a cells conflict comes with the merged row, and has all three rows
            assert merged is not None and c.ours is not None
            if encode_row(merged) != encode_row(c.ours):
                plan.update(list(merged), c.ours)  # cells only theirs changed merge all the same
        return  # else the database already holds ours
    plan.resolved_theirs += 1
    if c.kind == "cells":
        # a cells conflict comes with the merged row and the column names, and has all three rows
        assert merged is not None and names is not None and c.theirs is not None and c.ours is not None
        row = list(merged)
        for col in c.columns:
            i = names.index(col)
            row[i] = c.theirs[i]
        plan.update(row, c.ours)
    elif c.theirs is None:  # their delete wins
        assert c.ours is not None, "a delete conflicts only with a change"
        plan.deletes.append(c.ours)
    elif c.ours is None:  # we deleted it; theirs brings it back
        plan.inserts.append(c.theirs)
    else:  # add/add: theirs replaces ours
        plan.update(c.theirs, c.ours)


def _schema(reader: ObjectReader, entry: TableEntry) -> TableSchema:
    otype, data = reader.get(entry.schema)
    if otype != ObjType.SCHEMA:  # damage: a table object names it as its schema
        raise CorruptError(
            f"object {entry.schema.hex()} is not a schema", hint="run `snap verify` to see what is affected"
        )
    return decode_schema(data)


def plan_merge(
    reader: ObjectReader,
    base: dict[str, bytes],
    ours: dict[str, bytes],
    theirs: dict[str, bytes],
    strategy: str,
    tables: list[str] | None = None,
    resolutions: dict[str, dict[bytes, str]] | None = None,
    ignore: dict[str, list[str]] | None = None,
) -> list[TablePlan]:
    """Plans for every table of ``theirs`` (or those named) that the database has too.

    A table that exists only in the snapshot is an error: merging rows into a table the
    database does not have would need DDL, which a merge does not do.
    """
    if strategy not in STRATEGIES:
        raise MergeError(f"unknown strategy {strategy!r}", hint="use backup_wins, database_wins or manual")
    names = sorted(theirs)
    if tables:
        missing = [t for t in tables if t not in theirs]
        if missing:
            raise MergeError(f"no table {missing[0]!r} in the snapshot", hint="tables: " + ", ".join(names))
        names = [n for n in names if n in tables]
    plans = []
    for name in names:
        if name not in ours:
            raise MergeError(
                f"table {name!r} is in the snapshot but not in the database",
                hint="create it first, or leave it out with --tables",
            )
        if ours[name] == theirs[name] == base.get(name):
            continue  # unchanged on both sides: nothing to consider
        b = read_table(reader, base[name]) if name in base else None
        plans.append(
            plan_table(
                name,
                reader,
                b,
                read_table(reader, ours[name]),
                read_table(reader, theirs[name]),
                strategy,
                (resolutions or {}).get(name),
                (ignore or {}).get(name),
            )
        )
    return plans
