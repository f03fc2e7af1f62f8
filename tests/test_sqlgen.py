"""SQL export (snapgit.exchange.sqlgen): values at the edge of what a dialect stores.

SQLite stores infinities (a REAL literal out of range reads back as one); an export of such a
table as SQL for SQLite must load into a fresh database with the same values (the export
property of test_export.py checks whole trees). Found by that property once CI's Hypothesis
profile stopped replaying the same inputs.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from snapgit import Repo
from snapgit.exchange.export import ExportError


def test_infinities_round_trip_through_a_sqlite_sql_export(tmp_path: Path) -> None:
    con = sqlite3.connect(tmp_path / "src.db")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, x REAL)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(1, float("inf")), (2, float("-inf")), (3, 1.5), (4, None)])
    con.commit()
    con.close()
    with Repo.init(tmp_path, str(tmp_path / "src.db")) as src:
        cid = src.commit("source").commit_id
        src.export(cid.hex(), tmp_path / "dump.sql", fmt="sql")
        (tmp_path / "copy").mkdir()
        copy = sqlite3.connect(tmp_path / "copy" / "copy.db")
        copy.executescript((tmp_path / "dump.sql").read_text())
        assert copy.execute("SELECT id, x FROM t ORDER BY id").fetchall() == [
            (1, float("inf")), (2, float("-inf")), (3, 1.5), (4, None)]
        copy.close()
        with Repo.init(tmp_path / "copy", str(tmp_path / "copy" / "copy.db")) as again:
            assert [t.rows for t in again.commit("copy").tables] == [4]
        with pytest.raises(ExportError, match="MariaDB/MySQL cannot store the float inf"):  # MariaDB cannot
            src.export(cid.hex(), tmp_path / "dump-mysql.sql", fmt="sql", dialect="mysql")
