"""The live database as a health check sees it: reachable or not, engine, version, size, tables.

What ``snap serve``'s health page shows (and a database manager's ``health`` or ``info``
command): one read transaction that lists the tables and asks the engine its version and size.
Nothing is read from the tables themselves. A database that cannot be reached is an answer here,
not an error: the report says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from snapgit.errors import SnapError
from snapgit.ops.commit import database_url
from snapgit.store.layout import Store

__all__ = ["DatabaseHealth", "database_health"]


@dataclass
class DatabaseHealth:
    url: str | None  # without a password
    dialect: str | None = None
    reachable: bool = False
    version: str | None = None
    size: int | None = None  # bytes, when the engine says
    tables: list[str] = field(default_factory=list)
    error: str | None = None


def database_health(store: Store, db_url: str | None = None) -> DatabaseHealth:
    from snapgit.db import Database, redact_url

    try:
        url = database_url(store, db_url)
    except SnapError as exc:
        return DatabaseHealth(url=None, error=exc.message)
    report = DatabaseHealth(url=redact_url(url))
    try:
        with Database.connect(url) as db:
            report.dialect = db.dialect
            with db.snapshot() as snap:
                report.tables = snap.table_names()
                report.version, report.size = snap.server_info()
        report.reachable = True
    except SnapError as exc:
        report.error = exc.message
    return report
