"""Committing the live database, and reading it as a side of a diff.

A commit opens one read transaction on the database, snapshots every table into the store
(:func:`snapgit.snapshot.build.snapshot_database`: only new objects are written, big tables are
read by several processes, the row cache skips unchanged rows), writes the root tree and moves
the branch by compare-and-swap. :func:`read_database` is the reading part (a tree, no commit);
:func:`commit_database` is that and a commit on any ref (``snap commit`` on the current branch),
and :func:`commit` is the user's verb: it times and audits one.

Before merge, restore and ``checkout --force`` write into the database, they keep what it held
with :func:`take_safety_snapshot`: when the live database differs from HEAD's commit, it is
committed (parent HEAD's commit) to the one ref :data:`SAFETY_REF`, ``refs/snap/safety``, never
to the branch. As with git's stash, the ref names the newest snapshot and its reflog every
earlier one (gc keeps reflog lines for ``--expire``); ``snap restore <id>`` undoes the write.

An *incremental* commit (:func:`incremental_plan`) reads only the rows whose change column is
at or after the last commit's read, plus every key to find deleted rows. It needs the last
commit to have read this very database, and no ``snap restore`` since (a restore writes old
rows whose change columns are old: :func:`restored_marker` is present until a full commit on
HEAD records what the database holds again).

:func:`live_side` reads the database the same way into a scratch store that nothing refers to
(or into memory, an overlay over the store), for ``status``, ``diff`` and a merge preview.

The database layer (and SQLAlchemy with it), the reading processes (``scanpool``) and the diff
engine are imported inside the functions that use them: ``Repo`` imports this module, and
commands that only read the store start fast.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snapgit.errors import ConflictError, SnapError
from snapgit.objects import Commit, ObjType, Root, object_id
from snapgit.ops.audit import actor, audited
from snapgit.progress import Progress
from snapgit.schema import TableSchema
from snapgit.snapshot.build import snapshot_database
from snapgit.snapshot.capture import LoggedTable
from snapgit.snapshot.incremental import Incremental
from snapgit.snapshot.record import CommitResult, TableResult, commit_snapshot, now_micros, write_root
from snapgit.store.config import Config
from snapgit.store.history import read_commit, read_root
from snapgit.store.layout import Store
from snapgit.version import __version__

if TYPE_CHECKING:
    from snapgit.compare.diff import Side
    from snapgit.store.objectstore import ObjectStore

__all__ = [
    "NoDatabaseError",
    "database_url",
    "database_dialect",
    "row_cache_dir",
    "schema_cache_dir",
    "table_key",
    "restored_marker",
    "incremental_plan",
    "DatabaseTree",
    "read_database",
    "commit_database",
    "write_commit",
    "SAFETY_REF",
    "SafetySnapshot",
    "take_safety_snapshot",
    "commit",
    "commit_result_json",
    "live_side",
    "logged_tables",
    "consume_logs",
    "follow_capture",
]


class NoDatabaseError(SnapError):
    pass


SAFETY_REF = "refs/snap/safety"
"""Where merge, restore and checkout keep the live database they are about to overwrite."""


def database_url(store: Store, override: str | None = None) -> str:
    """The canonical URL of the database to read: ``override`` (``--db``), else the environment,
    else config.toml; relative SQLite paths are relative to the project directory."""
    from snapgit.db import normalize_url

    url = store.config.database_url(override)
    if not url:
        raise NoDatabaseError(
            "no database configured for this store",
            hint="pass --db URL, set SNAP_DATABASE_URL, or set [database] url in .snapstore/config.toml",
        )
    return normalize_url(url, base_dir=store.project_dir)


def database_dialect(url: str) -> str:
    """ "sqlite", "postgresql" or "mysql" for a URL from :func:`database_url`. A SQLite file
    named plainly is known without parsing (and without importing SQLAlchemy)."""
    from snapgit.db.url import dialect_of, parse_url, sqlite_file

    if sqlite_file(url) is not None:
        return "sqlite"
    return dialect_of(parse_url(url))


def row_cache_dir(store: Store) -> Path | None:
    """Where commits keep their row caches (rowcache.py); None when ``SNAP_ROW_CACHE=0`` turns
    them off (every commit then encodes and hashes every row)."""
    if os.environ.get("SNAP_ROW_CACHE", "1") == "0":
        return None
    return store.root / "cache"


def _ignored(config: Config) -> dict[str, list[str]]:
    """Table -> the columns config.toml ignores: reflection leaves out those it cannot store."""
    return {name: list(tc.ignore) for name, tc in config.table.items() if tc.ignore}


def schema_cache_dir(store: Store) -> Path:
    """Where reading a SQLite database remembers its last reflection (db/schemacache.py)."""
    return store.root / "cache"


def table_key(config: Config, schema: TableSchema) -> list[str] | None:
    """The columns that identify a table's rows: config.toml's ``key``, else the primary key,
    else None (a keyless table: its rows are a multiset)."""
    tc = config.table_config(schema.name)
    if tc.key:
        missing = [c for c in tc.key if c not in schema.column_names]
        if missing:
            raise SnapError(
                f"config.toml gives table {schema.name!r} the key {tc.key}, but it has no column {missing[0]!r}",
                hint=f"fix [tables.{schema.name}] key in .snapstore/config.toml",
            )
        return list(tc.key)
    return list(schema.primary_key) or None


def _keys(config: Config) -> Callable[[TableSchema], list[str] | None]:
    return lambda schema: table_key(config, schema)


def restored_marker(store: Store) -> Path:
    """Present while the live database holds rows that snapgit wrote from an old snapshot
    (``snap restore``) and HEAD does not name that state: their change columns are old, so an
    incremental commit would miss them."""
    return store.root / "RESTORED"


def incremental_plan(store: Store, parent: bytes | None, url: str) -> tuple[Incremental | None, str | None]:
    """How an incremental commit on ``parent`` reads, or (None, why it must read in full)."""
    from snapgit.db import redact_url

    config = store.config
    if parent is None:
        return None, "there is no previous commit"
    if restored_marker(store).exists():
        return None, "snap restore rewrote the database since the last commit"
    meta = read_commit(store.objects, parent).meta
    if not isinstance(meta.get("db_time"), str):
        return None, f"the last commit (kind {meta.get('kind', '?')}) did not read the database"
    if meta.get("source") != redact_url(url):
        return None, f"the last commit read another database ({meta.get('source')})"
    try:
        since = dt.datetime.fromisoformat(meta["db_time"]) - dt.timedelta(seconds=config.incremental_lookback)
    except ValueError:
        return None, "the last commit's db_time is unreadable"
    read = set(meta["tables"]) if meta.get("tables") else None
    return Incremental(since, lambda schema: config.change_column(schema.name), read), None


def logged_tables(view: Any) -> dict[str, LoggedTable]:
    """What a reading needs of each captured table's log (``view``: a
    :class:`snapgit.db.capture.CaptureView`). On PostgreSQL there is no log: the rows written
    since the snapshot that built the base are told by their xmin."""
    return {name: LoggedTable(t.log, t.key, t.base, t.problem, t.xmin_since) for name, t in view.tables.items()}


def consume_logs(db: Any, view: Any, results: list[TableResult]) -> None:
    """After a reading whose trees are stored: delete the log rows it saw of each captured
    table it read, and make the table it built the log's base (none where the triggers were
    not all there when it read: their log is not trusted until ``snap capture enable``)."""
    from snapgit.db import DatabaseError
    from snapgit.db.capture import Consumed, consume

    consumed = [
        Consumed(view.tables[r.name], r.table_id if view.tables[r.name].triggers_ok else None)
        for r in results
        if r.name in view.tables
    ]
    # A database too busy to take the write (SQLite's lock held past the timeout) leaves the
    # log and its base as they were: the commit stands, and the next one reads these tables
    # in full, since its parent is not their base. Nothing is lost, only time.
    with contextlib.suppress(DatabaseError):
        consume(db, consumed)


def follow_capture(store: Store, url: str, start: bytes) -> None:
    """After snapgit wrote a commit's rows into the live database (checkout), read each captured
    table through its log on ``start`` (the commit that held the live state before the write,
    which the logs are relative to), and make the table read its log's base. When nothing else
    wrote meanwhile that table is the checked-out commit's, so the next commit, whose parent it
    is, reads through the log again instead of in full; otherwise it is not the parent's table,
    and the next commit reads in full as it would have. Tables whose logs cannot be read on
    ``start`` are left alone (one whose log does not add up is read in full, as a commit
    would). The caller holds the writer lease."""
    if start is not None:
        read_database(store, url, start=start, logged_only=True, kind="capture")


@dataclass
class DatabaseTree:
    """The live database read into the store: its snapshot tree (objects written, no commit
    yet), the commit metadata that describes the read, and each table's result."""

    tree_id: bytes
    meta: dict[str, Any]
    tables: list[TableResult]
    incremental_note: str | None = None  # why an incremental read read everything in full


def read_database(
    store: Store,
    url: str,
    *,
    start: bytes | None,
    tables: list[str] | None = None,
    progress: Progress | None = None,
    kind: str = "full",
    incremental_parent: bytes | None = None,
    incremental: bool = False,
    logged_only: bool = False,
) -> DatabaseTree:
    """Snapshot the database at ``url`` into the store and write its root tree; no commit, no
    ref moves. The caller holds the store's writer lease.

    ``start``: the commit whose trees the snapshot starts from (its unchanged subtrees are not
    rebuilt). ``tables``: only these are read; the others stay as ``start`` has them.
    ``incremental``: read incrementally on ``incremental_parent`` when it allows.
    ``logged_only``: read only the tables whose change logs can be read on ``start``, and write
    no root (``tree_id`` is empty): the read is for the logs' sake (:func:`follow_capture`)."""
    from snapgit.db import Database, redact_url
    from snapgit.snapshot.scanpool import Parallel

    objects, config = store.objects, store.config
    parent_root = read_root(objects, read_commit(objects, start).tree) if start else None
    wanted = tables or config.tables
    inc, why_full = incremental_plan(store, incremental_parent, url) if incremental else (None, None)
    read_at, _ = now_micros()
    from snapgit.db.capture import catalog_before, read_capture

    parallel = Parallel(url, objects.root)
    with Database.connect(url) as db:
        before = catalog_before(db)
        with db.snapshot() as snap, contextlib.closing(parallel):
            db_time = snap.now()
            schemas = snap.reflect(wanted, cache=schema_cache_dir(store), ignored=_ignored(config))
            if not schemas:
                raise SnapError(
                    f"the database {redact_url(url)} has no tables: nothing to snapshot",
                    hint="create tables first, or point --db at another database",
                )
            view = read_capture(snap, before)
            with objects.writer() as w:
                written, results = snapshot_database(
                    objects,
                    w,
                    snap,
                    schemas,
                    parent_root=parent_root,
                    keys=_keys(config),
                    progress=progress,
                    count_rows=progress is not None,
                    incremental=inc,
                    parallel=parallel,
                    row_cache=row_cache_dir(store),
                    capture=logged_tables(view) if view is not None else None,
                    logged_only=logged_only,
                )
                all_tables = dict(written)
                if tables and parent_root is not None:
                    # An explicit --tables commits those tables and keeps the others as they were.
                    all_tables = {**parent_root.tables, **written}
                # logged_only reads for the logs' sake, not for a commit: no root of its own
                tree_id = write_root(objects, w, all_tables) if not logged_only else b""
        if view is not None:
            # The objects are published: the log rows this read saw are in these trees now.
            consume_logs(db, view, results)
    read_incrementally = [r.name for r in results if r.incremental]
    meta: dict[str, Any] = {
        "kind": "incremental" if read_incrementally and kind == "full" else kind,
        "source": redact_url(url),
        "dialect": db.dialect,
        "rows": {r.name: r.rows for r in results},
        "snapgit": __version__,
        "read_at": read_at,
        "db_time": db_time.isoformat(),
    }
    if read_incrementally:
        meta["incremental"] = read_incrementally
    captured = [r.name for r in results if r.captured]
    if captured:
        meta["captured"] = captured
    if tables:
        meta["tables"] = list(tables)
    return DatabaseTree(tree_id, meta, results, why_full)


def commit_database(
    store: Store,
    url: str,
    message: str,
    *,
    author: str,
    ref: str | None = None,
    reuse: bytes | None = None,
    tables: list[str] | None = None,
    allow_empty: bool = False,
    progress: Progress | None = None,
    kind: str = "full",
    extra_parents: Sequence[bytes] = (),
    incremental: bool = False,
) -> CommitResult:
    """Snapshot the database at ``url`` and commit it on ``ref`` (default: HEAD's branch, or
    HEAD itself when detached). The caller holds the store's writer lease.

    ``reuse``: the commit whose trees the snapshot starts from when ``ref`` has none yet (its
    unchanged subtrees are not rebuilt). ``tables``: only these are read; the others stay as
    the parent has them. A commit on HEAD that reads every table clears :func:`restored_marker`."""
    objects, refs = store.objects, store.refs
    on_head = ref is None
    if ref is None:
        ref = refs.read_symbolic("HEAD") or "HEAD"
    head_hex = refs.read(ref)
    parent = bytes.fromhex(head_hex) if head_hex else None
    read = read_database(
        store,
        url,
        start=parent or reuse,
        tables=tables,
        progress=progress,
        kind=kind,
        incremental_parent=parent,
        incremental=incremental,
    )
    cid, parent = commit_snapshot(
        objects,
        refs,
        ref=ref,
        expected_parent=parent,
        tree_id=read.tree_id,
        author=author,
        message=message,
        meta=read.meta,
        extra_parents=list(extra_parents),
        allow_same_tree=allow_empty,
    )
    if on_head and not tables:
        restored_marker(store).unlink(missing_ok=True)  # every table was read: HEAD is the database
    branch = ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None
    return CommitResult(cid, read.tree_id, parent, branch, read.tables, incremental_note=read.incremental_note)


def write_commit(
    store: Store, tree_id: bytes, parents: Sequence[bytes], *, author: str, message: str, meta: dict[str, Any]
) -> bytes:
    """Store a commit object with exactly these parents; no ref moves. Returns its id."""
    t, tz = now_micros()
    data = Commit(tree_id, list(parents), author, t, tz, message, meta).encode()
    cid = object_id(ObjType.COMMIT, data)
    with store.objects.writer() as w:
        w.add(ObjType.COMMIT, data, cid)
    return cid


# -- the safety snapshot -------------------------------------------------------------------------


@dataclass
class SafetySnapshot:
    """The live database as a merge, restore or checkout found it, before writing into it.

    ``commit`` is the safety snapshot written to :data:`SAFETY_REF` (its parent HEAD's commit),
    or None when the live database equalled HEAD's commit, which then holds it. ``ours`` is
    the commit that holds the live state either way (None: no commit and nothing saved)."""

    head: bytes | None
    commit: bytes | None

    @property
    def ours(self) -> bytes | None:
        return self.commit or self.head


def take_safety_snapshot(
    store: Store,
    message: str,
    *,
    kind: str,
    author: str,
    db_url: str | None = None,
    progress: Progress | None = None,
) -> SafetySnapshot:
    """Read the live database; when it differs from HEAD's commit, commit it (kind ``kind``,
    parent HEAD's commit) and move :data:`SAFETY_REF` to it, which logs it in that ref's reflog.
    HEAD and the branch never move here. The caller holds the store's writer lease.

    Like git's stash: one ref, the newest snapshot; every earlier one is a line of its reflog
    (kept by gc for ``--expire``), and any of them is undone with ``snap restore <id>``."""
    refs = store.refs
    head_hex = refs.read("HEAD")
    head = bytes.fromhex(head_hex) if head_hex else None
    read = read_database(store, database_url(store, db_url), start=head, progress=progress, kind=kind)
    if head is not None and read_commit(store.objects, head).tree == read.tree_id:
        return SafetySnapshot(head, None)
    cid = write_commit(store, read.tree_id, [head] if head else [], author=author, message=message, meta=read.meta)
    # The safety ref keeps no history in its commits (each one's parent is the HEAD it was
    # taken on), so a concurrent snapshot that moved it first is simply stepped over.
    for _attempt in range(5):
        old = refs.read(SAFETY_REF)
        try:
            refs.set_if_equals(SAFETY_REF, old, cid.hex(), who=author, message=f"{kind}: {message}")
            break
        except ConflictError:
            continue
    else:
        raise ConflictError(f"ref {SAFETY_REF} kept moving", hint="other snap commands are saving snapshots; try again")
    return SafetySnapshot(head, cid)


def commit(
    store: Store,
    message: str,
    *,
    db_url: str | None = None,
    tables: list[str] | None = None,
    author: str | None = None,
    allow_empty: bool = False,
    progress: Progress | None = None,
    kind: str = "full",
    extra_parents: Sequence[bytes] = (),
    incremental: bool = False,
) -> CommitResult:
    """``snap commit``: :func:`commit_database` on HEAD's branch, timed and audited."""
    from snapgit.db import redact_url

    started = time.monotonic()
    who = actor(store, author)
    url = database_url(store, db_url)
    args: dict[str, Any] = {"message": message, "tables": tables, "allow_empty": allow_empty, "db": redact_url(url)}
    if incremental:
        args["incremental"] = True
    with audited(store, who, "commit", args) as entry:
        result = commit_database(
            store,
            url,
            message,
            author=who,
            tables=tables,
            allow_empty=allow_empty,
            progress=progress,
            kind=kind,
            extra_parents=extra_parents,
            incremental=incremental,
        )
        result.seconds = time.monotonic() - started
        entry.result = {
            "commit": result.commit_id.hex() if result.commit_id else None,
            "rows": {t.name: t.rows for t in result.tables},
        }
    return result


def commit_result_json(result: CommitResult, *, incremental: bool = False) -> dict[str, Any]:
    """The JSON form of a commit's result (``snap commit --json``). ``incremental``: the commit
    was asked to read incrementally, and each table says whether it did and why not."""
    doc: dict[str, Any] = {
        "commit": result.commit_id.hex() if result.commit_id else None,
        "parent": result.parent_id.hex() if result.parent_id else None,
        "branch": result.branch,
        "nothing_to_commit": result.commit_id is None,
        "seconds": round(result.seconds, 3),
        "tables": {
            t.name: {
                "rows": t.rows,
                "changed": t.changed,
                "records_written": t.records_written,
                "processes": t.processes,
                "cached_rows": t.cached_rows,
            }
            # with change capture on: read through the log, or why not
            | ({"captured": t.captured, "capture_note": t.capture_note} if t.captured or t.capture_note else {})
            | ({"incremental": t.incremental, "note": t.note} if incremental else {})
            for t in result.tables
        },
    }
    if incremental:
        doc["incremental_note"] = result.incremental_note
    return doc


def live_side(
    store: Store,
    *,
    against: Side | None = None,
    tables: list[str] | None = None,
    db_url: str | None = None,
    progress: Progress | None = None,
    listed: bool = False,
) -> Side:
    """The live database as a diff side, built as a commit would build it, into a scratch
    store that nothing refers to (nothing is added to the store).

    The scratch store (:func:`snapgit.store.objectstore.scratch_store`) is a directory in the
    store's ``tmp/`` that reads the store's packs too, deleted once the side is gone: the
    commit's worker processes can then read big tables with this process, as for a commit
    (they write packs), and what is built is not held in memory. Where the store cannot have
    one, or the disk has no room for what it would hold, the side is built in memory, by this
    process alone: a full disk does not stop a status.

    ``against`` is the side it will be compared with: its trees let unchanged leaves be
    recognised without keeping them; captured tables whose log is relative to its tables are
    read by what changed (nothing is consumed). ``listed``: such tables are given as their row
    changes against ``against`` (:attr:`Side.changes`), without a tree: for a diff only, not
    for anything that reads the side's trees.
    """
    from snapgit.errors import DiskFullError
    from snapgit.snapshot.scanpool import Parallel
    from snapgit.store.objectstore import DiskObjectStore, OverlayObjectStore, scratch_store

    url = database_url(store, db_url)
    scratch = scratch_store(store.objects) if isinstance(store.objects, DiskObjectStore) else None
    if scratch is not None:
        try:
            parallel = Parallel(url, scratch.root, also=scratch.also)
            return _live_side(store, url, scratch, parallel, against, tables, progress, listed)
        except DiskFullError:
            scratch = None  # its directory goes now, with what it holds; read again, into memory
    return _live_side(store, url, OverlayObjectStore(store.objects), None, against, tables, progress, listed)


def _live_side(
    store: Store,
    url: str,
    objects: ObjectStore,
    parallel: Any,
    against: Side | None,
    tables: list[str] | None,
    progress: Progress | None,
    listed: bool,
) -> Side:
    from snapgit.compare.diff import Side
    from snapgit.db import Database
    from snapgit.db.capture import catalog_before, read_capture

    parent_root = Root(dict(against.tables)) if against is not None else None
    wanted = tables or store.config.tables
    with Database.connect(url) as db:
        before = catalog_before(db)
        with db.snapshot() as snap, contextlib.closing(parallel) if parallel is not None else contextlib.nullcontext():
            view = read_capture(snap, before)
            names = snap.table_names()
            if tables:
                wanted = [t for t in tables if t in names]
            ignored = _ignored(store.config)
            schemas = (
                snap.reflect(wanted, cache=schema_cache_dir(store), ignored=ignored) if wanted is None or wanted else []
            )
            with objects.writer() as w:
                written, results = snapshot_database(
                    objects,
                    w,
                    snap,
                    schemas,
                    parent_root=parent_root,
                    keys=_keys(store.config),
                    progress=progress,
                    count_rows=progress is not None,
                    parallel=parallel,
                    row_cache=row_cache_dir(store),
                    row_cache_write=False,
                    capture=logged_tables(view) if view is not None else None,
                    changes_only=listed,
                )
    changes = {r.name: r.changes for r in results if r.changes is not None}
    return Side(objects, written, "the live database", changes)
