"""Reflections remembered: the table schemas of a SQLite database, under a fingerprint of all
that decides them, so that reading a database whose schema has not changed since the last read
neither reflects it again nor imports SQLAlchemy (together about 0.2 s of every commit).

A reflection is a function of the database's schema text (every row of ``sqlite_master``: the
``CREATE`` statements of its tables, indexes, views and triggers) and of the code that reflects:
snapgit's reflection and type mapping (the source of :mod:`snapgit.db.reflect` and
:mod:`snapgit.db.types`), SQLAlchemy's inspector (its version) and SQLite's parser (its
version); and of the tables asked for. :func:`fingerprint` hashes all of them, so a change to
any one is a miss.

The cache is one file in the directory given (a store's ``cache/``), ``schemas``, holding the
last reflection: msgpack ``[1, fingerprint (bin 32), [schema object bytes, ...]]``, written to
a temporary file and renamed over the old one. It is derived data: a file that does not read, or
that holds another fingerprint, is a miss, and the next reflection replaces it; one that cannot
be written is left as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import re
import sqlite3
from pathlib import Path
from typing import Any

import msgpack

from snapgit.objects import decode_schema, encode_schema
from snapgit.schema import TableSchema

__all__ = ["fingerprint", "load", "save", "CACHE_FILE"]

CACHE_FILE = "schemas"
_VERSION = 1
_code_hash: bytes | None = None


def _code() -> bytes:
    """What the reflecting code is: snapgit's modules that reflect, SQLAlchemy's version (read
    from its source, not from package metadata, which takes 50 ms to find), SQLite's version."""
    global _code_hash
    if _code_hash is None:
        from snapgit.db import reflect, types
        from snapgit.version import __version__

        h = hashlib.sha256(f"snapgit {__version__} schemacache {_VERSION}\0sqlite {sqlite3.sqlite_version}\0".encode())
        for module in (reflect, types):
            h.update(Path(module.__file__ or "").read_bytes())
        spec = importlib.util.find_spec("sqlalchemy")
        origin = spec.origin if spec is not None else None
        found = re.search(rb"__version__\s*=\s*[\"']([^\"']+)", Path(origin).read_bytes()) if origin else None
        h.update(b"sqlalchemy " + (found.group(1) if found else b"?"))
        _code_hash = h.digest()
    return _code_hash


def fingerprint(raw: Any, tables: list[str]) -> bytes:
    """The fingerprint of a reflection of ``tables`` on ``raw`` (a ``sqlite3`` connection), in
    its current transaction."""
    rows = raw.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name, tbl_name").fetchall()
    return hashlib.sha256(msgpack.packb([_code(), sorted(tables), [list(r) for r in rows]], use_bin_type=True)).digest()


def load(directory: Path, fp: bytes) -> list[TableSchema] | None:
    """The schemas remembered under ``fp``, or None."""
    try:
        data = (directory / CACHE_FILE).read_bytes()
        version, stored, schemas = msgpack.unpackb(data, raw=False)
        if version != _VERSION or stored != fp:
            return None
        return [decode_schema(s) for s in schemas]
    except Exception:  # noqa: BLE001 - a cache that does not read is a miss, whatever the reason
        return None


def save(directory: Path, fp: bytes, schemas: list[TableSchema]) -> None:
    """Remember ``schemas`` under ``fp`` (best effort)."""
    data = msgpack.packb([_VERSION, fp, [encode_schema(s) for s in schemas]], use_bin_type=True)
    tmp = directory / f"{CACHE_FILE}.{os.getpid()}.tmp"
    try:
        directory.mkdir(mode=0o700, exist_ok=True)
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
            f.write(data)
        os.replace(tmp, directory / CACHE_FILE)
    except OSError:
        with contextlib.suppress(OSError):  # the directory itself may be what failed
            tmp.unlink()
