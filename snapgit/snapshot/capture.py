"""A table read through its change log: the parent's tree plus the rows of the logged keys.

With change capture on (:mod:`snapgit.db.capture`), triggers log the key of every row written.
A commit whose parent holds the table exactly as the log's *base* needs only those keys: it
reads their rows as they are in its snapshot (a key without a row is a deleted row), and builds
the new tree from the parent's, taking every leaf that no logged key falls in whole, unread
(:func:`build_from_log`). :func:`log_usable` says whether a table may be read so; a read whose
result contradicts the database (its row count) raises
:class:`snapgit.snapshot.incremental.Fallback`, and the table is read in full.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import TYPE_CHECKING

from snapgit.encoding import key_encoder
from snapgit.objects import ID_LEN, TableEntry
from snapgit.progress import Progress
from snapgit.schema import TableSchema
from snapgit.snapshot.incremental import Fallback, build_incremental
from snapgit.snapshot.scan import scan_encoded
from snapgit.snapshot.tablewriter import TableWriter
from snapgit.tree.prolly import LEAF_MAX, TreeBuilder, leaf_ends

if TYPE_CHECKING:  # the database layer is imported by whoever opens the snapshot
    from snapgit.db import ReadSnapshot

__all__ = ["LoggedTable", "log_usable", "build_from_log", "build_from_xmin"]


@dataclass(frozen=True)
class LoggedTable:
    """A captured table's log as the snapshot sees it: the table of logged keys, the key
    columns its triggers log, the table object it is relative to, and why it cannot be
    trusted (None: it can, when the parent holds ``base``)."""

    log: str | None  # None: PostgreSQL, read by xmin
    key: list[str]
    base: bytes | None
    problem: str | None
    xmin_since: int | None = None  # PostgreSQL: the xmin of the snapshot that built ``base``


def log_usable(
    logged: LoggedTable, schema_id: bytes, key: list[str] | None, old_entry: TableEntry | None, old_id: bytes | None
) -> str | None:
    """None when the table may be read through its log on this parent, else why not."""
    if logged.problem is not None:
        return logged.problem
    if not key or key != logged.key:
        return "its key is not the one its capture triggers log"
    if old_entry is None or old_id is None:
        return "the parent commit does not have it"
    if old_id != logged.base:
        return "the parent commit's table is not the one its log was last read into"
    if old_entry.schema != schema_id or old_entry.key != key:
        return "its schema or key changed since the parent commit"
    return None


def build_from_log(
    snap: ReadSnapshot,
    schema: TableSchema,
    key: list[str],
    tw: TableWriter,
    old_root: bytes | None,
    logged: LoggedTable,
    progress: Progress | None,
) -> tuple[bytes, int]:
    """The table's new tree: the parent's (``tw.old``), with the rows of every logged key as
    the snapshot has them, and the logged keys that have no row removed.

    Leaves that no logged key falls in are taken whole, unread, where the tree would end a leaf
    there anyway. Raises :class:`Fallback` when the tree's row count is not the table's: a row
    was deleted without the triggers seeing it (SQLite's REPLACE conflict resolution deletes
    rows without firing delete triggers, unless recursive triggers are on)."""
    assert logged.log is not None
    changed = _changed_rows(snap, schema, key, progress, keys_from=(logged.log, key))
    logged_keys = set(changed)
    kenc_key = key_encoder(list(range(len(key))))
    for batch in snap.scan(schema, None, columns=key, source=logged.log):
        logged_keys.update(map(kenc_key, batch))
    total = snap.count(schema.name)
    if not logged_keys and (unchanged := _unchanged(tw, old_root, total)) is not None:
        return unchanged
    builder = _apply_edits(tw, sorted(logged_keys), changed)
    rows = builder.count
    if rows != total:
        raise Fallback(
            f"its {total:,} rows are not the {rows:,} its log accounts for "
            "(rows deleted unseen by the triggers, as REPLACE does)"
        )
    return builder.finish()


def build_from_xmin(
    snap: ReadSnapshot,
    schema: TableSchema,
    key: list[str],
    tw: TableWriter,
    old_root: bytes | None,
    logged: LoggedTable,
    progress: Progress | None,
) -> tuple[bytes, int]:
    """PostgreSQL: the table's new tree from the parent's and the rows whose ``xmin`` is at or
    after the parent's snapshot's xmin (every row written since: inserted or updated). Deleted
    rows leave no row to see; their number is the parent's rows plus the keys new here less
    ``count(*)``, and only when it is not 0 is every key read (a key-only scan) to find them
    (:func:`snapgit.snapshot.incremental.build_incremental`)."""
    assert logged.xmin_since is not None
    changed = _changed_rows(snap, schema, key, progress, xmin_since=logged.xmin_since)
    total = snap.count(schema.name)
    if not changed and (unchanged := _unchanged(tw, old_root, total)) is not None:
        return unchanged
    builder = _apply_edits(tw, sorted(changed), changed)
    if builder.count == total:
        return builder.finish()
    if old_root is None:  # no parent rows to delete: the rows seen are not all the rows
        raise Fallback("rows without a new xmin are missing from the parent commit")
    return build_incremental(snap, schema, key, tw, old_root, None, progress, changed=changed)


def _unchanged(tw: TableWriter, old_root: bytes | None, total: int) -> tuple[bytes, int] | None:
    """The parent's tree as it is, when nothing was logged and the row count agrees."""
    rows = sum(tw.old.counts) if tw.old is not None else 0
    if rows != total:
        return None
    if old_root is None:  # the parent's table is empty (or there is none): so is this one
        return TreeBuilder(tw.emit).finish()
    return old_root, rows


def _changed_rows(
    snap: ReadSnapshot, schema: TableSchema, key: list[str], progress: Progress | None, **scan_kw
) -> dict[bytes, tuple[bytes, bytes]]:
    """{encoded key: (record id, record)} of the rows a scan selects."""
    names = schema.sorted_names
    kenc = key_encoder([names.index(k) for k in key])
    changed: dict[bytes, tuple[bytes, bytes]] = {}
    for batch, packed, ids in scan_encoded(snap, schema, None, progress, **scan_kw):
        changed.update(zip(map(kenc, batch), zip(ids, packed, strict=False), strict=False))
    return changed


def _apply_edits(tw: TableWriter, edits: list[bytes], changed: dict[bytes, tuple[bytes, bytes]]) -> TreeBuilder:
    """A builder holding the parent's tree (``tw.old``) with every key of ``edits`` (sorted) set
    to its row in ``changed``, or removed where it has none; not finished."""
    builder = TreeBuilder(tw.emit)
    written: set[bytes] = set()

    def record(k: bytes, old_rid: bytes | None) -> bytes | None:
        """The record id of key ``k`` now (None: deleted), its record stored when new."""
        hit = changed.get(k)
        if hit is None:
            return None
        rid, payload = hit
        if rid != old_rid and rid not in written:
            written.add(rid)
            tw.write_records([rid], [payload])
        return rid

    ci = 0
    old = tw.old
    if old is not None:
        for j, (last, nid, count) in enumerate(zip(old.last_keys, old.leaf_ids, old.counts, strict=True)):
            if not count:
                continue
            cj = bisect_right(edits, last, ci)
            if cj == ci and builder.between_leaves() and (count >= LEAF_MAX or leaf_ends([last])):
                # an untouched leaf that ends where the tree would end it: taken as it is. Its
                # first key is only checked against the keys before it, which ``last`` is above
                builder.add_leaf_ref(last, last, nid, count)
                continue
            if cj == ci:
                leaf = old.leaf(nid)
                builder.add_batch(leaf.keys, leaf.ids)
                continue
            patched = _patch(tw, j, nid, edits[ci:cj], changed)
            if patched is not None:  # rows changed in place only: the leaf's bytes with new ids
                new_nid, keys, ids, blob = patched
                ci = cj
                if builder.between_leaves() and (count >= LEAF_MAX or leaf_ends([last])):
                    builder.add_leaf_ref(last, last, new_nid, count)
                else:
                    old_ids = [blob[i : i + ID_LEN] for i in range(0, len(blob), ID_LEN)]
                    builder.add_batch(keys, [n if n is not None else o for n, o in zip(ids, old_ids, strict=True)])
                continue
            leaf = old.leaf(nid)
            entries = dict(zip(leaf.keys, leaf.ids, strict=True))
            for k in edits[ci:cj]:
                rid = record(k, entries.get(k))
                if rid is None:
                    entries.pop(k, None)
                else:
                    entries[k] = rid
            keys = sorted(entries)
            builder.add_batch(keys, [entries[k] for k in keys])
            ci = cj
    tail = [(k, rid) for k in edits[ci:] if (rid := record(k, None)) is not None]
    if tail:
        builder.add_batch([k for k, _ in tail], [rid for _, rid in tail])
    return builder


def _patch(
    tw: TableWriter, j: int, nid: bytes, edits: list[bytes], changed: dict[bytes, tuple[bytes, bytes]]
) -> tuple[bytes, list[bytes], list[bytes | None], bytes] | None:
    """The parent's leaf ``j`` (``nid``) with the record ids of its edited rows replaced, stored
    with their records (:meth:`TableWriter.patch_leaf`): (its id, its keys, the new ids (None:
    the parent's), the parent's ids joined); None when an edit adds or removes a row (the leaf
    is then rebuilt). The leaf is read once, as bytes."""
    assert tw.old is not None
    stored = tw.old.leaf_bytes(nid)
    keys, blob = stored[1], stored[2]
    ids: list[bytes | None] = [None] * len(keys)
    payloads: list[bytes | None] = [None] * len(keys)
    for k in edits:
        i = bisect_left(keys, k)
        hit = changed.get(k)
        if hit is None or i == len(keys) or keys[i] != k:
            return None
        ids[i], payloads[i] = hit
    new_nid = tw.patch_leaf(j, keys, ids, payloads, stored)
    if new_nid is None:
        return None
    return new_nid, keys, ids, blob
