"""One table read by several processes, a key range each, and the ranges joined into its tree.

A table keyed by a single integer column is cut into key ranges (:func:`chunk_ranges`); each
range is read on its own, by the commit or by a worker process (scanpool.py), in the same read
snapshot (:func:`scan_range`). Where a leaf ends depends only on the keys since the last
boundary key (a leaf starts fresh after one), so from a range's first boundary on, its leaves
are the table's own; only the entries before it and after the range's last closed leaf may
share a leaf with the neighbouring ranges. :func:`join_ranges` builds those seams and takes
every range's leaves whole: the very tree one process reading the table in full would build.

:class:`ScanPool` is what the commit asks of the workers, :class:`ParallelOffer` where it gets
them from (``snapgit.snapshot.scanpool`` implements both).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from operator import lt
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol
from zlib import crc32

import msgpack

from snapgit.encoding import keys_encoder
from snapgit.progress import Progress
from snapgit.schema import TableSchema
from snapgit.snapshot.rowcache import RowCache, RowCacheWriter
from snapgit.snapshot.scan import CachedScan, CacheSpec, add_to_tree, entries_of, integer_key, scan_entries
from snapgit.snapshot.tablewriter import TableWriter
from snapgit.tree import prolly as tree_mod
from snapgit.tree.prolly import TreeBuilder, UnsortedKeysError

if TYPE_CHECKING:  # the database layer is imported by whoever opens the snapshot
    from snapgit.db import ReadSnapshot

__all__ = [
    "CHUNK_ROWS",
    "KeyRange",
    "ParallelOffer",
    "RangeResult",
    "ScanPool",
    "chunk_ranges",
    "join_ranges",
    "scan_range",
]

CHUNK_ROWS = 20_000  # about 50 ms of one process's reading: the most a process waits at the end

# (column, lower bound or None, upper bound or None): the rows whose key is in [lower, upper)
KeyRange = tuple[str, int | None, int | None]


def chunk_ranges(column: str, lo: int, hi: int, rows: int, processes: int) -> list[KeyRange]:
    """Key ranges covering every value of ``column`` (the first without a lower bound, so it
    holds NULLs too; the last without an upper one), about ``CHUNK_ROWS`` rows each if the keys
    are spread evenly, and at least two per process."""
    n = max(2 * processes, -(-rows // CHUNK_ROWS))
    n = min(n, hi - lo + 1)
    bounds = [lo + (hi - lo + 1) * i // n for i in range(1, n)]
    return [(column, None if i == 0 else bounds[i - 1], None if i == n - 1 else bounds[i]) for i in range(n)]


@dataclass
class RangeResult:
    """What reading one key range of a table gave: its leaves that are certainly leaves of the
    table's tree, and the entries before and after them, which may share a leaf with the
    neighbouring ranges. Every record of the range is stored.

    The commit holds every range's result until the table is read (a big table has hundreds),
    so they are kept packed (:meth:`pack`): a few byte strings each, where lists of keys and
    ids are Python objects per entry (about 10 MB more at 3.4 million rows, and as many
    objects to unpickle from a worker)."""

    # msgpack [head keys, head ids, leaf first keys, leaf last keys, leaf ids, leaf counts,
    # tail keys, tail ids]: the ids (32 bytes each) joined; the head runs up to and including
    # the range's first boundary, the tail is what follows its last closed leaf
    packed: bytes
    rows: int
    records_written: int = 0
    nodes_written: int = 0
    cached_rows: int = 0
    # the row cache's whole blocks of the range (a segment of the file), None when it could
    # not fingerprint them all; absent without a cache
    cache_segment: tuple[bytes, bytes, bytes] | None = None
    cache_ok: bool = True

    @staticmethod
    def pack(
        head: tuple[list[bytes], list[bytes]],
        leaves: list[tuple[bytes, bytes, bytes, int]],
        tail: tuple[list[bytes], list[bytes]],
    ) -> bytes:
        join = b"".join
        return msgpack.packb(
            [
                head[0],
                join(head[1]),
                [f for f, _l, _n, _c in leaves],
                [last for _f, last, _n, _c in leaves],
                join([n for _f, _l, n, _c in leaves]),
                [c for _f, _l, _n, c in leaves],
                tail[0],
                join(tail[1]),
            ],
            use_bin_type=True,
        )

    def unpack(
        self,
    ) -> tuple[tuple[list[bytes], list[bytes]], list[tuple[bytes, bytes, bytes, int]], tuple[list[bytes], list[bytes]]]:
        """(head (keys, ids), leaves [(first key, last key, id, count)], tail (keys, ids))."""
        hk, hi, firsts, lasts, nids, counts, tk, ti = msgpack.unpackb(self.packed, raw=False)
        return (
            (hk, _split_ids(hi)),
            list(zip(firsts, lasts, _split_ids(nids), counts, strict=False)),
            (tk, _split_ids(ti)),
        )


def _split_ids(joined: bytes) -> list[bytes]:
    return [joined[i : i + 32] for i in range(0, len(joined), 32)]


def scan_range(
    snap: ReadSnapshot,
    schema: TableSchema,
    key: list[str],
    tw: TableWriter,
    key_range: KeyRange,
    progress: Progress | None,
    cache: RowCache | Literal[False] | None = False,
) -> RangeResult:
    """Read the rows of one key range and store them, with the leaves that start after the
    range's first boundary key: from there on, where leaves end no longer depends on what came
    before the range (a leaf starts fresh after a boundary), so they are the tree's own.

    ``cache``: False to read without the row cache; else the table's old cache (None: it has
    none), and the result carries the range's blocks for the new one."""
    names = schema.sorted_names
    keys_of = keys_encoder([names.index(k) for k in key])
    caching = None
    if cache is not False:
        caching = CachedScan(
            cache.cursor() if cache is not None else None,
            tw.old,
            key_range[1] is None,
            key_range[2] is None,
            integer_key=integer_key(schema, key),
        )
    leaves: list[tuple[bytes, bytes, bytes, int]] = []
    builder = TreeBuilder(tw.emit, on_leaf=lambda first, last, nid, n: leaves.append((first, last, nid, n)))
    head_keys: list[bytes] = []
    head_ids: list[bytes] = []
    in_head = True
    rows = 0
    nodes_before, records_before = tw.nodes_written, tw.records_written
    for item in scan_entries(snap, schema, key, keys_of, progress, caching, key_range=key_range):
        if not in_head:
            rows += len(item[0]) if type(item) is tuple else len(item.keys)
            add_to_tree(builder, tw, item)
            continue
        keys, ids, packed = entries_of(tw, item)
        rows += len(keys)
        if (head_keys and keys[0] <= head_keys[-1]) or not all(map(lt, keys, islice(keys, 1, None))):
            raise UnsortedKeysError("keys are not in strictly increasing order")
        threshold = tree_mod.LEAF_THRESHOLD
        cut = next((i for i, k in enumerate(keys) if crc32(k) < threshold), None)
        end = len(keys) if cut is None else cut + 1
        tw.write_new(ids[:end], packed[:end])
        head_keys += keys[:end]
        head_ids += ids[:end]
        if cut is None:
            continue
        in_head = False
        keys, ids, packed = keys[end:], ids[end:], packed[end:]
        if keys and keys[0] <= head_keys[-1]:
            raise UnsortedKeysError("keys are not in strictly increasing order")
        builder.add_batch(keys, ids, packed)
    tail_keys, tail_ids, tail_payloads = builder.pending()
    if tail_keys:
        tw.write_new(tail_ids, tail_payloads or [])
    result = RangeResult(
        RangeResult.pack((head_keys, head_ids), leaves, (list(tail_keys), list(tail_ids))),
        rows,
        tw.records_written - records_before,
        tw.nodes_written - nodes_before,
    )
    if caching is not None:
        result.cached_rows = caching.hits
        result.cache_ok = not caching.broken
        result.cache_segment = caching.blocks.take()
    return result


def join_ranges(
    tw: TableWriter,
    results: Sequence[RangeResult],
    cache: CacheSpec | None = None,
    cache_out: RowCacheWriter | None = None,
) -> tuple[bytes, int]:
    """The table's tree from its key ranges, in key order: the entries around the seams make
    leaves here, the ranges' own leaves are taken whole. With ``cache``, the ranges' blocks
    become the table's new row cache: finished in ``cache_out`` where the ranges' segments
    were written as they came (and taken out of the results), else written now."""
    builder = TreeBuilder(tw.emit)
    for r in results:
        head, leaves, tail = r.unpack()
        builder.add_batch(*head)
        for first, last, nid, count in leaves:
            if not builder.add_leaf_ref(first, last, nid, count):
                raise AssertionError("a range's leaf does not start on a boundary")
        builder.add_batch(*tail)
    root, rows = builder.finish()
    tw.cached_rows = sum(r.cached_rows for r in results)
    if cache is not None and cache.write and all(r.cache_ok for r in results):
        out = cache_out
        if out is None:
            out = RowCacheWriter(Path(cache.path))
            for r in results:
                out.add_segment(r.cache_segment)
        out.finish(cache.signature, root)
    elif cache_out is not None:
        cache_out.abort()
    return root, rows


class ScanPool(Protocol):
    """Worker processes reading chunks of big tables in the commit's snapshot (scanpool.py).
    ``add`` shares a table out in key ranges; the commit reads the chunks ``take`` gives it,
    calls ``pump`` often (it hands the workers more), ``watch``es the table it is on, and
    ``finish`` gives each table's results in key order (None: read it alone)."""

    size: int

    def add(
        self,
        schema: TableSchema,
        key: list[str],
        old_root: bytes | None,
        ranges: list[KeyRange],
        cache: CacheSpec | None = None,
    ) -> None: ...
    def added_all(self) -> None: ...
    def take(self, table: str) -> tuple[int, KeyRange] | None: ...
    def put(self, table: str, index: int, result: RangeResult) -> None: ...
    def give_up(self, table: str) -> None: ...
    def watch(self, table: str | None, progress: Progress | None) -> None: ...
    def pump(self) -> None: ...
    def finish(self) -> dict[str, list[RangeResult] | None]: ...
    def tables(self) -> list[str]: ...
    def processes(self, table: str) -> int: ...

    def found(self, table: str) -> tuple[int, int]: ...

    def cache_out(self, table: str) -> RowCacheWriter | None: ...


class ParallelOffer(Protocol):
    """The offer of worker processes to one commit (``scanpool.Parallel``): tables of at least
    ``min_rows`` rows are worth sharing out; ``get`` starts the workers in the commit's
    snapshot on first use (None: they cannot be had, the commit reads alone)."""

    min_rows: int

    def get(self, snap: ReadSnapshot) -> ScanPool | None: ...
