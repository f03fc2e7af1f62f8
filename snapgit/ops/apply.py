"""Writing rows into a live database: merge plans applied, or whole tables loaded.

Both writers work in one transaction, in an order foreign keys accept, in batches of
:data:`BATCH` rows, and end the same way: foreign keys are checked before the transaction
commits and sequences and autoincrement counters are moved past the largest id, so any error
rolls everything back and the database is either as it was or fully written.

:func:`apply_plans` (merge, restore in place) writes plans held in memory: deletes first,
children before parents; then updates and inserts, parents before children; last the deletes
of the rows an updated row moves away from (and of the rows those refer to), children before
parents again. Within a
self-referencing table rows are written in generations, and an update that comes to refer to an
inserted row waits for it: the rules of :mod:`snapgit.compare.writeorder`, because MariaDB checks
each row as a multi-row statement reaches it and PostgreSQL each statement.

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
from snapgit.compare.writeorder import generations, late_deletes, updates_after_inserts
from snapgit.encoding import decode_joined
from snapgit.objects import TableEntry
from snapgit.ops.readahead import leaf_records, worth_reading_ahead
from snapgit.progress import Progress
from snapgit.schema import TableSchema, table_order
from snapgit.snapshot.build import paused_gc

__all__ = ["BATCH", "apply_plans", "load_tables"]

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


def fit_checkers(db: Any, schemas: Sequence[TableSchema]) -> dict[str, Any]:
    """A :class:`snapgit.db.fit.RowChecker` per table of ``schemas`` that ``db`` has: the rows
    of each are checked against its columns as ``db`` has them before any is written."""
    from snapgit.db.fit import RowChecker

    with db.snapshot() as snap:
        there = {s.name: s for s in snap.reflect(sorted({s.name for s in schemas}))}
    return {s.name: RowChecker(db.dialect, s, there[s.name]) for s in schemas if s.name in there}


def apply_plans(db: Any, plans: Sequence[TablePlan], progress: Progress | None = None) -> None:
    """Write every plan into ``db`` (a snapgit.db.Database) in one transaction. On PostgreSQL and
    MariaDB, whose columns refuse or change values SQLite keeps, every row written is first
    checked against the live columns (:mod:`snapgit.db.fit`): a value that does not fit stops
    the write before anything is written."""
    todo = [p for p in plans if p.inserts or p.updates or p.deletes]
    if not todo:
        return
    if db.dialect != "sqlite":
        checkers = fit_checkers(db, [p.schema for p in todo if p.inserts or p.updates])
        for p in todo:
            if p.name in checkers:
                checkers[p.name].check(p.updates)
                checkers[p.name].check(p.inserts)
    report = _Reporter(progress)
    by_name = {p.name: p for p in todo}
    order = table_order({p.name: p.schema for p in todo})
    late = late_deletes(
        {p.name: p.schema for p in todo}, {p.name: p.deletes for p in todo}, [ref for p in todo for ref in p.left]
    )

    def delete(names: Sequence[str], waiting: bool) -> None:
        for name in reversed(names):
            p = by_name[name]
            wait = late.get(name)
            if not wait:
                rows = [] if waiting else p.deletes
            else:
                rows = [r for n, r in enumerate(p.deletes) if (n in wait) == waiting]
            if rows:
                report.table(name, len(rows))
            for generation in reversed(generations(p.schema, rows)):
                for batch in _batches(generation):
                    tx.delete_rows(p.schema, p.key, batch)
                    report.advance(len(batch))

    def update(p: TablePlan, rows: Sequence[Any]) -> None:
        for batch in _batches(rows):
            tx.update_rows(p.schema, p.key, batch)
            report.advance(len(batch))

    with db.write() as tx:
        delete(order, waiting=False)
        for name in order:
            p = by_name[name]
            if p.updates or p.inserts:
                report.table(name, len(p.updates) + len(p.inserts))
            first, last = updates_after_inserts(p.schema, p.updates, p.inserts)
            update(p, first)
            for generation in generations(p.schema, p.inserts):
                for batch in _batches(generation):
                    tx.insert_rows(p.schema, batch)
                    report.advance(len(batch))
            update(p, last)
        delete(order, waiting=True)
        _finish(tx, [p.name for p in todo], [p.schema for p in todo if p.inserts])


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
    come in key order, and a self-referencing table's child may come before its parent. On
    PostgreSQL the primary keys, unique constraints and indexes are added then too, just
    before the foreign keys: each index is built once, from all the rows.
    ``source_dialect``: the dialect the schemas were read from, for native column types
    (:meth:`~snapgit.db.write.WriteTransaction.create_tables`)."""
    schemas = {schema.name: schema for schema, _entry in tables}
    order = table_order(schemas)
    by_name = {schema.name: (schema, entry) for schema, entry in tables}
    ordered = [by_name[name] for name in order]
    with db.write() as tx:
        foreign_keys = tx.create_tables(
            [schema for schema, _entry in tables],
            foreign_keys_later=True,
            keys_later=True,
            source_dialect=source_dialect,
        )
    report = _Reporter(progress)
    try:
        # rows read from the same kind of database fit the columns created from their native types
        checkers = fit_checkers(db, list(schemas.values())) if source_dialect != db.dialect else {}
        with db.write() as tx:
            ahead = worth_reading_ahead(sum(e.rows for _s, e in ordered))
            started = -1  # tables up to this index have been announced to ``progress``

            def reach(index: int) -> None:
                nonlocal started
                while started < index:
                    started += 1
                    schema, entry = ordered[started]
                    report.table(schema.name, entry.rows)

            pending: list[bytes] = []  # records of the current table not yet written
            held = 0  # how many

            def write(index: int) -> None:
                """The pending records of table ``index``: as they are stored where the database
                takes them so, else decoded, checked and converted."""
                nonlocal held
                schema = ordered[index][0]
                data, n = b"".join(pending), held
                pending.clear()
                held = 0
                check = checkers.get(schema.name)
                if not tx.insert_records(schema, data, n, {} if check is None else check.plain_limits):
                    rows = decode_joined(data, n)
                    if check is not None:
                        check.check(rows)
                    tx.insert_rows(schema, rows, background=True)
                report.advance(n)

            current = 0
            records = leaf_records(objects, [e.root for _s, e in ordered], ahead=ahead)
            for i, data, n in _gc_paused(records):
                if i != current:
                    if held:
                        write(current)
                    current = i
                reach(i)
                pending.append(data)
                held += n
                if held >= BATCH:
                    write(i)
            if held:
                write(current)
            reach(len(ordered) - 1)  # tables without rows
            _finish(tx, list(schemas), [schema for schema, _entry in tables])
        with db.write() as tx:
            tx.add_keys([schema for schema, _entry in ordered])
            tx.add_foreign_keys(foreign_keys)
    except BaseException:
        with db.write() as tx:
            tx.drop_tables(list(reversed(order)))
        raise
