"""kill -9 at random moments of `snap push` to a directory remote: the remote stays verifiable
(a reader never sees a ref to a missing object), its ref is the old commit or the new one, and
the next push completes without sending again what arrived.

Each trial forks a warm `snap push` child (tests/forkrun.py) and kills it at a random moment
(the KillClock of test_crash.py). SNAP_CRASH_TRIALS (default 50 there) is quartered here."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import forkrun
from remotekit import make_db
from snapgit.remote.layout import RemoteRepo
from snapgit.remote.open import open_remote
from test_crash import KillClock, ok, timed

TRIALS = max(4, int(os.environ.get("SNAP_CRASH_TRIALS", "50")) // 4)


def test_kill_9_during_push_leaves_a_verifiable_remote(tmp_path: Path) -> None:
    make_db(tmp_path / "db.sqlite", rows=20000)
    remote = tmp_path / "remote"
    ok(tmp_path, "init", "--db", "db.sqlite")
    ok(tmp_path, "commit", "-m", "base")
    ok(tmp_path, "remote", "add", "origin", str(remote))
    repo = RemoteRepo(open_remote(str(remote)))
    con = sqlite3.connect(tmp_path / "db.sqlite")
    outcomes = {"old": 0, "new": 0, "finished": 0}
    clock = None
    for trial in range(TRIALS):
        con.execute("UPDATE items SET price = price + 1 WHERE id % 97 = ?", (trial % 97,))
        con.commit()
        ok(tmp_path, "commit", "-m", f"trial {trial}")
        local = (tmp_path / ".snapstore/refs/heads/main").read_text().strip()
        before = repo.read_ref("refs/heads/main")
        if clock is None:  # the first push (the whole database) sets the pace: kills land in it
            clock = KillClock(timed(tmp_path, "push"), 4321)
            continue
        child = forkrun.start(tmp_path, "push")
        if not clock.kill(child):
            outcomes["finished"] += 1
            assert child.wait() == 0
        check = forkrun.run(tmp_path, "verify", "--remote", "origin", "--read-data", "--json")
        assert check.returncode == 0 and json.loads(check.stdout)["ok"], check.stdout + check.stderr
        after = repo.read_ref("refs/heads/main")
        if after == before:
            outcomes["old"] += 1
            clock.nothing_done()
        else:
            assert after is not None and after.id == local
            outcomes["new"] += 1
        resumed = json.loads(ok(tmp_path, "push", "--json"))
        assert repo.read_ref("refs/heads/main").id == local
        # at most the packs of the killed push's last, unfinished pack are written again
        assert resumed["packs_sent"] <= 1, resumed
    con.close()
    print(outcomes)
    assert TRIALS - 1 - outcomes["finished"] >= TRIALS // 4, f"too few pushes were killed mid-way: {outcomes}"
    assert json.loads(ok(tmp_path, "verify", "--remote", "origin", "--read-data", "--json"))["ok"]
