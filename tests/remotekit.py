"""Helpers of the remote tests: small SQLite stores with rows to push, and a fingerprint of
everything a store holds, to show that a failed command changed nothing."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from snapgit.repo import Repo


def make_db(path: Path, rows: int = 2000) -> Path:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL)")
    con.executemany("INSERT INTO items VALUES (?, ?, ?)", [(i, f"item {i}", i * 1.5) for i in range(rows)])
    con.commit()
    con.close()
    return path


def make_store(directory: Path, rows: int = 2000) -> Repo:
    """A store in ``directory`` over a new SQLite database ``db.sqlite`` with one commit."""
    directory.mkdir(parents=True, exist_ok=True)
    db = make_db(directory / "db.sqlite", rows)
    repo = Repo.init(directory, str(db))
    repo.commit("base")
    return repo


def change(db: Path, sql: str, *params: object) -> None:
    con = sqlite3.connect(db)
    con.execute(sql, params)
    con.commit()
    con.close()


def rows(db: Path) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT id, name, price FROM items ORDER BY id").fetchall()
    finally:
        con.close()


def fingerprint(store_dir: Path) -> dict[str, str]:
    """Every file of a store (but the audit log, which records failures too) and its hash."""
    root = store_dir / ".snapstore"
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "oplog.jsonl":
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out
