"""The Repo face over ops/: progress of merges and restores, the audit log, and the JSON shapes
of results that the API owns."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from snapgit import Repo
from snapgit.errors import SnapError
from snapgit.ops.commit import commit_result_json, database_dialect
from snapgit.ops.mergeflow import key_matches


class Recorder:
    """A Progress that remembers every call."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def table(self, name: str, total: int | None) -> None:
        self.calls.append(("table", name, total))

    def advance(self, rows: int) -> None:
        self.calls.append(("advance", rows))

    def per_table(self) -> list[tuple[str, int | None, int]]:
        """(table, total, rows advanced) per table() call, in order."""
        out: list[list] = []
        for call in self.calls:
            if call[0] == "table":
                out.append([call[1], call[2], 0])
            else:
                out[-1][2] += call[1]
        return [tuple(x) for x in out]


def _shop(tmp_path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(tmp_path / "app.db")
    con.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT)")
    con.execute("CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id), v TEXT)")
    con.execute("CREATE TABLE empty (id INTEGER PRIMARY KEY)")
    con.executemany("INSERT INTO parent VALUES (?, ?)", [(i, f"p{i}") for i in range(1, 11)])
    con.executemany("INSERT INTO child VALUES (?, ?, ?)", [(i, i % 10 + 1, "x") for i in range(1, 7001)])
    con.commit()
    return con


def _oplog(tmp_path: Path) -> list[dict]:
    path = tmp_path / ".snapstore" / "oplog.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_restore_reports_each_table_it_writes(tmp_path: Path) -> None:
    con = _shop(tmp_path)
    with Repo.init(tmp_path, db_url=str(tmp_path / "app.db")) as repo:
        first = repo.commit("first").commit_id
        con.execute("DELETE FROM child WHERE id > 6000")  # 1,000 rows to insert back
        con.execute("UPDATE parent SET name = 'changed' WHERE id <= 3")  # 3 rows to update
        con.execute("INSERT INTO child VALUES (9001, 1, 'new')")  # 1 row to delete
        con.commit()
        rec = Recorder()
        repo.restore(first.hex(), progress=rec)
        applied = [t for t in rec.per_table() if t[1] is not None and t[0] != "empty"][-3:]
        # the delete pass (children first), then the write pass (parents first)
        assert applied == [("child", 1, 1), ("parent", 3, 3), ("child", 1000, 1000)]
        assert not any(d.stat().total for d in repo.diff(first.hex()))


def test_restore_into_reports_every_table_with_its_rows(tmp_path: Path) -> None:
    _shop(tmp_path)
    with Repo.init(tmp_path, db_url=str(tmp_path / "app.db")) as repo:
        first = repo.commit("first").commit_id
        rec = Recorder()
        repo.restore(first.hex(), into=str(tmp_path / "copy.db"), progress=rec)
        # parents before children; a table without rows is announced too
        assert sorted(rec.per_table()) == [("child", 7000, 7000), ("empty", 0, 0), ("parent", 10, 10)]
        names = [t[0] for t in rec.per_table()]
        assert names.index("parent") < names.index("child")


def test_merge_reports_the_rows_it_applies(tmp_path: Path) -> None:
    con = _shop(tmp_path)
    with Repo.init(tmp_path, db_url=str(tmp_path / "app.db")) as repo:
        repo.commit("base")
        repo.checkout("HEAD", new_branch="feature")
        con.execute("UPDATE child SET v = 'y' WHERE id <= 20")
        con.commit()
        repo.commit("feature")
        repo.checkout("main")
        rec = Recorder()
        result = repo.merge("feature", strategy="backup_wins", progress=rec)
        assert result.totals()["updated"] == 20
        assert ("child", 20, 20) in rec.per_table()
        # the snapshots before and after the merge report their tables as they read them
        assert [t[0] for t in rec.per_table()].count("parent") == 2


def test_failures_and_successes_are_audited_once(tmp_path: Path) -> None:
    _shop(tmp_path)
    with Repo.init(tmp_path, db_url=str(tmp_path / "app.db")) as repo:
        repo.commit("first")
        with pytest.raises(SnapError):
            repo.restore("nope")  # the revision is resolved before the operation starts: no line
        repo.merge("HEAD", strategy="backup_wins", preview=True)  # a preview changes nothing: no line
        with pytest.raises(SnapError, match="no merge in progress"):
            repo.merge_continue()
        repo.gc(prune="now", dry_run=True)
    ops = [(e["op"], e["ok"]) for e in _oplog(tmp_path)]
    assert ops == [("commit", True), ("gc", True)]


def test_commit_result_json_is_the_cli_shape(tmp_path: Path) -> None:
    _shop(tmp_path)
    with Repo.init(tmp_path, db_url=str(tmp_path / "app.db")) as repo:
        result = repo.commit("first")
    doc = commit_result_json(result)
    assert doc["commit"] == result.commit_id.hex() and doc["nothing_to_commit"] is False
    assert set(doc["tables"]["child"]) == {"rows", "changed", "records_written", "processes", "cached_rows"}
    assert "incremental_note" not in doc
    assert "incremental_note" in commit_result_json(result, incremental=True)
    proc = subprocess.run(
        [sys.executable, "-m", "snapgit.cli", "commit", "-m", "again", "--allow-empty", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert list(json.loads(proc.stdout)) == list(doc)


def test_database_dialect_without_parsing_sqlite_paths() -> None:
    assert database_dialect("sqlite:////tmp/app.db") == "sqlite"
    assert database_dialect("postgresql+psycopg://u@h/db") == "postgresql"
    assert database_dialect("mysql+pymysql://u@h/db") == "mysql"


def test_a_conflict_key_matches_as_the_user_writes_it() -> None:
    from snapgit.compare.mergeplan import Conflict, TablePlan
    from snapgit.schema import Column, TableSchema

    schema = TableSchema("t", (Column("id", "integer", False), Column("v", "text")), ("id",))
    plan = TablePlan("t", schema, ["id"])
    c = Conflict("t", b"k", "cells", [5, "a"], [5, "b"], [5, "c"], ["v"])
    assert key_matches(plan, c, "5") and key_matches(plan, c, "id=5")
    assert not key_matches(plan, c, "6")
