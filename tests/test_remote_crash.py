"""kill -9 at random moments of `snap push`, to a directory remote and to S3 (moto): the remote
stays verifiable (a reader never sees a ref to a missing object), its ref is the old commit or
the new one, and the next push completes without sending again what arrived.

Each trial starts `snap push` and kills it at a random moment (the KillClock of test_crash.py):
for a directory, a warm forked child (tests/forkrun.py); for S3, a new process (obstore's
runtime threads and moto's server thread must not be forked). SNAP_CRASH_TRIALS (default 50
there) is quartered here, and halved again for S3, whose runs start a whole interpreter."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import forkrun
from remotekit import make_db
from snapgit.remote.layout import RemoteRepo
from snapgit.remote.open import open_remote
from test_crash import KillClock, ok, timed

TRIALS = max(4, int(os.environ.get("SNAP_CRASH_TRIALS", "50")) // 4)


class _Process:
    """A `snap` child in a new process, with the part of forkrun.Child the KillClock uses."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "snapgit.cli", *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def poll(self) -> int | None:
        return self.proc.poll()

    def kill(self) -> bool:
        if self.proc.poll() is not None:
            return False
        self.proc.kill()
        self.proc.wait()
        return True

    def wait(self) -> int:
        self.proc.communicate(timeout=120)
        return self.proc.returncode


def _ok_process(cwd: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "snapgit.cli", *args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"snap {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_kill_9_during_push_leaves_a_verifiable_remote(tmp_path: Path, remote_kind: str, make_remote_url) -> None:
    trials = TRIALS if remote_kind == "dir" else max(6, TRIALS // 2)
    make_db(tmp_path / "db.sqlite", rows=20000)
    remote = make_remote_url(remote_kind)
    ok(tmp_path, "init", "--db", "db.sqlite")
    ok(tmp_path, "commit", "-m", "base")
    ok_ = ok if remote_kind == "dir" else _ok_process  # S3: never in a forked child
    ok_(tmp_path, "remote", "add", "origin", remote)
    repo = RemoteRepo(open_remote(remote))
    con = sqlite3.connect(tmp_path / "db.sqlite")
    outcomes = {"old": 0, "new": 0, "finished": 0}
    clock = None
    for trial in range(trials):
        con.execute("UPDATE items SET price = price + 1 WHERE id % 97 = ?", (trial % 97,))
        con.commit()
        ok(tmp_path, "commit", "-m", f"trial {trial}")
        local = (tmp_path / ".snapstore/refs/heads/main").read_text().strip()
        before = repo.read_ref("refs/heads/main")
        if clock is None:  # the first push (the whole database) sets the pace: kills land in it
            started = time.monotonic()
            assert _Process(tmp_path, "push").wait() == 0 if remote_kind == "s3" else timed(tmp_path, "push")
            clock = KillClock(time.monotonic() - started, 4321)
            continue
        child = forkrun.start(tmp_path, "push") if remote_kind == "dir" else _Process(tmp_path, "push")
        if not clock.kill(child):
            outcomes["finished"] += 1
            assert child.wait() == 0
        assert json.loads(ok_(tmp_path, "verify", "--remote", "origin", "--read-data", "--json"))["ok"]
        after = repo.read_ref("refs/heads/main")
        if after == before:
            outcomes["old"] += 1
            clock.nothing_done()
        else:
            assert after is not None and after.id == local
            outcomes["new"] += 1
        resumed = json.loads(ok_(tmp_path, "push", "--json"))
        assert repo.read_ref("refs/heads/main").id == local
        # at most the packs of the killed push's last, unfinished pack are written again
        assert resumed["packs_sent"] <= 1, resumed
    con.close()
    print(outcomes)
    assert trials - 1 - outcomes["finished"] >= trials // 4, f"too few pushes were killed mid-way: {outcomes}"
    assert json.loads(ok_(tmp_path, "verify", "--remote", "origin", "--read-data", "--json"))["ok"]
