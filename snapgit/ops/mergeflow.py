"""A merge from start to end: plan, stop on conflicts, resolve, continue, or abort.

``snap merge REV`` of a commit already in HEAD's history (an ancestor, or HEAD itself) is
"already up to date": it reads nothing and writes nothing. Otherwise the merge keeps the live
database as it found it (:func:`snapgit.ops.commit.take_safety_snapshot`: when it differs from
HEAD's commit, a commit of kind ``pre-merge`` on ``refs/snap/safety``, never on the branch),
plans a three-way merge of base -> that state (*ours*) and base -> REV (*theirs*)
(:func:`snapgit.compare.mergeplan.plan_merge`), applies the plan in one transaction
(:func:`snapgit.ops.apply.apply_plans`), and only then moves the branch, by compare-and-swap, to
a merge commit of the merged database whose parents are ours and theirs (kind ``merge``). When
ours is HEAD's commit, the merge base and the result exactly REV, the branch moves to REV itself
(a fast-forward, as git does). So a merge that is refused or fails, before or during the
apply, leaves HEAD, the branch and the database as they were.

With the ``manual`` strategy a merge that meets conflicts writes nothing into the database: it
records its state in ``.snapstore/MERGE_HEAD`` (ours, theirs, base, the HEAD it started on, the
tables, the message, and the resolutions chosen so far, as JSON) and stops. ``snap conflicts``
lists them, ``snap conflicts resolve`` records resolutions, ``snap merge --continue`` applies
the merge once none is left, and ``snap merge --abort`` drops the state. The plan of a merge in
progress is always rebuilt from that state (:func:`plan_in_progress`), never stored. gc keeps
the commits MERGE_HEAD names.

Every function here expects the caller to hold the store's writer lease where it writes. The
database layer (and SQLAlchemy) is imported only where a merge writes into the database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snapgit.compare.mergeplan import STRATEGIES, Conflict, MergeError, TablePlan, plan_merge
from snapgit.errors import ConflictError, CorruptError
from snapgit.jsonvalue import to_json
from snapgit.ops.audit import actor, audited
from snapgit.ops.commit import (
    SAFETY_REF,
    database_url,
    live_side,
    read_database,
    restored_marker,
    take_safety_snapshot,
    write_commit,
)
from snapgit.ops.status import commit_side, diff, is_dirty
from snapgit.progress import Progress
from snapgit.store.config import Config
from snapgit.store.history import merge_base, read_commit, read_root, resolve
from snapgit.store.layout import Store
from snapgit.store.privatefile import write_private

__all__ = [
    "MergeResult",
    "conflict_key",
    "conflict_json",
    "key_matches",
    "merge_state",
    "ignored_columns",
    "tables_of",
    "plan_in_progress",
    "head_commit",
    "apply_and_record",
    "merge",
    "merge_continue",
    "merge_abort",
    "conflicts",
    "resolve_conflicts",
]


@dataclass
class MergeResult:
    """What a merge or a restore planned, and (unless a preview) did."""

    rev: str
    theirs: bytes
    base: bytes | None
    pre: bytes | None  # the commit that holds the live database as found: the safety snapshot, or HEAD's
    plans: list[TablePlan]
    strategy: str
    preview: bool = False
    fast_forward: bool = False
    in_progress: bool = False
    merge_commit: bytes | None = None
    safety: bytes | None = None  # the safety snapshot taken (on SAFETY_REF), when the database differed from HEAD
    up_to_date: bool = False  # merging a commit already in HEAD's history: nothing was done

    def undo(self) -> str | None:
        """The command that gives the live database back as this operation found it, when the
        operation wrote into it."""
        if self.pre is None or self.preview or self.in_progress or self.up_to_date:
            return None
        return f"snap restore {self.pre.hex()}"

    def totals(self) -> dict[str, int]:
        t = {"added": 0, "updated": 0, "deleted": 0, "skipped": 0, "conflicts": 0}
        for p in self.plans:
            t["added"] += p.added
            t["updated"] += p.updated
            t["deleted"] += p.deleted
            t["skipped"] += p.skipped
            t["conflicts"] += len(p.conflicts)
        return t

    def summary(self) -> dict[str, Any]:
        """The commits and totals (the audit log's result, and ``import --merge --json``)."""
        return {
            "theirs": self.theirs.hex(),
            "base": self.base.hex() if self.base else None,
            "pre_merge_commit": self.pre.hex() if self.pre else None,
            "merge_commit": self.merge_commit.hex() if self.merge_commit else None,
            "safety_snapshot": self.safety.hex() if self.safety else None,
            "safety_ref": SAFETY_REF if self.safety else None,
            "undo": self.undo(),
            "fast_forward": self.fast_forward,
            "in_progress": self.in_progress,
            "up_to_date": self.up_to_date,
            **self.totals(),
        }

    def to_json(self) -> dict[str, Any]:
        """:meth:`summary` and, per table, the rows to write and every conflict
        (``snap merge --json``, ``snap restore --json``)."""
        doc = self.summary()
        doc["tables"] = {
            p.name: {
                "to_add": p.added,
                "to_update": p.updated,
                "to_delete": p.deleted,
                "to_skip": p.skipped,
                "conflicts": [conflict_json(p, c) for c in p.conflicts],
            }
            for p in self.plans
        }
        if self.up_to_date:
            doc["message"] = "already up to date"
            doc["hint"] = f"snap restore {self.rev} makes the database equal to it"
        return doc


def conflict_key(plan: TablePlan, conflict: Conflict) -> dict[str, Any]:
    """The conflict's key as {column: JSON value} (every column for a keyless table)."""
    row = conflict.theirs or conflict.ours or conflict.base or []
    values = dict(zip(plan.schema.sorted_names, row, strict=False))
    return {k: to_json(values.get(k)) for k in (plan.key or plan.schema.sorted_names)}


def _cells(names: list[str], row: list[Any] | None, columns: list[str]) -> dict[str, Any] | None:
    if row is None:
        return None
    values = dict(zip(names, row, strict=False))
    return {c: to_json(values.get(c)) for c in columns}


def conflict_json(plan: TablePlan, conflict: Conflict) -> dict[str, Any]:
    """A conflict: its key, kind, columns, resolution, and those columns' values on each side
    (None for a side without the row)."""
    names = plan.schema.sorted_names
    c = conflict
    return {
        "key": conflict_key(plan, c),
        "kind": c.kind,
        "columns": c.columns,
        "resolution": c.resolution,
        "base": _cells(names, c.base, c.columns),
        "ours": _cells(names, c.ours, c.columns),
        "theirs": _cells(names, c.theirs, c.columns),
    }


def key_matches(plan: TablePlan, conflict: Conflict, text: str) -> bool:
    """Whether a user's KEY argument ("5", "id=5", "5,abc") names this conflict's key."""
    want = [part.split("=", 1)[-1].strip() for part in text.split(",")]
    return want == [str(v) for v in conflict_key(plan, conflict).values()]


# -- the state of a merge in progress ------------------------------------------------------------


def _state_path(store: Store) -> Path:
    return store.root / "MERGE_HEAD"


def merge_state(store: Store) -> dict[str, Any] | None:
    """The unfinished manual merge, or None."""
    path = _state_path(store)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CorruptError(f"{path} is damaged: {exc}", hint="snap merge --abort") from exc


def _save_state(store: Store, state: dict[str, Any]) -> None:
    path = _state_path(store)
    write_private(path, json.dumps(state, indent=1, sort_keys=True).encode("utf-8"))


def _state_in_progress(store: Store) -> dict[str, Any]:
    state = merge_state(store)
    if state is None:
        raise MergeError("no merge in progress")
    return state


def ignored_columns(config: Config) -> dict[str, list[str]]:
    """Columns config.toml leaves out of comparisons, per table."""
    return {name: list(tc.ignore) for name, tc in config.table.items() if tc.ignore}


def tables_of(store: Store, oid: bytes | None) -> dict[str, bytes]:
    """{table name: table object id} of a commit ({} for none)."""
    if oid is None:
        return {}
    return dict(read_root(store.objects, read_commit(store.objects, oid).tree).tables)


def _hex(value: str | None) -> bytes | None:
    return bytes.fromhex(value) if value else None


def plan_in_progress(store: Store, state: dict[str, Any]) -> MergeResult:
    """The plan of the merge in progress, rebuilt from its state with the resolutions so far."""
    pre, base, theirs = _hex(state.get("ours")), _hex(state.get("base")), bytes.fromhex(state["theirs"])
    resolutions = {t: {bytes.fromhex(k): v for k, v in keys.items()} for t, keys in state["resolutions"].items()}
    plans = plan_merge(
        store.objects,
        tables_of(store, base),
        tables_of(store, pre),
        tables_of(store, theirs),
        "manual",
        state.get("tables"),
        resolutions,
        ignore=ignored_columns(store.config),
    )
    return MergeResult(state["rev"], theirs, base, pre, plans, "manual")


# -- the verbs -----------------------------------------------------------------------------------


def head_commit(store: Store) -> bytes | None:
    """HEAD's commit (None before the first commit)."""
    value = store.refs.read("HEAD")
    return bytes.fromhex(value) if value else None


def merge(
    store: Store,
    rev: str,
    *,
    strategy: str,
    preview: bool = False,
    tables: list[str] | None = None,
    message: str | None = None,
    db_url: str | None = None,
    author: str | None = None,
    progress: Progress | None = None,
) -> MergeResult:
    """Three-way merge of a revision into the live database (see the module docstring)."""
    if strategy not in STRATEGIES:
        raise MergeError(f"unknown strategy {strategy!r}", hint="use backup_wins, database_wins or manual")
    if merge_state(store) is not None:
        raise MergeError(
            "a merge is already in progress",
            hint="resolve it with `snap conflicts`, then `snap merge --continue`, or drop it with `snap merge --abort`",
        )
    theirs = resolve(store.objects, store.refs, rev)
    head = head_commit(store)
    who = actor(store, author)
    args = {"rev": rev, "theirs": theirs.hex(), "strategy": strategy, "preview": preview, "tables": tables}
    with audited(store, who, "merge", args) as entry:
        if head is not None and merge_base(store.objects, head, theirs) == theirs:
            # Already in HEAD's history: nothing to merge, whatever the live database holds
            # (making the database equal to it is a restore's job). Nothing read, nothing written.
            entry.logged = False
            return MergeResult(rev, theirs, theirs, head, [], strategy, preview=preview, up_to_date=True)
        safety = None
        if preview:
            # read against HEAD, which the live database mostly is (its row cache and change log
            # are HEAD's), not against the revision: the tree is the same, read much faster
            near = head_commit(store)
            live = live_side(
                store, against=commit_side(store, (near or theirs).hex()), db_url=db_url, progress=progress
            )
            ours_tables, reader, pre = live.tables, live.reader, head
        else:
            saved = take_safety_snapshot(
                store,
                f"snapshot of the database before merging {rev}",
                kind="pre-merge",
                author=who,
                db_url=db_url,
                progress=progress,
            )
            pre, safety = saved.ours, saved.commit
            ours_tables, reader = tables_of(store, pre), store.objects
        base = merge_base(store.objects, pre, theirs)
        plans = plan_merge(
            reader,
            tables_of(store, base),
            ours_tables,
            tables_of(store, theirs),
            strategy,
            tables,
            ignore=ignored_columns(store.config),
        )
        result = MergeResult(rev, theirs, base, pre, plans, strategy, preview=preview, safety=safety)
        result.fast_forward = base is not None and base == pre
        if preview:
            entry.logged = False  # a preview changed nothing: no line unless it failed
            return result
        if any(p.unresolved for p in plans):
            _save_state(
                store,
                {
                    "rev": rev,
                    "theirs": theirs.hex(),
                    "ours": pre.hex() if pre else None,
                    "head": head.hex() if head else None,
                    "base": base.hex() if base else None,
                    "tables": tables,
                    "message": message,
                    "resolutions": {},
                },
            )
            result.in_progress = True
        else:
            apply_and_record(
                store,
                result,
                message or f"merge {rev} ({strategy})",
                head=head,
                db_url=db_url,
                author=who,
                progress=progress,
            )
        entry.result = result.summary()
    return result


def apply_and_record(
    store: Store,
    result: MergeResult,
    message: str,
    *,
    head: bytes | None,
    db_url: str | None = None,
    author: str | None = None,
    progress: Progress | None = None,
) -> None:
    """Write a merge's plans into the live database, then move the branch (from ``head``, the
    commit it held when the merge started) to a commit of the merged state whose parents are
    ours (``result.pre``) and theirs; to theirs itself when this is a fast-forward and the
    database now is exactly that commit. Nothing moves unless the write succeeded."""
    from snapgit.db import Database
    from snapgit.ops.apply import apply_plans

    url = database_url(store, db_url)
    who = actor(store, author)
    with Database.connect(url) as db:
        apply_plans(db, result.plans, progress)
    merged = read_database(store, url, start=result.pre, progress=progress, kind="merge")
    refs = store.refs
    ref = refs.read_symbolic("HEAD") or "HEAD"
    expected, first = head, result.pre
    for _attempt in range(5):
        if (
            result.fast_forward
            and expected == head
            and merged.tree_id == read_commit(store.objects, result.theirs).tree
        ):
            new, why = result.theirs, f"merge {result.rev}: fast-forward"
        else:
            parents = [first, result.theirs] if first is not None else [result.theirs]
            new = write_commit(store, merged.tree_id, parents, author=who, message=message, meta=merged.meta)
            why = f"commit: {message.splitlines()[0] if message else ''}"
        try:
            refs.set_if_equals(ref, expected.hex() if expected else None, new.hex(), who=who, message=why)
            break
        except ConflictError:
            # Another commit won the branch meanwhile: the merged database is a whole state,
            # so it is recorded on top of that commit instead (as any commit is re-parented).
            current = refs.read(ref)
            expected = first = bytes.fromhex(current) if current else None
    else:
        raise ConflictError(
            f"ref {ref} kept moving while the merge was recorded",
            hint="the database holds the merge; record it with `snap commit -m MESSAGE`",
        )
    restored_marker(store).unlink(missing_ok=True)  # the branch names what the database holds
    result.merge_commit = new


def _differs_from(store: Store, oid: bytes | None, db_url: str | None) -> bool:
    """Whether the live database's rows differ from a commit's (from HEAD's when None)."""
    if oid is None:
        return is_dirty(store, db_url, schema=False)
    return any(t.stat().total for t in diff(store, oid.hex(), db_url=db_url))


def merge_continue(
    store: Store, *, db_url: str | None = None, author: str | None = None, progress: Progress | None = None
) -> MergeResult:
    """Apply the merge in progress once every conflict is resolved."""
    state = _state_in_progress(store)
    with audited(store, actor(store, author), "merge-continue", {"rev": state["rev"]}) as entry:
        # A MERGE_HEAD written before safety snapshots has no "head": its "ours" was HEAD's commit.
        started_on = state.get("head", state.get("ours"))
        if store.refs.read("HEAD") != started_on:
            raise MergeError("HEAD moved since the merge started", hint="snap merge --abort, then merge again")
        ours = _hex(state.get("ours"))
        if _differs_from(store, ours, db_url):
            raise MergeError(
                "the live database changed since the merge started",
                hint="snap merge --abort, then merge again",
            )
        result = plan_in_progress(store, state)
        left = sum(len(p.unresolved) for p in result.plans)
        if left:
            raise MergeError(
                f"{left} conflicts are not resolved yet", hint="snap conflicts; snap conflicts resolve --ours|--theirs"
            )
        head = _hex(started_on)
        result.safety = ours if ours != head else None
        apply_and_record(
            store,
            result,
            state.get("message") or f"merge {state['rev']} (manual)",
            head=head,
            db_url=db_url,
            author=author,
            progress=progress,
        )
        _state_path(store).unlink()
        entry.result = result.summary()
    return result


def merge_abort(store: Store) -> str | None:
    """Drop the merge in progress; it wrote nothing into the database. A damaged state is
    dropped too (nothing else can read it): what was wrong with it is returned."""
    damaged = None
    try:
        _state_in_progress(store)
    except CorruptError as exc:
        damaged = exc.message
    with audited(store, actor(store), "merge-abort", {}):
        _state_path(store).unlink()
    return damaged


def conflicts(store: Store) -> list[tuple[TablePlan, Conflict]]:
    """The conflicts of the merge in progress, with their resolutions so far."""
    result = plan_in_progress(store, _state_in_progress(store))
    return [(p, c) for p in result.plans for c in p.conflicts]


def resolve_conflicts(store: Store, side: str, *, table: str | None = None, keys: list[str] | None = None) -> int:
    """Resolve conflicts (all, a table's, or those whose key matches) as ``ours`` or ``theirs``."""
    if side not in ("ours", "theirs"):
        raise MergeError("resolve with ours or theirs")
    state = _state_in_progress(store)
    with audited(store, actor(store), "resolve", {"side": side, "table": table, "keys": keys}) as entry:
        n = 0
        for plan, c in conflicts(store):
            if table and c.table != table:
                continue
            if keys and not any(key_matches(plan, c, k) for k in keys):
                continue
            state["resolutions"].setdefault(c.table, {})[c.key.hex()] = side
            n += 1
        if keys and n == 0:
            raise MergeError(f"no conflict with key {', '.join(keys)}", hint="see `snap conflicts`")
        _save_state(store, state)
        entry.result = {"resolved": n}
    return n
