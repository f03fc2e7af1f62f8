#!/usr/bin/env python3
"""What change capture costs the application's writes: the same workloads with and without
snapgit's capture triggers on the table.

    .venv/bin/python scripts/capture_overhead.py [--rows 200000] [--ops 10000] [--db URL]

On a table ``bench_capture(id, n, s, f)`` of ``--rows`` rows, from Python, each in one
transaction: ``--ops`` single-row UPDATEs, INSERTs and DELETEs, then one UPDATE of 100,000 rows.
Each workload runs on a fresh copy of the table without capture, then with it (best of
``--repeat`` runs). SQLite by default (a file in a temporary directory); ``--db`` names a scratch
MariaDB/MySQL or PostgreSQL database (its table ``bench_capture`` is dropped and made anew;
PostgreSQL is read by xmin, with no triggers: its "with" column measures that nothing is added).
Prints a table, or ``--json``.
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
from typing import Any

from snapgit.db import Database
from snapgit.db import capture as dbcapture

TABLE = "bench_capture"
BULK = 100_000


def connector(url: str | None, path: Path) -> tuple[str, Callable[[], Any]]:
    """(engine, a function that opens a DB-API connection)."""
    if url is None:
        return "sqlite", lambda: sqlite3.connect(path)
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    engine = sa.create_engine(url, poolclass=NullPool)
    return engine.dialect.name.replace("mariadb", "mysql"), engine.raw_connection


_FILL = {
    "sqlite": "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < {last}) "
    "INSERT INTO {t} SELECT i, i % 97, 'text ' || i, i / 3.0 FROM c",
    "postgresql": "INSERT INTO {t} SELECT i, i % 97, 'text ' || i, i / 3.0 FROM generate_series(0, {last}) i",
    "mysql": "INSERT INTO {t} SELECT seq, seq % 97, CONCAT('text ', seq), seq / 3 FROM seq_0_to_{last}",
}


def fill(engine: str, connect: Callable[[], Any], rows: int) -> None:
    con = connect()
    cur = con.cursor()
    cur.execute(f"DROP TABLE IF EXISTS {TABLE}")
    cur.execute(f"CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY, n INTEGER, s VARCHAR(40), f DOUBLE PRECISION)")
    cur.execute(_FILL[engine].format(t=TABLE, last=rows - 1))
    con.commit()
    con.close()


def workloads(engine: str, rows: int, ops: int) -> dict[str, Callable[[Any], None]]:
    rng = random.Random(7)
    picks = rng.sample(range(rows), ops)
    p = "?" if engine == "sqlite" else "%s"

    def updates(cur) -> None:
        for i in picks:
            cur.execute(f"UPDATE {TABLE} SET n = n + 1 WHERE id = {p}", (i,))

    def inserts(cur) -> None:
        for k in range(ops):
            cur.execute(f"INSERT INTO {TABLE} VALUES ({p}, 1, 'new', 0.5)", (rows + k,))

    def deletes(cur) -> None:
        for i in picks:
            cur.execute(f"DELETE FROM {TABLE} WHERE id = {p}", (i,))

    def bulk(cur) -> None:
        cur.execute(f"UPDATE {TABLE} SET n = n + 1 WHERE id < {p}", (BULK,))

    return {
        f"{ops:,} single-row UPDATEs": updates,
        f"{ops:,} single-row INSERTs": inserts,
        f"{ops:,} single-row DELETEs": deletes,
        f"one UPDATE of {BULK:,} rows": bulk,
    }


def timed(connect: Callable[[], Any], work: Callable[[Any], None]) -> float:
    con = connect()
    cur = con.cursor()
    started = time.perf_counter()
    work(cur)
    con.commit()
    took = time.perf_counter() - started
    con.close()
    return took


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--ops", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", action="store_true")
    p.add_argument("--db", help="SQLAlchemy URL of a scratch MariaDB/MySQL or PostgreSQL database")
    args = p.parse_args(argv)
    if args.rows < BULK:
        p.error(f"--rows must be at least {BULK:,}")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "overhead.db"
        sqlite3.connect(path).close()
        engine, connect = connector(args.db, path)
        results = []
        for name, work in workloads(engine, args.rows, args.ops).items():
            seconds = {}
            for captured in (False, True):
                best = None
                for _ in range(args.repeat):
                    with Database.connect(args.db or str(path)) as db:
                        dbcapture.disable(db)
                    fill(engine, connect, args.rows)
                    if captured:
                        with Database.connect(args.db or str(path)) as db:
                            dbcapture.enable(db, [(TABLE, ["id"])])
                    took = timed(connect, work)
                    best = took if best is None else min(best, took)
                seconds[captured] = best
            results.append(
                {
                    "engine": engine,
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
