"""Reading a table in full, in key order, into its tree: through the row cache when it has one.

Rows are streamed in key order, each encoded (encoding.py) and hashed, and the table's tree is
built in the same pass (tree/prolly.py) into a :class:`~snapgit.snapshot.tablewriter.TableWriter`,
which writes only what is new.

The row cache (rowcache.py) saves most of that work when few rows changed: the rows are read
as the driver gives them, cut into blocks and fingerprinted; a block the table's last cache
has with that fingerprint is unchanged, its rows' records are the parent's, and they are
neither converted nor encoded (:class:`CachedScan`). The rows then go by the parent's leaves
whose key ranges they fall in, so that a leaf none of whose rows changed is taken whole,
unread, and one whose rows only changed is patched rather than rebuilt.

When the database's order disagrees with the key encoding's (a collation, mixed types in a
SQLite column), the table is read again and sorted here; a key found twice is a
:class:`DuplicateKeyError`. A keyless table is a multiset, keyed by each row's record id and
occurrence (:func:`build_keyless`).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from itertools import chain, islice, repeat
from operator import is_not, itemgetter, lt
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zlib import crc32

from snapgit import native
from snapgit.encoding import EncodingError, encode_key, encode_row, encode_value, key_encoder, keys_encoder
from snapgit.errors import SnapError
from snapgit.native import pack_digest, records
from snapgit.progress import Progress
from snapgit.schema import TableSchema
from snapgit.snapshot.rowcache import (
    BLOCK_BITS,
    FP_LEN,
    SEGMENT_BLOCKS,
    Blocks,
    Cursor,
    RowCache,
    RowCacheWriter,
    block_ends,
)
from snapgit.snapshot.tablewriter import OldTree, TableWriter, all_given
from snapgit.tree import prolly as tree_mod
from snapgit.tree.prolly import TreeBuilder, UnsortedKeysError, load_node

if TYPE_CHECKING:  # the database layer is imported by whoever opens the snapshot
    from snapgit.db import ReadSnapshot

__all__ = [
    "CacheSpec",
    "CachedScan",
    "DuplicateKeyError",
    "LeafRows",
    "add_to_tree",
    "build_keyed",
    "build_keyless",
    "entries_of",
    "integer_key",
    "scan_encoded",
    "scan_entries",
]

_REC = b"\x01"
_INT_TYPES = ("smallint", "integer", "bigint")


class DuplicateKeyError(SnapError):
    """Two rows of a table have the same key: the configured key is not unique."""


def _explain_encoding_error(schema: TableSchema, batch: Sequence[Sequence[Any]], exc: Exception) -> SnapError:
    names = schema.sorted_names
    for row in batch:
        for name, value in zip(names, row, strict=False):
            try:
                encode_value(value)
            except EncodingError as inner:
                return EncodingError(
                    f"table {schema.name!r}, column {name!r}: {inner}",
                    hint="snapgit cannot store this type; leave the table out with --tables or exclude it in config.toml",
                )
    return EncodingError(f"table {schema.name!r}: {exc}")


def scan_encoded(
    snap: ReadSnapshot,
    schema: TableSchema,
    key: list[str] | None,
    progress: Progress | None,
    values_of: Sequence[str] = (),
    **scan_kw,
):
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


class LeafRows:
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

    def __init__(
        self, j: int | None, keys: list[bytes], ids: list[bytes | None], payloads: list[bytes | None], kind: int
    ) -> None:
        self.j = j
        self.keys = keys
        self.ids = ids
        self.payloads = payloads
        self.kind = kind

    def leaf(self, tw: TableWriter) -> tuple[bytes, bytes, bytes, int] | None:
        """(first key, last key, id, count) of the leaf these rows make, stored; None when
        they are to go in as entries."""
        if self.kind == LeafRows.ENTRIES:
            return None
        # rows that are a leaf are the rows of one of the parent's leaves, which ``tw`` has
        j, old = self.j, tw.old
        assert j is not None and old is not None
        keys = self.keys
        if self.kind == LeafRows.UNCHANGED:
            return keys[0], keys[-1], old.leaf_ids[j], len(keys)
        nid = tw.patch_leaf(j, keys, self.ids, self.payloads)
        return None if nid is None else (keys[0], keys[-1], nid, len(keys))

    def entries(self, tw: TableWriter) -> tuple[list[bytes], list[bytes], list[bytes | None]]:
        """(keys, record ids, payloads) for the builder: the ids the cache found unchanged
        come from the parent's leaf."""
        if all_given(self.ids):
            return self.keys, self.ids, self.payloads
        if self.j is None:
            raise _CacheMismatch("rows the cache knows lie after the parent's last leaf")
        old = tw.old
        assert old is not None  # rows the cache knows are the parent's
        leaf = old.leaf(old.leaf_ids[self.j])
        where = dict(zip(leaf.keys, leaf.ids, strict=False))
        try:
            ids = [rid if rid is not None else where[k] for k, rid in zip(self.keys, self.ids, strict=False)]
        except KeyError:
            raise _CacheMismatch("the parent's leaf lacks a row the cache knows") from None
        return self.keys, ids, self.payloads


def add_to_tree(builder: TreeBuilder, tw: TableWriter, item) -> None:
    """Add what a scan gave (see :meth:`CachedScan.entries`) to the builder."""
    if type(item) is tuple:
        builder.add_batch(*item)
        return
    if builder.between_leaves():
        ref = item.leaf(tw)
        if ref is not None:
            builder.add_leaf_ref(*ref)
            return
    builder.add_batch(*item.entries(tw))


def entries_of(tw: TableWriter, item) -> tuple[list[bytes], list[bytes], list[bytes | None]]:
    """What a scan gave (see :meth:`CachedScan.entries`) as (keys, record ids, payloads)."""
    return item if type(item) is tuple else item.entries(tw)


class CachedScan:
    """One scan of a key range (or a whole table) through the row cache: rows are read as the
    driver gives them, cut into blocks and fingerprinted; a block the old cache has with that
    fingerprint is unchanged (its rows' records are the parent's), any other is converted,
    encoded and hashed. The rows are then handed on by the parent's leaves whose key ranges
    they fall in (:class:`LeafRows`), so that a leaf none of whose rows changed is taken as
    it is, without reading it, and one whose rows only changed is patched rather than rebuilt.
    With ``collect``, every whole block goes into ``blocks`` for the new cache; a range's first
    block is not whole unless the range starts the table, nor its last unless it ends it.
    ``broken``: a row could not be fingerprinted, the new cache is not complete."""

    def __init__(
        self,
        cursor: Cursor | None,
        old: OldTree | None,
        starts_table: bool,
        ends_table: bool,
        collect: bool = True,
        integer_key: int | None = None,
    ) -> None:
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
        payload None is a record known to be stored, and :class:`LeafRows`."""
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
            yield from self._blocks(
                batch.keys,
                ends,
                batch.fps[lo:hi],
                lo,
                hi,
                partial(_batch_records, schema, batch, encoder, blocks.convert),
            )
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
        lasts = [keys[b - 1] for b in ends[lo:hi]] if fps else []
        if fps and self.collect:
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
        assert old is not None  # rows go by leaf only through a cursor, which needs the parent's tree
        last_keys, counts = old.last_keys, old.counts
        leaves = len(last_keys)
        j = bisect_left(last_keys, keys[0])
        pos = 0
        while pos < n:
            if j >= leaves:  # rows after the parent's last leaf
                yield LeafRows(None, keys[pos:], ids[pos:], payloads[pos:], LeafRows.ENTRIES)
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
                kind = LeafRows.ENTRIES
                if (
                    whole
                    and not self._partial_first
                    and end - pos == counts[j]
                    and (bounded or (end == n and final and self.ends_table))
                ):
                    kind = LeafRows.PATCHED if any(map(is_not, rows_ids, repeat(None))) else LeafRows.UNCHANGED
                yield LeafRows(j, keys[part], rows_ids, payloads[part], kind)
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


def integer_key(schema: TableSchema, key: list[str]) -> int | None:
    """The position of the key column among the row's, for a table keyed by one integer column
    (the row cache cuts its blocks by key value), else None."""
    if len(key) != 1 or {c.name: c.type for c in schema.columns}.get(key[0]) not in _INT_TYPES:
        return None
    return schema.sorted_names.index(key[0])


def scan_entries(snap, schema, key, keys_of, progress, caching: CachedScan | None, **scan_kw):
    """Batches of (keys, record ids, payloads) of a table or key range, through the row cache
    when given one; a payload None is a record known to be stored."""
    if caching is not None:
        yield from caching.entries(snap, schema, key, keys_of, progress, **scan_kw)
        return
    for batch, packed, ids in scan_encoded(snap, schema, key, progress, **scan_kw):
        yield keys_of(batch), ids, packed


def build_keyed(
    snap: ReadSnapshot,
    schema: TableSchema,
    key: list[str],
    tw: TableWriter,
    progress: Progress | None,
    cache: CacheSpec | None = None,
) -> tuple[bytes, int]:
    """A keyed table's tree, read in full in key order (through the row cache ``cache`` when
    given); returns (root, rows)."""
    names = schema.sorted_names
    kenc = key_encoder([names.index(k) for k in key])
    keys_of = keys_encoder([names.index(k) for k in key])
    builder = TreeBuilder(tw.emit)
    caching = None
    out = None  # the new row cache, of the blocks ``caching`` collects
    if cache is not None:
        old_cache = cache.open()
        caching = CachedScan(
            old_cache.cursor() if old_cache is not None else None,
            tw.old,
            True,
            True,
            cache.write,
            integer_key(schema, key),
        )
        out = RowCacheWriter(Path(cache.path)) if cache.write else None
    try:
        for item in scan_entries(snap, schema, key, keys_of, progress, caching):
            add_to_tree(builder, tw, item)
            if out is not None and caching is not None and len(caching.blocks) >= SEGMENT_BLOCKS:
                out.add_blocks(caching.blocks)
        root, rows = builder.finish()
    except _CacheMismatch:
        if out is not None:
            out.abort()
        # read again as if there were no cache (the next commit writes a new one)
        return build_keyed(snap, schema, key, tw, None)
    except UnsortedKeysError:
        if out is not None:
            out.abort()
    except BaseException:
        if out is not None:
            out.abort()
        raise
    else:
        if out is not None:
            assert cache is not None and caching is not None  # out is made with them
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
    entries: list[tuple[bytes, bytes, bytes]] = []
    for batch, packed, ids in scan_encoded(snap, schema, key, None):
        entries.extend(zip(map(kenc, batch), ids, packed, strict=False))
    entries.sort(key=lambda e: e[0])
    for a, b in zip(entries, entries[1:], strict=False):
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


def build_keyless(
    snap: ReadSnapshot, schema: TableSchema, tw: TableWriter, progress: Progress | None
) -> tuple[bytes, int]:
    """A keyless table is a multiset: each row is keyed by (its record id, occurrence number).

    The rows have to be sorted by id, so the ids (not the rows) of the whole table are held in
    memory; records are written as they are read.
    """
    known: set[bytes] = set()
    if tw.old is not None:
        for leaf_id in tw.old.leaf_ids:
            known.update(load_node(tw.objects, leaf_id).ids)
    all_ids: list[bytes] = []
    for _batch, packed, ids in scan_encoded(snap, schema, None, progress):
        new_ids, new_data = [], []
        for rid, p in zip(ids, packed, strict=False):
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
