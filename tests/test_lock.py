"""Store locks (snapgit/lock.py) between real processes: a writer lease keeps gc out, the gc lock
keeps writers out, a dead owner's lock is reclaimed, a live one is never stolen."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from snapgit.store.lock import LockInfo, StoreLocks

SNAP = [sys.executable, "-m", "snapgit.cli"]
FAST = {**os.environ, "SNAP_LOCK_TIMEOUT": "0.5"}

HOLD = """
import sys, time
from pathlib import Path
from snapgit.store.lock import StoreLocks
locks = StoreLocks(Path(sys.argv[1]))
with (locks.gc() if sys.argv[2] == "gc" else locks.writing()):
    print("held", flush=True)
    time.sleep(60)
"""


def snap(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAP, *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=FAST)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    con = sqlite3.connect(tmp_path / "db.sqlite")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}") for i in range(500)])
    con.commit()
    con.close()
    assert snap(tmp_path, "init", "--db", "db.sqlite").returncode == 0
    assert snap(tmp_path, "commit", "-m", "one").returncode == 0
    return tmp_path


def hold(store: Path, kind: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(store / ".snapstore"), kind], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_lock(path: Path, **fields) -> None:
    doc = {
        "kind": "writer",
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "owner": "0" * 16,
        "started": time.time(),
        "refs": [],
    }
    doc.update(fields)
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(doc))


def test_a_live_gc_lock_keeps_writers_out_and_is_not_stolen(store: Path) -> None:
    holder = hold(store, "gc")
    try:
        proc = snap(store, "commit", "-m", "two", "--allow-empty")
        assert proc.returncode == 4, proc.stderr
        assert proc.stderr.startswith("error: snap gc is running on this store (pid ")
        assert (store / ".snapstore" / "locks" / "gc.json").exists()
        assert not list((store / ".snapstore" / "locks").glob("writer-*"))  # it backed off
        assert snap(store, "unlock").returncode == 0
        assert (store / ".snapstore" / "locks" / "gc.json").exists()  # alive here: kept
    finally:
        holder.kill()
        holder.wait()
    # killed: the next writer reclaims the lock, says so, and commits
    proc = snap(store, "commit", "-m", "two", "--allow-empty")
    assert proc.returncode == 0, proc.stderr
    assert "note: removed locks/gc.json, left by a killed process" in proc.stderr


def test_a_live_writer_lease_keeps_gc_out(store: Path) -> None:
    holder = hold(store, "writer")
    try:
        proc = snap(store, "gc", "--prune=now")
        assert proc.returncode == 4, proc.stderr
        assert "snap command(s) are writing to this store" in proc.stderr
        assert not (store / ".snapstore" / "locks" / "gc.json").exists()  # released on refusal
        assert len(list((store / ".snapstore" / "locks").glob("writer-*.json"))) == 1
    finally:
        holder.kill()
        holder.wait()
    proc = snap(store, "gc", "--prune=now")
    assert proc.returncode == 0, proc.stderr
    assert "left by a killed process" in proc.stderr


def test_a_dead_writer_ref_lock_is_reclaimed_but_an_unknown_one_is_not(store: Path) -> None:
    root = store / ".snapstore"
    ref_lock = root / "refs" / "heads" / "main.lock"
    ref_lock.write_text("")
    # no lease names it: nobody can tell whether its owner lives; the commit is refused
    proc = snap(store, "commit", "-m", "two", "--allow-empty")
    assert proc.returncode == 4 and "locked" in proc.stderr
    # a dead process's lease names it: reclaimed
    write_lock(root / "locks" / "writer-dead.json", pid=dead_pid(), refs=["refs/heads/main.lock"])
    proc = snap(store, "commit", "-m", "two", "--allow-empty")
    assert proc.returncode == 0, proc.stderr
    assert "removed refs/heads/main.lock" in proc.stderr
    assert not (root / "locks" / "writer-dead.json").exists()


def test_a_lock_of_another_host_or_a_live_pid_is_never_judged_dead(store: Path) -> None:
    root = store / ".snapstore"
    locks = StoreLocks(root)
    write_lock(root / "locks" / "writer-other.json", pid=dead_pid(), host="another-host")
    assert not LockInfo.read(root / "locks" / "writer-other.json").dead()
    proc = snap(store, "gc", "--prune=now")
    assert proc.returncode == 4
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.2)
        path = root / "locks" / "writer-live.json"
        write_lock(path, pid=sleeper.pid)
        assert not LockInfo.read(path).dead()
        # the same pid, but the lock is older than the process: the pid was reused
        write_lock(path, pid=sleeper.pid, started=time.time() - 3600)
        assert LockInfo.read(path).dead()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert locks.reclaim_dead() == ["locks/writer-live.json"]


def test_unlock_removes_what_cannot_be_judged(store: Path) -> None:
    root = store / ".snapstore"
    write_lock(root / "locks" / "writer-other.json", pid=1234, host="another-host")
    (root / "refs" / "heads" / "main.lock").write_text("")
    proc = snap(store, "unlock")
    assert proc.returncode == 0
    assert "removed refs/heads/main.lock" in proc.stdout and "removed locks/writer-other.json" in proc.stdout
    assert snap(store, "gc", "--prune=now").returncode == 0


def test_nested_operations_share_one_lease(tmp_path: Path) -> None:
    locks = StoreLocks(tmp_path)
    with locks.writing():
        with locks.writing():
            assert len(locks.leases()) == 1
        assert len(locks.leases()) == 1
    assert locks.leases() == []
