"""kill -9 at random moments of `snap commit` and `snap merge`: old state or new, never between.

Each trial forks a `snap` child (tests/forkrun.py: the real CLI, warm, so the random moment
falls in snapgit's work rather than in interpreter start-up) and SIGKILLs it after a random delay
drawn over the length of an uninterrupted run. Afterwards:

* `snap verify --read-data` finds no problem (leftover files of the interrupted write aside);
* the branch names a complete commit: the old one, or a new one whose parent is the old one;
* for a merge, the live database equals its state before the merge or after it, table by table,
  row by row, where "after" is what the three-way rules give (tests/mergemodel.py), not what an
  uninterrupted run of the same code wrote; and the history records that state: the next
  commit's tree is the pre-merge snapshot's or the uninterrupted merge's, and `snap diff HEAD
  --exit-code` finds the live database equal to it;
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
    """A kill inside the ref update leaves the lock. The killed process's lease names it, so the
    next writer of that ref removes it (its owner is provably dead), says so, and goes on; only a
    kill between taking the lock and recording it in the lease leaves one that the next writer
    must refuse, until `snap unlock`. (Call it after looking at the outcome: it may commit.)"""
    lock = cwd / ".snapstore" / "refs" / "heads" / f"{branch}.lock"
    if not lock.exists():
        return False
    probe = forkrun.run(cwd, "commit", "-m", "after a kill", "--allow-empty", env={"SNAP_LOCK_TIMEOUT": "0.2"})
    if probe.returncode == 4:
        assert "locked" in probe.stderr, probe
        ok(cwd, "unlock")
    else:
        assert probe.returncode == 0 and "left by a killed process" in probe.stderr, probe
    assert not lock.exists()
    return True


def assert_store_whole(cwd: Path) -> dict:
    """verify --read-data is clean; returns the head commit's log entry."""
    check = forkrun.run(cwd, "verify", "--read-data", "--json")
    assert check.returncode == 0, check.stdout + check.stderr
    assert json.loads(check.stdout)["ok"]
    return json.loads(ok(cwd, "log", "--json", "-n", "1"))[0]


class KillClock:
    """When to kill: half the moments uniform over a run, half over its last third, where
    objects are published and the ref moves. The length of a run is first measured, then
    follows the runs that end before their kill (a moving average of how long they took) and
    grows when a kill after the supposed end still finds nothing done: on a busy machine runs
    vary several-fold, and the kills must keep landing around the end."""

    def __init__(self, duration: float, seed: int) -> None:
        self.duration = duration
        self.rng = random.Random(seed)
        self.delay = 0.0

    def kill(self, child) -> bool:
        """Kill ``child`` at the next moment; False if it ended before (its time is noted)."""
        d = self.duration
        self.delay = self.rng.uniform(0, d) if self.rng.random() < 0.5 else self.rng.uniform(d * 0.67, d * 1.3)
        started = time.monotonic()
        deadline = started + self.delay
        while time.monotonic() < deadline:
            if child.poll() is not None:
                self.duration = 0.7 * self.duration + 0.3 * (time.monotonic() - started)
                return False
            time.sleep(0.002)
        return child.kill()

    def nothing_done(self) -> None:
        if self.delay >= self.duration:
            self.duration *= 1.25


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
    clock = KillClock(timed(tmp_path, "commit", "-m", "timing"), 1234)  # kills spread over a whole commit
    outcomes = {"old": 0, "new": 0, "locked": 0, "finished": 0}
    for trial in range(TRIALS):
        con.execute("UPDATE t SET n = n + 1 WHERE id % 37 = ?", (trial % 37,))
        con.commit()
        before = branch_head(tmp_path)
        child = forkrun.start(tmp_path, "commit", "-m", f"trial {trial}")
        if not clock.kill(child):
            outcomes["finished"] += 1
            assert child.wait() == 0
        head = assert_store_whole(tmp_path)
        if head["id"] == before:
            outcomes["old"] += 1
            clock.nothing_done()
        else:
            assert head["parents"] == [before] and head["message"] == f"trial {trial}"
            outcomes["new"] += 1
        shown = json.loads(ok(tmp_path, "show", "--json"))
        assert shown["tables"]["t"]["rows"] == 4000
        outcomes["locked"] += unlock_if_needed(tmp_path)
    print(outcomes)
    assert TRIALS - outcomes["finished"] >= TRIALS // 2, f"too few commits were killed mid-way: {outcomes}"
    assert outcomes["old"] and outcomes["new"] >= TRIALS // 10, outcomes
    ok(tmp_path, "commit", "-m", "after the crashes", "--allow-empty")
    ok(tmp_path, "verify", "--read-data")


# --- merge ------------------------------------------------------------------------------------

import shutil  # noqa: E402

import pytest  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from mergemodel import merge_table  # noqa: E402
from snapgit import Repo  # noqa: E402

# kills per database: every trial resets a server database, so the servers get fewer
MERGE_TRIALS = {"sqlite": TRIALS, "postgresql": max(8, TRIALS // 6), "mariadb": max(8, TRIALS // 6)}


def _tables() -> tuple[sa.MetaData, sa.Table, sa.Table]:
    meta = sa.MetaData()
    parent = sa.Table(
        "parent",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(40), nullable=False),
    )
    child = sa.Table(
        "child",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("parent.id"), nullable=False),
        sa.Column("note", sa.String(40)),
    )
    return meta, parent, child


def contents(engine: sa.Engine) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {
            t: [tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {t} ORDER BY id"))] for t in ("parent", "child")
        }


def load(engine: sa.Engine, state: dict[str, list[tuple]]) -> None:
    _meta, parent, child = _tables()
    with engine.begin() as conn:
        conn.execute(child.delete())
        conn.execute(parent.delete())
        conn.execute(parent.insert(), [dict(zip(("id", "name"), r, strict=False)) for r in state["parent"]])
        conn.execute(child.insert(), [dict(zip(("id", "parent_id", "note"), r, strict=False)) for r in state["child"]])


@pytest.mark.parametrize("db_kind", ["sqlite", "postgresql", "mariadb"])
def test_kill_9_during_merge_leaves_database_before_or_after(db_kind: str, make_db_url, tmp_path: Path) -> None:
    url = make_db_url(db_kind)
    engine = sa.create_engine(url, poolclass=NullPool)  # no connection is open across a fork
    meta, _parent, _child = _tables()
    meta.create_all(engine)
    base = {
        "parent": [(i, f"p{i}") for i in range(1, 201)],
        "child": [(i, i % 200 + 1, f"n{i}") for i in range(1, 801)],
    }
    load(engine, base)
    repo = Repo.init(tmp_path, url)
    repo.commit("base")
    repo.create_branch("feature")
    repo.refs.set_symbolic("HEAD", "refs/heads/feature")
    theirs = {
        "parent": [(i, f"p{i}" if i % 7 else f"theirs {i}") for i in range(1, 221)],  # 20 new parents
        "child": [(i, i % 220 + 1, f"n{i}" if i % 11 else "theirs") for i in range(31, 901)],
    }
    load(engine, theirs)
    repo.commit("theirs")
    repo.refs.set_symbolic("HEAD", "refs/heads/main")
    ours = {
        "parent": [(i, f"p{i}" if i % 13 else f"ours {i}") for i in range(1, 201)],
        "child": [(i, i % 200 + 1, f"n{i}" if i % 17 else "ours") for i in range(1, 781)],
    }
    load(engine, ours)  # uncommitted: the merge first commits it
    old_head = repo.head().hex()
    repo.close()
    template = tmp_path / "template.snapstore"
    store = tmp_path / ".snapstore"
    shutil.copytree(store, template)

    def reset() -> None:
        shutil.rmtree(store)
        shutil.copytree(template, store)
        load(engine, ours)

    before = contents(engine)
    after = {
        name: sorted(
            merge_table(*({r[0]: r for r in state[name]} for state in (base, ours, theirs)), "backup_wins").values()
        )
        for name in ("parent", "child")
    }
    assert after != before and after["parent"][-1] == (220, "p220")
    clock = KillClock(timed(tmp_path, "merge", "feature", "--strategy", "backup_wins"), 99)
    assert contents(engine) == after, "an uninterrupted merge does not give what the merge rules say"
    merge_commit = json.loads(ok(tmp_path, "log", "--json", "-n", "1"))[0]
    trees = {
        "after": merge_commit["tree"],  # (the pre-merge snapshot is the merge's first parent)
        "before": json.loads(ok(tmp_path, "show", merge_commit["parents"][0], "--json"))["tree"],
    }
    outcomes = {"before": 0, "after": 0, "finished": 0, "locked": 0}
    for _trial in range(MERGE_TRIALS[db_kind]):
        reset()
        child = forkrun.start(tmp_path, "merge", "feature", "--strategy", "backup_wins")
        if not clock.kill(child):
            outcomes["finished"] += 1
            assert child.wait() == 0
        head = assert_store_whole(tmp_path)
        now = contents(engine)
        assert now in (before, after), "the database is neither as before the merge nor as after it"
        outcomes["before" if now == before else "after"] += 1
        if now == before:
            clock.nothing_done()
        if head["id"] != old_head:  # the pre-merge snapshot, or the merge commit on top of it
            by_id = {c["id"]: c for c in json.loads(ok(tmp_path, "log", "--json"))}
            first_parents, c = [], head
            while c["parents"] and len(first_parents) < 2:
                first_parents.append(c["parents"][0])
                c = by_id[c["parents"][0]]
            assert old_head in first_parents, head
        outcomes["locked"] += unlock_if_needed(tmp_path)
        ok(tmp_path, "commit", "-m", "after the crash", "--allow-empty")
        # the recorded state is the live one, however far the merge got: the merged one after it
        recorded = json.loads(ok(tmp_path, "log", "--json", "-n", "1"))[0]["tree"]
        assert recorded == trees["before" if now == before else "after"]
        same = forkrun.run(tmp_path, "diff", "HEAD", "--stat", "--exit-code")
        assert same.returncode == 0, same.stdout + same.stderr
    print(db_kind, outcomes)
    killed = MERGE_TRIALS[db_kind] - outcomes["finished"]
    assert killed >= MERGE_TRIALS[db_kind] // 3, f"too few merges were killed mid-way: {outcomes}"
    if db_kind == "sqlite":
        assert outcomes["before"] >= 5 and outcomes["after"] - outcomes["finished"] >= 2, outcomes
    engine.dispose()
