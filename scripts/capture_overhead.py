#!/usr/bin/env python3
"""What change capture costs the application's writes: the same workloads with and without
snapgit's capture triggers on the table.

    .venv/bin/python scripts/capture_overhead.py [--rows 200000] [--ops 10000] [--db URL]

On a table ``bench_capture(id, n, s, f)`` of ``--rows`` rows, from Python, each in one
transaction: ``--ops`` single-row UPDATEs, INSERTs and DELETEs, then one UPDATE of 100,000 rows.
Each workload runs on a fresh copy of the table without capture, then with it (best of
``--repeat`` runs). SQLite by default (a file in a temporary directory); ``--db`` names a scratch
database of another engine where snapgit supports capture. Prints a table, or ``--json``.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from snapgit.db import Database
from snapgit.db import capture as dbcapture

TABLE = "bench_capture"
BULK = 100_000


def connect_sqlite(path: Path) -> Callable[[], sqlite3.Connection]:
    return lambda: sqlite3.connect(path)


def fill(connect: Callable[[], object], rows: int) -> None:
    con = connect()
    cur = con.cursor()  # type: ignore[attr-defined]
    cur.execute(f"DROP TABLE IF EXISTS {TABLE}")
    cur.execute(f"CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY, n INTEGER, s VARCHAR(40), f DOUBLE PRECISION)")
    batch = [(i, i % 97, f"text {i}", i / 3) for i in range(rows)]
    cur.executemany(f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?)", batch)
    con.commit()  # type: ignore[attr-defined]
    con.close()  # type: ignore[attr-defined]


def workloads(rows: int, ops: int) -> dict[str, Callable[[object], None]]:
    rng = random.Random(7)
    picks = rng.sample(range(rows), ops)

    def updates(cur) -> None:
        for i in picks:
            cur.execute(f"UPDATE {TABLE} SET n = n + 1 WHERE id = ?", (i,))

    def inserts(cur) -> None:
        for k in range(ops):
            cur.execute(f"INSERT INTO {TABLE} VALUES (?, 1, 'new', 0.5)", (rows + k,))

    def deletes(cur) -> None:
        for i in picks:
            cur.execute(f"DELETE FROM {TABLE} WHERE id = ?", (i,))

    def bulk(cur) -> None:
        cur.execute(f"UPDATE {TABLE} SET n = n + 1 WHERE id < ?", (BULK,))

    return {
        f"{ops:,} single-row UPDATEs": updates,
        f"{ops:,} single-row INSERTs": inserts,
        f"{ops:,} single-row DELETEs": deletes,
        f"one UPDATE of {BULK:,} rows": bulk,
    }


def timed(connect: Callable[[], object], work: Callable[[object], None]) -> float:
    con = connect()
    cur = con.cursor()  # type: ignore[attr-defined]
    started = time.perf_counter()
    work(cur)
    con.commit()  # type: ignore[attr-defined]
    took = time.perf_counter() - started
    con.close()  # type: ignore[attr-defined]
    return took


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--ops", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.rows < BULK:
        p.error(f"--rows must be at least {BULK:,}")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "overhead.db"
        connect = connect_sqlite(path)
        results = []
        for name, work in workloads(args.rows, args.ops).items():
            seconds = {}
            for captured in (False, True):
                best = None
                for _ in range(args.repeat):
                    fill(connect, args.rows)
                    if captured:
                        with Database.connect(str(path)) as db:
                            dbcapture.enable(db, [(TABLE, ["id"])])
                    took = timed(connect, work)
                    best = took if best is None else min(best, took)
                seconds[captured] = best
            results.append(
                {
                    "engine": "sqlite",
                    "workload": name,
                    "without": round(seconds[False], 4),
                    "with": round(seconds[True], 4),
                    "ratio": round(seconds[True] / seconds[False], 2),
                }
            )
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{'engine':<8} {'workload':<32} {'without':>9} {'with':>9} {'ratio':>6}")
    for r in results:
        print(f"{r['engine']:<8} {r['workload']:<32} {r['without']:>8.3f}s {r['with']:>8.3f}s {r['ratio']:>5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
