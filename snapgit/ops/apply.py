"""Apply merge plans to a live database: one transaction, in an order foreign keys accept.

Deletes go first, children before parents; then inserts and updates, parents before children.
Foreign keys are checked before the transaction commits, sequences and autoincrement counters
are moved past the largest id, and any error rolls the whole transaction back, so the database
is either as it was or fully merged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from snapgit.compare.mergeplan import TablePlan
from snapgit.schema import table_order

__all__ = ["apply_plans"]

_BATCH = 5_000


def _batches(rows: Sequence[Any]):
    for i in range(0, len(rows), _BATCH):
        yield rows[i : i + _BATCH]


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
            for batch in _batches(p.deletes):
                tx.delete_rows(p.schema, p.key, batch)
        for name in order:
            p = by_name[name]
            for batch in _batches(p.updates):
                tx.update_rows(p.schema, p.key, batch)
            for batch in _batches(p.inserts):
                tx.insert_rows(p.schema, batch)
        tx.check_foreign_keys([p.name for p in todo])
        for p in todo:
            if p.inserts:
                tx.reset_sequences(p.schema)
