"""Write tests/data/v1_store/: a SQLite database and a store of format 1 committed from it.

It stands for a store written by snapgit before spelled values (store format 2): the current
reader must open it, read it and restore it, and a commit of the same database by the current
writer must give the same record ids for every value that was already in its canonical
spelling (tests/test_spelling.py). It was made once, with the code of format 1 (snapgit before
the spelled-value change), and is never rewritten:

    git worktree add /tmp/v1 <commit of format 1> && cd /tmp/v1
    .venv/bin/python <this file> OUT_DIR
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

from snapgit import Repo

SCHEMA = """
CREATE TABLE canon (id INTEGER PRIMARY KEY, t TEXT, n INTEGER, r REAL, dt DATETIME, tz TIMESTAMPTZ,
    d DATE, tm TIME, j JSON, u UUID, b BLOB, num NUMERIC(10,2), a ANY);
CREATE TABLE hostile (id INTEGER PRIMARY KEY, t TEXT, n INTEGER, r REAL, dt DATETIME, tz TIMESTAMPTZ,
    d DATE, tm TIME, j JSON, u UUID, b BLOB, num NUMERIC(10,2), a ANY);
CREATE TABLE events (at DATETIME PRIMARY KEY, what TEXT);
"""

CANON = [
    (
        1,
        "x",
        1,
        1.5,
        "2013-01-01 10:00:00",
        "2013-01-01 10:00:00+00:00",
        "2024-01-05",
        "10:00:00",
        '{"a":1}',
        "0123456789abcdef0123456789abcdef",
        b"\x00\x01",
        1.5,
        "text",
    ),
    (
        2,
        "",
        -7,
        -0.25,
        "2013-01-01 10:00:00.500000",
        None,
        "1999-12-31",
        "23:59:59.250000",
        "[1,2.5]",
        None,
        b"",
        3,
        None,
    ),
]
HOSTILE = [
    (
        1,
        "y",
        2,
        2.5,
        "2024-01-05T10:00",
        "2024-01-05 10:00:00+02:00",
        "2024-1-5",
        "10:00",
        '{"b": 1, "a": [2.50]}',
        "01234567-89ab-cdef-0123-456789abcdef",
        b"\xff",
        2.5,
        3.5,
    ),
    (
        2,
        "z",
        3,
        0.5,
        "2007-01-01 00:00:00.000000",
        "2007-01-01T00:00:00Z",
        "2024-01-05",
        "10:00:00.000000",
        '{"a":1,"a":2}',
        bytes(range(16)),
        None,
        7,
        1,
    ),
    (
        3,
        "w",
        4,
        1.0,
        "2007-01-01 00:00:00.5",
        "2007-01-01 00:00:00.5+00:00",
        None,
        "10:00:00.5",
        " [1, 2] ",
        "ABCDEF0123456789ABCDEF0123456789",
        None,
        None,
        b"\x00",
    ),
]
EVENTS = [("2024-01-05T10:00", "t form"), ("2024-01-05 11:00:00", "canonical"), ("2024-01-05 12:00", "no seconds")]


def main(out: Path) -> None:
    out.mkdir(parents=True)
    db = out / "app.db"
    con = sqlite3.connect(db)
    con.executescript(SCHEMA)
    con.executemany(f"INSERT INTO canon VALUES ({', '.join('?' * 13)})", CANON)
    con.executemany(f"INSERT INTO hostile VALUES ({', '.join('?' * 13)})", HOSTILE)
    con.executemany("INSERT INTO events VALUES (?, ?)", EVENTS)
    con.commit()
    con.close()
    with Repo.init(out, db_url="app.db") as repo:
        repo.commit("written by snapgit format 1", author="golden <golden@example.com>")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
