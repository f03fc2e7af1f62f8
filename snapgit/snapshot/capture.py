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

import contextlib
import os
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from snapgit.encoding import key_encoder
from snapgit.errors import CorruptError
from snapgit.forked import Shares, aside
from snapgit.native import leaf_ids
from snapgit.objects import Node, TableEntry
from snapgit.progress import Progress
from snapgit.schema import TableSchema
from snapgit.snapshot.incremental import Fallback, build_incremental
from snapgit.snapshot.scan import scan_encoded
from snapgit.snapshot.tablewriter import COMMIT_BLOCK_BUDGET, OldTree, TableWriter, Unstored
from snapgit.store.objectstore import DiskObjectStore, DiskWriter, ObjectReader, read_ahead
from snapgit.tree.diff import ADDED, CHANGED, REMOVED, RowChange
from snapgit.tree.prolly import TreeBuilder, leaf_spans, leaves_ending, load_node, node_data, node_ends

if TYPE_CHECKING:  # the database layer is imported by whoever opens the snapshot
    from snapgit.db import ReadSnapshot

__all__ = ["LoggedTable", "log_usable", "build_from_log", "build_from_xmin", "changes_from_log"]


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
    counted, changed, logged_keys = _read_logged(snap, schema, key, logged, progress)
    if not logged_keys and (unchanged := _unchanged(tw, old_root, counted())) is not None:
        return unchanged
    builder = _apply_edits(tw, old_root, sorted(logged_keys), changed)
    rows = builder.count
    total = counted()
    if rows != total:
        raise Fallback(
            f"its {total:,} rows are not the {rows:,} its log accounts for "
            "(rows deleted unseen by the triggers, as REPLACE does)"
        )
    return builder.finish()


def _read_logged(
    snap: ReadSnapshot, schema: TableSchema, key: list[str], logged: LoggedTable, progress: Progress | None
) -> tuple[Callable[[], int], dict[bytes, tuple[bytes, bytes]], set[bytes]]:
    """The table's row count (started now, called for when needed), the logged keys' current
    rows, and every logged key (encoded), rows or not."""
    assert logged.log is not None
    counted = snap.count_later(schema.name)  # counts while the rows are read
    changed = _changed_rows(snap, schema, key, progress, keys_from=(logged.log, key))
    return counted, changed, _logged_keys(snap, schema, key, logged) | set(changed)


def _logged_keys(snap: ReadSnapshot, schema: TableSchema, key: list[str], logged: LoggedTable) -> set[bytes]:
    """Every key the log holds (encoded), rows or not."""
    assert logged.log is not None
    kenc_key = key_encoder(list(range(len(key))))
    keys: set[bytes] = set()
    for batch in snap.scan(schema, None, columns=key, source=logged.log):
        keys.update(map(kenc_key, batch))
    return keys


def changes_from_log(
    snap: ReadSnapshot,
    schema: TableSchema,
    key: list[str],
    objects: ObjectReader,
    old_root: bytes | None,
    logged: LoggedTable,
    progress: Progress | None,
) -> tuple[list[RowChange], int, dict[bytes, bytes]]:
    """What :func:`build_from_log` would change in the parent's tree (``old_root``), without
    building the tree: (the row changes in key order, exactly those a diff of the parent's tree
    and that tree gives; the table's row count; {record id: record} of the rows changed or
    added). For ``snap status`` and ``snap diff``, which need the changes, not the tree.

    Each logged key's record id now (none: no row) is compared with the parent's, read from the
    leaves the logged keys fall in only. Raises :class:`Fallback` where build_from_log would:
    the row count is not the parent's plus the rows added less those removed."""
    assert logged.log is not None
    counted = snap.count_later(schema.name)  # counts while the rows are read
    logged_keys = _logged_keys(snap, schema, key, logged)
    edits = sorted(logged_keys)
    # the parent's ids are looked up (in part by a second process) while the rows are read
    with _parent_ids(objects, old_root, edits) as parent_ids:
        changed = _changed_rows(snap, schema, key, progress, keys_from=(logged.log, key))
        if changed.keys() <= logged_keys:
            olds = parent_ids()
        else:  # a row's key not as the log spells it (never seen): look up every key here
            edits = sorted(logged_keys | changed.keys())
            with _parent_ids(objects, old_root, edits, second=False) as again:
                olds = again()
    parent_rows = load_node(objects, old_root).row_count if old_root is not None else 0
    changes: list[RowChange] = []
    records: dict[bytes, bytes] = {}
    added = removed = 0
    for k, old in zip(edits, olds, strict=True):
        hit = changed.get(k)
        if hit is None:
            if old is not None:
                changes.append(RowChange(REMOVED, k, old, None))
                removed += 1
            continue
        rid, payload = hit
        if rid == old:
            continue
        records[rid] = payload
        if old is None:
            changes.append(RowChange(ADDED, k, None, rid))
            added += 1
        else:
            changes.append(RowChange(CHANGED, k, old, rid))
    total = counted()
    if parent_rows + added - removed != total:
        raise Fallback(
            f"its {total:,} rows are not the {parent_rows + added - removed:,} its log accounts for "
            "(rows deleted unseen by the triggers, as REPLACE does)"
        )
    return changes, total, records


@contextlib.contextmanager
def _parent_ids(
    objects: ObjectReader, root: bytes | None, edits: list[bytes], second: bool = True
) -> Iterator[Callable[[], list[bytes | None]]]:
    """A function giving the record id the tree ``root`` holds under each key of ``edits``
    (sorted), or None: read from the leaves the keys fall in, and the inner nodes on the way to
    them, no others.

    Reading the leaves' delta chains is most of a status after a spread change: where it pays
    (and ``second``), a second process starts on the leaves at once, from the last one back,
    while the caller does what it has to (read the rows); calling the function, the caller
    reads leaves from the first on, a chunk at a time each (:class:`Shares`), until the two
    meet. Leaves the second process took but did not answer for (it failed) are read here."""
    out: list[bytes | None] = [None] * len(edits)
    if root is None or not edits:
        yield lambda: out
        return
    spans = leaf_spans(objects, root, edits)

    def read(part: list[tuple[bytes, int, int]]) -> None:
        for nid, lo, hi in part:
            out[lo:hi] = _ids_in_leaf(node_data(objects, nid), nid, edits[lo:hi])

    shares = None
    if second and _worth_a_second(len(spans)):
        with contextlib.suppress(OSError):  # no shared memory or semaphores here: read alone
            shares = Shares(len(spans), _SHARE_CHUNK)
    if shares is None:

        def alone() -> list[bytes | None]:
            read(spans)
            return out

        yield alone
        return

    def theirs() -> list[tuple[int, int, list[bytes | None]]]:
        got = []
        while (mine := shares.back()) is not None:
            read(spans[mine.start : mine.stop])
            got.append((mine.start, mine.stop, out[spans[mine.start][1] : spans[mine.stop - 1][2]]))
        return got

    with aside(theirs) as result:

        def both() -> list[bytes | None]:
            done = bytearray(len(spans))
            while (mine := shares.front()) is not None:
                read(spans[mine.start : mine.stop])
                done[mine.start : mine.stop] = b"\1" * len(mine)
            for start, stop, ids in result() or ():  # none: it failed, and its leaves are read here
                out[spans[start][1] : spans[stop - 1][2]] = ids
                done[start:stop] = b"\1" * (stop - start)
            read([span for span, d in zip(spans, done, strict=True) if not d])
            return out

        yield both


def _ids_in_leaf(data: bytes, nid: bytes, keys: list[bytes]) -> list[bytes | None]:
    """The record id the leaf ``data`` holds under each of ``keys`` (sorted), or None."""
    found = leaf_ids(data, keys)  # the leaf's bytes, not decoded; None: decoded here
    if found is not None:
        return found
    node = Node.decode(data)
    if node.level != 0:
        raise CorruptError(f"tree node {nid.hex()} is not a leaf where its parent's level says it is")
    ids: list[bytes | None] = []
    for k in keys:
        j = bisect_left(node.keys, k)
        ids.append(node.ids[j] if j < len(node.keys) and node.keys[j] == k else None)
    return ids


def _worth_a_second(leaves: int) -> bool:
    """A second process pays off for this many leaves to read, on more than one core."""
    return leaves >= 256 and (os.cpu_count() or 1) > 1 and os.environ.get("SNAP_WORKERS") != "0"


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
    builder = _apply_edits(tw, old_root, sorted(changed), changed)
    if builder.count == total:
        return builder.finish()
    if old_root is None:  # no parent rows to delete: the rows seen are not all the rows
        raise Fallback("rows without a new xmin are missing from the parent commit")
    return build_incremental(snap, schema, key, tw, old_root, None, progress, changed=changed)


def _unchanged(tw: TableWriter, old_root: bytes | None, total: int) -> tuple[bytes, int] | None:
    """The parent's tree as it is, when nothing was logged and the row count agrees."""
    rows = load_node(tw.objects, old_root).row_count if old_root is not None else 0
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


def _apply_edits(
    tw: TableWriter, old_root: bytes | None, edits: list[bytes], changed: dict[bytes, tuple[bytes, bytes]]
) -> TreeBuilder:
    """A builder holding the parent's tree (``old_root``, read through ``tw.old``) with every
    key of ``edits`` (sorted) set to its row in ``changed``, or removed where it has none; not
    finished.

    The parent's tree is walked from its root down to the nodes the edits fall in only: a
    subtree no edit falls in is taken whole, unread, where the tree would end a node of its
    level there anyway (:func:`node_ends`), so the cost follows the edited leaves and their
    paths, not the size of the table."""
    builder = TreeBuilder(tw.emit)
    edit = _Editor(tw, builder, edits, changed)
    if old_root is not None and tw.old is not None:
        root = load_node(tw.objects, old_root)
        if root.level == 0:
            if root.keys:
                edit.leaf(old_root, root.keys[-1], len(root.keys))
        else:
            spans = leaf_spans(tw.objects, old_root, edits)
            edit.patched = _patch_shared(tw, spans, edits, changed)
            left = [nid for nid, _, _ in spans if edit.patched.get(nid) is None]
            # reading the parent's leaves (their delta chains) is about half of the walk after
            # a spread change: a second process reads them while this one patches and writes
            with read_ahead(tw.objects, left):
                edit.children(root)
    tail = [(k, rid) for k in edits[edit.ci :] if (rid := edit.record(k, None)) is not None]
    if tail:
        builder.add_batch([k for k, _ in tail], [rid for _, rid in tail])
    return builder


class _Editor:
    """The walk of :func:`_apply_edits`: ``ci`` is the first edit not yet applied."""

    def __init__(
        self, tw: TableWriter, builder: TreeBuilder, edits: list[bytes], changed: dict[bytes, tuple[bytes, bytes]]
    ) -> None:
        self.tw, self.builder, self.edits, self.changed = tw, builder, edits, changed
        self.ci = 0
        self.written: set[bytes] = set()
        # leaves patched before the walk (:func:`_patch_shared`): the id of each, by the
        # parent's leaf and the edits applied to it
        self.patched: dict[bytes, tuple[int, int, bytes]] = {}

    def record(self, k: bytes, old_rid: bytes | None) -> bytes | None:
        """The record id of key ``k`` now (None: deleted), its record stored when new."""
        hit = self.changed.get(k)
        if hit is None:
            return None
        rid, payload = hit
        if rid != old_rid and rid not in self.written:
            self.written.add(rid)
            self.tw.write_records([rid], [payload])
        return rid

    def children(self, node: Node) -> None:
        """The children of an inner node of the parent's tree, in key order. Every edit up to
        a child's last key falls in that child (the edits before it fell in earlier ones)."""
        level = node.level - 1
        builder, edits = self.builder, self.edits
        if level == 0:
            self.leaves(node)
            return
        for last, cid, count in zip(node.keys, node.ids, node.counts, strict=True):
            if not count:
                continue
            cj = bisect_right(edits, last, self.ci)
            if cj == self.ci and builder.between_nodes(level) and node_ends(level, last, count):
                # a subtree no edit falls in, ending where the tree would end it: taken as it
                # is. Its first key is above every key added so far: those are the parent's
                # keys before it and edits at or below the previous child's last key
                builder.add_node_ref(level, last, cid, count)
                continue
            if level == 0:
                self.leaf(cid, last, count, cj)
            else:
                self.children(load_node(self.tw.objects, cid))

    def leaves(self, node: Node) -> None:
        """The leaves under an inner node of level 1, by the edits that fall in them: each run
        of leaves no edit falls in is added whole at once (:meth:`TreeBuilder.add_leaf_refs`),
        where the tree would end each of them there anyway; so a leaf costs nothing unless an
        edit falls in it."""
        keys, ids, counts = node.keys, node.ids, node.counts
        builder, edits = self.builder, self.edits
        m = len(keys)
        j = 0
        while j < m:
            # the first leaf an edit falls in: every edit up to a leaf's last key is in it
            nj = bisect_left(keys, edits[self.ci], j) if self.ci < len(edits) else m
            while j < nj:  # leaves no edit falls in
                if not builder.between_leaves():
                    self.leaf(ids[j], keys[j], counts[j], self.ci)
                    j += 1
                    continue
                k = leaves_ending(keys, counts, j, nj)
                # the run's keys are above every key added so far (see children())
                builder.add_leaf_refs(keys[j:k], ids[j:k], counts[j:k], last_may_end=k == m)
                if k < nj:  # a leaf the tree would not end there (the table's last): its rows
                    self.leaf(ids[k], keys[k], counts[k], self.ci)
                    k += 1
                j = k
            if j < m:
                k = self.patched_run(node, j)
                if k > j:
                    j = k
                    continue
                self.leaf(ids[j], keys[j], counts[j], bisect_right(edits, keys[j], self.ci))
                j += 1

    def patched_run(self, node: Node, j: int) -> int:
        """The leaves of an inner node of level 1 from its ``j``-th on that were patched before
        the walk with exactly the edits that fall in each, added at once by their new ids
        (:meth:`TreeBuilder.add_leaf_refs`); where the run ends (``j``: none was). A leaf
        patched in place keeps its keys, so it ends where the parent's did, and none but the
        node's last child ends the node: after a spread change most of the walk is such runs,
        which one leaf at a time cost about 10 us each."""
        keys, ids, counts = node.keys, node.ids, node.counts
        builder, edits, patched = self.builder, self.edits, self.patched
        if not patched or not builder.between_leaves():
            return j
        ci, k, m = self.ci, j, len(keys)
        new_ids: list[bytes] = []
        while k < m:
            cj = bisect_right(edits, keys[k], ci)
            done = patched.get(ids[k])
            if cj == ci or done is None or done[0] != ci or done[1] != cj or not node_ends(0, keys[k], counts[k]):
                break
            new_ids.append(done[2])
            ci = cj
            k += 1
        if k > j:
            builder.add_leaf_refs(keys[j:k], new_ids, counts[j:k], last_may_end=k == m)
            self.ci = ci
        return k

    def leaf(self, nid: bytes, last: bytes, count: int, cj: int | None = None) -> None:
        """One leaf of the parent's tree, with the edits up to its last key applied."""
        tw, builder, edits, ci = self.tw, self.builder, self.edits, self.ci
        assert tw.old is not None
        if cj is None:
            cj = bisect_right(edits, last, ci)
        if cj == ci:
            leaf = tw.old.leaf(nid)
            builder.add_batch(leaf.keys, leaf.ids)
            return
        self.ci = cj
        done = self.patched.get(nid)
        if done is not None and done[:2] == (ci, cj):
            if builder.between_leaves() and node_ends(0, last, count):
                builder.add_leaf_ref(last, last, done[2], count)
                return
            # rows the leaf before did not end on (it was rebuilt): its rows go on from there
            leaf = tw.old.leaf(nid)
            ids = list(leaf.ids)
            for k in edits[ci:cj]:
                ids[bisect_left(leaf.keys, k)] = self.changed[k][0]
            builder.add_batch(leaf.keys, ids)
            return
        patched = _patch(tw, nid, edits[ci:cj], self.changed)
        if patched is not None:  # rows changed in place only: the leaf's bytes with new ids
            new_nid, data = patched
            if builder.between_leaves() and node_ends(0, last, count):
                builder.add_leaf_ref(last, last, new_nid, count)
            else:
                node = Node.decode(data)
                builder.add_batch(node.keys, node.ids)
            return
        leaf = tw.old.leaf(nid)
        entries = dict(zip(leaf.keys, leaf.ids, strict=True))
        for k in edits[ci:cj]:
            rid = self.record(k, entries.get(k))
            if rid is None:
                entries.pop(k, None)
            else:
                entries[k] = rid
        keys = sorted(entries)
        builder.add_batch(keys, [entries[k] for k in keys])


def _patch_shared(
    tw: TableWriter, spans: list[tuple[bytes, int, int]], edits: list[bytes], changed: dict[bytes, tuple[bytes, bytes]]
) -> dict[bytes, tuple[int, int, bytes]]:
    """The parent's leaves of ``spans`` (a leaf, and the edits that fall in it: ``edits[lo:hi]``)
    whose rows changed in place only, patched and stored: {leaf: (lo, hi, the new leaf's id)}.

    Patching a leaf (reading it, writing its changed records and its delta) is most of a commit
    after a spread change, and needs nothing of the leaves before it; so with enough of them and
    a second core, a forked process patches leaves from the last one back into packs of its
    own, published before it answers, while this one patches from the first on, a chunk at a
    time each (:class:`Shares`), until they meet. Empty when it does not pay: the walk then
    patches each leaf as it comes to it, as it does the leaves the other process took when
    that process fails."""
    writer = tw.writer
    if (
        len(spans) < _SHARED_MIN
        or not isinstance(writer, DiskWriter)
        or tw.old is None
        or not _worth_a_second(len(spans))
    ):
        return {}
    try:
        shares = Shares(len(spans), _SHARE_CHUNK)
    except OSError:  # no shared memory or semaphores here (a container without /dev/shm)
        return {}
    store, old_root, owner = writer.store, tw.old.root, tw.owner

    def theirs() -> tuple[dict[bytes, tuple[int, int, bytes]], int, int]:
        return _patch_apart(store, old_root, owner, spans, shares, edits, changed)

    out: dict[bytes, tuple[int, int, bytes]] = {}
    with aside(theirs) as result:
        while (mine := shares.front()) is not None:
            out.update(_patch_spans(tw, spans[mine.start : mine.stop], edits, changed))
        got = result()
    if got is not None:  # else its packs were never published, and the walk patches what it took
        done, records, nodes = got
        out.update(done)
        tw.records_written += records
        tw.nodes_written += nodes
    return out


# leaves each process takes at a time (Shares): a few milliseconds of patching
_SHARE_CHUNK = 32

# leaves to patch: below, a fork and the other process's store cost more than half of them
_SHARED_MIN = 512


def _patch_spans(
    tw: TableWriter, spans: list[tuple[bytes, int, int]], edits: list[bytes], changed: dict[bytes, tuple[bytes, bytes]]
) -> dict[bytes, tuple[int, int, bytes]]:
    out: dict[bytes, tuple[int, int, bytes]] = {}
    for nid, lo, hi in spans:
        patched = _patch(tw, nid, edits[lo:hi], changed)
        if patched is not None:
            out[nid] = (lo, hi, patched[0])
    return out


def _patch_apart(
    store: DiskObjectStore,
    old_root: bytes,
    owner: Any,
    spans: list[tuple[bytes, int, int]],
    shares: Shares,
    edits: list[bytes],
    changed: dict[bytes, tuple[bytes, bytes]],
) -> tuple[dict[bytes, tuple[int, int, bytes]], int, int]:
    """The forked side of :func:`_patch_shared`, the spans it takes from the back: its own
    store and writer, whose packs are published before the answer (the commit refers to them
    once it has it), and the records and nodes it wrote that the store did not have."""
    objects = store.reopen(block_budget=COMMIT_BLOCK_BUDGET)  # nothing of the commit's own
    with objects.writer() as writer:  # published when the block ends, or nothing is
        unstored = Unstored(objects, writer) if objects.pack_names() else None
        tw = TableWriter(objects, writer, OldTree(objects, old_root), unstored, owner)
        done: dict[bytes, tuple[int, int, bytes]] = {}
        while (mine := shares.back()) is not None:
            done.update(_patch_spans(tw, spans[mine.start : mine.stop], edits, changed))
        found = unstored.flush().get(owner, [0, 0]) if unstored is not None else [0, 0]
    return done, tw.records_written - found[0], tw.nodes_written - found[1]


def _patch(
    tw: TableWriter, nid: bytes, edits: list[bytes], changed: dict[bytes, tuple[bytes, bytes]]
) -> tuple[bytes, bytes] | None:
    """The parent's leaf ``nid`` with the record ids of its edited rows replaced, stored
    with their records (:meth:`TableWriter.patch_edits`): (its id, its bytes); None when an
    edit adds or removes a row (the leaf is then rebuilt). The leaf is read once, as bytes, and
    decoded only when its rows are asked for (rarely: see :meth:`_Editor.leaf`)."""
    assert tw.old is not None
    rids: list[bytes] = []
    payloads: list[bytes] = []
    for k in edits:
        hit = changed.get(k)
        if hit is None:  # a row removed
            return None
        rids.append(hit[0])
        payloads.append(hit[1])
    return tw.patch_edits(nid, tw.old.leaf_data(nid), edits, rids, payloads)
