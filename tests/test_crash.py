"""kill -9 at random moments of `snap commit`: the store is the old state or the new one.

After each kill: `snap verify` finds no problem (leftover files of the interrupted write aside),
the branch names a complete commit, and the next commit works. CI runs SNAP_CRASH_TRIALS
(default 12) kills; set it higher for a longer hunt.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

SNAP = [sys.executable, "-m", "snapgit.cli"]


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAP, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_kill_9_during_commit_leaves_a_consistent_store(tmp_path: Path) -> None:
    con = sqlite3.connect(tmp_path / "db.sqlite")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, n REAL)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, f"row {i}" * 3, i / 7) for i in range(60_000)])
    con.commit()
    assert run(tmp_path, "init", "--db", "db.sqlite").returncode == 0
    assert run(tmp_path, "commit", "-m", "base").returncode == 0
    # how long a commit takes here, to spread the kills over it
    started = time.monotonic()
    con.execute("UPDATE t SET v = 'x' WHERE id % 50 = 0")
    con.commit()
    assert run(tmp_path, "commit", "-m", "timing").returncode == 0
    duration = time.monotonic() - started
    rng = random.Random(1234)
    trials = int(os.environ.get("SNAP_CRASH_TRIALS", "12"))
    killed = 0
    for trial in range(trials):
        con.execute("UPDATE t SET n = n + 1 WHERE id % 37 = ?", (trial % 37,))
        con.commit()
        before = json.loads(run(tmp_path, "log", "--json", "-n", "1").stdout)[0]["id"]
        proc = subprocess.Popen([*SNAP, "commit", "-m", f"trial {trial}"], cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, duration))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
        lock = tmp_path / ".snapstore" / "refs" / "heads" / "main.lock"
        if lock.exists():  # killed inside the ref update: the next commit refuses until unlocked
            refused = run(tmp_path, "commit", "-m", "refused", "--allow-empty")
            assert refused.returncode == 4 and "locked" in refused.stderr
            assert run(tmp_path, "unlock").returncode == 0
            assert not lock.exists()
        check = run(tmp_path, "verify", "--read-data", "--json")
        assert check.returncode == 0, check.stdout + check.stderr
        after = json.loads(run(tmp_path, "log", "--json", "-n", "1").stdout)[0]
        assert after["id"] == before or after["parents"] == [before]
        shown = run(tmp_path, "show", "--json")
        assert shown.returncode == 0 and json.loads(shown.stdout)["tables"]["t"]["rows"] == 60_000
    assert killed >= trials // 3, f"only {killed} of {trials} commits were killed mid-way"
    final = run(tmp_path, "commit", "-m", "after the crashes", "--allow-empty")
    assert final.returncode == 0, final.stderr
    assert run(tmp_path, "verify").returncode == 0
