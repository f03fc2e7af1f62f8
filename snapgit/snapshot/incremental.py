"""Incremental reading of a table: its changed rows and its keys, not every row.

A table with a configured change column (a date or timestamp the application sets on every
insert and update) can be read as the rows whose change column is at or after the last
commit's read, plus a scan of its keys alone: a key that is gone is a deleted row, the rest
come from the parent's tree, whose leaves that no key was added to, removed from or changed in
are taken whole (:func:`build_incremental`). :func:`incremental_column` decides which tables
may be read so (and says why the others may not); a read whose parts contradict each other
raises :class:`Fallback`, and the table is read in full.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from operator import lt
from typing import TYPE_CHECKING

from snapgit.encoding import key_encoder
from snapgit.objects import TableEntry
from snapgit.progress import Progress
from snapgit.schema import TableSchema
from snapgit.snapshot.scan import scan_encoded
from snapgit.snapshot.tablewriter import TableWriter
from snapgit.tree.prolly import TreeBuilder, iter_leaves

if TYPE_CHECKING:  # the database layer is imported by whoever opens the snapshot
    from snapgit.db import ReadSnapshot

__all__ = ["Fallback", "Incremental", "build_incremental", "incremental_column"]

_TIME_TYPES = ("timestamp", "timestamptz", "date")


@dataclass
class Incremental:
    """What an incremental commit reads: rows whose change column is at or after ``since`` (a
    naive UTC datetime), for the tables the parent commit read (``read``: None for all)."""

    since: dt.datetime
    column: Callable[[TableSchema], str | None]
    read: set[str] | None = None


def incremental_column(
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


class Fallback(Exception):
    """An incremental read cannot be trusted for this table; read it in full. (str: why)"""


def build_incremental(
    snap: ReadSnapshot,
    schema: TableSchema,
    key: list[str],
    tw: TableWriter,
    old_root: bytes,
    since: tuple[str, dt.datetime] | None,
    progress: Progress | None,
    changed: dict[bytes, tuple[bytes, bytes]] | None = None,
) -> tuple[bytes, int]:
    """The table's new tree from its old one, the rows whose change column ``since[0]`` is at
    or after ``since[1]``, and a key-only scan (the keys that are gone are the deleted rows).

    Old leaves that no key was added to, removed from or changed in are taken whole. Raises
    :class:`Fallback` when the reads contradict each other: a key that is new but whose row was
    not among the changed ones (the change column is not maintained), or keys that the
    database does not return in the key encoding's order.
    """
    if changed is None:  # (given: the changed rows, read some other way, by xmin say)
        names = schema.sorted_names
        kenc = key_encoder([names.index(k) for k in key])
        changed = {}
        for batch, packed, ids in scan_encoded(snap, schema, None, None, key, since=since):
            changed.update(zip(map(kenc, batch), zip(ids, packed, strict=False), strict=False))
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
                raise Fallback("the database returns its keys in another order than snapgit sorts them")
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
                    raise Fallback("rows were added whose change column is older than the last commit")
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
                    raise Fallback("the changed rows and the key scan disagree")
                ids[i] = record(*changed[k], ids[i])
            placed += cj - ci
            builder.add_batch(leaf.keys, ids)
        elif keys:
            place(keys, dict(zip(leaf.keys, leaf.ids, strict=False)))
        ci = cj
    rest = keys_upto(None)
    if rest:
        place(rest, {})
    if placed != len(changed):
        raise Fallback("the changed rows and the key scan disagree")
    return builder.finish()
