"""Writing rows into a live database: merge plans applied, or whole tables loaded.

Both writers work in one transaction, in an order foreign keys accept, in batches of
:data:`BATCH` rows, and end the same way: foreign keys are checked before the transaction
commits and sequences and autoincrement counters are moved past the largest id, so any error
rolls everything back and the database is either as it was or fully written.

:func:`apply_plans` (merge, restore in place) writes plans held in memory: deletes first,
children before parents; then updates and inserts, parents before children; last the deletes
of the tables an updated table refers to (:func:`deletes_after_updates`: a row may move away from
a parent that goes in the same merge), children before parents again. Within a
self-referencing table the same holds row by row: rows are written in generations (rows that
refer to none of the others written with them, then the rows that refer to those, ...), inserts
oldest generation first, deletes youngest first, one statement per generation, because MariaDB
checks each row as a multi-row statement reaches it and PostgreSQL each statement.

:func:`load_tables` (``restore --into``) creates the tables in a new database and streams their
records out of the store, never holding a table in memory: the trees are walked leaf by leaf,
by a second process for big tables (:mod:`snapgit.ops.readahead`). If loading fails, the tables
it created are dropped again.

Both report progress (:class:`snapgit.progress.Progress`): ``table(name, rows to write)`` as
each table starts, ``advance(rows)`` after each batch. A plan with deletes and writes shows its
table twice: once in the delete pass, once in the write pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from snapgit.compare.mergeplan import TablePlan
from snapgit.encoding import decode_joined, encode_row
from snapgit.objects import TableEntry
from snapgit.ops.readahead import leaf_records, worth_reading_ahead
from snapgit.progress import Progress
from snapgit.schema import TableSchema, table_order
from snapgit.snapshot.build import paused_gc

__all__ = ["BATCH", "apply_plans", "deletes_after_updates", "generations", "load_tables"]

BATCH = 5_000  # rows per statement batch


def _batches(rows: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for i in range(0, len(rows), BATCH):
        yield rows[i : i + BATCH]


class _Reporter:
    """Progress calls, or none when nobody watches."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress

    def table(self, name: str, total: int | None) -> None:
        if self._progress is not None:
            self._progress.table(name, total)

    def advance(self, rows: int) -> None:
        if self._progress is not None and rows:
            self._progress.advance(rows)


def _finish(tx: Any, checked: Sequence[str], reset: Sequence[TableSchema]) -> None:
    tx.check_foreign_keys(list(checked))
    for schema in reset:
        tx.reset_sequences(schema)


def generations(schema: TableSchema, rows: Sequence[Any]) -> Sequence[Sequence[Any]]:
    """``rows`` of ``schema`` (in ``sorted_names`` order) split so that a row comes in a later
    generation than every row among them that it refers to by a foreign key of the table to
    itself. A reference cycle among them is cut at an arbitrary row: no order of single rows
    satisfies a cycle, and the database refuses it as it would have anyway."""
    names = schema.sorted_names
    refs = [
        ([names.index(c) for c in fk.columns], [names.index(c) for c in fk.ref_columns])
        for fk in schema.foreign_keys
        if fk.ref_table == schema.name
    ]
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


def apply_plans(db: Any, plans: Sequence[TablePlan], progress: Progress | None = None) -> None:
    """Write every plan into ``db`` (a snapgit.db.Database) in one transaction."""
    todo = [p for p in plans if p.inserts or p.updates or p.deletes]
    if not todo:
        return
    report = _Reporter(progress)
    by_name = {p.name: p for p in todo}
    order = table_order({p.name: p.schema for p in todo})
    late = deletes_after_updates(todo)

    def delete(names: Sequence[str]) -> None:
        for name in reversed(names):
            p = by_name[name]
            if p.deletes:
                report.table(name, len(p.deletes))
            for generation in reversed(generations(p.schema, p.deletes)):
                for batch in _batches(generation):
                    tx.delete_rows(p.schema, p.key, batch)
                    report.advance(len(batch))

    with db.write() as tx:
        delete([name for name in order if name not in late])
        for name in order:
            p = by_name[name]
            if p.updates or p.inserts:
                report.table(name, len(p.updates) + len(p.inserts))
            for batch in _batches(p.updates):
                tx.update_rows(p.schema, p.key, batch)
                report.advance(len(batch))
            for generation in generations(p.schema, p.inserts):
                for batch in _batches(generation):
                    tx.insert_rows(p.schema, batch)
                    report.advance(len(batch))
        delete([name for name in order if name in late])
        _finish(tx, [p.name for p in todo], [p.schema for p in todo if p.inserts])


def deletes_after_updates(plans: Sequence[TablePlan]) -> set[str]:
    """The tables whose deletes wait until the updates are written: those that a table with
    updates refers to (an updated row may be moving away from a parent that goes), and, so that
    children still go before their parents, every table those refer to in turn. The others
    delete first, before anything is written, so that a value a deleted row held under a unique
    constraint is free for the rows written after it."""
    refers = {p.name: {fk.ref_table for fk in p.schema.foreign_keys} for p in plans}
    late: set[str] = set()
    todo = [ref for p in plans if p.updates for ref in refers[p.name]]
    while todo:
        name = todo.pop()
        if name in refers and name not in late:
            late.add(name)
            todo.extend(refers[name])
    return late


def _gc_paused(items: Iterator[Any]) -> Iterator[Any]:
    """``items``, with the cyclic garbage collector paused while they are consumed (decoding
    makes many small containers that live until their batch is written)."""
    with paused_gc():
        yield from items


def load_tables(
    db: Any,
    objects: Any,
    tables: Sequence[tuple[TableSchema, TableEntry]],
    progress: Progress | None = None,
    source_dialect: str | None = None,
) -> None:
    """Create ``tables`` (schema and stored table) in ``db`` and fill them with their records,
    in one transaction; on any failure the created tables are dropped again. The foreign keys
    are added once the rows are in (except on SQLite, which checks them at the end): records
    come in key order, and a self-referencing table's child may come before its parent.
    ``source_dialect``: the dialect the schemas were read from, for native column types
    (:meth:`~snapgit.db.write.WriteTransaction.create_tables`)."""
    schemas = {schema.name: schema for schema, _entry in tables}
    order = table_order(schemas)
    by_name = {schema.name: (schema, entry) for schema, entry in tables}
    ordered = [by_name[name] for name in order]
    with db.write() as tx:
        foreign_keys = tx.create_tables(
            [schema for schema, _entry in tables], foreign_keys_later=True, source_dialect=source_dialect
        )
    report = _Reporter(progress)
    try:
        with db.write() as tx:
            ahead = worth_reading_ahead(sum(e.rows for _s, e in ordered))
            started = -1  # tables up to this index have been announced to ``progress``

            def reach(index: int) -> None:
                nonlocal started
                while started < index:
                    started += 1
                    schema, entry = ordered[started]
                    report.table(schema.name, entry.rows)

            batch: list = []
            current = 0
            records = leaf_records(objects, [e.root for _s, e in ordered], ahead=ahead)
            for i, data, n in _gc_paused(records):
                if i != current:
                    if batch:
                        tx.insert_rows(ordered[current][0], batch, background=True)
                        report.advance(len(batch))
                    batch, current = [], i
                reach(i)
                batch.extend(decode_joined(data, n))
                if len(batch) >= BATCH:
                    tx.insert_rows(ordered[i][0], batch, background=True)
                    report.advance(len(batch))
                    batch = []
            if batch:
                tx.insert_rows(ordered[current][0], batch, background=True)
                report.advance(len(batch))
            reach(len(ordered) - 1)  # tables without rows
            _finish(tx, list(schemas), [schema for schema, _entry in tables])
        if foreign_keys:
            with db.write() as tx:
                tx.add_foreign_keys(foreign_keys)
    except BaseException:
        with db.write() as tx:
            tx.drop_tables(list(reversed(order)))
        raise
