"""`snap capture enable|disable|status` through the real CLI, in a subprocess."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path


def snap(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snapgit.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_capture_commands(tmp_path: Path) -> None:
    con = sqlite3.connect(tmp_path / "app.db")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    con.execute("CREATE TABLE loose (v TEXT)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(i, str(i)) for i in range(100)])
    con.commit()
    assert snap(tmp_path, "init", "--db", "app.db").returncode == 0
    off = snap(tmp_path, "capture", "status", "--json")
    assert off.returncode == 0 and json.loads(off.stdout)["enabled"] is False

    refused = snap(tmp_path, "capture", "enable", "--tables", "loose")
    assert refused.returncode == 1 and refused.stderr.startswith("error: table loose has no primary key")
    assert "Traceback" not in refused.stderr
    assert json.loads(snap(tmp_path, "capture", "status", "--json").stdout)["enabled"] is False  # nothing changed

    on = snap(tmp_path, "capture", "enable")
    assert on.returncode == 0, on.stderr
    assert "change capture on for 1 table(s): t" in on.stdout and "table loose has no key" in on.stderr
    first = snap(tmp_path, "commit", "-m", "first")
    assert "note: table t read in full: its log has not been read by a commit yet" in first.stderr
    con.execute("UPDATE t SET v = 'x' WHERE id < 5")
    con.commit()
    status = json.loads(snap(tmp_path, "capture", "status", "--json").stdout)
    assert status["tables"]["t"] == {
        "captured": True,
        "key": ["id"],
        "pending": 5,
        "next_commit": "reads its logged keys",
        "why": None,
    }
    assert status["tables"]["loose"]["captured"] is False
    second = json.loads(snap(tmp_path, "commit", "-m", "second", "--json").stdout)
    assert second["tables"]["t"]["captured"] is True and second["tables"]["t"]["rows"] == 100
    assert json.loads(snap(tmp_path, "capture", "status", "--json").stdout)["tables"]["t"]["pending"] == 0

    off = snap(tmp_path, "capture", "disable")
    assert off.returncode == 0 and "change capture off for 1 table(s): t" in off.stdout
    names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE name LIKE '_snapgit%'")}
    assert names == set()
    con.close()


def test_status_and_diff_list_the_logged_changes(tmp_path: Path) -> None:
    """`snap status` and `snap diff` read a captured table's changes from its log without
    building its tree: a key logged by a write that changed nothing is no change, a key
    inserted and deleted again neither, and rows added, removed and changed are counted and
    shown as a full read shows them."""
    con = sqlite3.connect(tmp_path / "app.db")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(i, str(i)) for i in range(2000)])
    con.commit()
    assert snap(tmp_path, "init", "--db", "app.db").returncode == 0
    assert snap(tmp_path, "capture", "enable").returncode == 0
    assert snap(tmp_path, "commit", "-m", "first").returncode == 0
    assert snap(tmp_path, "commit", "-m", "base").returncode == 0  # HEAD's table is the log's base
    con.execute("UPDATE t SET v = v WHERE id < 50")  # logged, unchanged
    con.execute("UPDATE t SET v = 'x' WHERE id IN (7, 700, 1999)")
    con.execute("DELETE FROM t WHERE id IN (3, 1500)")
    con.execute("INSERT INTO t VALUES (5000, 'new'), (-1, 'low')")
    con.execute("INSERT INTO t VALUES (6000, 'gone')")
    con.execute("DELETE FROM t WHERE id = 6000")
    con.commit()
    pending = json.loads(snap(tmp_path, "capture", "status", "--json").stdout)["tables"]["t"]
    assert pending["next_commit"] == "reads its logged keys" and pending["pending"] > 50
    status = snap(tmp_path, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["tables"] == {"t": {"added": 2, "removed": 2, "changed": 3, "schema": []}}
    diff = snap(tmp_path, "diff", "--json")
    assert diff.returncode == 0, diff.stderr
    rows = [json.loads(line) for line in diff.stdout.splitlines()]
    assert [(r["op"], r["key"]["id"]) for r in rows] == [
        ("added", -1),
        ("removed", 3),
        ("changed", 7),
        ("changed", 700),
        ("removed", 1500),
        ("changed", 1999),
        ("added", 5000),
    ]
    assert rows[2]["old"]["v"] == "7" and rows[2]["new"]["v"] == "x"
    assert rows[6]["new"] == {"id": 5000, "v": "new"}
    con.close()


def test_commit_after_checkout_reads_through_the_log(tmp_path: Path) -> None:
    """checkout writes the other commit's rows through ordinary statements, which the triggers
    log; it then reads the captured tables through their logs, so the next commit reads
    through the log too instead of in full, and records the rows the database holds."""
    con = sqlite3.connect(tmp_path / "app.db")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(i, str(i)) for i in range(1000)])
    con.commit()
    assert snap(tmp_path, "init", "--db", "app.db").returncode == 0
    assert snap(tmp_path, "capture", "enable").returncode == 0
    assert snap(tmp_path, "commit", "-m", "first").returncode == 0
    assert snap(tmp_path, "branch", "side").returncode == 0
    assert snap(tmp_path, "checkout", "side").returncode == 0
    con.execute("UPDATE t SET v = 'side' WHERE id < 10")
    con.execute("DELETE FROM t WHERE id = 500")
    con.commit()
    assert json.loads(snap(tmp_path, "commit", "-m", "on side", "--json").stdout)["tables"]["t"]["captured"]
    back = snap(tmp_path, "checkout", "main")
    assert back.returncode == 0, back.stderr
    assert con.execute("SELECT count(*), min(v) FROM t WHERE id < 10").fetchone() == (10, "0")
    con.execute("UPDATE t SET v = 'after' WHERE id = 900")
    con.commit()
    done = snap(tmp_path, "commit", "-m", "after checkout", "--json")
    assert done.returncode == 0, done.stderr
    t = json.loads(done.stdout)["tables"]["t"]
    assert t["captured"] is True and t["rows"] == 1000, t
    assert "read in full" not in done.stderr
    status = json.loads(snap(tmp_path, "status", "--json").stdout)
    assert status["clean"] is True
    rows = json.loads(snap(tmp_path, "diff", "HEAD~1", "HEAD", "--json").stdout.splitlines()[0])
    assert rows["key"] == {"id": 900} and rows["new"]["v"] == "after"
    con.close()
