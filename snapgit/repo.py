"""The Python API: one object per store, one method per thing a user does.

``Repo`` is a face over the operations in :mod:`snapgit.ops`: each method takes the user's
arguments, holds the store's writer lease when it writes (gc never runs while objects are
written or refs move), and calls one operation. The CLI is a thin layer over it::

    from snapgit import Repo

    with Repo.open(".") as repo:
        result = repo.commit("nightly snapshot")
        for table in repo.status():
            print(table.name, table.stat())
        repo.merge("feature", strategy="backup_wins")

Long operations (commit, diff, status, merge, restore, checkout, export, import) take a
``progress`` (:class:`snapgit.progress.Progress`). The database layer (and SQLAlchemy with it)
is imported only by the operations that talk to a database, so commands that only read the
store start fast.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snapgit.errors import NotFoundError, SnapError
from snapgit.objects import Commit, decode_schema
from snapgit.ops import branches, maintenance, plumbing, status, transfer
from snapgit.ops import commit as commits
from snapgit.ops.audit import on_behalf_of, read_log
from snapgit.ops.commit import NoDatabaseError
from snapgit.passphrase import PassphraseSource
from snapgit.progress import Progress
from snapgit.schema import TableSchema
from snapgit.snapshot.record import CommitResult
from snapgit.store.config import ENV_URL_VARS, Config
from snapgit.store.history import read_commit, read_root, read_table, resolve, walk
from snapgit.store.layout import Store

if TYPE_CHECKING:
    from snapgit.compare.diff import Side, TableDiff
    from snapgit.ops.fetch import FetchResult
    from snapgit.ops.mergeflow import MergeResult
    from snapgit.ops.push import PushResult
    from snapgit.ops.remotes import RemoteInfo

__all__ = ["Repo", "TableInfo", "MergeResult", "NoDatabaseError"]

# The merge engine (ops.mergeflow, ops.restore and compare.mergeplan under them) is imported by
# the methods that merge, restore or check out, not here: `snap log` and the other commands
# that only read the store start ~15 ms sooner without it.


def __getattr__(name: str) -> Any:
    if name == "MergeResult":
        from snapgit.ops.mergeflow import MergeResult

        return MergeResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _writes(method: Callable) -> Callable:
    """Run a Repo method under a writer lease (lock.py): gc never runs while it writes objects
    or moves refs. Nested operations share the outer lease."""

    @functools.wraps(method)
    def wrapper(self: Repo, *args: Any, **kwargs: Any) -> Any:
        with self.store.locks.writing():
            self.objects.refresh()  # a gc that ran before the lease was granted may have moved packs
            return method(self, *args, **kwargs)

    return wrapper


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
    def open(cls, path: str | Path = ".") -> Repo:
        return cls(Store.open(Path(path)))

    @classmethod
    def init(cls, path: str | Path = ".", db_url: str | None = None, *, check: bool = True) -> Repo:
        """Create a store in ``path``; ``db_url`` (or the environment) names its database, which
        is connected to once (unless not ``check``). A password is never stored."""
        directory = Path(path).resolve()
        url = db_url or next((os.environ[v] for v in ENV_URL_VARS if os.environ.get(v)), None)
        config = Config()
        password_dropped = False
        if url:
            from snapgit.db import Database, normalize_url, redact_url  # SQLAlchemy: only when a URL is given

            full = normalize_url(url, base_dir=directory)
            if check:
                Database.connect(full).close()
            config.url = redact_url(full)
            password_dropped = config.url != full
        store = Store.init(directory, config)
        repo = cls(store)
        if password_dropped:
            repo.notes.append(
                "the password in the URL was not stored; give it with SNAP_DATABASE_URL, DATABASE_URL, "
                "or [database] password_env in .snapstore/config.toml"
            )
        return repo

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Repo:
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

    # -- the live database --------------------------------------------------------------------

    def database_url(self, override: str | None = None) -> str:
        """The canonical URL of the live database (``override``: a ``--db`` URL)."""
        return commits.database_url(self.store, override)

    def database_dialect(self, override: str | None = None) -> str:
        """ "sqlite", "postgresql" or "mysql": the live database's dialect."""
        return commits.database_dialect(self.database_url(override))

    def database_health(self, db_url: str | None = None):
        """The live database's reachability, engine, version, size and tables (ops/health.py);
        a database that cannot be reached is reported, not raised."""
        from snapgit.ops.health import database_health

        return database_health(self.store, db_url)

    def row_cache_dir(self) -> Path | None:
        """Where commits keep their row caches; None when ``SNAP_ROW_CACHE=0`` turns them off."""
        return commits.row_cache_dir(self.store)

    def schema_cache_dir(self) -> Path:
        """Where reading a SQLite database remembers its last reflection (db/schemacache.py)."""
        return commits.schema_cache_dir(self.store)

    def keys_for(self, schema: TableSchema) -> list[str] | None:
        """The columns that identify a table's rows (config.toml's key, else the primary key)."""
        return commits.table_key(self.config, schema)

    # -- commit, diff, status -----------------------------------------------------------------

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
        return commits.commit(
            self.store,
            message,
            db_url=db_url,
            tables=tables,
            author=author,
            allow_empty=allow_empty,
            progress=progress,
            kind=kind,
            extra_parents=extra_parents or [],
            incremental=incremental,
        )

    def commit_side(self, rev: str) -> Side:
        return status.commit_side(self.store, rev)

    def live_side(
        self,
        *,
        against: Side | None = None,
        tables: list[str] | None = None,
        db_url: str | None = None,
        progress: Progress | None = None,
    ) -> Side:
        """The live database as a diff side, built in memory (nothing is written to the store)."""
        return commits.live_side(self.store, against=against, tables=tables, db_url=db_url, progress=progress)

    def diff(
        self,
        a: str | None = None,
        b: str | None = None,
        *,
        tables: list[str] | None = None,
        db_url: str | None = None,
        progress: Progress | None = None,
    ) -> list[TableDiff]:
        """Per-table differences: no revision: HEAD -> live; one: A -> live; two: A -> B."""
        return status.diff(self.store, a, b, tables=tables, db_url=db_url, progress=progress)

    def status(self, *, db_url: str | None = None, progress: Progress | None = None) -> list[TableDiff]:
        """The live database against HEAD (against nothing when there is no commit yet)."""
        return status.status(self.store, db_url=db_url, progress=progress)

    # -- change capture -----------------------------------------------------------------------

    def capture_enable(
        self, tables: list[str] | None = None, *, db_url: str | None = None, author: str | None = None
    ) -> tuple[list[str], list[str]]:
        """Install change capture (triggers and a key log) on ``tables`` (default: every table
        with a key). Returns (tables set up, tables left out for having no key). The next
        commit reads them in full; later ones read only the rows of the logged keys."""
        from snapgit.ops import capture

        return capture.enable(self.store, tables, db_url=db_url, author=author)

    def capture_disable(
        self, tables: list[str] | None = None, *, db_url: str | None = None, author: str | None = None
    ) -> list[str]:
        """Remove change capture from ``tables`` (default: all of it). Returns those tables."""
        from snapgit.ops import capture

        return capture.disable(self.store, tables, db_url=db_url, author=author)

    def capture_status(self, *, db_url: str | None = None) -> Any:
        """Per table: captured or not, changes waiting in the log, and how the next commit
        reads it (:class:`snapgit.ops.capture.CaptureStatus`)."""
        from snapgit.ops import capture

        return capture.status(self.store, db_url=db_url)

    # -- merge, restore, checkout -------------------------------------------------------------

    def merge_state(self) -> dict[str, Any] | None:
        """The unfinished manual merge, or None."""
        from snapgit.ops import mergeflow

        return mergeflow.merge_state(self.store)

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
        progress: Progress | None = None,
    ) -> MergeResult:
        """Three-way merge of a revision into the live database (see ops/mergeflow.py).

        A revision already in HEAD's history changes nothing (``result.up_to_date``). Otherwise
        the live database is kept first as a safety snapshot on ``refs/snap/safety`` when it
        differs from HEAD's commit, and the branch moves to the merge commit only once the
        merge is written; a refused or failed merge leaves HEAD, the branch and the database
        as they were."""
        from snapgit.ops import mergeflow

        return mergeflow.merge(
            self.store,
            rev,
            strategy=strategy,
            preview=preview,
            tables=tables,
            message=message,
            db_url=db_url,
            author=author,
            progress=progress,
        )

    @_writes
    def merge_continue(
        self, *, db_url: str | None = None, author: str | None = None, progress: Progress | None = None
    ) -> MergeResult:
        """Apply the manual merge in progress once its conflicts are resolved."""
        from snapgit.ops import mergeflow

        return mergeflow.merge_continue(self.store, db_url=db_url, author=author, progress=progress)

    @_writes
    def merge_abort(self) -> str | None:
        """Drop the merge in progress; returns what was wrong with its state if it was damaged."""
        from snapgit.ops import mergeflow

        return mergeflow.merge_abort(self.store)

    def conflicts(self) -> list:
        """The conflicts of the merge in progress, with their resolutions so far: (plan, conflict)."""
        from snapgit.ops import mergeflow

        return mergeflow.conflicts(self.store)

    @_writes
    def resolve_conflicts(self, side: str, *, table: str | None = None, keys: list[str] | None = None) -> int:
        """Resolve conflicts (all, a table's, or those whose key matches) as ``ours`` or ``theirs``."""
        from snapgit.ops import mergeflow

        return mergeflow.resolve_conflicts(self.store, side, table=table, keys=keys)

    @_writes
    def restore(
        self,
        rev: str,
        *,
        into: str | None = None,
        tables: list[str] | None = None,
        preview: bool = False,
        db_url: str | None = None,
        author: str | None = None,
        progress: Progress | None = None,
    ) -> MergeResult:
        """Make the live database (or a new one at ``into``) equal to a revision. HEAD and the
        branch stay where they are.

        When the live database differs from HEAD's commit, it is first kept as a safety snapshot
        on ``refs/snap/safety`` (never on the branch; ``result.safety``), so the restore can be
        undone with ``snap restore`` of it."""
        from snapgit.ops import restore

        return restore.restore(
            self.store, rev, into=into, tables=tables, preview=preview, db_url=db_url, author=author, progress=progress
        )

    @_writes
    def checkout(
        self,
        target: str,
        *,
        new_branch: str | None = None,
        force: bool = False,
        db_url: str | None = None,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Make the live database match a branch or revision, then move HEAD to it (only when
        that worked). ``force`` keeps uncommitted changes as a safety snapshot first."""
        from snapgit.ops import restore

        return restore.checkout(
            self.store, target, new_branch=new_branch, force=force, db_url=db_url, progress=progress
        )

    # -- remotes ------------------------------------------------------------------------------

    def remotes(self) -> list[RemoteInfo]:
        """The configured remotes, by name."""
        from snapgit.ops import remotes

        return remotes.list_remotes(self.store)

    def remote_add(
        self, name: str, url: str, *, encrypt: bool = False, passphrase: str | PassphraseSource | None = None
    ) -> RemoteInfo:
        """Name a remote (a directory, ``file://`` or ``s3://bucket/prefix`` URL) after checking
        that it answers and keeps conditional writes; nothing is stored when it does not.
        ``encrypt``: everything pushed to it is encrypted on this side (docs/encryption.md), with
        a key wrapped by ``passphrase`` (the passphrase, a callable asked for it, or None: the
        environment). An encrypted remote is opened with the passphrase by every command."""
        from snapgit.ops import remotes

        return remotes.add_remote(self.store, name, url, encrypt=encrypt, passphrase=passphrase)

    @_writes
    def remote_passphrase(
        self, name: str, *, old: str | PassphraseSource | None = None, new: str | PassphraseSource
    ) -> tuple[str, str]:
        """Change the passphrase of an encrypted remote: its key is wrapped anew, nothing stored
        is re-encrypted. Returns the ids of the removed and the new key object."""
        from snapgit.ops import remotes

        return remotes.change_remote_passphrase(self.store, name, old=old, new=new)

    @_writes
    def remote_remove(self, name: str) -> RemoteInfo:
        """Forget a remote and its remote-tracking refs (the remote itself is not touched)."""
        from snapgit.ops import remotes

        return remotes.remove_remote(self.store, name)

    @_writes
    def push(
        self,
        remote: str | None = None,
        refs: list[str] | None = None,
        *,
        all_branches: bool = False,
        tags: bool = False,
        force: bool = False,
        progress: Progress | None = None,
    ) -> PushResult:
        """Send the remote what it lacks of ``refs`` (default: the current branch), then move its
        refs; a ref that is not a fast-forward is rejected unless ``force`` (see ops/push.py)."""
        from snapgit.ops.push import push

        return push(self.store, remote, refs, all_branches=all_branches, tags=tags, force=force, progress=progress)

    @_writes
    def fetch(self, remote: str | None = None, *, progress: Progress | None = None) -> FetchResult:
        """Download what the remote has and this store lacks; move ``refs/remotes/REMOTE/*``."""
        from snapgit.ops.fetch import fetch

        return fetch(self.store, remote, progress)

    @_writes
    def pull(
        self,
        remote: str | None = None,
        branch: str | None = None,
        *,
        strategy: str,
        preview: bool = False,
        db_url: str | None = None,
        progress: Progress | None = None,
    ) -> tuple[FetchResult, MergeResult]:
        """Fetch, then merge the remote's branch (default: the one named like the current
        branch) into the live database, as :meth:`merge` does."""
        from snapgit.ops import remotes
        from snapgit.ops.fetch import fetch

        result = fetch(self.store, remote, progress)
        if branch is None:
            head = self.head_ref()
            if head is None:
                raise SnapError("HEAD is detached: name the branch to pull", hint="`snap pull REMOTE BRANCH`")
            branch = head.removeprefix("refs/heads/")
        ref = f"{remotes.tracking_prefix(result.remote)}{branch}"
        if self.refs.read(ref) is None:
            raise NotFoundError(
                f"{result.remote} has no branch {branch!r}", hint=f"`snap ls-remote {result.remote}` lists its branches"
            )
        return result, self.merge(ref, strategy=strategy, preview=preview, db_url=db_url, progress=progress)

    def ls_remote(self, remote: str | None = None) -> tuple[str, dict[str, str]]:
        """(the remote's name, its refs: name -> commit id in hex)."""
        from snapgit.ops import remotes
        from snapgit.remote.layout import RemoteRepo

        name = remotes.default_remote(self.store, remote)
        repo = RemoteRepo(remotes.connect(self.store, name))
        return name, ({r: v.id for r, v in repo.refs().items()} if repo.exists() else {})

    def verify_remote(self, remote: str | None = None, *, read_data: bool = False):
        """Check a remote as :meth:`verify` checks the store (see ops/remoteverify.py)."""
        from snapgit.ops.remoteverify import verify_remote

        return verify_remote(self.store, remote, read_data=read_data)

    @classmethod
    def clone(
        cls,
        url: str,
        directory: str | Path | None = None,
        db_url: str | None = None,
        *,
        branch: str | None = None,
        restore: bool = False,
        progress: Progress | None = None,
    ) -> tuple[Repo, FetchResult, str, MergeResult | None]:
        """A new store in ``directory`` (default: named after the URL) with the remote's history
        as ``origin`` and its branch checked out; ``restore`` also makes the database at
        ``db_url`` (new or empty) equal to it. A clone that fails leaves nothing behind."""
        from snapgit.ops.fetch import clone_into, remove_new_store
        from snapgit.remote.open import normalize_url

        url = normalize_url(url)
        if restore and not (db_url or next((os.environ[v] for v in ENV_URL_VARS if os.environ.get(v)), None)):
            raise SnapError("clone --restore needs the database to restore into", hint="give it with --db URL")
        target = Path(directory) if directory else Path(url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".snap"))
        target = target.resolve()
        made = None
        if not target.exists():
            if not target.parent.is_dir():
                raise NotFoundError(f"cannot clone into {target}: {target.parent} does not exist")
            target.mkdir()
            made = target
        try:
            # a database that --restore fills may not exist yet: restore --into creates it
            repo = cls.init(target, db_url, check=not restore)
        except BaseException:
            # init creates its store whole or not at all, and never touches one that exists:
            # only the folder made here goes
            if made is not None:
                shutil.rmtree(made, ignore_errors=True)
            raise
        try:
            repo.store.config.remotes["origin"] = {"url": url}
            repo.store.save_config()
            with repo.store.locks.writing():
                fetched, branch = clone_into(repo.store, branch, progress)
            restored = repo.restore(branch, into=db_url, progress=progress) if restore else None
        except BaseException:
            root = repo.store.root
            repo.close()
            remove_new_store(root, made)
            raise
        return repo, fetched, branch, restored

    # -- integrity ----------------------------------------------------------------------------

    def verify(self, *, read_data: bool = False, repair: bool = False):
        """Check the store; every problem found is in the report (see ops/verify.py).

        ``repair``: first rebuild missing or broken indexes from their packs and move damaged
        packs aside, keeping every object that still reads (see store/repair.py), under the gc lock.
        """
        return maintenance.verify(self.store, read_data=read_data, repair=repair)

    def gc(self, *, prune: str | float | None = None, dry_run: bool = False, expire: str | float | None = None):
        """Remove what no ref, reflog line or unfinished merge reaches (see ops/gc.py).

        ``prune`` is the grace period: seconds, or text like ``now``, ``30m``, ``2h`` (default
        1 hour). ``expire``: reflog lines older than this stop keeping commits and are removed
        (default 90 days; ``never`` keeps them all). Waits briefly for running writers, then
        raises LockedError.
        """
        return maintenance.gc(self.store, prune=prune, dry_run=dry_run, expire=expire)

    def unlock(self) -> list[str]:
        """Remove lock files left by killed processes; returns what was removed (only safe when
        no other snap command runs on this store)."""
        return maintenance.unlock(self.store)

    def on_behalf_of(self, client: dict[str, Any]) -> contextlib.AbstractContextManager[None]:
        """Operations run in the ``with`` block (in this thread) record ``client`` in their audit
        log line: who asked from outside the process (snap serve: role and address)."""
        return on_behalf_of(client)

    def oplog(self) -> Iterator[dict[str, Any]]:
        """The audit log: one entry per operation, oldest first."""
        return read_log(self.store)

    # -- history ------------------------------------------------------------------------------

    def log(self, rev: str = "HEAD", n: int | None = None) -> list[tuple[bytes, Commit]]:
        out: list[tuple[bytes, Commit]] = []
        for item in walk(self.objects, [self.resolve(rev)]):
            if n is not None and len(out) >= n:
                break
            out.append(item)
        return out

    def tables(self, rev: str = "HEAD") -> list[TableInfo]:
        """The tables of a commit, with their row counts, keys and schemas."""
        root = read_root(self.objects, self.read_commit(self.resolve(rev)).tree)
        out = []
        for name, tid in sorted(root.tables.items()):
            entry = read_table(self.objects, tid)
            _otype, data = self.objects.get(entry.schema)
            out.append(TableInfo(name, entry.rows, entry.key, decode_schema(data), tid))
        return out

    # -- branches and tags --------------------------------------------------------------------

    def branches(self) -> list[tuple[str, bytes, bool]]:
        """(name, commit, whether HEAD is on it) of every branch."""
        current = self.head_ref()
        return [
            (name.removeprefix("refs/heads/"), bytes.fromhex(v), name == current)
            for name, v in self.refs.list("refs/heads").items()
        ]

    @_writes
    def create_branch(self, name: str, rev: str = "HEAD") -> bytes:
        return branches.create_branch(self.store, name, rev)

    @_writes
    def delete_branch(self, name: str) -> bytes:
        return branches.delete_branch(self.store, name)

    def tags(self) -> list[tuple[str, bytes]]:
        return [(n.removeprefix("refs/tags/"), bytes.fromhex(v)) for n, v in self.refs.list("refs/tags").items()]

    @_writes
    def create_tag(self, name: str, rev: str = "HEAD", message: str | None = None) -> bytes:
        return branches.create_tag(self.store, name, rev, message)

    # -- plumbing -----------------------------------------------------------------------------

    def find_object(self, spec: str) -> bytes:
        return plumbing.find_object(self.store, spec)

    def cat_object(self, spec: str) -> tuple[bytes, str, Any]:
        """(id, kind, decoded content) of any object, for debugging."""
        oid = self.find_object(spec)
        kind, decoded = plumbing.describe_object(*self.objects.get(oid))
        return oid, kind, decoded

    # -- export and import --------------------------------------------------------------------

    def export(
        self,
        rev: str,
        path: str | Path,
        *,
        fmt: str = "json",
        tables: list[str] | None = None,
        since: str | None = None,
        dialect: str | None = None,
        progress: Progress | None = None,
        encrypt: bool = False,
        passphrase: str | PassphraseSource | None = None,
    ):
        """Write a commit (with ``since``: its changes since that commit) to an export file.
        With ``encrypt``, the file is in the age format, encrypted with ``passphrase`` (the
        passphrase, a callable asked for it, or None: ``SNAP_PASSPHRASE`` / ``SNAP_PASSPHRASE_FILE``)."""
        return transfer.export(
            self.store,
            rev,
            path,
            fmt=fmt,
            tables=tables,
            since=since,
            dialect=dialect,
            progress=progress,
            encrypt=encrypt,
            passphrase=passphrase,
        )

    @_writes
    def import_file(
        self,
        path: str | Path,
        *,
        branch: str | None = None,
        merge_strategy: str | None = None,
        max_size: int | None = None,
        message: str | None = None,
        db_url: str | None = None,
        author: str | None = None,
        progress: Progress | None = None,
        passphrase: str | PassphraseSource | None = None,
    ) -> dict[str, Any]:
        """Validate an export file and make it a commit (kind ``import``); nothing is written when
        it has any problem. With ``branch`` the commit goes on that branch (created or advanced),
        else under ``refs/imports/``. With ``merge_strategy`` it is then merged into the live
        database. An encrypted file is decrypted with ``passphrase`` (as for :meth:`export`)."""
        return transfer.import_file(
            self.store,
            path,
            branch=branch,
            merge_strategy=merge_strategy,
            max_size=max_size,
            message=message,
            db_url=db_url,
            author=author,
            progress=progress,
            passphrase=passphrase,
        )
