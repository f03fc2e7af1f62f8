"""Database access: the live database that snapgit versions, read and written through
SQLAlchemy and the drivers (a SQLite file is read on the standard library's connection, and
SQLAlchemy is imported only to reflect a schema the cache does not hold). The only package of
snapgit that knows SQL dialects or imports SQLAlchemy; it knows nothing of the store but the
directory it is given for the schema cache.

    with Database.connect("app.db") as db, db.snapshot() as snap:
        for schema in snap.reflect():
            for batch in snap.scan(schema, schema.primary_key or None):
                ...  # lists of row tuples, values in schema.sorted_names order

    with Database.connect("app.db") as db, db.write() as tx:  # one transaction
        tx.delete_rows(schema, ["id"], removed)  # children first, then parents
        tx.insert_rows(schema, added)  # parents first, then children
        tx.update_rows(schema, ["id"], changed)
        tx.check_foreign_keys([schema.name])
        tx.reset_sequences(schema)

Modules: :mod:`~snapgit.db.url` (URLs and their redaction), :mod:`~snapgit.db.database`
(connections and consistent read snapshots), :mod:`~snapgit.db.reflect` (schemas),
:mod:`~snapgit.db.schemacache` (a SQLite database's last reflection, remembered),
:mod:`~snapgit.db.types` (native -> portable types, and how each column is read: the mapping
table), :mod:`~snapgit.db.values` (converters to canonical values), :mod:`~snapgit.db.rows`
(batch conversion); and for writing :mod:`~snapgit.db.write` (write transactions),
:mod:`~snapgit.db.params` (canonical values -> driver parameters), :mod:`~snapgit.db.ddl`
(tables from portable schemas).
"""

from typing import TYPE_CHECKING

__all__ = [
    "Database",
    "ReadSnapshot",
    "WriteTransaction",
    "DatabaseError",
    "ForeignKeyViolationError",
    "RowMatchError",
    "UnsupportedTypeError",
    "normalize_url",
    "redact_url",
]

if TYPE_CHECKING:
    from snapgit.db.database import Database, ReadSnapshot
    from snapgit.db.errors import DatabaseError, ForeignKeyViolationError, RowMatchError, UnsupportedTypeError
    from snapgit.db.url import normalize_url, redact_url
    from snapgit.db.write import WriteTransaction

_HOMES = {
    "Database": "snapgit.db.database",
    "ReadSnapshot": "snapgit.db.database",
    "WriteTransaction": "snapgit.db.write",
    "DatabaseError": "snapgit.db.errors",
    "ForeignKeyViolationError": "snapgit.db.errors",
    "RowMatchError": "snapgit.db.errors",
    "UnsupportedTypeError": "snapgit.db.errors",
    "normalize_url": "snapgit.db.url",
    "redact_url": "snapgit.db.url",
}


def __getattr__(name: str) -> object:
    # Imported on first use: a module of the package imports only what it needs (the write
    # path does not load the read path, redacting a URL loads neither).
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'snapgit.db' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
