"""Change capture: ``snap capture enable|disable|status``, and the logs a reading uses.

Enabling installs, per table, triggers that log the keys of changed rows into a log table that
snapgit owns in the database (:mod:`snapgit.db.capture`). From then on a commit whose parent
holds a table exactly as its log's base reads only the rows of the logged keys
(:mod:`snapgit.snapshot.capture`), and consumes the log rows it read; any doubt about the log
(see the database module) reads the table in full, with a note saying why, and the log starts
afresh from that read. ``snap status`` and ``snap diff`` against the live database read the
logs the same way but consume nothing.

The database layer is imported inside the functions: ``Repo`` imports this module, and commands
that only read the store start fast.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from snapgit.errors import SnapError
from snapgit.ops.audit import actor, audited
from snapgit.ops.commit import database_url, logged_tables, schema_cache_dir, table_key
from snapgit.snapshot.capture import log_usable
from snapgit.store.history import read_commit, read_root, read_table
from snapgit.store.layout import Store

__all__ = ["CaptureTable", "CaptureStatus", "enable", "disable", "status"]


@dataclass
class CaptureTable:
    """A table as ``snap capture status`` shows it."""

    name: str
    captured: bool
    key: list[str] | None
    pending: int = 0  # log rows not yet consumed by a commit
    next_commit: str = "reads it in full"  # how the next commit on HEAD reads it
    why: str | None = None  # why in full


@dataclass
class CaptureStatus:
    dialect: str
    supported: bool
    token: str | None
    tables: list[CaptureTable] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "dialect": self.dialect,
            "supported": self.supported,
            "enabled": self.token is not None,
            "token": self.token,
            "tables": {
                t.name: {
                    "captured": t.captured,
                    "key": t.key,
                    "pending": t.pending,
                    "next_commit": t.next_commit,
                    "why": t.why,
                }
                for t in self.tables
            },
        }


def _schemas(store: Store, snap: Any, tables: list[str] | None) -> list[Any]:
    return list(snap.reflect(tables or store.config.tables, cache=schema_cache_dir(store)))


def enable(
    store: Store, tables: list[str] | None = None, *, db_url: str | None = None, author: str | None = None
) -> tuple[list[str], list[str]]:
    """Capture the changes of ``tables`` (default: every table with a key). Returns (the
    tables set up, the tables left out because they have no key)."""
    from snapgit.db import Database, redact_url
    from snapgit.db import capture as dbcapture

    url = database_url(store, db_url)
    who = actor(store, author)
    with audited(store, who, "capture enable", {"tables": tables, "db": redact_url(url)}) as entry:
        with Database.connect(url) as db:
            if not dbcapture.supported(db.dialect):
                raise SnapError(
                    f"change capture is not available on {db.dialect} yet",
                    hint="it works on SQLite and MariaDB/MySQL; commits of this database read every row",
                )
            with db.snapshot() as snap:
                schemas = _schemas(store, snap, tables)
            pairs = [(s.name, table_key(store.config, s)) for s in schemas]
            keyless = [name for name, key in pairs if not key]
            if tables is None:
                pairs = [(name, key) for name, key in pairs if key]
            done = dbcapture.enable(db, [(name, list(key or [])) for name, key in pairs])
        entry.result = {"tables": done, "keyless": keyless if tables is None else []}
    return done, keyless if tables is None else []


def disable(
    store: Store, tables: list[str] | None = None, *, db_url: str | None = None, author: str | None = None
) -> list[str]:
    """Stop capturing ``tables`` (default: all, and remove snapgit's capture tables)."""
    from snapgit.db import Database, redact_url
    from snapgit.db import capture as dbcapture

    url = database_url(store, db_url)
    who = actor(store, author)
    with audited(store, who, "capture disable", {"tables": tables, "db": redact_url(url)}) as entry:
        with Database.connect(url) as db:
            if not dbcapture.supported(db.dialect):
                raise SnapError(f"change capture is not available on {db.dialect} yet")
            done = dbcapture.disable(db, tables)
        entry.result = {"tables": done}
    return done


def status(store: Store, *, db_url: str | None = None) -> CaptureStatus:
    """Which tables are captured, how many changes wait in their logs, and whether the next
    commit on HEAD reads each through its log or in full (and why)."""
    from snapgit.db import Database
    from snapgit.db import capture as dbcapture
    from snapgit.objects import ObjType, encode_schema, object_id

    started = time.monotonic()
    url = database_url(store, db_url)
    objects = store.objects
    head = store.refs.read("HEAD")
    root = read_root(objects, read_commit(objects, bytes.fromhex(head)).tree) if head else None
    with Database.connect(url) as db:
        result = CaptureStatus(db.dialect, dbcapture.supported(db.dialect), None)
        if not result.supported:
            return result
        before = dbcapture.catalog_before(db)
        with db.snapshot() as snap:
            view = dbcapture.read_capture(snap, before)
            schemas = _schemas(store, snap, None)
    logs = logged_tables(view) if view is not None else {}
    if view is not None:
        result.token = view.token
    for schema in schemas:
        key = table_key(store.config, schema)
        t = view.tables.get(schema.name) if view is not None else None
        row = CaptureTable(schema.name, t is not None, t.key if t is not None else key)
        if t is None:
            row.why = "change capture is not on for it" if key else "it has no key"
        else:
            row.pending = len(t.seqs)
            old_id = root.tables.get(schema.name) if root is not None else None
            old_entry = read_table(objects, old_id) if old_id is not None else None
            schema_id = object_id(ObjType.SCHEMA, encode_schema(schema))
            row.why = log_usable(logs[schema.name], schema_id, key, old_entry, old_id)
            if row.why is None:
                by_xmin = view is not None and view.position is not None
                row.next_commit = "reads the rows written since (by xmin)" if by_xmin else "reads its logged keys"
        result.tables.append(row)
    result.seconds = time.monotonic() - started
    return result
