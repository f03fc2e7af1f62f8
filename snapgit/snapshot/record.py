"""Recording a snapshot: the table entries, the root tree, the commit, and the branch moved.

Once a table's tree is written, its schema object and its table entry are stored unless the
store has them (:func:`store_table`); the tables make the snapshot's root tree
(:func:`write_root`), and :func:`commit_snapshot` writes a commit of it.

Objects are published before the branch moves (objects first, then the ref, by compare-and-swap).
If the branch moved meanwhile (another ``snap commit``), the commit is re-parented on the new head
and retried: a snapshot is a whole state, not a patch, so nothing is lost by doing so.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from snapgit.errors import ConflictError
from snapgit.objects import Commit, ObjType, Root, TableEntry, encode_schema, object_id
from snapgit.schema import TableSchema
from snapgit.store.history import read_commit
from snapgit.store.objectstore import ObjectStore, ObjectWriter
from snapgit.store.refs import Refs

if TYPE_CHECKING:
    from snapgit.tree.diff import RowChange

__all__ = [
    "CommitResult",
    "TableResult",
    "commit_snapshot",
    "default_author",
    "now_micros",
    "store_table",
    "stored",
    "write_root",
]


@dataclass
class TableResult:
    """What a commit did with one table: its rows, its table object, and what it wrote."""

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
    captured: bool = False  # read through its change log (the rows of the logged keys)
    capture_note: str | None = None  # with capture on: why the table was read in full
    # status and diff (snapshot_database's changes_only): the row changes against the parent's
    # table, listed from the change log instead of a tree (table_id is then the parent's)
    changes: list[RowChange] | None = None


@dataclass
class CommitResult:
    """What a commit did: the commit and tree it made (or none), and each table's result."""

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
    """The configured author, else user@host."""
    if configured:
        return configured
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name on some containers (no passwd entry, no login)
        user = "unknown"
    return f"{user}@{os.uname().nodename}"  # what socket.gethostname() says, without importing it


def stored(objects: ObjectStore, oid: bytes) -> bool:
    """Whether the store already has an object, as far as the packs this process has open tell:
    a miss does not look for packs published since (``contains`` would, opening every new
    index). At worst an object another process has just stored is stored twice, which reads
    the same. (``might_contain_many``, not ``might_contain``: the index pages a look-up maps
    stay in the commit's memory, 64 KB of them an index; see ``IndexReader.prefix_hits``.)"""
    return objects.might_contain_many([oid])[0] and objects.contains(oid)


def store_table(
    objects: ObjectStore,
    writer: ObjectWriter,
    schema: TableSchema,
    root: bytes,
    rows: int,
    key: list[str] | None,
    *,
    parent: TableEntry | None = None,
    parent_id: bytes | None = None,
    probe: bool = True,
) -> bytes:
    """Store a table whose tree is written: its schema object and its table entry, each unless
    the store has it; returns the table's object id.

    ``parent`` and ``parent_id``: the table as the parent commit holds it (entry and id), whose
    objects are known to be stored and so are not looked for. ``probe`` False: the store is
    empty (nothing to look for)."""
    schema_data = encode_schema(schema)
    schema_id = object_id(ObjType.SCHEMA, schema_data)
    if parent is None or parent.schema != schema_id:
        if not (probe and stored(objects, schema_id)):
            writer.add(ObjType.SCHEMA, schema_data, schema_id)
    entry_data = TableEntry(schema_id, root, rows, key).encode()
    table_id = object_id(ObjType.TABLE, entry_data)
    if table_id != parent_id and not (probe and stored(objects, table_id)):
        writer.add(ObjType.TABLE, entry_data, table_id)
    return table_id


def write_root(objects: ObjectStore, writer: ObjectWriter, tables: dict[str, bytes]) -> bytes:
    """Store the snapshot tree of these tables (name -> table object id); returns its id."""
    root_data = Root(tables).encode()
    root_id = object_id(ObjType.ROOT, root_data)
    if not stored(objects, root_id):
        writer.add(ObjType.ROOT, root_data, root_id)
    return root_id


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
            refs.set_if_equals(
                ref, old_hex, cid.hex(), who=author, message=f"commit: {message.splitlines()[0] if message else ''}"
            )
            return cid, parent
        except ConflictError:
            current = refs.read(ref)
            parent = bytes.fromhex(current) if current else None
    raise ConflictError(
        f"ref {ref} kept moving during the commit ({retries} tries)",
        hint="other snap commands are committing to the same branch; try again",
    )
