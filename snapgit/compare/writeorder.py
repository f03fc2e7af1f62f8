"""The order in which rows are written so that foreign keys accept every statement.

PostgreSQL checks a foreign key at the end of each statement, MariaDB as a multi-row statement
reaches each row; only SQLite (here) waits until the commit. So a writer that deletes, updates
and inserts rows of several tables at once must order them: parents' inserts before their
children's, children's deletes before their parents'. Three rules go beyond that table order:

* :func:`late_deletes`: a row may move away from a parent that goes in the same change, so
  the deletes of such parents (and of the rows those refer to in turn) wait until the updates
  are in; every other delete goes first, freeing its unique values for the rows written after
  it. :func:`deletes_after_updates` names the tables where such rows can be, so that a writer
  that streams rows need hold only theirs;
* :func:`generations`: within a self-referencing table, rows are written in generations (rows
  that refer to none of the others written with them first, then the rows that refer to those);
* :func:`updates_after_inserts`: an updated row of a self-referencing table that comes to refer
  to a row inserted in the same change is written after the inserts.

Both writers of changes use them: applying a merge or restore (:mod:`snapgit.ops.apply`) and the
SQL that ``snap diff --sql`` prints (:mod:`snapgit.exchange.sqlgen`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from snapgit.encoding import encode_row
from snapgit.schema import TableSchema

__all__ = [
    "Reference",
    "deletes_after_updates",
    "generations",
    "late_deletes",
    "references_left",
    "updates_after_inserts",
]

# A value a row refers to: (the table referred to, its columns referred to, their values encoded)
Reference = tuple[str, tuple[str, ...], bytes]


def _self_references(schema: TableSchema) -> list[tuple[list[int], list[int]]]:
    """The foreign keys of ``schema`` to itself, as (referring, referred) column positions in
    :attr:`~snapgit.schema.TableSchema.sorted_names` order."""
    names = schema.sorted_names
    return [
        ([names.index(c) for c in fk.columns], [names.index(c) for c in fk.ref_columns])
        for fk in schema.foreign_keys
        if fk.ref_table == schema.name
    ]


def generations(schema: TableSchema, rows: Sequence[Any]) -> Sequence[Sequence[Any]]:
    """``rows`` of ``schema`` (in ``sorted_names`` order) split so that a row comes in a later
    generation than every row among them that it refers to by a foreign key of the table to
    itself. A reference cycle among them is cut at an arbitrary row: no order of single rows
    satisfies a cycle, and the database refuses it as it would have anyway."""
    refs = _self_references(schema)
    if not refs or len(rows) < 2:
        return [rows] if rows else []
    where = [{encode_row([row[i] for i in ref]): n for n, row in enumerate(rows)} for _cols, ref in refs]

    def parents(n: int) -> list[int]:
        found = []
        for (cols, _ref), index in zip(refs, where, strict=False):
            values = [rows[n][i] for i in cols]
            if all(v is not None for v in values):
                p = index.get(encode_row(values))
                if p is not None and p != n:
                    found.append(p)
        return found

    depth: list[int | None] = [None] * len(rows)
    for start in range(len(rows)):  # depth-first, without recursion: chains can be long
        if depth[start] is not None:
            continue
        on_path = {start}
        stack = [(start, iter(parents(start)))]
        while stack:
            n, todo = stack[-1]
            p = next(todo, None)
            if p is None:
                stack.pop()
                on_path.discard(n)
                depth[n] = 1 + max((d for q in parents(n) if (d := depth[q]) is not None), default=-1)
            elif depth[p] is None and p not in on_path:  # (on the path: a cycle, left as it is)
                on_path.add(p)
                stack.append((p, iter(parents(p))))
    out: list[list[Any]] = [[] for _ in range(max(d or 0 for d in depth) + 1)]
    for row, d in zip(rows, depth, strict=False):
        out[d or 0].append(row)
    return out


def deletes_after_updates(schemas: Mapping[str, TableSchema], updated: Iterable[str]) -> set[str]:
    """The tables (of ``schemas``) whose deletes may have to wait until the updates are written:
    those that a table of ``updated`` (the tables with updates) refers to, and every table those
    refer to in turn. Deletes of the other tables never wait; :func:`late_deletes` tells which
    rows of these do."""
    refers = {name: {fk.ref_table for fk in schema.foreign_keys} for name, schema in schemas.items()}
    late: set[str] = set()
    todo = [ref for name in updated for ref in refers[name]]
    while todo:
        name = todo.pop()
        if name in refers and name not in late:
            late.add(name)
            todo.extend(refers[name])
    return late


def _references(schema: TableSchema, row: Sequence[Any]) -> Iterator[Reference]:
    names = schema.sorted_names
    for fk in schema.foreign_keys:
        values = [row[names.index(c)] for c in fk.columns]
        if all(v is not None for v in values):  # (a NULL in a foreign key refers to nothing)
            yield fk.ref_table, tuple(fk.ref_columns), encode_row(values)


def references_left(schema: TableSchema, old: Sequence[Any], new: Sequence[Any]) -> list[Reference]:
    """The references that row ``old`` of ``schema`` holds and its update ``new`` gives up (both in
    ``sorted_names`` order): the rows they name must still be there when the update is written."""
    kept = set(_references(schema, new))
    return [ref for ref in _references(schema, old) if ref not in kept]


def late_deletes(
    schemas: Mapping[str, TableSchema], deletes: Mapping[str, Sequence[Any]], left: Iterable[Reference]
) -> dict[str, set[int]]:
    """Which of ``deletes`` (rows per table, in ``sorted_names`` order) wait until the updates are
    written, as positions per table: the rows an updated row refers to until its update
    (``left``, from :func:`references_left`: it moves away from a row that goes in the same
    change), and, so that children still go before their parents, every deleted row those refer
    to in turn. The other deletes go first, before anything is written, so that a value a
    deleted row held under a unique constraint is free for the rows written after it."""
    found: dict[tuple[str, tuple[str, ...]], dict[bytes, list[int]]] = {}

    def rows_named(table: str, columns: tuple[str, ...], values: bytes) -> list[int]:
        rows = deletes.get(table)
        if not rows or table not in schemas:
            return []
        index = found.get((table, columns))
        if index is None:
            names = schemas[table].sorted_names
            at = [names.index(c) for c in columns]
            index = found[table, columns] = {}
            for n, row in enumerate(rows):
                index.setdefault(encode_row([row[i] for i in at]), []).append(n)
        return index.get(values, [])

    late: dict[str, set[int]] = {}
    todo = list(left)
    while todo:
        table, columns, values = todo.pop()
        for n in rows_named(table, columns, values):
            waiting = late.setdefault(table, set())
            if n not in waiting:
                waiting.add(n)
                todo.extend(_references(schemas[table], deletes[table][n]))
    return late


def updates_after_inserts(
    schema: TableSchema, updates: Sequence[Any], inserts: Sequence[Any]
) -> tuple[Sequence[Any], Sequence[Any]]:
    """``updates`` of ``schema`` split into those written before the table's inserts and those
    written after them: an updated row that refers, by a foreign key of the table to itself, to
    one of ``inserts`` must wait for it. The others go first, so that a unique value an update
    gives up is free for the inserted rows. Rows are in ``sorted_names`` order."""
    refs = _self_references(schema)
    if not refs or not updates or not inserts:
        return updates, []
    inserted = [{encode_row([row[i] for i in ref]) for row in inserts} for _cols, ref in refs]

    def waits(row: Any) -> bool:
        for (cols, _ref), keys in zip(refs, inserted, strict=True):
            values = [row[i] for i in cols]
            if all(v is not None for v in values) and encode_row(values) in keys:
                return True
        return False

    before = [row for row in updates if not waits(row)]
    if len(before) == len(updates):
        return updates, []
    return before, [row for row in updates if waits(row)]
