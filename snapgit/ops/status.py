"""Differences between commits and the live database: ``snap diff`` and ``snap status``.

A diff compares two *sides* (:class:`snapgit.compare.diff.Side`): a commit's tables in the store,
or the live database read into memory (:func:`snapgit.ops.commit.live_side`, which reuses the
other side's trees so unchanged leaves cost nothing to compare). ``status`` is the live
database against HEAD, or against nothing before the first commit.

The diff engine is imported by the functions that compare: ``Repo`` imports this module, and
commands that only read the store start fast without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from snapgit.ops.commit import live_side
from snapgit.progress import Progress
from snapgit.store.history import read_commit, read_root, resolve
from snapgit.store.layout import Store

if TYPE_CHECKING:
    from snapgit.compare.diff import Side, TableDiff

__all__ = ["commit_side", "diff", "status", "is_dirty"]


def commit_side(store: Store, rev: str) -> Side:
    """A commit's tables as a diff side, labelled with the revision as the user wrote it."""
    from snapgit.compare.diff import Side

    oid = resolve(store.objects, store.refs, rev)
    root = read_root(store.objects, read_commit(store.objects, oid).tree)
    return Side(store.objects, dict(root.tables), f"{rev} ({oid.hex()[:12]})" if rev != oid.hex() else oid.hex()[:12])


def diff(
    store: Store,
    a: str | None = None,
    b: str | None = None,
    *,
    tables: list[str] | None = None,
    db_url: str | None = None,
    progress: Progress | None = None,
) -> list[TableDiff]:
    """Per-table differences: no revision: HEAD -> live; one: A -> live; two: A -> B."""
    from snapgit.compare.diff import diff_sides

    side_a = commit_side(store, a or "HEAD")
    if b is None:
        side_b = live_side(store, against=side_a, tables=tables, db_url=db_url, progress=progress, listed=True)
        side_a = _read_with(side_a, side_b)
    else:
        side_b = commit_side(store, b)
    return diff_sides(side_a, side_b, tables)


def status(store: Store, *, db_url: str | None = None, progress: Progress | None = None) -> list[TableDiff]:
    """The live database against HEAD (against nothing when there is no commit yet)."""
    from snapgit.compare.diff import Side, diff_sides

    if store.refs.read("HEAD") is None:
        side_a = Side(store.objects, {}, "nothing (no commits yet)")
    else:
        side_a = commit_side(store, "HEAD")
    side_b = live_side(store, against=side_a, db_url=db_url, progress=progress, listed=True)
    return diff_sides(_read_with(side_a, side_b), side_b)


def _read_with(commit: Side, live: Side) -> Side:
    """The commit's side read through the live side's store, when that one reads the commit's
    store too (its scratch store, :func:`live_side`): the live side's changed leaves are
    deltas against the commit's, so read through one store, each of the commit's leaves is
    read once for both sides (its chain resolved once), not once for each."""
    from dataclasses import replace

    from snapgit.store.objectstore import DiskObjectStore

    base, reader = commit.reader, live.reader
    if isinstance(base, DiskObjectStore) and isinstance(reader, DiskObjectStore) and base.root in reader.also:
        return replace(commit, reader=reader)
    return commit


def is_dirty(store: Store, db_url: str | None = None, *, schema: bool = True) -> bool:
    """Whether the live database differs from HEAD in rows (or, with ``schema``, in schema)."""
    return any(t.stat().total or (schema and t.schema) for t in status(store, db_url=db_url))
