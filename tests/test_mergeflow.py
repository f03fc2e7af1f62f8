"""The merge as a user drives it (`snap merge`, `snap conflicts`, `--continue`, `--abort`) and the
merges it refuses: each refusal is one clear error, exit 1, and leaves the database as it was and
no merge in progress.

Runs the real CLI against SQLite files (test_merge.py and test_mergeplan.py check what a merge
writes, on every engine).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from snapgit import Repo
from snapgit.compare.mergeplan import MergeError
from snapgit.store.config import TableConfig
from test_cli import no_traceback, snap

BASE = [(1, 1, "x"), (2, 2, "x"), (3, 3, "x"), (4, 4, "x")]


def rows(con: sqlite3.Connection, table: str = "items") -> list[tuple]:
    return con.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()


def put(con: sqlite3.Connection, data: list[tuple], table: str = "items") -> None:
    con.execute(f"DELETE FROM {table}")
    con.executemany(f"INSERT INTO {table} VALUES ({','.join('?' * len(data[0]))})", data)
    con.commit()


@pytest.fixture
def project(tmp_path: Path):
    """main and feature from a common base, conflicting on id 1 (cells) and id 2 (modify/delete);
    theirs also changes id 3 and ours id 4, without conflict. The live database holds ours,
    committed."""
    con = sqlite3.connect(tmp_path / "db.sqlite")
    con.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, a INTEGER, b TEXT)")
    con.execute("CREATE TABLE other (id INTEGER PRIMARY KEY, v TEXT)")
    con.execute("INSERT INTO other VALUES (1, 'base')")
    put(con, BASE)
    # made through the API, in process (the tests drive the CLI): seven `snap` processes were
    # most of each test's time
    repo = Repo.init(tmp_path, "db.sqlite")
    repo.commit("base")
    repo.create_branch("feature")
    repo.checkout("feature")
    put(con, [(1, 10, "x"), (3, 3, "theirs"), (4, 4, "x")])
    put(con, [(1, "theirs")], "other")
    repo.commit("theirs")
    repo.checkout("main")
    put(con, [(1, 20, "x"), (2, 2, "ours"), (3, 3, "x"), (4, 4, "ours")])
    repo.commit("ours")
    repo.close()
    yield tmp_path, con
    con.close()


def merge_state(project: Path) -> Path:
    return project / ".snapstore" / "MERGE_HEAD"


def test_manual_merge_through_the_cli(project) -> None:
    cwd, con = project
    ours = rows(con)
    stopped = snap(cwd, "merge", "feature", "--strategy", "manual", check=False)
    assert stopped.returncode == 1, stopped.stdout + stopped.stderr
    assert "merge stopped on conflicts" in stopped.stdout and "2 conflicts" in stopped.stdout
    assert "conflict items id=1 (cells: a) -> unresolved" in stopped.stdout
    assert "conflict items id=2 (modify/delete: a, b, id) -> unresolved" in stopped.stdout
    assert rows(con) == ours and merge_state(cwd).exists()

    listed = snap(cwd, "conflicts").stdout.splitlines()
    assert listed[0] == "items id=1: cells [unresolved]"
    assert listed[1].split() == ["a:", "base", "1", "ours", "20", "theirs", "10"]
    assert "items id=2: modify/delete [unresolved]" in listed and listed[-1] == "2 conflicts, 2 unresolved"
    as_json = [json.loads(line) for line in snap(cwd, "conflicts", "--json").stdout.splitlines()]
    assert [(c["key"], c["kind"], c["resolution"]) for c in as_json] == [
        ({"id": 1}, "cells", None),
        ({"id": 2}, "modify/delete", None),
    ]
    assert as_json[1]["theirs"] is None and as_json[1]["ours"] == {"a": 2, "b": "ours", "id": 2}

    early = snap(cwd, "merge", "--continue", check=False)
    assert early.returncode == 1 and "2 conflicts are not resolved yet" in early.stderr
    no_traceback(early)
    again = snap(cwd, "merge", "feature", "--strategy", "manual", check=False)
    assert again.returncode == 1 and "a merge is already in progress" in again.stderr
    moved = snap(cwd, "checkout", "feature", check=False)
    assert moved.returncode == 1 and "a merge is in progress" in moved.stderr
    both = snap(cwd, "conflicts", "resolve", "--ours", "--theirs", check=False)
    assert both.returncode == 1 and "exactly one of --ours and --theirs" in both.stderr
    unknown = snap(cwd, "conflicts", "resolve", "--theirs", "id=99", check=False)
    assert unknown.returncode == 1 and "no conflict with key id=99" in unknown.stderr

    assert snap(cwd, "conflicts", "resolve", "--theirs", "id=1").stdout.strip() == "resolved 1 conflicts as theirs"
    assert snap(cwd, "conflicts", "resolve", "--ours", "2").stdout.strip() == "resolved 1 conflicts as ours"
    assert snap(cwd, "conflicts").stdout.splitlines()[-1] == "2 conflicts, 0 unresolved"
    assert rows(con) == ours  # still nothing written
    done = snap(cwd, "merge", "--continue")
    assert "merged:" in done.stdout
    assert rows(con) == [(1, 10, "x"), (2, 2, "ours"), (3, 3, "theirs"), (4, 4, "ours")]
    assert rows(con, "other") == [(1, "theirs")]
    assert not merge_state(cwd).exists()
    head = json.loads(snap(cwd, "log", "--json", "-n", "1").stdout)[0]
    assert len(head["parents"]) == 2
    gone = snap(cwd, "conflicts", check=False)
    assert gone.returncode == 1 and "no merge in progress" in gone.stderr
    assert snap(cwd, "diff", "HEAD", "--exit-code", check=False).returncode == 0


def test_abort_leaves_the_database_and_allows_a_new_merge(project) -> None:
    cwd, con = project
    ours = rows(con)
    assert snap(cwd, "merge", "feature", "--strategy", "manual", check=False).returncode == 1
    snap(cwd, "conflicts", "resolve", "--theirs")
    aborted = snap(cwd, "merge", "--abort")
    assert aborted.stdout.strip() == "merge aborted; the database was not changed by it"
    assert rows(con) == ours and not merge_state(cwd).exists()
    nothing = snap(cwd, "merge", "--abort", check=False)
    assert nothing.returncode == 1 and "no merge in progress" in nothing.stderr
    snap(cwd, "merge", "feature", "--strategy", "database_wins")
    assert rows(con) == [(1, 20, "x"), (2, 2, "ours"), (3, 3, "theirs"), (4, 4, "ours")]


def test_continue_is_refused_when_head_moved(project) -> None:
    cwd, con = project
    assert snap(cwd, "merge", "feature", "--strategy", "manual", check=False).returncode == 1
    snap(cwd, "conflicts", "resolve", "--theirs")
    con.execute("UPDATE items SET b = 'later' WHERE id = 4")
    con.commit()
    snap(cwd, "commit", "-m", "moves HEAD while the merge waits")
    before = rows(con)
    proc = snap(cwd, "merge", "--continue", check=False)
    assert proc.returncode == 1 and proc.stderr.splitlines() == [
        "error: HEAD moved since the merge started",
        "hint: snap merge --abort, then merge again",
    ]
    assert rows(con) == before and merge_state(cwd).exists()
    snap(cwd, "merge", "--abort")


def test_continue_is_refused_when_the_live_database_changed(project) -> None:
    cwd, con = project
    assert snap(cwd, "merge", "feature", "--strategy", "manual", check=False).returncode == 1
    snap(cwd, "conflicts", "resolve", "--theirs")
    con.execute("UPDATE items SET b = 'meanwhile' WHERE id = 4")
    con.commit()
    before = rows(con)
    proc = snap(cwd, "merge", "--continue", check=False)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0] == "error: the live database changed since the merge started"
    assert rows(con) == before and merge_state(cwd).exists()
    with Repo.open(cwd) as repo:  # the API says the same
        with pytest.raises(MergeError, match="live database changed"):
            repo.merge_continue()


# --- merges that are refused ---------------------------------------------------------------------


def refused(cwd: Path, con: sqlite3.Connection, *args: str) -> str:
    """Run a merge that must be refused; returns its error line."""
    before = rows(con), rows(con, "other")
    proc = snap(cwd, "merge", *args, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    no_traceback(proc)
    assert (rows(con), rows(con, "other")) == before
    assert not merge_state(cwd).exists()
    return proc.stderr.splitlines()[0]


def test_unknown_strategy_table_and_missing_arguments(project) -> None:
    cwd, con = project
    assert refused(cwd, con, "feature", "--strategy", "mine") == "error: unknown strategy 'mine'"
    assert refused(cwd, con, "feature") == "error: snap merge needs REV and --strategy"
    assert (
        refused(cwd, con, "feature", "--strategy", "backup_wins", "--tables", "nope,other,never")
        == "error: no table 'nope' in the snapshot"  # the first of them
    )
    assert refused(cwd, con, "nowhere", "--strategy", "backup_wins").startswith("error: ")


def test_tables_limits_the_merge(project) -> None:
    cwd, con = project
    snap(cwd, "merge", "feature", "--strategy", "backup_wins", "--tables", "other")
    assert rows(con, "other") == [(1, "theirs")]
    assert rows(con) == [(1, 20, "x"), (2, 2, "ours"), (3, 3, "x"), (4, 4, "ours")]  # untouched


def test_a_table_only_the_snapshot_has_is_refused(project) -> None:
    cwd, con = project
    con.execute("DROP TABLE other")
    con.commit()
    before = rows(con)
    proc = snap(cwd, "merge", "feature", "--strategy", "backup_wins", check=False)
    assert proc.returncode == 1
    no_traceback(proc)
    assert proc.stderr.splitlines() == [
        "error: table 'other' is in the snapshot but not in the database",
        "hint: create it first, or leave it out with --tables",
    ]
    assert rows(con) == before and not merge_state(cwd).exists()
    snap(cwd, "merge", "feature", "--strategy", "backup_wins", "--tables", "items")  # as the hint says
    assert rows(con) == [(1, 10, "x"), (3, 3, "theirs"), (4, 4, "ours")]


@pytest.mark.parametrize("change", ["ADD COLUMN c TEXT", "DROP COLUMN b"])
def test_different_columns_are_refused(project, change: str) -> None:
    """A column more, or one fewer, in the database than in the snapshot."""
    cwd, con = project
    con.execute(f"ALTER TABLE items {change}")
    con.commit()
    assert (
        refused(cwd, con, "feature", "--strategy", "backup_wins")
        == "error: table 'items' has different columns in the database and in the snapshot"
    )


@pytest.mark.parametrize("key", [["a", "b"], ["id", "a"]])
def test_a_different_key_is_refused(project, key: list[str]) -> None:
    cwd, con = project
    with Repo.open(cwd) as repo:  # the database's side is keyed otherwise from now on
        repo.config.table["items"] = TableConfig(key=key)
        repo.store.save_config()
    assert refused(cwd, con, "feature", "--strategy", "backup_wins").startswith(
        f"error: table 'items' is keyed differently in the database ({key}) and the snapshot (['id'])"
    )


def test_an_unknown_ignored_column_is_refused(project) -> None:
    cwd, con = project
    with Repo.open(cwd) as repo:
        repo.config.table["items"] = TableConfig(ignore=["updated_at", "a", "deleted_at"])
        repo.store.save_config()
    assert (  # the first of them
        refused(cwd, con, "feature", "--strategy", "backup_wins")
        == "error: table 'items' has no column 'updated_at' to ignore"
    )


@pytest.mark.parametrize("key", [["id", "a"], ["a"]])
def test_a_key_changed_since_the_common_base_is_refused(tmp_path: Path, key: list[str]) -> None:
    """Both sides keyed otherwise now than their common base, by id: the base's keys cannot be
    matched with theirs."""
    con = sqlite3.connect(tmp_path / "db.sqlite")
    con.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, a INTEGER, b TEXT)")
    con.execute("CREATE TABLE other (id INTEGER PRIMARY KEY, v TEXT)")
    con.execute("INSERT INTO other VALUES (1, 'base')")
    put(con, BASE)
    with Repo.init(tmp_path, "db.sqlite") as repo:
        repo.commit("base")
        repo.create_branch("feature")
        repo.config.table["items"] = TableConfig(key=key)
        repo.store.save_config()
    with Repo.open(tmp_path) as repo:  # (a checkout of feature would refuse the key too)
        repo.refs.set_symbolic("HEAD", "refs/heads/feature")
        put(con, [(1, 10, "x"), (2, 2, "x"), (3, 3, "theirs")])
        repo.commit("theirs")
        repo.refs.set_symbolic("HEAD", "refs/heads/main")
        put(con, [(1, 1, "ours"), (2, 2, "x"), (3, 3, "x"), (4, 4, "x")])
        repo.commit("ours")
    assert refused(tmp_path, con, "feature", "--strategy", "backup_wins") == (
        f"error: table 'items' is keyed by {key} on both sides but by ['id'] in their common base"
    )
    con.close()
