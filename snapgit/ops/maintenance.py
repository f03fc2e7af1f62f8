"""Keeping a store healthy: verify (and repair), gc, and removing stale locks.

``verify`` checks everything and changes nothing but the audit log, which keeps its outcome
(:mod:`snapgit.ops.verify`); with ``repair``
it first rebuilds broken or missing pack indexes and moves damaged packs aside, keeping every
object that still reads (:mod:`snapgit.store.repair`), under the gc lock so no writer runs.
``gc`` removes what nothing reaches (:mod:`snapgit.ops.gc`). ``unlock`` removes locks left by
killed processes. Each command's engine is imported by its function: they are rarely run, and
``Repo`` imports this module.
"""

from __future__ import annotations

import os
from typing import Any

from snapgit.ops.audit import actor, audited
from snapgit.store.layout import Store

__all__ = ["verify", "verify_report_json", "gc", "unlock"]


def verify(store: Store, *, read_data: bool = False, repair: bool = False):
    """Check the store; every problem found is in the report (see ops/verify.py)."""
    from snapgit.ops.verify import verify_store

    if not repair:
        # logged, so that the last result can be shown later (snap serve's health page)
        with audited(store, actor(store), "verify", {"read_data": read_data}) as entry:
            report = verify_store(store, read_data=read_data)
            entry.ok, entry.result = report.ok, {"problems": len(report.problems)}
        return report
    from snapgit.store.repair import repair_store

    with audited(store, actor(store), "repair", {}) as entry:
        with store.locks.gc():
            actions = repair_store(store)
            store.objects.refresh()
            report = verify_store(store, read_data=read_data)
        report.repairs = actions
        entry.ok, entry.result = report.ok, {"actions": actions}
    return report


def verify_report_json(report: Any, seconds: float) -> dict[str, Any]:
    """The JSON form of a verify report (``snap verify --json``); ``seconds``: how long it took."""
    return {
        "ok": report.ok,
        "repairs": report.repairs,
        "packs": report.packs,
        "objects_indexed": report.objects_indexed,
        "commits": report.commits,
        "nodes": report.nodes,
        "records_checked": report.records_checked,
        "objects_read": report.objects_read,
        "bytes_read": report.bytes_read,
        "seconds": round(seconds, 3),
        "problems": [p.to_json() for p in report.problems],
        "garbage": report.garbage,
    }


def gc(store: Store, *, prune: str | float | None = None, dry_run: bool = False, expire: str | float | None = None):
    """Remove what no ref, reflog line or unfinished merge reaches (see ops/gc.py).

    ``prune`` is the grace period: seconds, or text like ``now``, ``30m``, ``2h`` (default 1
    hour). ``expire``: reflog lines older than this stop keeping commits and are removed
    (default 90 days; ``never`` keeps them all). Waits briefly for running writers, then raises
    LockedError.
    """
    from snapgit.ops.gc import DEFAULT_EXPIRE, DEFAULT_GRACE, collect_garbage, parse_grace

    grace = DEFAULT_GRACE if prune is None else parse_grace(prune) if isinstance(prune, str) else float(prune)
    if expire is None:
        expire_s: float | None = DEFAULT_EXPIRE
    elif isinstance(expire, str):
        expire_s = None if expire.strip().lower() == "never" else parse_grace(expire)
    else:
        expire_s = float(expire)
    args = {"prune": grace, "dry_run": dry_run, "expire": expire_s}
    with audited(store, actor(store), "gc", args) as entry:
        if dry_run:
            report = collect_garbage(store, grace=grace, dry_run=True, expire=expire_s)
        else:
            with store.locks.gc():
                report = collect_garbage(store, grace=grace, expire=expire_s)
        entry.result = {k: v for k, v in report.to_json().items() if k not in ("trashed", "deleted")}
    return report


def unlock(store: Store) -> list[str]:
    """Remove lock files left by killed processes; returns what was removed.

    Locks of owners that provably run on this host are kept. The rest (ref locks of unknown
    owners, leases of other hosts) are removed: only safe when no other snap command is running
    on this store, or two writers could move a ref at once.
    """
    host = os.uname().nodename
    with audited(store, actor(store), "unlock", {}) as entry:
        locks = store.locks
        removed = locks.reclaim_dead()
        live = [info for info in locks.leases() if info.host == host]
        held = {r for info in live for r in info.refs}
        for lock in sorted(store.refs.locks()):
            name = lock.relative_to(store.root).as_posix()
            if name in held:
                continue
            try:
                lock.unlink()
            except FileNotFoundError:
                continue
            removed.append(name)
        for info in locks.leases() + ([g] if (g := locks.gc_holder()) else []):
            if info.host != host and info.path is not None:
                info.path.unlink(missing_ok=True)
                removed.append(info.path.relative_to(store.root).as_posix())
        entry.result = {"removed": removed}
    return removed
