"""How `snap` ends when it is interrupted or the operating system refuses something
(snapgit.cli.app.main): Ctrl-C is exit 130, an OS error exit 1 with one line naming the file,
never a traceback; and the store is left as a clean refusal leaves it.

The interrupted command is a forked `snap` (tests/forkrun.py) whose ref update is made to wait,
so SIGINT lands at a known moment: objects written, the writer's lease held, the branch not yet
moved.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import forkrun


def ok(cwd: Path, *args: str) -> str:
    proc = forkrun.run(cwd, *args)
    assert proc.returncode == 0, f"snap {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def project(tmp_path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(tmp_path / "db.sqlite")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}") for i in range(2000)])
    con.commit()
    ok(tmp_path, "init", "--db", "db.sqlite")
    ok(tmp_path, "commit", "-m", "base")
    con.execute("UPDATE t SET v = 'changed' WHERE id % 10 = 0")
    con.commit()
    return con


def head(cwd: Path) -> str:
    return (cwd / ".snapstore" / "refs" / "heads" / "main").read_text().strip()


def test_ctrl_c_exits_130_and_leaves_the_store_whole(tmp_path: Path) -> None:
    con = project(tmp_path)
    before = head(tmp_path)
    ready = tmp_path / "ready"

    def wait_at_the_ref_update() -> None:
        from snapgit.store import refs

        # as a shell starts it: the forked child inherits the test process's SIGINT disposition and
        # signal mask, which a library another test loaded may have changed (once seen under CI:
        # the interrupt never arrived, and the commit finished after its 60 s wait)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

        real = refs.DiskRefs.set_if_equals

        def waiting(self, *args, **kwargs):
            ready.touch()
            time.sleep(60)
            return real(self, *args, **kwargs)

        refs.DiskRefs.set_if_equals = waiting

    child = forkrun.start(tmp_path, "commit", "-m", "interrupted", before=wait_at_the_ref_update)
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert child.poll() is None, child.result(["commit"])
        assert time.monotonic() < deadline, "the commit never reached its ref update"
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGINT)
    proc = child.result(["commit"])
    assert proc.returncode == 130, proc
    assert proc.stderr.splitlines() == ["interrupted"], proc.stderr  # one line, no traceback
    assert head(tmp_path) == before
    locks = tmp_path / ".snapstore" / "locks"
    assert not (locks.is_dir() and list(locks.glob("*.json")))  # the lease went with it
    assert not list((tmp_path / ".snapstore" / "refs").rglob("*.lock"))
    check = json.loads(ok(tmp_path, "verify", "--read-data", "--json"))
    assert check["ok"]
    after = forkrun.run(tmp_path, "commit", "-m", "after")
    assert after.returncode == 0 and "killed process" not in after.stderr, after
    con.close()


def test_an_os_error_exits_1_with_one_line(tmp_path: Path) -> None:
    con = project(tmp_path)
    before = head(tmp_path)
    tmp = tmp_path / ".snapstore" / "tmp"
    for p in tmp.iterdir():
        p.unlink()
    tmp.rmdir()
    tmp.write_text("not a directory")  # where a commit writes its pack first
    proc = forkrun.run(tmp_path, "commit", "-m", "two")
    assert proc.returncode == 1, proc
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [f"error: Not a directory: {tmp}/" + proc.stderr.split(f"{tmp}/")[1].strip()]
    assert head(tmp_path) == before
    tmp.unlink()
    tmp.mkdir(mode=0o700)
    ok(tmp_path, "commit", "-m", "two")
    ok(tmp_path, "verify", "--read-data")
    con.close()
