"""The Python API: one object per store, one method per thing a user does.

``Repo`` joins the store (objects, refs, config), the database layer and the operations; the CLI
is a thin layer over it. The database layer (and SQLAlchemy with it) is imported only by methods
that talk to a database, so commands that only read the store start fast.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snapgit.store import oplog
from snapgit.version import __version__
from snapgit.progress import Progress
from snapgit.snapshot.build import snapshot_database
from snapgit.snapshot.incremental import Incremental
from snapgit.snapshot.record import CommitResult, commit_snapshot, default_author, now_micros, write_root
from snapgit.store.config import Config
from snapgit.errors import NotFoundError, SnapError
from snapgit.store.history import read_commit, read_root, read_table, resolve, walk
from snapgit.objects import Commit, Node, ObjType, Root, TableEntry, Tag, decode_schema, object_id, unpack_canonical
from snapgit.store.refs import check_ref_name
from snapgit.schema import TableSchema
from snapgit.store.layout import Store
from snapgit.encoding import decode_joined, decode_row

if TYPE_CHECKING:
    from snapgit.compare.diff import Side, TableDiff

__all__ = ["Repo", "TableInfo", "MergeResult", "NoDatabaseError"]


def socket_host() -> str:
    import socket

    return socket.gethostname()


class NoDatabaseError(SnapError):
    pass


@dataclass
class MergeResult:
    rev: str
    theirs: bytes
    base: bytes | None
    pre: bytes | None  # the commit of the live database taken before writing
    plans: list
    strategy: str
    preview: bool = False
    fast_forward: bool = False
    in_progress: bool = False
    merge_commit: bytes | None = None

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
        return {
            "theirs": self.theirs.hex(),
            "base": self.base.hex() if self.base else None,
            "pre_merge_commit": self.pre.hex() if self.pre else None,
            "merge_commit": self.merge_commit.hex() if self.merge_commit else None,
            "fast_forward": self.fast_forward,
            "in_progress": self.in_progress,
            **self.totals(),
        }


def _writes(method: Callable) -> Callable:
    """Run a Repo method under a writer lease (lock.py): gc never runs while it writes objects
    or moves refs. Nested operations (merge commits first) share the outer lease."""

    @functools.wraps(method)
    def wrapper(self: "Repo", *args: Any, **kwargs: Any) -> Any:
        with self.store.locks.writing():
            self.objects.refresh()  # a gc that ran before the lease was granted may have moved packs
            return method(self, *args, **kwargs)

    return wrapper


def _gc_paused_iter(items: Iterator[Any]) -> Iterator[Any]:
    """``items``, with the cyclic garbage collector paused while they are consumed."""
    from snapgit.snapshot.build import paused_gc

    with paused_gc():
        yield from items


def _key_matches(plan, conflict, text: str) -> bool:
    """Whether a user's KEY argument ("5", "id=5", "5,abc") names this conflict's key."""
    from snapgit.jsonvalue import to_json

    row = conflict.theirs or conflict.ours or conflict.base or []
    values = dict(zip(plan.schema.sorted_names, row))
    key_cols = plan.key or plan.schema.sorted_names
    want = [part.split("=", 1)[-1].strip() for part in text.split(",")]
    have = [str(to_json(values.get(c))) for c in key_cols]
    return want == have


@dataclass
class TableInfo:
    name: str
    rows: int
    key: list[str] | None
    schema: TableSchema
    table_id: bytes


class Repo:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.notes: list[str] = []  # things the user should know after an operation
        self.objects = store.objects
        self.refs = store.refs

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path = ".") -> "Repo":
        return cls(Store.open(Path(path)))

    @classmethod
    def init(cls, path: str | Path = ".", db_url: str | None = None, *, check: bool = True) -> "Repo":
        import os

        from snapgit.store.config import ENV_URL_VARS

        directory = Path(path).resolve()
        url = db_url or next((os.environ[v] for v in ENV_URL_VARS if os.environ.get(v)), None)
        config = Config()
        if url:
            from snapgit.db import Database, normalize_url, redact_url

            full = normalize_url(url, base_dir=directory)
            if check:
                Database.connect(full).close()
            config.url = redact_url(full)
        store = Store.init(directory, config)
        repo = cls(store)
        if url and config.url != normalize_url(url, base_dir=directory):
            repo.notes.append(
                "the password in the URL was not stored; give it with SNAP_DATABASE_URL, DATABASE_URL, "
                "or [database] password_env in .snapstore/config.toml"
            )
        return repo

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Repo":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def config(self) -> Config:
        return self.store.config

    # -- names --------------------------------------------------------------------------------

    def head_ref(self) -> str | None:
        """The branch ref HEAD points at (``refs/heads/main``), or None when detached."""
        return self.refs.read_symbolic("HEAD")

    def head(self) -> bytes | None:
        value = self.refs.read("HEAD")
        return bytes.fromhex(value) if value else None

    def resolve(self, rev: str) -> bytes:
        return resolve(self.objects, self.refs, rev)

    def read_commit(self, oid: bytes) -> Commit:
        return read_commit(self.objects, oid)

    # -- commit -------------------------------------------------------------------------------

    def row_cache_dir(self) -> Path | None:
        """Where commits keep their row caches (rowcache.py); None when ``SNAP_ROW_CACHE=0``
        turns them off (every commit then encodes and hashes every row)."""
        if os.environ.get("SNAP_ROW_CACHE", "1") == "0":
            return None
        return self.store.root / "cache"

    def schema_cache_dir(self) -> Path:
        """Where reading a SQLite database remembers its last reflection (db/schemacache.py)."""
        return self.store.root / "cache"

    def database_url(self, override: str | None = None) -> str:
        from snapgit.db import normalize_url

        url = self.config.database_url(override)
        if not url:
            raise NoDatabaseError(
                "no database configured for this store",
                hint="pass --db URL, set SNAP_DATABASE_URL, or set [database] url in .snapstore/config.toml",
            )
        return normalize_url(url, base_dir=self.store.project_dir)

    def keys_for(self, schema: TableSchema) -> list[str] | None:
        tc = self.config.table_config(schema.name)
        if tc.key:
            missing = [c for c in tc.key if c not in schema.column_names]
            if missing:
                raise SnapError(
                    f"config.toml gives table {schema.name!r} the key {tc.key}, but it has no column {missing[0]!r}",
                    hint="fix [tables.%s] key in .snapstore/config.toml" % schema.name,
                )
            return list(tc.key)
        return list(schema.primary_key) or None

    @_writes
    def commit(
        self,
        message: str,
        *,
        tables: list[str] | None = None,
        author: str | None = None,
        allow_empty: bool = False,
        db_url: str | None = None,
        progress: Progress | None = None,
        kind: str = "full",
        extra_parents: list[bytes] | None = None,
        incremental: bool = False,
    ) -> CommitResult:
        """Snapshot the live database and commit it on the current branch.

        ``incremental``: read only the rows whose change column (config ``incremental_column``)
        is at or after the last commit's read (less ``incremental_lookback``), plus every key to
        find deleted rows. The precondition is the user's: every write to a row sets that column
        to the database's current time. Tables that cannot be read so are read in full, and
        their result says why (``TableResult.note``)."""
        from snapgit.db import redact_url

        started = time.monotonic()
        author = default_author(author or self.config.user_name)
        url = self.database_url(db_url)
        args = {"message": message, "tables": tables, "allow_empty": allow_empty, "db": redact_url(url)}
        if incremental:
            args["incremental"] = True
        try:
            result = self._commit(url, message, tables, author, allow_empty, progress, kind, extra_parents or [], incremental)
        except SnapError as exc:
            self._log(author, "commit", args, ok=False, error=str(exc))
            raise
        result.seconds = time.monotonic() - started
        self._log(
            author,
            "commit",
            args,
            ok=True,
            result={
                "commit": result.commit_id.hex() if result.commit_id else None,
                "rows": {t.name: t.rows for t in result.tables},
            },
        )
        return result

    def _restored_marker(self) -> Path:
        # Present while the live database holds rows that snapgit wrote from an old snapshot
        # (`snap restore`) and HEAD does not name that state: their change columns are old, so
        # an incremental commit would miss them.
        return self.store.root / "RESTORED"

    def _incremental_plan(self, parent: bytes | None, url: str) -> tuple[Incremental | None, str | None]:
        """How an incremental commit on ``parent`` reads, or (None, why it must read in full)."""
        from snapgit.db import redact_url

        if parent is None:
            return None, "there is no previous commit"
        if self._restored_marker().exists():
            return None, "snap restore rewrote the database since the last commit"
        meta = read_commit(self.objects, parent).meta
        if not isinstance(meta.get("db_time"), str):
            return None, f"the last commit (kind {meta.get('kind', '?')}) did not read the database"
        if meta.get("source") != redact_url(url):
            return None, f"the last commit read another database ({meta.get('source')})"
        try:
            since = dt.datetime.fromisoformat(meta["db_time"]) - dt.timedelta(seconds=self.config.incremental_lookback)
        except ValueError:
            return None, "the last commit's db_time is unreadable"
        read = set(meta["tables"]) if meta.get("tables") else None
        return Incremental(since, lambda schema: self.config.change_column(schema.name), read), None

    def _commit(self, url, message, tables, author, allow_empty, progress, kind, extra_parents, incremental=False) -> CommitResult:
        from snapgit.db import Database, redact_url

        ref = self.head_ref() or "HEAD"
        head_hex = self.refs.read(ref)
        parent = bytes.fromhex(head_hex) if head_hex else None
        parent_root = read_root(self.objects, read_commit(self.objects, parent).tree) if parent else None
        wanted = tables or self.config.tables
        inc, why_full = self._incremental_plan(parent, url) if incremental else (None, None)
        read_at, _ = now_micros()
        from snapgit.snapshot.scanpool import Parallel

        parallel = Parallel(url, self.objects.root)
        with Database.connect(url) as db, db.snapshot() as snap, contextlib.closing(parallel):
            db_time = snap.now()
            schemas = snap.reflect(wanted, cache=self.schema_cache_dir())
            if not schemas:
                raise SnapError(
                    f"the database {redact_url(url)} has no tables: nothing to snapshot",
                    hint="create tables first, or point --db at another database",
                )
            with self.objects.writer() as w:
                written, results = snapshot_database(
                    self.objects,
                    w,
                    snap,
                    schemas,
                    parent_root=parent_root,
                    keys=self.keys_for,
                    progress=progress,
                    count_rows=progress is not None,
                    incremental=inc,
                    parallel=parallel,
                    row_cache=self.row_cache_dir(),
                )
                all_tables = dict(written)
                if tables and parent_root is not None:
                    # An explicit --tables commits those tables and keeps the others as they were.
                    all_tables = {**parent_root.tables, **written}
                tree_id = write_root(self.objects, w, all_tables)
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
        if tables:
            meta["tables"] = list(tables)
        cid, parent = commit_snapshot(
            self.objects,
            self.refs,
            ref=ref,
            expected_parent=parent,
            tree_id=tree_id,
            author=author,
            message=message,
            meta=meta,
            extra_parents=extra_parents,
            allow_same_tree=allow_empty,
        )
        if not tables:
            self._restored_marker().unlink(missing_ok=True)  # every table was read: HEAD is the database
        branch = ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None
        return CommitResult(cid, tree_id, parent, branch, results, incremental_note=why_full)

    def _log(self, who: str, op: str, args: dict[str, Any], *, ok: bool, result=None, error=None) -> None:
        try:
            oplog.append(self.store.root / "oplog.jsonl", who=who, op=op, args=args, ok=ok, result=result, error=error)
        except OSError:
            pass  # the audit log must never turn a finished operation into a failure

    def oplog(self) -> Iterator[dict[str, Any]]:
        return oplog.read(self.store.root / "oplog.jsonl")

    # -- diff and status ----------------------------------------------------------------------

    def commit_side(self, rev: str) -> "Side":
        from snapgit.compare.diff import Side

        oid = self.resolve(rev)
        root = read_root(self.objects, read_commit(self.objects, oid).tree)
        return Side(self.objects, dict(root.tables), f"{rev} ({oid.hex()[:12]})" if rev != oid.hex() else oid.hex()[:12])

    def live_side(
        self, *, against: "Side | None" = None, tables: list[str] | None = None, db_url: str | None = None,
        progress: Progress | None = None,
    ) -> "Side":
        """The live database as a diff side, built in memory (nothing is written to the store).

        ``against`` is the side it will be compared with: its trees let unchanged leaves be
        recognised without keeping them.
        """
        from snapgit.db import Database
        from snapgit.compare.diff import Side
        from snapgit.store.objectstore import OverlayObjectStore

        url = self.database_url(db_url)
        overlay = OverlayObjectStore(self.objects)
        parent_root = Root(dict(against.tables)) if against is not None else None
        wanted = tables or self.config.tables
        with Database.connect(url) as db, db.snapshot() as snap:
            names = snap.table_names()
            if tables:
                wanted = [t for t in tables if t in names]
            schemas = snap.reflect(wanted, cache=self.schema_cache_dir()) if wanted is None or wanted else []
            written, _results = snapshot_database(
                overlay, overlay.writer(), snap, schemas, parent_root=parent_root, keys=self.keys_for,
                progress=progress, count_rows=progress is not None,
                row_cache=self.row_cache_dir(), row_cache_write=False,
            )
        return Side(overlay, written, "the live database")

    def diff(
        self, a: str | None = None, b: str | None = None, *, tables: list[str] | None = None,
        db_url: str | None = None, progress: Progress | None = None,
    ) -> list["TableDiff"]:
        """Per-table differences: no revision: HEAD -> live; one: A -> live; two: A -> B."""
        from snapgit.compare.diff import diff_sides

        side_a = self.commit_side(a or "HEAD")
        if b is None:
            side_b = self.live_side(against=side_a, tables=tables, db_url=db_url, progress=progress)
        else:
            side_b = self.commit_side(b)
        return diff_sides(side_a, side_b, tables)

    def status(self, *, db_url: str | None = None, progress: Progress | None = None) -> list["TableDiff"]:
        """The live database against HEAD (against nothing when there is no commit yet)."""
        from snapgit.compare.diff import Side, diff_sides

        if self.head() is None:
            side_a = Side(self.objects, {}, "nothing (no commits yet)")
        else:
            side_a = self.commit_side("HEAD")
        side_b = self.live_side(against=side_a, db_url=db_url, progress=progress)
        return diff_sides(side_a, side_b)

    # -- merge, restore, checkout -------------------------------------------------------------

    @property
    def _merge_state_path(self) -> Path:
        return self.store.root / "MERGE_HEAD"

    def merge_state(self) -> dict[str, Any] | None:
        """The unfinished manual merge, or None."""
        import json

        try:
            return json.loads(self._merge_state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            from snapgit.errors import CorruptError

            raise CorruptError(f"{self._merge_state_path} is damaged: {exc}", hint="snap merge --abort") from exc

    def _save_merge_state(self, state: dict[str, Any]) -> None:
        import json
        import os

        tmp = self._merge_state_path.with_name("MERGE_HEAD.tmp")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self._merge_state_path)

    def _ignored(self) -> dict[str, list[str]]:
        """Columns config.toml leaves out of comparisons, per table."""
        return {name: list(tc.ignore) for name, tc in self.config.table.items() if tc.ignore}

    def _tables_of(self, oid: bytes | None) -> dict[str, bytes]:
        if oid is None:
            return {}
        return dict(read_root(self.objects, read_commit(self.objects, oid).tree).tables)

    @_writes
    def merge(
        self,
        rev: str,
        *,
        strategy: str,
        preview: bool = False,
        tables: list[str] | None = None,
        message: str | None = None,
        db_url: str | None = None,
        author: str | None = None,
    ) -> "MergeResult":
        """Three-way merge of a revision into the live database (see merge.py)."""
        from snapgit.store.history import merge_base
        from snapgit.compare.mergeplan import STRATEGIES, MergeError, plan_merge

        if strategy not in STRATEGIES:
            raise MergeError(f"unknown strategy {strategy!r}", hint="use backup_wins, database_wins or manual")
        if self.merge_state() is not None:
            raise MergeError(
                "a merge is already in progress",
                hint="resolve it with `snap conflicts`, then `snap merge --continue`, or drop it with `snap merge --abort`",
            )
        theirs = self.resolve(rev)
        who = default_author(author or self.config.user_name)
        args = {"rev": rev, "theirs": theirs.hex(), "strategy": strategy, "preview": preview, "tables": tables}
        try:
            if preview:
                live = self.live_side(against=self.commit_side(theirs.hex()), db_url=db_url)
                ours_tables, reader, pre = live.tables, live.reader, self.head()
            else:
                pre_result = self.commit(
                    f"snapshot of the database before merging {rev}", db_url=db_url, author=author, kind="pre-merge"
                )
                pre = pre_result.commit_id or pre_result.parent_id
                ours_tables, reader = self._tables_of(pre), self.objects
            base = merge_base(self.objects, pre, theirs)
            plans = plan_merge(reader, self._tables_of(base), ours_tables, self._tables_of(theirs), strategy, tables,
                               ignore=self._ignored())
            result = MergeResult(rev, theirs, base, pre, plans, strategy, preview=preview)
            result.fast_forward = base is not None and base == pre
            if preview:
                return result
            if any(p.unresolved for p in plans):
                self._save_merge_state(
                    {"rev": rev, "theirs": theirs.hex(), "ours": pre.hex() if pre else None,
                     "base": base.hex() if base else None, "tables": tables, "message": message,
                     "resolutions": {}}
                )
                result.in_progress = True
                self._log(who, "merge", args, ok=True, result=result.summary())
                return result
            self._apply_and_record(result, message or f"merge {rev} ({strategy})", db_url, author)
            self._log(who, "merge", args, ok=True, result=result.summary())
            return result
        except SnapError as exc:
            self._log(who, "merge", args, ok=False, error=str(exc))
            raise

    def _apply_and_record(self, result: "MergeResult", message: str, db_url: str | None, author: str | None) -> None:
        from snapgit.ops.apply import apply_plans
        from snapgit.db import Database

        url = self.database_url(db_url)
        with Database.connect(url) as db:
            apply_plans(db, result.plans)
        # the merged state, recorded with both parents
        post = self.commit(message, db_url=db_url, author=author, kind="merge",
                           extra_parents=[result.theirs], allow_empty=True)
        result.merge_commit = post.commit_id
        if result.fast_forward and post.commit_id is not None:
            if post.tree_id == read_commit(self.objects, result.theirs).tree:
                # the database now is exactly the incoming commit: move the branch to it, as git does
                ref = self.head_ref() or "HEAD"
                self.refs.set_if_equals(ref, post.commit_id.hex(), result.theirs.hex(),
                                        who=default_author(author or self.config.user_name),
                                        message=f"merge {result.rev}: fast-forward")
                result.merge_commit = result.theirs

    @_writes
    def merge_continue(self, *, db_url: str | None = None, author: str | None = None) -> "MergeResult":
        from snapgit.compare.mergeplan import MergeError, plan_merge

        state = self.merge_state()
        if state is None:
            raise MergeError("no merge in progress")
        pre = bytes.fromhex(state["ours"]) if state.get("ours") else None
        head = self.head()
        if head != pre:
            raise MergeError("HEAD moved since the merge started", hint="snap merge --abort, then merge again")
        if any(t.stat().total for t in self.status(db_url=db_url)):
            raise MergeError(
                "the live database changed since the merge started",
                hint="snap merge --abort, then merge again",
            )
        theirs = bytes.fromhex(state["theirs"])
        base = bytes.fromhex(state["base"]) if state.get("base") else None
        resolutions = {t: {bytes.fromhex(k): v for k, v in keys.items()} for t, keys in state["resolutions"].items()}
        plans = plan_merge(self.objects, self._tables_of(base), self._tables_of(pre), self._tables_of(theirs),
                           "manual", state.get("tables"), resolutions, ignore=self._ignored())
        result = MergeResult(state["rev"], theirs, base, pre, plans, "manual")
        left = sum(len(p.unresolved) for p in plans)
        if left:
            raise MergeError(f"{left} conflicts are not resolved yet", hint="snap conflicts; snap conflicts resolve --ours|--theirs")
        self._apply_and_record(result, state.get("message") or f"merge {state['rev']} (manual)", db_url, author)
        self._merge_state_path.unlink()
        self._log(default_author(author or self.config.user_name), "merge-continue", {"rev": state["rev"]}, ok=True,
                  result=result.summary())
        return result

    @_writes
    def merge_abort(self) -> None:
        from snapgit.compare.mergeplan import MergeError

        if self.merge_state() is None:
            raise MergeError("no merge in progress")
        self._merge_state_path.unlink()
        self._log(default_author(self.config.user_name), "merge-abort", {}, ok=True)

    def conflicts(self) -> list:
        """The conflicts of the merge in progress, with their resolutions so far."""
        from snapgit.compare.mergeplan import MergeError, plan_merge

        state = self.merge_state()
        if state is None:
            raise MergeError("no merge in progress")
        pre = bytes.fromhex(state["ours"]) if state.get("ours") else None
        base = bytes.fromhex(state["base"]) if state.get("base") else None
        resolutions = {t: {bytes.fromhex(k): v for k, v in keys.items()} for t, keys in state["resolutions"].items()}
        plans = plan_merge(self.objects, self._tables_of(base), self._tables_of(pre),
                           self._tables_of(bytes.fromhex(state["theirs"])), "manual", state.get("tables"), resolutions,
                           ignore=self._ignored())
        return [(p, c) for p in plans for c in p.conflicts]

    @_writes
    def resolve_conflicts(self, side: str, *, table: str | None = None, keys: list[str] | None = None) -> int:
        """Resolve conflicts (all, a table's, or those whose key matches) as ``ours`` or ``theirs``."""
        from snapgit.compare.mergeplan import MergeError

        if side not in ("ours", "theirs"):
            raise MergeError("resolve with ours or theirs")
        state = self.merge_state()
        if state is None:
            raise MergeError("no merge in progress")
        n = 0
        for plan, c in self.conflicts():
            if table and c.table != table:
                continue
            if keys and not any(_key_matches(plan, c, k) for k in keys):
                continue
            state["resolutions"].setdefault(c.table, {})[c.key.hex()] = side
            n += 1
        if keys and n == 0:
            raise MergeError(f"no conflict with key {', '.join(keys)}", hint="see `snap conflicts`")
        self._save_merge_state(state)
        self._log(default_author(self.config.user_name), "resolve", {"side": side, "table": table, "keys": keys},
                  ok=True, result={"resolved": n})
        return n

    @_writes
    def restore(
        self, rev: str, *, into: str | None = None, tables: list[str] | None = None, preview: bool = False,
        db_url: str | None = None, author: str | None = None, _live_is: bytes | None = None,
    ) -> "MergeResult":
        """Make the live database (or a new one at ``into``) equal to a revision. HEAD stays.

        The live state is committed first, on the current branch, so the restore can be undone;
        ``_live_is`` (for checkout) names a commit known to hold the live state instead.
        """
        from snapgit.compare.mergeplan import plan_merge

        theirs = self.resolve(rev)
        who = default_author(author or self.config.user_name)
        from snapgit.db import redact_url

        args = {"rev": rev, "into": redact_url(into) if into else None, "tables": tables, "preview": preview}
        try:
            if into is not None:
                result = self._restore_into(theirs, rev, into, tables, preview)
            else:
                if preview:
                    against = self.commit_side(theirs.hex())
                    live = self.live_side(against=against, db_url=db_url)
                    ours_tables, reader, pre = live.tables, live.reader, self.head()
                elif _live_is is not None:
                    pre = _live_is
                    ours_tables, reader = self._tables_of(pre), self.objects
                else:
                    r = self.commit(f"snapshot of the database before restoring {rev}", db_url=db_url,
                                    author=author, kind="pre-restore")
                    pre = r.commit_id or r.parent_id
                    ours_tables, reader = self._tables_of(pre), self.objects
                # base = ours: every difference is theirs to apply, nothing conflicts
                plans = plan_merge(reader, ours_tables, ours_tables, self._tables_of(theirs), "backup_wins", tables)
                result = MergeResult(rev, theirs, pre, pre, plans, "restore", preview=preview)
                if not preview:
                    from snapgit.ops.apply import apply_plans
                    from snapgit.db import Database

                    with Database.connect(self.database_url(db_url)) as db:
                        if _live_is is None:  # (checkout moves HEAD to what it writes)
                            self._restored_marker().write_text(theirs.hex() + "\n")
                        apply_plans(db, plans)
        except SnapError as exc:
            self._log(who, "restore", args, ok=False, error=str(exc))
            raise
        self._log(who, "restore", args, ok=True, result=result.summary())
        return result

    def _restore_into(self, theirs: bytes, rev: str, into: str, tables: list[str] | None, preview: bool) -> "MergeResult":
        from snapgit.db import Database, normalize_url
        from snapgit.compare.mergeplan import TablePlan
        from snapgit.ops.readahead import leaf_records, worth_reading_ahead
        from snapgit.schema import table_order

        all_tables = self._tables_of(theirs)
        names = sorted(all_tables)
        if tables:
            missing = [t for t in tables if t not in all_tables]
            if missing:
                raise NotFoundError(f"no table {missing[0]!r} in {rev}")
            names = [n for n in names if n in tables]
        plans = []
        for name in names:
            entry = read_table(self.objects, all_tables[name])
            otype, data = self.objects.get(entry.schema)
            plan = TablePlan(name, decode_schema(data), entry.key)
            plan.added = entry.rows
            plans.append((plan, entry))
        result = MergeResult(rev, theirs, None, None, [p for p, _ in plans], "restore", preview=preview)
        if preview:
            return result
        url = normalize_url(into, base_dir=self.store.project_dir)
        with Database.connect(url, create=True) as db:  # a new SQLite file may be created here
            schemas = [p.schema for p, _ in plans]
            with db.write() as tx:
                tx.create_tables(schemas)
            try:
                with db.write() as tx:
                    order = table_order({p.name: p.schema for p, _ in plans})
                    by_name = {p.name: (p, e) for p, e in plans}
                    ordered = [by_name[name] for name in order]
                    ahead = worth_reading_ahead(sum(e.rows for _p, e in ordered))
                    batch: list = []
                    current = 0
                    records = leaf_records(self.objects, [e.root for _p, e in ordered], ahead=ahead)
                    for i, data, n in _gc_paused_iter(records):
                        if i != current:
                            if batch:
                                tx.insert_rows(ordered[current][0].schema, batch)
                            batch, current = [], i
                        batch.extend(decode_joined(data, n))
                        if len(batch) >= 5000:
                            tx.insert_rows(ordered[i][0].schema, batch)
                            batch = []
                    if batch:
                        tx.insert_rows(ordered[current][0].schema, batch)
                    tx.check_foreign_keys(names)
                    for plan, _e in plans:
                        tx.reset_sequences(plan.schema)
            except BaseException:
                with db.write() as tx:
                    tx.drop_tables(list(reversed(table_order({p.name: p.schema for p, _ in plans}))))
                raise
        return result

    @_writes
    def checkout(self, target: str, *, new_branch: str | None = None, force: bool = False,
                 db_url: str | None = None) -> dict[str, Any]:
        """Move HEAD to a branch or revision and make the live database match it."""
        from snapgit.compare.mergeplan import MergeError

        if self.merge_state() is not None:
            raise MergeError("a merge is in progress", hint="snap merge --continue or --abort first")
        who = default_author(self.config.user_name)
        if new_branch:
            oid = self.create_branch(new_branch, target)
            self.refs.set_symbolic("HEAD", f"refs/heads/{new_branch}")
            dirty = False
        else:
            oid = self.resolve(target)
            dirty = bool(self.head()) and any(t.stat().total or t.schema for t in self.status(db_url=db_url))
        saved = None
        if not new_branch:
            if dirty and not force:
                raise MergeError(
                    "the live database has uncommitted changes",
                    hint="commit them (snap commit -m ...), or use --force to save them to a ref first",
                )
            live_is = self.head()  # clean: the live database is HEAD
            if dirty:
                saved, live_is = self._save_dirty(who, db_url)
            if live_is is not None:
                self.restore(oid.hex(), db_url=db_url, _live_is=live_is)
            branch_ref = f"refs/heads/{target}"
            if self.refs.read(branch_ref) is not None:
                self.refs.set_symbolic("HEAD", branch_ref)
            else:
                old = self.refs.read("HEAD")
                self.refs.set_if_equals("HEAD", old, oid.hex(), who=who, message=f"checkout: {target}")
        self._log(who, "checkout", {"target": target, "new_branch": new_branch, "force": force}, ok=True,
                  result={"commit": oid.hex(), "saved": saved})
        return {"commit": oid, "saved": saved}

    def _save_dirty(self, who: str, db_url: str | None) -> tuple[str, bytes]:
        """Commit the live database to refs/snap/saved/<time> (for checkout --force)."""
        import time as _time

        ref = f"refs/snap/saved/{_time.strftime('%Y%m%d-%H%M%S')}"
        head_ref = self.head_ref()
        head = self.head()
        # commit on a temporary detached HEAD-like path: write the snapshot, then point the ref at it
        from snapgit.db import Database

        url = self.database_url(db_url)
        parent_root = read_root(self.objects, read_commit(self.objects, head).tree) if head else None
        with Database.connect(url) as db, db.snapshot() as snap:
            schemas = snap.reflect(self.config.tables, cache=self.schema_cache_dir())
            with self.objects.writer() as w:
                written, results = snapshot_database(self.objects, w, snap, schemas, parent_root=parent_root,
                                                     keys=self.keys_for)
                tree_id = write_root(self.objects, w, written)
        cid, _ = commit_snapshot(self.objects, self.refs, ref=ref, expected_parent=None, tree_id=tree_id,
                                 author=who, message=f"uncommitted changes saved by checkout --force (HEAD was {head_ref or head.hex() if head else '?'})",
                                 meta={"kind": "saved"}, extra_parents=[head] if head else [], allow_same_tree=True)
        return ref, cid

    def unlock(self) -> list[str]:
        """Remove lock files left by killed processes; returns what was removed.

        Locks of owners that provably run on this host are kept. The rest (ref locks of unknown
        owners, leases of other hosts) are removed: only safe when no other snap command is
        running on this store, or two writers could move a ref at once.
        """
        locks = self.store.locks
        removed = locks.reclaim_dead()
        live = [info for info in locks.leases() if info.host == socket_host()]
        held = {r for info in live for r in info.refs}
        for lock in sorted(self.refs.locks()):
            name = lock.relative_to(self.store.root).as_posix()
            if name in held:
                continue
            try:
                lock.unlink()
            except FileNotFoundError:
                continue
            removed.append(name)
        for info in locks.leases() + ([g] if (g := locks.gc_holder()) else []):
            if info.host != socket_host() and info.path is not None:
                info.path.unlink(missing_ok=True)
                removed.append(info.path.relative_to(self.store.root).as_posix())
        self._log(default_author(self.config.user_name), "unlock", {}, ok=True, result={"removed": removed})
        return removed

    # -- integrity ----------------------------------------------------------------------------

    def verify(self, *, read_data: bool = False, repair: bool = False):
        """Check the store; every problem found is in the report (see verify.py).

        ``repair``: first rebuild missing or broken indexes from their packs and move damaged
        packs aside, keeping every object that still reads (see repair.py), under the gc lock.
        """
        from snapgit.ops.verify import verify_store

        if not repair:
            return verify_store(self.store, read_data=read_data)
        from snapgit.store.repair import repair_store

        with self.store.locks.gc():
            actions = repair_store(self.store)
            self.objects.refresh()
            report = verify_store(self.store, read_data=read_data)
        report.repairs = actions
        self._log(default_author(self.config.user_name), "repair", {}, ok=report.ok, result={"actions": actions})
        return report

    def gc(self, *, prune: str | float | None = None, dry_run: bool = False, expire: str | float | None = None):
        """Remove what no ref, reflog line or unfinished merge reaches (see gc.py).

        ``prune`` is the grace period: seconds, or text like ``now``, ``30m``, ``2h`` (default
        1 hour). ``expire``: reflog lines older than this stop keeping commits and are removed
        (default 90 days; ``never`` keeps them all). Waits briefly for running writers, then
        raises LockedError.
        """
        from snapgit.ops.gc import DEFAULT_EXPIRE, DEFAULT_GRACE, collect_garbage, parse_grace

        grace = DEFAULT_GRACE if prune is None else parse_grace(prune) if isinstance(prune, str) else float(prune)
        if expire is None:
            expire_s: float | None = DEFAULT_EXPIRE
        elif isinstance(expire, str):
            expire_s = None if expire.strip().lower() == "never" else parse_grace(expire)
        else:
            expire_s = float(expire)
        who = default_author(self.config.user_name)
        args = {"prune": grace, "dry_run": dry_run, "expire": expire_s}
        try:
            if dry_run:
                report = collect_garbage(self.store, grace=grace, dry_run=True, expire=expire_s)
            else:
                with self.store.locks.gc():
                    report = collect_garbage(self.store, grace=grace, expire=expire_s)
        except SnapError as exc:
            self._log(who, "gc", args, ok=False, error=str(exc))
            raise
        result = {k: v for k, v in report.to_json().items() if k not in ("trashed", "deleted")}
        self._log(who, "gc", args, ok=True, result=result)
        return report

    # -- history ------------------------------------------------------------------------------

    def log(self, rev: str = "HEAD", n: int | None = None) -> list[tuple[bytes, Commit]]:
        out = []
        for item in walk(self.objects, [self.resolve(rev)]):
            if n is not None and len(out) >= n:
                break
            out.append(item)
        return out

    def tables(self, rev: str = "HEAD") -> list[TableInfo]:
        """The tables of a commit, with their row counts, keys and schemas."""
        commit = self.read_commit(self.resolve(rev))
        root = read_root(self.objects, commit.tree)
        out = []
        for name, tid in sorted(root.tables.items()):
            entry = read_table(self.objects, tid)
            otype, data = self.objects.get(entry.schema)
            out.append(TableInfo(name, entry.rows, entry.key, decode_schema(data), tid))
        return out

    # -- branches and tags --------------------------------------------------------------------

    def branches(self) -> list[tuple[str, bytes, bool]]:
        current = self.head_ref()
        return [
            (name.removeprefix("refs/heads/"), bytes.fromhex(v), name == current)
            for name, v in self.refs.list("refs/heads").items()
        ]

    @_writes
    def create_branch(self, name: str, rev: str = "HEAD") -> bytes:
        check_ref_name(name, "branch")
        oid = self.resolve(rev)
        ref = f"refs/heads/{name}"
        if self.refs.read(ref) is not None:
            raise SnapError(f"branch {name!r} already exists")
        self.refs.set_if_equals(ref, None, oid.hex(), who=default_author(self.config.user_name), message=f"branch: created from {rev}")
        return oid

    @_writes
    def delete_branch(self, name: str) -> bytes:
        ref = f"refs/heads/{name}"
        value = self.refs.read(ref)
        if value is None:
            raise NotFoundError(f"branch {name!r} not found")
        if self.head_ref() == ref:
            raise SnapError(f"cannot delete branch {name!r}: HEAD is on it", hint="switch to another branch first")
        self.refs.delete_if_equals(ref, value, who=default_author(self.config.user_name), message="branch: deleted")
        return bytes.fromhex(value)

    def tags(self) -> list[tuple[str, bytes]]:
        return [(n.removeprefix("refs/tags/"), bytes.fromhex(v)) for n, v in self.refs.list("refs/tags").items()]

    @_writes
    def create_tag(self, name: str, rev: str = "HEAD", message: str | None = None) -> bytes:
        check_ref_name(name, "tag")
        ref = f"refs/tags/{name}"
        if self.refs.read(ref) is not None:
            raise SnapError(f"tag {name!r} already exists")
        target = self.resolve(rev)
        oid = target
        who = default_author(self.config.user_name)
        if message is not None:
            t, tz = now_micros()
            data = Tag(target, name, who, t, tz, message).encode()
            oid = object_id(ObjType.TAG, data)
            with self.objects.writer() as w:
                w.add(ObjType.TAG, data, oid)
        self.refs.set_if_equals(ref, None, oid.hex(), who=who, message=f"tag: {name}")
        return oid

    # -- plumbing -----------------------------------------------------------------------------

    def find_object(self, spec: str) -> bytes:
        spec = spec.strip().lower()
        if len(spec) < 4 or any(c not in "0123456789abcdef" for c in spec):
            try:
                return self.resolve(spec)
            except SnapError:
                raise NotFoundError(f"no object {spec!r}", hint="give an object id or a unique prefix of at least 4 digits") from None
        matches = self.objects.find_prefix(spec)
        if not matches:
            raise NotFoundError(f"no object {spec!r}")
        if len(matches) > 1:
            raise SnapError(f"object prefix {spec!r} is ambiguous ({len(matches)} objects)", hint="give more digits")
        return matches[0]

    def cat_object(self, spec: str) -> tuple[bytes, str, Any]:
        """(id, kind, decoded content) of any object, for debugging."""
        oid = self.find_object(spec)
        otype, data = self.objects.get(oid)
        kind = ObjType(otype).name.lower()
        decoded: Any
        if otype == ObjType.RECORD:
            decoded = decode_row(data)
        elif otype == ObjType.NODE:
            n = Node.decode(data)
            decoded = {"level": n.level, "entries": [
                {"key": k.hex(), "id": i.hex(), **({"rows": c} if n.level else {})}
                for k, i, c in zip(n.keys, n.ids, n.counts or [None] * len(n.keys))
            ]}
        elif otype == ObjType.SCHEMA:
            decoded = decode_schema(data).to_obj()
        elif otype == ObjType.TABLE:
            e = TableEntry.decode(data)
            decoded = {"schema": e.schema.hex(), "root": e.root.hex(), "rows": e.rows, "key": e.key}
        elif otype == ObjType.ROOT:
            decoded = {n: t.hex() for n, t in Root.decode(data).tables.items()}
        elif otype == ObjType.COMMIT:
            c = Commit.decode(data)
            decoded = {"tree": c.tree.hex(), "parents": [p.hex() for p in c.parents], "author": c.author,
                       "time": c.time, "tz": c.tz, "message": c.message, "meta": c.meta}
        elif otype == ObjType.TAG:
            t = Tag.decode(data)
            decoded = {"target": t.target.hex(), "name": t.name, "tagger": t.tagger, "time": t.time,
                       "tz": t.tz, "message": t.message}
        else:
            decoded = unpack_canonical(data)
        return oid, kind, decoded


    # -- export and import --------------------------------------------------------------------

    def export(self, rev: str, path: str | Path, *, fmt: str = "json", tables: list[str] | None = None,
               since: str | None = None, dialect: str | None = None, progress: Progress | None = None):
        """Write a commit (with ``since``: its changes since that commit) to an export file."""
        from snapgit.exchange.export import export_commit

        who = default_author(self.config.user_name)
        args = {"rev": rev, "path": str(path), "format": fmt, "tables": tables, "since": since, "dialect": dialect}
        try:
            cid = self.resolve(rev)
            base = self.resolve(since) if since else None
            result = export_commit(self.objects, cid, Path(path), fmt=fmt, tables=tables, base_id=base,
                                   dialect=dialect, created_by=who, progress=progress)
        except SnapError as exc:
            self._log(who, "export", args, ok=False, error=str(exc).splitlines()[0])
            raise
        self._log(who, "export", args, ok=True, result={"commit": cid.hex(), "rows": result.rows, "bytes": result.bytes})
        return result

    @_writes
    def import_file(self, path: str | Path, *, branch: str | None = None, merge_strategy: str | None = None,
                    max_size: int | None = None, message: str | None = None, db_url: str | None = None,
                    author: str | None = None, progress: Progress | None = None) -> dict[str, Any]:
        """Validate an export file and make it a commit (kind ``import``); nothing is written when
        it has any problem. With ``branch`` the commit goes on that branch (created or advanced),
        else under ``refs/imports/``. With ``merge_strategy`` it is then merged into the live
        database."""
        from snapgit.exchange.importer import DEFAULT_MAX_SIZE, import_into

        who = default_author(author or self.config.user_name)
        path = Path(path)
        args = {"path": str(path), "branch": branch, "merge": merge_strategy, "max_size": max_size}
        started = time.monotonic()
        try:
            if branch is not None:
                check_ref_name(branch, "branch")
            with self.objects.writer() as w:
                imported = import_into(self.objects, w, path, max_size=max_size or DEFAULT_MAX_SIZE, progress=progress)
            src = imported.source_commit or "?"
            if branch is not None:
                ref = f"refs/heads/{branch}"
            else:
                stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
                ref = f"refs/imports/{stamp}-{src[:12]}"
            current = self.refs.read(ref)
            parent = bytes.fromhex(current) if current else None
            extra = [imported.base] if imported.base is not None and imported.base != parent else []
            meta: dict[str, Any] = {
                "kind": "import",
                "source_commit": src,
                "export_kind": imported.kind,
                "file": path.name,
                "rows": imported.rows,
                "snapgit": __version__,
            }
            cid, _ = commit_snapshot(
                self.objects, self.refs, ref=ref, expected_parent=parent, tree_id=imported.tree, author=who,
                message=message or f"import {path.name} (commit {src[:12]})", meta=meta, extra_parents=extra,
                allow_same_tree=True,
            )
        except SnapError as exc:
            self._log(who, "import", args, ok=False, error=str(exc).splitlines()[0])
            raise
        result: dict[str, Any] = {"commit": cid, "ref": ref, "tree": imported.tree, "kind": imported.kind,
                                  "source_commit": src, "base": imported.base, "rows": imported.rows,
                                  "seconds": time.monotonic() - started, "merge": None}
        self._log(who, "import", args, ok=True, result={"commit": cid.hex() if cid else None, "ref": ref,
                                                          "rows": imported.rows})
        if merge_strategy is not None and cid is not None:
            result["merge"] = self.merge(cid.hex(), strategy=merge_strategy, db_url=db_url, author=author)
        return result
