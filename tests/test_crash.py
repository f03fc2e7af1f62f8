"""kill -9 at random moments of `snap commit` and `snap merge`: old state or new, never between.

Each trial forks a `snap` child (tests/forkrun.py: the real CLI, warm, so the random moment
falls in snapgit's work rather than in interpreter start-up) and SIGKILLs it after a random delay
drawn over the length of an uninterrupted run. Afterwards:

* `snap verify --read-data` finds no problem (leftover files of the interrupted write aside);
* the branch names a complete commit: the old one, or a new one whose parent is the old one;
* for a merge, the live database equals its state before the merge or after it, table by table,
  row by row;
* the next commit works (after `snap unlock`, when the kill left a ref lock behind).

CI runs SNAP_CRASH_TRIALS (default 50) kills per test; set it higher for a longer hunt.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import time
from pathlib import Path

import forkrun

TRIALS = int(os.environ.get("SNAP_CRASH_TRIALS", "50"))


def ok(cwd: Path, *args: str) -> str:
    proc = forkrun.run(cwd, *args)
    assert proc.returncode == 0, f"snap {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def branch_head(cwd: Path, branch: str = "main") -> str | None:
    path = cwd / ".snapstore" / "refs" / "heads" / branch
    return path.read_text().strip() if path.exists() else None


def unlock_if_needed(cwd: Path, branch: str = "main") -> bool:
    """A kill inside the ref update leaves the lock: the next writer refuses until `snap unlock`."""
    lock = cwd / ".snapstore" / "refs" / "heads" / f"{branch}.lock"
    if not lock.exists():
        return False
    refused = forkrun.run(cwd, "commit", "-m", "refused", "--allow-empty", env={"SNAP_LOCK_TIMEOUT": "0.2"})
    assert refused.returncode == 4 and "locked" in refused.stderr, refused
    ok(cwd, "unlock")
    assert not lock.exists()
    return True


def assert_store_whole(cwd: Path) -> dict:
    """verify --read-data is clean; returns the head commit's log entry."""
    check = forkrun.run(cwd, "verify", "--read-data", "--json")
    assert check.returncode == 0, check.stdout + check.stderr
    assert json.loads(check.stdout)["ok"]
    return json.loads(ok(cwd, "log", "--json", "-n", "1"))[0]


def kill_delay(rng: random.Random, duration: float) -> float:
    """A moment in a run of ``duration`` s: half uniform over the whole run, half over its last
    third, where objects are published and the ref moves."""
    if rng.random() < 0.5:
        return rng.uniform(0, duration)
    return rng.uniform(duration * 0.67, duration * 1.05)


def timed(cwd: Path, *args: str) -> float:
    started = time.monotonic()
    ok(cwd, *args)
    return time.monotonic() - started


def test_kill_9_during_commit_leaves_a_consistent_store(tmp_path: Path) -> None:
    con = sqlite3.connect(tmp_path / "db.sqlite")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, n REAL)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, f"row {i}" * 3, i / 7) for i in range(4000)])
    con.commit()
    ok(tmp_path, "init", "--db", "db.sqlite")
    ok(tmp_path, "commit", "-m", "base")
    con.execute("UPDATE t SET v = 'x' WHERE id % 50 = 0")
    con.commit()
    duration = timed(tmp_path, "commit", "-m", "timing")  # spreads the kills over a whole commit
    rng = random.Random(1234)
    outcomes = {"old": 0, "new": 0, "locked": 0, "finished": 0}
    for trial in range(TRIALS):
        con.execute("UPDATE t SET n = n + 1 WHERE id % 37 = ?", (trial % 37,))
        con.commit()
        before = branch_head(tmp_path)
        child = forkrun.start(tmp_path, "commit", "-m", f"trial {trial}")
        time.sleep(kill_delay(rng, duration))
        if not child.kill():
            outcomes["finished"] += 1
            assert child.wait() == 0
        outcomes["locked"] += unlock_if_needed(tmp_path)
        head = assert_store_whole(tmp_path)
        if head["id"] == before:
            outcomes["old"] += 1
        else:
            assert head["parents"] == [before] and head["message"] == f"trial {trial}"
            outcomes["new"] += 1
        shown = json.loads(ok(tmp_path, "show", "--json"))
        assert shown["tables"]["t"]["rows"] == 4000
    print(outcomes)
    assert TRIALS - outcomes["finished"] >= TRIALS // 2, f"too few commits were killed mid-way: {outcomes}"
    assert outcomes["old"] and outcomes["new"] >= TRIALS // 10, outcomes
    ok(tmp_path, "commit", "-m", "after the crashes", "--allow-empty")
    ok(tmp_path, "verify", "--read-data")
