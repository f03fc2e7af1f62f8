"""Killing a commit that reads the change log (-9, at random moments) never loses a captured
change: whatever the kill left (nothing, the trees, the commit, the commit and a consumed log),
the next commit equals a full read of the database.

Each trial changes rows, forks a `snap commit` (tests/forkrun.py: the real CLI, warm) and kills
it at a random moment of its run; then a commit that is not killed must give exactly the tables
that a second store, which has no parent and so reads every row, reads from the database.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import forkrun
from snapgit import Repo
from snapgit.store.history import read_commit, read_root
from test_crash import KillClock, ok, timed, unlock_if_needed

TRIALS = int(os.environ.get("SNAP_CRASH_TRIALS", "30"))


def head_tables(cwd: Path) -> dict[str, bytes]:
    with Repo.open(cwd) as repo:
        head = repo.head()
        assert head is not None
        return dict(read_root(repo.objects, read_commit(repo.objects, head).tree).tables)


def full_read(oracle: Path) -> dict[str, bytes]:
    with Repo.open(oracle) as repo:
        return dict(repo.live_side().tables)


def test_kill_9_during_a_capture_commit_loses_no_change(tmp_path: Path) -> None:
    work, oracle = tmp_path / "work", tmp_path / "oracle"
    work.mkdir()
    oracle.mkdir()
    db = tmp_path / "db.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, n REAL)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, f"row {i}" * 3, i / 7) for i in range(4000)])
    con.commit()
    con.close()
    ok(work, "init", "--db", str(db))
    ok(oracle, "init", "--db", str(db))
    ok(work, "commit", "-m", "base")
    ok(work, "capture", "enable")
    ok(work, "commit", "-m", "first read of the log", "--allow-empty")
    con = sqlite3.connect(db)
    con.execute("UPDATE t SET n = n + 1 WHERE id % 41 = 40")
    con.commit()
    con.close()
    clock = KillClock(timed(work, "commit", "-m", "timing"), 4321)
    outcomes = {"killed": 0, "finished": 0, "read in full after": 0}
    for trial in range(TRIALS):
        con = sqlite3.connect(db)
        con.execute("UPDATE t SET n = n + 1 WHERE id % 41 = ?", (trial % 41,))
        con.execute("DELETE FROM t WHERE id = ?", (trial * 97 % 4000,))
        con.execute("INSERT INTO t VALUES (?, 'new', 0)", (10_000 + trial,))
        con.execute("UPDATE t SET id = ? WHERE id = ?", (20_000 + trial, trial * 89 % 4000 + 1))
        con.commit()
        con.close()
        child = forkrun.start(work, "commit", "-m", f"trial {trial}")
        before = head_tables(work)
        if clock.kill(child):
            outcomes["killed"] += 1
            if head_tables(work) == before:
                clock.nothing_done()
        else:
            outcomes["finished"] += 1
            assert child.wait() == 0
        unlock_if_needed(work)
        after = forkrun.run(work, "commit", "-m", f"after trial {trial}", "--allow-empty", "--json")
        assert after.returncode == 0, after.stderr
        if '"captured": false' in after.stdout:
            outcomes["read in full after"] += 1
        assert head_tables(work) == full_read(oracle), f"trial {trial}: a change was lost"
    print(outcomes)
    assert outcomes["killed"] >= TRIALS // 3, outcomes


def test_log_consumed_but_commit_never_written(tmp_path: Path) -> None:
    """The state a kill leaves between consuming the log and moving the branch: the reading's
    trees are stored and the log's base names them, but no commit does. The next commit's parent
    is not the base: it reads the table in full and loses nothing."""
    from snapgit.ops.commit import database_url, read_database

    db = tmp_path / "db.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"row {i}") for i in range(3000)])
    con.commit()
    (tmp_path / "oracle").mkdir()
    with Repo.init(tmp_path, str(db)) as repo, Repo.init(tmp_path / "oracle", str(db)) as oracle:
        repo.commit("base")
        repo.capture_enable()
        repo.commit("first read of the log", allow_empty=True)
        con.execute("UPDATE t SET v = 'changed' WHERE id % 100 = 0")
        con.commit()
        head = repo.head()
        read_database(repo.store, database_url(repo.store), start=head)  # consumes, commits nothing
        assert repo.head() == head
        result = repo.commit("after the crash")
        t = next(t for t in result.tables if t.name == "t")
        assert (
            not t.captured and t.capture_note == "the parent commit's table is not the one its log was last read into"
        )
        assert head_tables(tmp_path) == dict(oracle.live_side().tables)
        assert result.commit_id is not None
    con.close()
