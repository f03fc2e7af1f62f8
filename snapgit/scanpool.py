"""Worker processes that read key ranges of a big table for ``snap commit``, in its snapshot.

A commit spends most of its time reading rows and encoding and hashing them, all in Python and
so on one core. For a table with a single integer key and many rows, :class:`Parallel` forks
worker processes (once per commit, when the first such table comes), each of which opens its own
connection and a read transaction that sees exactly the commit's snapshot
(:meth:`snapgit.db.ReadSnapshot.share`: an exported snapshot on PostgreSQL; on SQLite in
rollback-journal mode, the commit's shared lock keeps writers out meanwhile). Each worker then
reads one key range per table, stores its records and leaves in a pack of its own, and sends back
a :class:`snapgit.commit.RangeResult`; the commit joins the ranges into the table's tree
(:func:`snapgit.commit.join_ranges`), which is the very tree one process would have built.

Where the snapshot cannot be shared (MariaDB, SQLite in WAL mode), or a worker cannot start or
fails, the table is read by the commit alone. Workers are forked, not spawned: they need nothing
imported again, and start in milliseconds. They never touch what they inherit (the parent's
connection, its pack writer); they end with ``os._exit``, running no finalizer, and they stop
when the commit's end of their pipe closes, so a killed commit leaves no worker behind.

``SNAP_WORKERS`` sets the number of worker processes (default: CPUs - 1, at most 3; 0 turns
this off); ``SNAP_PARALLEL_MIN_ROWS`` the smallest table read so (default 200,000).
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any

from .commit import Progress, RangeResult, _OldTree, _TableWriter, scan_range
from .errors import CorruptError, NotFoundError, SnapError
from .schema import TableSchema
from .tree import UnsortedKeysError

__all__ = ["Parallel", "workers_wanted"]

DEFAULT_MIN_ROWS = 200_000


def workers_wanted() -> int:
    env = os.environ.get("SNAP_WORKERS")
    if env is not None:
        try:
            return max(0, int(env))
        except ValueError:
            return 0
    return max(0, min((os.cpu_count() or 1) - 1, 3))


def _min_rows() -> int:
    try:
        return int(os.environ.get("SNAP_PARALLEL_MIN_ROWS", DEFAULT_MIN_ROWS))
    except ValueError:
        return DEFAULT_MIN_ROWS


class Parallel:
    """The offer of worker processes to one commit: started on first use (:meth:`get`), given
    up for good if they cannot start, stopped by :meth:`close`."""

    def __init__(self, url: str, store_root: Path, size: int | None = None) -> None:
        self.url = url
        self.store_root = store_root
        self.size = workers_wanted() if size is None else size
        self.min_rows = _min_rows()
        self._pool: _Pool | None = None
        self._failed = self.size < 1

    def get(self, snap: Any) -> "_Pool | None":
        if self._failed:
            return None
        if self._pool is None:
            token = snap.share()
            if token is None:
                self._failed = True
                return None
            try:
                self._pool = _Pool(self.url, self.store_root, self.size, token)
            except Exception:  # noqa: BLE001 - no workers is no error: the commit reads alone
                self._failed = True
                return None
            self._pool.size = self.size
            self._pool.min_rows = self.min_rows
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


class _Pool:
    size: int
    min_rows: int

    def __init__(self, url: str, store_root: Path, size: int, token: str) -> None:
        ctx = multiprocessing.get_context("fork")
        self._workers: list[tuple[Any, Any]] = []
        try:
            for _ in range(size):
                ours, theirs = ctx.Pipe()
                # The child closes the commit's ends of every pipe it inherits: a pipe whose
                # other end only the commit holds breaks when the commit dies, and so stops
                # the worker at its next message.
                inherited = [conn for _p, conn in self._workers] + [ours]
                proc = ctx.Process(target=_worker, args=(theirs, inherited, url, str(store_root), token), daemon=True)
                proc.start()
                theirs.close()
                self._workers.append((proc, ours))
            for _proc, conn in self._workers:
                kind, detail = conn.recv()
                if kind != "ready":
                    raise RuntimeError(f"scan worker did not start: {detail}")
        except BaseException:
            self.close()
            raise

    def start(self, schema: TableSchema, key: list[str], old_root: bytes | None, ranges: list) -> "_Pending | None":
        if len(ranges) != len(self._workers):
            return None
        try:
            for (_proc, conn), key_range in zip(self._workers, ranges):
                conn.send(("scan", schema, key, old_root, key_range))
        except (OSError, EOFError):
            return None
        return _Pending(self._workers)

    def close(self) -> None:
        for proc, conn in self._workers:
            try:
                conn.send(None)
            except (OSError, EOFError):
                pass
            conn.close()
        for proc, _conn in self._workers:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        self._workers = []


class _Pending:
    """The ranges handed out for one table, until their results are in."""

    def __init__(self, workers: list[tuple[Any, Any]]) -> None:
        self._workers = workers
        self._results: dict[int, Any] = {}
        self._broken = False

    def _take(self, i: int, conn: Any, progress: Progress | None) -> None:
        """Read one message of worker i."""
        try:
            kind, detail = conn.recv()
        except (OSError, EOFError):
            self._results[i] = None
            self._broken = True
            return
        if kind == "progress":
            if progress is not None:
                progress.advance(detail)
        elif kind == "done":
            self._results[i] = detail
        elif kind == "error":
            name, message, hint = detail
            cls = {c.__name__: c for c in (CorruptError, NotFoundError)}.get(name, SnapError)
            self._results[i] = cls(message, hint=hint)
        else:  # "unsorted", or a worker that failed: the commit reads the table alone
            self._results[i] = None

    def progress(self, progress: Progress | None) -> Progress | None:
        """A Progress for the commit's own range that also passes on what the workers read."""
        if progress is None:
            return None
        pending = self

        class _Both:
            def table(self, name: str, total: int | None) -> None:
                progress.table(name, total)

            def advance(self, rows: int) -> None:
                progress.advance(rows)
                for i, (_proc, conn) in enumerate(pending._workers):
                    while i not in pending._results and conn.poll():
                        pending._take(i, conn, progress)

        return _Both()

    def results(self, progress: Progress | None) -> list[RangeResult] | None:
        for i, (_proc, conn) in enumerate(self._workers):
            while i not in self._results:
                self._take(i, conn, progress)
        out = [self._results[i] for i in range(len(self._workers))]
        for r in out:
            if isinstance(r, SnapError):
                raise r
        if self._broken or any(r is None for r in out):
            return None
        return out

    def cancel(self) -> None:
        """Wait for the workers to finish the ranges they were given (so the pool can be used
        again, or closed), dropping what they return."""
        try:
            self.results(None)
        except SnapError:
            pass


class _PipeProgress:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def table(self, name: str, total: int | None) -> None:
        pass

    def advance(self, rows: int) -> None:
        self._conn.send(("progress", rows))


def _worker(conn: Any, inherited: list[Any], url: str, store_root: str, token: str) -> None:
    code = 0
    for other in inherited:
        other.close()
    try:
        from .db import Database
        from .objectstore import DiskObjectStore

        with Database.connect(url) as db, db.snapshot(shared=token) as snap:
            objects = DiskObjectStore(Path(store_root))
            probe = bool(objects.pack_names())
            conn.send(("ready", None))
            while True:
                try:
                    msg = conn.recv()
                except (EOFError, OSError):
                    break  # the commit is gone
                if msg is None:
                    break
                _kind, schema, key, old_root, key_range = msg
                try:
                    with objects.writer() as writer:
                        old = _OldTree(objects, old_root) if old_root is not None else None
                        tw = _TableWriter(objects, writer, old, probe)
                        result = scan_range(snap, schema, key, tw, key_range, _PipeProgress(conn))
                    conn.send(("done", result))
                except UnsortedKeysError:
                    conn.send(("unsorted", None))
                except SnapError as exc:
                    conn.send(("error", (type(exc).__name__, exc.message, exc.hint)))
            objects.close()
    except BaseException as exc:  # noqa: BLE001 - whatever it is, the commit goes on alone
        code = 1
        try:
            conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        except Exception:  # noqa: BLE001
            pass
    finally:
        os._exit(code)
