"""Building a snapshot of every table of a live database, in one read transaction.

One read of the database, in one consistent read transaction (the database layer's
``ReadSnapshot``): each table is streamed in key order, each row encoded and hashed, and the
table's tree built in the same pass, writing only what is new (tablewriter.py). How a table is
read is chosen here, per table (:func:`snapshot_database`):

* through its change log, the rows of the keys its capture triggers logged (capture.py), when
  capture is on for it and its log is relative to the parent's table;
* incrementally, its changed rows and its keys (incremental.py), when asked and it allows it;
* else in full (scan.py), through the row cache when it has one;
* a big table keyed by one integer column, by several processes a key range each (ranges.py,
  scanpool.py), when workers are offered and the database can share the snapshot.

Tables read alone come first, while the workers start on the shared ones; then the commit
takes its own share of their chunks, and joins each shared table's tree once every chunk is
in. New objects are probed for in batches across tables (:class:`Unstored`), so a table's
counts of what it wrote are settled only at the end, before its table entry is stored
(record.py).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from snapgit.objects import ObjType, Root, TableEntry, encode_schema, object_id
from snapgit.progress import Progress
from snapgit.schema import TableSchema
from snapgit.snapshot.capture import LoggedTable, build_from_log, build_from_xmin, changes_from_log, log_usable
from snapgit.snapshot.incremental import Fallback, Incremental, build_incremental, incremental_column
from snapgit.snapshot.ranges import ParallelOffer, ScanPool, chunk_ranges, join_ranges, scan_range
from snapgit.snapshot.record import TableResult, store_table
from snapgit.snapshot.rowcache import RowCache, cache_path, signature
from snapgit.snapshot.scan import CacheSpec, build_keyed, build_keyless, integer_key
from snapgit.snapshot.tablewriter import COMMIT_BLOCK_BUDGET, OldTree, TableWriter, Unstored
from snapgit.store.history import read_table
from snapgit.store.objectstore import ObjectStore, ObjectWriter
from snapgit.tree.diff import RowChange
from snapgit.tree.prolly import UnsortedKeysError

if TYPE_CHECKING:  # the database layer is imported by whoever opens the snapshot
    from snapgit.db import ReadSnapshot

__all__ = ["paused_gc", "snapshot_database"]

_SEAL_EARLY = 20_000  # objects: building their index takes about 10 ms


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Python's cyclic garbage collector off for a bulk read or write: millions of row tuples
    and lists set it off again and again, and it finds nothing (rows hold no cycles). About 6%
    of a commit's time. What a cycle leaves meanwhile is collected when it is on again."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def snapshot_database(
    objects: ObjectStore,
    writer: ObjectWriter,
    snap: ReadSnapshot,
    schemas: list[TableSchema],
    *,
    parent_root: Root | None,
    keys: Callable[[TableSchema], list[str] | None],
    progress: Progress | None = None,
    count_rows: bool = False,
    incremental: Incremental | None = None,
    parallel: ParallelOffer | None = None,
    row_cache: Path | None = None,
    row_cache_write: bool = True,
    capture: dict[str, LoggedTable] | None = None,
    changes_only: bool = False,
    logged_only: bool = False,
) -> tuple[dict[str, bytes], list[TableResult]]:
    """Write every table of a read snapshot; returns {table name: table object id} and results.

    With ``incremental``, a table that allows it (see :func:`incremental_column`) is read as its
    changed rows plus its keys, and its tree is built from the parent's; the others are read in
    full, and their result says why.

    ``parallel`` (a :class:`snapgit.snapshot.scanpool.Parallel`): tables with a single integer
    key and at least ``parallel.min_rows`` rows are read by several processes, a key range each,
    when the database can share the snapshot; the tree is the same.

    ``row_cache``: the directory of the row caches (rowcache.py): tables read in full whose rows
    the cache can fingerprint are read through it, and leave a new one unless not
    ``row_cache_write``; the tree is the same.

    ``capture``: the change logs of the captured tables (None: capture is off). A table whose
    log is relative to the parent's table is read as the rows of its logged keys; the others
    are read in full, and their result says why.

    ``changes_only`` (for status and diff, into a scratch store or an overlay): a table read through its change
    log gets no tree of its own: its result holds the row changes against the parent's table
    (:func:`snapgit.snapshot.capture.changes_from_log`), its records are written, and its
    table id is the parent's, whose schema and key it has (the log is trusted only then).

    ``logged_only``: only the tables that can be read through their change logs are read; the
    others are left out of the result (never read in full)."""
    options = _Options(
        parent_root,
        keys,
        count_rows,
        incremental,
        parallel,
        row_cache,
        row_cache_write,
        capture,
        changes_only,
        logged_only,
    )
    with paused_gc(), objects.block_budget(COMMIT_BLOCK_BUDGET):
        return _snapshot_tables(objects, writer, snap, schemas, options, progress)


@dataclass(frozen=True)
class _Options:
    """How :func:`snapshot_database` reads the tables: its keyword arguments but ``progress``."""

    parent_root: Root | None
    keys: Callable[[TableSchema], list[str] | None]
    count_rows: bool
    incremental: Incremental | None
    parallel: ParallelOffer | None
    row_cache: Path | None
    row_cache_write: bool
    capture: dict[str, LoggedTable] | None
    changes_only: bool = False
    logged_only: bool = False


@dataclass
class _Prepared:
    """What a table's reading starts from."""

    schema: TableSchema
    key: list[str] | None
    old_entry: TableEntry | None  # the parent's table
    old_id: bytes | None  # the parent's table's object id
    schema_id: bytes
    column: str | None  # read incrementally by this column
    note: str | None  # why not incrementally
    total: int | None  # its rows, when counted
    cache: CacheSpec | None = None  # read through the row cache
    logged: LoggedTable | None = None  # read through its change log
    capture_note: str | None = None  # why a captured table (capture on) was read in full

    @property
    def old_root(self) -> bytes | None:
        """The parent's tree, when its leaves can be reused (same key, not empty)."""
        e = self.old_entry
        return e.root if e is not None and e.key == self.key and e.rows else None

    def writer(
        self, objects: ObjectStore, writer: ObjectWriter, unstored: Unstored | None, owner: Any = None
    ) -> TableWriter:
        # the parent's leaves are loaded when the table's turn comes and let go after it: a
        # database of many big tables must not hold every table's old leaves at once
        root = self.old_root
        return TableWriter(objects, writer, OldTree(objects, root) if root is not None else None, unstored, owner)


def _prepare(objects: ObjectStore, snap: ReadSnapshot, schema: TableSchema, options: _Options) -> _Prepared:
    key = options.keys(schema)
    parent_root = options.parent_root
    old_id = parent_root.tables.get(schema.name) if parent_root is not None else None
    old_entry = read_table(objects, old_id) if old_id is not None else None
    schema_id = object_id(ObjType.SCHEMA, encode_schema(schema))
    column = note = None
    if options.incremental is not None:
        column, note = incremental_column(options.incremental, schema, schema_id, key, old_entry)
    total = snap.count(schema.name) if options.count_rows else None
    p = _Prepared(schema, key, old_entry, old_id, schema_id, column, note, total)
    if options.capture is not None:
        logged = options.capture.get(schema.name)
        if logged is None:
            p.capture_note = "change capture is not on for it"
        else:
            p.capture_note = log_usable(logged, schema_id, key, old_entry, old_id)
            if p.capture_note is None:
                p.logged, p.column, p.note = logged, None, None
    cache_dir = options.row_cache
    if cache_dir is not None and key and column is None and p.logged is None and snap.plain_rows(schema, key):
        sig = signature(snap.dialect, schema_id, key, integer_key(schema, key) is not None)
        p.cache = CacheSpec(str(cache_path(cache_dir, schema.name)), sig, p.old_root, options.row_cache_write)
    return p


def _list_changes(
    objects: ObjectStore, writer: ObjectWriter, snap: ReadSnapshot, p: _Prepared, progress: Progress | None
) -> tuple[list[RowChange], int] | None:
    """A table's row changes against the parent's, read through its change log, with the
    changed rows' records written; None where it is not read so (then its tree is built, and
    a log that does not add up is read in full, as a commit would)."""
    logged = p.logged
    if logged is None or logged.xmin_since is not None or logged.log is None or p.key is None:
        return None  # PostgreSQL reads by xmin: its tree is built (deleted rows need it)
    try:
        changes, rows, records = changes_from_log(snap, p.schema, p.key, objects, p.old_root, logged, progress)
    except Fallback as why:
        p.logged, p.capture_note = None, str(why)
        if progress is not None:
            progress.table(p.schema.name, p.total)
        return None
    if records:
        writer.add_full_many(ObjType.RECORD, list(records), list(records.values()))
    return changes, rows


def _build_alone(
    snap: ReadSnapshot, p: _Prepared, tw: TableWriter, incremental: Incremental | None, progress: Progress | None
) -> tuple[bytes, int]:
    """A table read by this process alone: through its change log or incrementally if it may
    be, else in full."""
    if p.logged is not None:
        assert p.key is not None
        try:
            if p.logged.xmin_since is not None:
                return build_from_xmin(snap, p.schema, p.key, tw, p.old_root, p.logged, progress)
            return build_from_log(snap, p.schema, p.key, tw, p.old_root, p.logged, progress)
        except Fallback as why:
            p.logged, p.capture_note = None, str(why)
            if progress is not None:
                progress.table(p.schema.name, p.total)
    if p.column is not None:
        assert incremental is not None and p.old_entry is not None and p.key is not None
        try:
            return build_incremental(
                snap, p.schema, p.key, tw, p.old_entry.root, (p.column, incremental.since), progress
            )
        except Fallback as why:
            p.note = f"{why}; read in full"
            if progress is not None:
                progress.table(p.schema.name, p.total)
    if p.key:
        return build_keyed(snap, p.schema, p.key, tw, progress, p.cache)
    return build_keyless(snap, p.schema, tw, progress)


def _snapshot_tables(
    objects: ObjectStore,
    writer: ObjectWriter,
    snap: ReadSnapshot,
    schemas: list[TableSchema],
    options: _Options,
    progress: Progress | None,
) -> tuple[dict[str, bytes], list[TableResult]]:
    incremental = options.incremental
    probe = bool(objects.pack_names())
    # new objects are probed for in batches; a table's counts are settled once all are probed
    unstored = Unstored(objects, writer) if probe else None
    prepared = [_prepare(objects, snap, s, options) for s in schemas]
    if options.logged_only:
        prepared = [p for p in prepared if p.logged is not None]
    pool = _share_out(snap, prepared, options.parallel) if options.parallel is not None else None
    shared = set(pool.tables()) if pool is not None else set()
    pumping = None
    if pool is not None:
        progress = pumping = _Pumping(progress, pool)
    built: dict[str, tuple[bytes, int]] = {}
    listed: dict[str, tuple[list[RowChange], int]] = {}  # changes_only: (changes, rows)
    written: dict[str, tuple[int, int, int]] = {}  # records, nodes, rows the row cache had
    joining: dict[str, TableWriter] = {}  # shared tables, until their chunks are joined
    owners: dict[str, Any] = {}  # a table's owner in ``unstored``, where it is not its name
    # The tables this process reads alone come first: the workers start on the shared ones'
    # chunks meanwhile, and the chunks this process takes after them even out the end (read
    # last, a table read alone kept the workers waiting, or this process waiting for them).
    for p in sorted(prepared, key=lambda p: p.schema.name in shared):
        name = p.schema.name
        if progress is not None:
            progress.table(name, p.total)
        tw = p.writer(objects, writer, unstored, name)
        if pumping is not None:
            pumping.watch(name if name in shared else None)
        if name in shared:
            assert pool is not None and pumping is not None  # tables are shared out to a pool
            # the commit's share of the chunks; the tree is joined once every chunk is in
            _read_my_chunks(snap, p, tw, pool, progress)
            pumping.leave(p.total)
            pumping.watch(None)  # its bar is full: the chunks still being read are in it
            joining[name] = tw
        else:
            listing = _list_changes(objects, writer, snap, p, progress) if options.changes_only else None
            if listing is not None:
                listed[name] = listing
            else:
                built[name] = _build_alone(snap, p, tw, incremental, progress)
                written[name] = (tw.records_written, tw.nodes_written, tw.cached_rows)
        del tw
    processes: dict[str, int] = {}
    if pool is not None:
        # The pack of the rows read so far is finished while the workers finish theirs, when
        # it is worth a pack of its own (after a small change it is not: one pack fewer).
        if unstored is not None:
            unstored.flush()
        writer.seal(min_objects=_SEAL_EARLY)
        outcome = pool.finish()
        for p in prepared:
            name = p.schema.name
            if name not in shared:
                continue
            ranges = outcome[name]
            # rows outside every range (a NULL, text in an integer column...) or a chunk that
            # could not be read so: the table is read again, alone
            tw = joining.pop(name)
            if ranges is not None and sum(r.rows for r in ranges) == p.total:
                found_records, found_nodes = pool.found(name)  # what the workers found stored
                tw.records_written = sum(r.records_written for r in ranges) - found_records
                tw.nodes_written = sum(r.nodes_written for r in ranges) - found_nodes
                built[name] = join_ranges(tw, ranges, p.cache, pool.cache_out(name))
                processes[name] = pool.processes(name)
            else:
                if progress is not None:
                    progress.table(name, p.total)
                # what this process found of the chunks read before is not this read's
                owners[name] = (name, "alone")
                tw = p.writer(objects, writer, unstored, owners[name])
                built[name] = _build_alone(snap, p, tw, incremental, progress)
            written[name] = (tw.records_written, tw.nodes_written, tw.cached_rows)
            del tw
    if unstored is not None:
        unstored.flush()
        for name, (records, nodes, cached) in written.items():
            found_records, found_nodes = unstored.found.get(owners.get(name, name), (0, 0))
            written[name] = (records - found_records, nodes - found_nodes, cached)
    results = []
    tables: dict[str, bytes] = {}
    for p in prepared:
        name = p.schema.name
        if name in listed:
            assert p.old_id is not None  # a log is trusted only where the parent has the table
            changes, rows = listed[name]
            tables[name] = p.old_id
            results.append(TableResult(name, rows, p.old_id, bool(changes), captured=True, changes=changes))
            continue
        root, rows = built[name]
        records_written, nodes_written, cached_rows = written[name]
        table_id = store_table(
            objects, writer, p.schema, root, rows, p.key, parent=p.old_entry, parent_id=p.old_id, probe=probe
        )
        tables[name] = table_id
        results.append(
            TableResult(
                name,
                rows,
                table_id,
                table_id != p.old_id,
                records_written,
                nodes_written,
                incremental=p.column is not None and p.note is None,
                note=p.note if incremental is not None else None,
                captured=p.logged is not None,
                capture_note=p.capture_note,
                processes=processes.get(name, 1),
                cached_rows=cached_rows,
            )
        )
    return tables, results


class _Pumping:
    """A Progress that also keeps the workers busy: called after every batch the commit reads.
    ``quiet`` is the Progress the pool shows the workers' rows on: it counts them with the
    commit's own but does not pump (the pool is the one calling)."""

    def __init__(self, progress: Progress | None, pool: ScanPool) -> None:
        self._progress = progress
        self._pool = pool
        self._rows = 0  # shown for the current table
        self.quiet = _Quiet(self)

    def table(self, name: str, total: int | None) -> None:
        self._rows = 0
        if self._progress is not None:
            self._progress.table(name, total)

    def advance(self, rows: int) -> None:
        self.show(rows)
        self._pool.pump()

    def show(self, rows: int) -> None:
        self._rows += rows
        if self._progress is not None:
            self._progress.advance(rows)

    def watch(self, table: str | None) -> None:
        """Show the rows the workers read of ``table`` (None: of no table) on the bar."""
        self._pool.watch(table, self.quiet)

    def leave(self, total: int | None) -> None:
        """The commit leaves a shared table: its bar is filled, the chunks still being read
        included (their rows would land on the next table's bar)."""
        if total:
            self.show(max(0, total - self._rows))


class _Quiet:
    """The workers' rows, counted on the commit's Progress without pumping (see :class:`_Pumping`)."""

    def __init__(self, pumping: _Pumping) -> None:
        self.advance = pumping.show

    def table(self, name: str, total: int | None) -> None:
        pass


def _share_out(snap: ReadSnapshot, prepared: list[_Prepared], parallel: ParallelOffer) -> ScanPool | None:
    """Hand the chunks of every table big enough to be read by several processes to the pool,
    before the commit reads anything: the workers start on them while it reads the rest."""
    pool = None
    for p in prepared:
        key = p.key
        if p.column is not None or p.logged is not None or not key or integer_key(p.schema, key) is None:
            continue
        if p.total is None:
            p.total = snap.count(p.schema.name)
        if p.total < parallel.min_rows:
            continue
        lo, hi = snap.key_bounds(p.schema.name, key[0])
        if type(lo) is not int or type(hi) is not int:
            continue
        if pool is None:
            pool = parallel.get(snap)
            if pool is None:
                return None
        pool.add(p.schema, key, p.old_root, chunk_ranges(key[0], lo, hi, p.total, pool.size + 1), p.cache)
    if pool is not None:
        pool.added_all()
    return pool


def _read_my_chunks(
    snap: ReadSnapshot, p: _Prepared, tw: TableWriter, pool: ScanPool, progress: Progress | None
) -> None:
    """Read the chunks of a shared table the workers have not taken, from the front."""
    name, key = p.schema.name, p.key
    assert key is not None  # a table is shared out by its key (_share_out)
    cache: RowCache | Literal[False] | None = p.cache.open() if p.cache is not None else False
    while (chunk := pool.take(name)) is not None:
        index, key_range = chunk
        try:
            result = scan_range(snap, p.schema, key, tw, key_range, progress, cache)
        except UnsortedKeysError:
            pool.give_up(name)
            return
        pool.put(name, index, result)
