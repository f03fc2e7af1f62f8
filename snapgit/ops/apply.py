"""Apply merge plans to a live database: one transaction, in an order foreign keys accept.

Deletes go first, children before parents; then inserts and updates, parents before children.
Within a self-referencing table the same holds row by row: rows are written in generations (rows
that refer to none of the others written with them, then the rows that refer to those, ...),
inserts oldest generation first, deletes youngest first, one statement per generation, because
MariaDB checks each row as a multi-row statement reaches it and PostgreSQL each statement.
Foreign keys are checked before the transaction commits, sequences and autoincrement counters
are moved past the largest id, and any error rolls the whole transaction back, so the database
is either as it was or fully merged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from snapgit.compare.mergeplan import TablePlan
from snapgit.encoding import encode_row
from snapgit.schema import TableSchema, table_order

__all__ = ["apply_plans", "generations"]

_BATCH = 5_000


def _batches(rows: Sequence[Any]):
    for i in range(0, len(rows), _BATCH):
        yield rows[i : i + _BATCH]


def generations(schema: TableSchema, rows: Sequence[Any]) -> list[Sequence[Any]]:
    """``rows`` of ``schema`` (in ``sorted_names`` order) split so that a row comes in a later
    generation than every row among them that it refers to by a foreign key of the table to
    itself. A reference cycle among them is cut at an arbitrary row: no order of single rows
    satisfies a cycle, and the database refuses it as it would have anyway."""
    names = schema.sorted_names
    refs = [([names.index(c) for c in fk.columns], [names.index(c) for c in fk.ref_columns])
            for fk in schema.foreign_keys if fk.ref_table == schema.name]
    if not refs or len(rows) < 2:
        return [rows] if rows else []
    where = [{encode_row([row[i] for i in ref]): n for n, row in enumerate(rows)} for _cols, ref in refs]

    def parents(n: int) -> list[int]:
        found = []
        for (cols, _ref), index in zip(refs, where):
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
    for row, d in zip(rows, depth):
        out[d or 0].append(row)
    return out


def apply_plans(db: Any, plans: Sequence[TablePlan], progress: Any = None) -> None:
    """Write every plan into ``db`` (a snapgit.db.Database) in one transaction."""
    todo = [p for p in plans if p.inserts or p.updates or p.deletes]
    if not todo:
        return
    by_name = {p.name: p for p in todo}
    order = table_order({p.name: p.schema for p in todo})
    with db.write() as tx:
        for name in reversed(order):
            p = by_name[name]
            for generation in reversed(generations(p.schema, p.deletes)):
                for batch in _batches(generation):
                    tx.delete_rows(p.schema, p.key, batch)
        for name in order:
            p = by_name[name]
            for batch in _batches(p.updates):
                tx.update_rows(p.schema, p.key, batch)
            for generation in generations(p.schema, p.inserts):
                for batch in _batches(generation):
                    tx.insert_rows(p.schema, batch)
        tx.check_foreign_keys([p.name for p in todo])
        for p in todo:
            if p.inserts:
                tx.reset_sequences(p.schema)
