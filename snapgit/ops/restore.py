"""Making a database equal to a commit: ``snap restore`` and ``snap checkout``.

A restore *in place* is a merge whose base is the live database itself: every difference is
the commit's to apply and nothing conflicts. HEAD and the branch never move. When the live
database differs from HEAD's commit it is kept first as a safety snapshot (kind
``pre-restore``, on ``refs/snap/safety``: :func:`snapgit.ops.commit.take_safety_snapshot`),
so a restore can be undone with ``snap restore <that id>``. The plans are written by
:func:`snapgit.ops.apply.apply_plans`, and :func:`restored_marker
<snapgit.ops.commit.restored_marker>` keeps the next commit from reading incrementally.

A restore ``into`` another database creates the commit's tables there and streams their rows
out of the store (:func:`snapgit.ops.apply.load_tables`), without a plan per row: the target
is new, so there is nothing to compare with. Both writers share their order, batches, checks
and progress reports in :mod:`snapgit.ops.apply`; they differ only in where rows come from.

``checkout`` restores the database to the commit it names and then, only when that worked,
moves HEAD. The live database must equal HEAD first, or, with ``force``, its state is kept as a
safety snapshot (kind ``saved``) on ``refs/snap/safety``, as a merge or restore keeps it.

The database layer (and SQLAlchemy) and the writers are imported where rows are written, so a
preview or a refused checkout does not load them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from snapgit.compare.mergeplan import MergeError, TablePlan, plan_merge
from snapgit.errors import NotFoundError
from snapgit.objects import decode_schema
from snapgit.ops.audit import actor, audited
from snapgit.ops.branches import create_branch
from snapgit.ops.commit import (
    SAFETY_REF,
    database_url,
    follow_capture,
    live_side,
    restored_marker,
    take_safety_snapshot,
)
from snapgit.ops.mergeflow import MergeResult, head_commit, merge_state, tables_of
from snapgit.ops.status import commit_side, is_dirty
from snapgit.progress import Progress
from snapgit.store.history import read_commit, read_table, resolve
from snapgit.store.layout import Store
from snapgit.store.privatefile import write_private

__all__ = ["restore", "restore_into", "checkout"]


def restore(
    store: Store,
    rev: str,
    *,
    into: str | None = None,
    tables: list[str] | None = None,
    preview: bool = False,
    db_url: str | None = None,
    author: str | None = None,
    progress: Progress | None = None,
    live_is: bytes | None = None,
) -> MergeResult:
    """Make the live database (or a new one at ``into``) equal to a revision. HEAD and the
    branch stay where they are.

    ``live_is`` (for checkout) names a commit known to hold the live state, which then is not
    read first, and leaves no :func:`restored_marker` (checkout moves HEAD to what it writes)."""
    from snapgit.db import redact_url

    theirs = resolve(store.objects, store.refs, rev)
    args = {"rev": rev, "into": redact_url(into) if into else None, "tables": tables, "preview": preview}
    who = actor(store, author)
    with audited(store, who, "restore", args) as entry:
        if into is not None:
            result = restore_into(store, theirs, rev, into, tables=tables, preview=preview, progress=progress)
        else:
            safety = None
            if preview:
                # read against HEAD, which the live database mostly is (its row cache and change log
                # are HEAD's), not against the revision: the tree is the same, read much faster
                near = head_commit(store)
                live = live_side(
                    store, against=commit_side(store, (near or theirs).hex()), db_url=db_url, progress=progress
                )
                ours_tables, reader, pre = live.tables, live.reader, head_commit(store)
            elif live_is is not None:
                pre = live_is
                ours_tables, reader = tables_of(store, pre), store.objects
            else:
                saved = take_safety_snapshot(
                    store,
                    f"snapshot of the database before restoring {rev}",
                    kind="pre-restore",
                    author=who,
                    db_url=db_url,
                    progress=progress,
                )
                pre, safety = saved.ours, saved.commit
                ours_tables, reader = tables_of(store, pre), store.objects
            # base = ours: every difference is theirs to apply, nothing conflicts
            plans = plan_merge(reader, ours_tables, ours_tables, tables_of(store, theirs), "backup_wins", tables)
            result = MergeResult(rev, theirs, pre, pre, plans, "restore", preview=preview, safety=safety)
            if not preview:
                from snapgit.db import Database
                from snapgit.ops.apply import apply_plans

                with Database.connect(database_url(store, db_url)) as db:
                    if live_is is None:
                        write_private(restored_marker(store), (theirs.hex() + "\n").encode("ascii"))
                    apply_plans(db, plans, progress)
        entry.result = result.summary()
    return result


def restore_into(
    store: Store,
    theirs: bytes,
    rev: str,
    into: str,
    *,
    tables: list[str] | None = None,
    preview: bool = False,
    progress: Progress | None = None,
) -> MergeResult:
    """Create commit ``theirs``'s tables (or those named) in the database at ``into`` and load
    their rows; a SQLite file is created when missing. Refuses a database that has them."""
    from snapgit.db import Database, normalize_url
    from snapgit.db.url import sqlite_file
    from snapgit.ops.apply import load_tables

    all_tables = tables_of(store, theirs)
    names = sorted(all_tables)
    if tables:
        missing = [t for t in tables if t not in all_tables]
        if missing:
            raise NotFoundError(f"no table {missing[0]!r} in {rev}")
        names = [n for n in names if n in tables]
    loads = []
    for name in names:
        entry = read_table(store.objects, all_tables[name])
        _otype, data = store.objects.get(entry.schema)
        plan = TablePlan(name, decode_schema(data), entry.key)
        plan.added = entry.rows
        loads.append((plan, entry))
    result = MergeResult(rev, theirs, None, None, [p for p, _e in loads], "restore", preview=preview)
    if preview:
        return result
    url = normalize_url(into, base_dir=store.project_dir)
    # the engine the commit read (absent from imported commits): a restore into the same kind
    # of database creates the columns with their native types
    source = read_commit(store.objects, theirs).meta.get("dialect")
    path = sqlite_file(url)
    new_file = Path(path) if path is not None and not Path(path).exists() else None
    try:
        with Database.connect(url, create=True) as db:  # a new SQLite file may be created here
            load_tables(db, store.objects, [(p.schema, e) for p, e in loads], progress, source)
    except BaseException:
        # refused or failed: the tables are gone again, and so is a SQLite file made for them
        if new_file is not None:
            for leftover in (new_file, Path(f"{new_file}-journal"), Path(f"{new_file}-wal"), Path(f"{new_file}-shm")):
                leftover.unlink(missing_ok=True)
        raise
    return result


def checkout(
    store: Store,
    target: str,
    *,
    new_branch: str | None = None,
    force: bool = False,
    db_url: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Make the live database match a branch or revision, then move HEAD to it; a refused or
    failed checkout leaves HEAD where it was. With ``new_branch``: create that branch at
    ``target`` and switch to it (the database stays). Returns the commit, and ``saved``: the
    safety ref and ``safety``: the snapshot, when ``force`` kept uncommitted changes there."""
    if merge_state(store) is not None:
        raise MergeError("a merge is in progress", hint="snap merge --continue or --abort first")
    who = actor(store)
    args = {"target": target, "new_branch": new_branch, "force": force}
    with audited(store, who, "checkout", args) as entry:
        saved, safety = None, None
        if new_branch:
            oid = create_branch(store, new_branch, target)
            store.refs.set_symbolic("HEAD", f"refs/heads/{new_branch}")
        else:
            oid = resolve(store.objects, store.refs, target)
            head = live_is = head_commit(store)  # clean: the live database is HEAD
            if live_is is not None and is_dirty(store, db_url):
                if not force:
                    raise MergeError(
                        "the live database has uncommitted changes",
                        hint="commit them (snap commit -m ...), or use --force to save them to a ref first",
                    )
                was = store.refs.read_symbolic("HEAD") or head.hex() if head else "?"
                kept = take_safety_snapshot(
                    store,
                    f"uncommitted changes saved by checkout --force (HEAD was {was})",
                    kind="saved",
                    author=who,
                    db_url=db_url,
                )
                live_is, safety = kept.ours, kept.commit
                saved = SAFETY_REF if safety else None
            if live_is is not None:
                restore(store, oid.hex(), db_url=db_url, progress=progress, live_is=live_is)
                # change capture: the logs now hold checkout's own writes, relative to live_is;
                # read through them so that the next commit need not read those tables in full
                follow_capture(store, database_url(store, db_url), live_is)
            branch_ref = f"refs/heads/{target}"
            if store.refs.read(branch_ref) is not None:
                store.refs.set_symbolic("HEAD", branch_ref)
            else:
                old = store.refs.read("HEAD")
                store.refs.set_if_equals("HEAD", old, oid.hex(), who=who, message=f"checkout: {target}")
        entry.result = {"commit": oid.hex(), "saved": saved, "safety": safety.hex() if safety else None}
    return {"commit": oid, "saved": saved, "safety": safety}
