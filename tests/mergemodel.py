"""The three-way merge rules as a model, for tests that need the expected result of a merge
without asking snapgit (test_crash.py: what the database must hold after a merge).

Tables are ``{key: row}`` with rows as tuples of cells; per key (docs: snapgit.compare.mergeplan):
one side changed -> that side; both the same -> it; both changed a row -> cell by cell, a cell
changed on one side takes that side, changed differently on both -> the strategy's side;
anything else changed on both sides (add/add, delete/modify, modify/delete) -> the strategy's
side, whole.
"""

from __future__ import annotations

from typing import Any

__all__ = ["merge_table"]

Row = tuple[Any, ...]


def merge_table(base: dict[Any, Row], ours: dict[Any, Row], theirs: dict[Any, Row], strategy: str) -> dict[Any, Row]:
    """The table after merging ``theirs`` into ``ours`` under ``backup_wins`` or ``database_wins``."""
    assert strategy in ("backup_wins", "database_wins")
    theirs_wins = strategy == "backup_wins"
    out: dict[Any, Row] = {}
    for k in set(base) | set(ours) | set(theirs):
        b, o, t = base.get(k), ours.get(k), theirs.get(k)
        if o == t or t == b:
            r = o
        elif o == b:
            r = t
        elif b is not None and o is not None and t is not None:
            r = tuple(
                tc if oc == bc else oc if tc == bc or oc == tc else (tc if theirs_wins else oc)
                for bc, oc, tc in zip(b, o, t, strict=False)
            )
        else:
            r = t if theirs_wins else o
        if r is not None:
            out[k] = r
    return out
