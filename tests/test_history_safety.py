"""A refused or failed command leaves history as it was; the safety snapshot goes off the branch.

Merge, restore and ``checkout --force`` keep the live database they are about to overwrite as a
commit on ``refs/snap/safety`` (its parent HEAD's commit, each one a line of that ref's reflog),
never on the branch. These tests drive the real CLI in a subprocess, on SQLite, PostgreSQL and
MariaDB, and look at what each command leaves: HEAD, the branch, the branch's reflog, the
database, and the safety ref.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from snapgit import Repo

SAFETY = "refs/snap/safety"


def snap(cwd: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "snapgit.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == code, f"snap {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def snap_json(cwd: Path, *args: str, code: int = 0) -> object:
    return json.loads(snap(cwd, *args, "--json", code=code).stdout)


def log_ids(cwd: Path, rev: str = "HEAD") -> list[str]:
    return [c["id"] for c in snap_json(cwd, "log", rev)]  # type: ignore[union-attr]


def reflog(cwd: Path, ref: str = "refs/heads/main") -> str:
    path = cwd / ".snapstore" / "logs" / ref
    return path.read_text() if path.exists() else ""


def oplog(cwd: Path) -> str:
    return (cwd / ".snapstore" / "oplog.jsonl").read_text()


def head(cwd: Path) -> str:
    return (cwd / ".snapstore" / "refs" / "heads" / "main").read_text().strip()


def safety(cwd: Path) -> str | None:
    path = cwd / ".snapstore" / SAFETY
    return path.read_text().strip() if path.exists() else None


def parents(cwd: Path, rev: str) -> list[str]:
    return snap_json(cwd, "log", rev, "-n", "1")[0]["parents"]  # type: ignore[index]


# -- one table of rows ---------------------------------------------------------------------------

T = sa.Table(
    "t",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("v", sa.String(20)),
)


def put(engine: sa.Engine, rows: dict[int, str]) -> None:
    T.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(T.delete())
        if rows:
            conn.execute(T.insert(), [{"id": k, "v": v} for k, v in rows.items()])


def rows(engine: sa.Engine) -> dict[int, str]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(T.c.id, T.c.v)).all())  # type: ignore[arg-type]


def two_commits(db_url: str, engine: sa.Engine, tmp_path: Path) -> None:
    """main: one = {1: a, 2: b}, two = one + {3: c}."""
    put(engine, {1: "a", 2: "b"})
    with Repo.init(tmp_path, db_url) as repo:
        repo.commit("one")
        put(engine, {1: "a", 2: "b", 3: "c"})
        repo.commit("two")


def branches(db_url: str, engine: sa.Engine, tmp_path: Path, base: dict, ours: dict, theirs: dict) -> None:
    """main at ``base``, feature at ``theirs`` on top of it; HEAD on main; the live database
    ``ours`` (uncommitted)."""
    put(engine, base)
    with Repo.init(tmp_path, db_url) as repo:
        repo.commit("base")
        repo.create_branch("feature")
        repo.refs.set_symbolic("HEAD", "refs/heads/feature")
        put(engine, theirs)
        repo.commit("theirs")
        repo.refs.set_symbolic("HEAD", "refs/heads/main")
    put(engine, ours)


# -- restore -------------------------------------------------------------------------------------


def test_restore_leaves_history_alone_and_discarded_rows_stay_discarded(db_url, db_engine, tmp_path) -> None:
    two_commits(db_url, db_engine, tmp_path)
    put(db_engine, {1: "changed", 2: "b", 3: "c", 4: "uncommitted"})
    log_before, reflog_before = log_ids(tmp_path), reflog(tmp_path)
    one = log_ids(tmp_path, "HEAD~1")[0]

    doc = snap_json(tmp_path, "restore", "HEAD~1")
    assert rows(db_engine) == {1: "a", 2: "b"}
    assert log_ids(tmp_path) == log_before and reflog(tmp_path) == reflog_before  # HEAD did not move
    assert log_ids(tmp_path, "HEAD~1")[0] == one  # HEAD~1 means what it meant
    saved = safety(tmp_path)
    assert saved is not None and doc["safety_snapshot"] == saved and doc["safety_ref"] == SAFETY  # type: ignore[index]
    assert doc["undo"] == f"snap restore {saved}"  # type: ignore[index]
    assert parents(tmp_path, SAFETY) == [log_before[0]]

    # a second restore of HEAD gives HEAD's rows, not the ones the first restore discarded
    snap(tmp_path, "restore", "HEAD")
    assert rows(db_engine) == {1: "a", 2: "b", 3: "c"}
    assert log_ids(tmp_path) == log_before and reflog(tmp_path) == reflog_before

    # the text says where the snapshot went and how to undo; the undo gives the rows back
    put(db_engine, {9: "live"})
    proc = snap(tmp_path, "restore", "HEAD~1")
    newer = safety(tmp_path)
    assert newer is not None and newer != saved
    assert f"in {SAFETY}; to undo: snap restore {newer[:12]}" in proc.stdout
    snap(tmp_path, "restore", saved)
    assert rows(db_engine) == {1: "changed", 2: "b", 3: "c", 4: "uncommitted"}
    assert log_ids(tmp_path) == log_before


# -- refused and failed merges -------------------------------------------------------------------


def test_merge_refused_for_a_schema_difference_changes_nothing(db_url, db_engine, tmp_path) -> None:
    branches(db_url, db_engine, tmp_path, {1: "a"}, {1: "a"}, {1: "a", 2: "theirs"})
    with db_engine.begin() as conn:  # the live table gains a column the snapshot does not have
        conn.execute(sa.text("ALTER TABLE t ADD COLUMN w INTEGER"))
        conn.execute(sa.text("UPDATE t SET w = 7"))
    before, head_before, reflog_before = rows(db_engine), head(tmp_path), reflog(tmp_path)

    proc = snap(tmp_path, "merge", "feature", "--strategy", "backup_wins", code=1)
    assert "different columns" in proc.stderr
    assert head(tmp_path) == head_before and reflog(tmp_path) == reflog_before
    assert rows(db_engine) == before
    with db_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT w FROM t")).scalars().all() == [7]
    # the live database was kept off the branch, on the safety ref only
    saved = safety(tmp_path)
    assert saved is not None and saved not in log_ids(tmp_path)
    assert parents(tmp_path, SAFETY) == [head_before]
    assert log_ids(tmp_path, SAFETY)[:2] == [saved, head_before]
    assert not (tmp_path / ".snapstore" / "MERGE_HEAD").exists()


def test_merge_failing_on_a_foreign_key_changes_nothing(db_url, db_engine, tmp_path) -> None:
    meta = sa.MetaData()
    parent = sa.Table("parent", meta, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False))
    child = sa.Table(
        "child",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("parent.id")),
    )
    meta.create_all(db_engine)
    with db_engine.begin() as conn:
        conn.execute(parent.insert(), [{"id": 1}, {"id": 2}])
        conn.execute(child.insert(), [{"id": 1, "parent_id": 1}])
    with Repo.init(tmp_path, db_url) as repo:
        repo.commit("base")
        repo.create_branch("feature")
        repo.refs.set_symbolic("HEAD", "refs/heads/feature")
        with db_engine.begin() as conn:  # theirs: a child of parent 2
            conn.execute(child.insert(), [{"id": 2, "parent_id": 2}])
        repo.commit("theirs")
        repo.refs.set_symbolic("HEAD", "refs/heads/main")
    with db_engine.begin() as conn:  # ours (uncommitted): back to base, then parent 2 deleted
        conn.execute(child.delete().where(child.c.id == 2))
        conn.execute(parent.delete().where(parent.c.id == 2))

    def state() -> tuple:
        with db_engine.connect() as conn:
            return (
                sorted(conn.execute(sa.text("SELECT id FROM parent")).all()),
                sorted(conn.execute(sa.text("SELECT id, parent_id FROM child")).all()),
            )

    before, head_before, reflog_before = state(), head(tmp_path), reflog(tmp_path)
    proc = snap(tmp_path, "merge", "feature", "--strategy", "backup_wins", code=1)
    assert "child" in proc.stderr
    assert state() == before
    assert head(tmp_path) == head_before and reflog(tmp_path) == reflog_before
    assert log_ids(tmp_path) == [head_before]
    saved = safety(tmp_path)
    assert saved is not None and parents(tmp_path, SAFETY) == [head_before]
    assert snap_json(tmp_path, "show", saved)["meta"]["kind"] == "pre-merge"  # type: ignore[index]
    snap(tmp_path, "verify")


# -- nothing to merge ----------------------------------------------------------------------------


@pytest.mark.parametrize("rev", ["HEAD~1", "HEAD"])
def test_merging_a_commit_in_heads_history_is_already_up_to_date(db_url, db_engine, tmp_path, rev) -> None:
    two_commits(db_url, db_engine, tmp_path)
    put(db_engine, {1: "live", 5: "uncommitted"})  # even with a live database that differs from HEAD
    log_before, reflog_before, oplog_before = log_ids(tmp_path), reflog(tmp_path), oplog(tmp_path)

    proc = snap(tmp_path, "merge", rev, "--strategy", "backup_wins")
    assert "already up to date" in proc.stdout and f"snap restore {rev}" in proc.stdout
    assert "skipped" not in proc.stdout
    doc = snap_json(tmp_path, "merge", rev, "--strategy", "backup_wins")
    assert doc["up_to_date"] is True and doc["merge_commit"] is None and doc["message"] == "already up to date"  # type: ignore[index]
    assert f"snap restore {rev}" in doc["hint"]  # type: ignore[index]

    assert rows(db_engine) == {1: "live", 5: "uncommitted"}
    assert log_ids(tmp_path) == log_before and reflog(tmp_path) == reflog_before
    assert safety(tmp_path) is None  # not even a safety snapshot: nothing was read or written
    assert oplog(tmp_path) == oplog_before  # no audit line either: like a preview, it changed nothing


# -- successful merges ---------------------------------------------------------------------------


def test_merge_over_a_changed_database_has_the_safety_snapshot_as_first_parent(db_url, db_engine, tmp_path) -> None:
    branches(db_url, db_engine, tmp_path, {1: "a", 2: "b"}, {1: "ours", 2: "b"}, {1: "a", 2: "b", 3: "theirs"})
    head_before = head(tmp_path)
    theirs = log_ids(tmp_path, "feature")[0]

    proc = snap(tmp_path, "merge", "feature", "--strategy", "backup_wins")
    assert rows(db_engine) == {1: "ours", 2: "b", 3: "theirs"}
    saved = safety(tmp_path)
    assert saved is not None
    assert f"saved as {saved[:12]} in {SAFETY}; to undo: snap restore {saved[:12]}" in proc.stdout
    merged = head(tmp_path)
    assert parents(tmp_path, merged) == [saved, theirs]
    assert parents(tmp_path, saved) == [head_before]
    # the branch moved once, from where it was to the merge commit
    lines = reflog(tmp_path).splitlines()
    assert lines[-1].split()[:2] == [head_before, merged]
    assert len(lines) == 2  # "base", then the merge
    snap(tmp_path, "diff", "HEAD", "--exit-code")


def test_merge_over_an_unchanged_database_has_head_as_first_parent(db_url, db_engine, tmp_path) -> None:
    branches(db_url, db_engine, tmp_path, {1: "a", 2: "b"}, {1: "ours", 2: "b"}, {1: "a", 2: "b", 3: "theirs"})
    with Repo.open(tmp_path) as repo:
        repo.commit("ours")  # the live database is HEAD's commit
    head_before = head(tmp_path)
    theirs = log_ids(tmp_path, "feature")[0]

    doc = snap_json(tmp_path, "merge", "feature", "--strategy", "backup_wins")
    assert doc["safety_snapshot"] is None and doc["undo"] == f"snap restore {head_before}"  # type: ignore[index]
    assert safety(tmp_path) is None
    assert doc["merge_commit"] == head(tmp_path)  # type: ignore[index]
    assert parents(tmp_path, "HEAD") == [head_before, theirs]
    assert rows(db_engine) == {1: "ours", 2: "b", 3: "theirs"}


def test_manual_merge_over_a_changed_database_continues_and_aborts(db_url, db_engine, tmp_path) -> None:
    branches(db_url, db_engine, tmp_path, {1: "a", 2: "b"}, {1: "ours", 2: "b"}, {1: "theirs", 2: "b", 3: "c"})
    head_before, reflog_before = head(tmp_path), reflog(tmp_path)
    theirs = log_ids(tmp_path, "feature")[0]

    proc = snap(tmp_path, "merge", "feature", "--strategy", "manual", code=1)
    saved = safety(tmp_path)
    assert saved is not None and f"saved as {saved[:12]} in {SAFETY}" in proc.stdout
    state = json.loads((tmp_path / ".snapstore" / "MERGE_HEAD").read_text())
    assert state["ours"] == saved and state["head"] == head_before
    assert head(tmp_path) == head_before and reflog(tmp_path) == reflog_before
    assert rows(db_engine) == {1: "ours", 2: "b"}

    snap(tmp_path, "merge", "--abort")  # abort: nothing moves, the snapshot stays on the safety ref
    assert head(tmp_path) == head_before and reflog(tmp_path) == reflog_before and safety(tmp_path) == saved
    assert rows(db_engine) == {1: "ours", 2: "b"}

    snap(tmp_path, "merge", "feature", "--strategy", "manual", code=1)
    assert safety(tmp_path) != saved  # a new snapshot of the same state: a new line of the reflog
    saved = safety(tmp_path)
    assert len(reflog(tmp_path, SAFETY).splitlines()) == 2
    snap(tmp_path, "conflicts", "resolve", "--theirs")
    snap(tmp_path, "merge", "--continue")
    assert rows(db_engine) == {1: "theirs", 2: "b", 3: "c"}
    assert parents(tmp_path, "HEAD") == [saved, theirs]
    assert parents(tmp_path, saved) == [head_before]


# -- checkout ------------------------------------------------------------------------------------


def test_checkout_force_keeps_changes_on_the_safety_ref_and_moves_head_only_on_success(
    db_url, db_engine, tmp_path
) -> None:
    branches(db_url, db_engine, tmp_path, {1: "a"}, {1: "a"}, {1: "a", 2: "theirs"})
    with db_engine.begin() as conn:  # a schema change the stored snapshot cannot be restored over
        conn.execute(sa.text("ALTER TABLE t ADD COLUMN w INTEGER"))
    head_file = (tmp_path / ".snapstore" / "HEAD").read_text()
    snap(tmp_path, "checkout", "feature", "--force", code=1)
    assert (tmp_path / ".snapstore" / "HEAD").read_text() == head_file  # HEAD did not move
    saved = safety(tmp_path)
    assert saved is not None and parents(tmp_path, saved) == [head(tmp_path)]

    with db_engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE t DROP COLUMN w"))
        conn.execute(sa.text("UPDATE t SET v = 'live'"))
    proc = snap(tmp_path, "checkout", "feature", "--force")
    newer = safety(tmp_path)
    assert newer not in (None, saved)
    assert f"saved as {newer[:12]} in {SAFETY}; to get them back: snap restore {newer[:12]}" in proc.stdout  # type: ignore[index]
    assert (tmp_path / ".snapstore" / "HEAD").read_text() == "ref: refs/heads/feature\n"
    assert rows(db_engine) == {1: "a", 2: "theirs"}


# -- gc ------------------------------------------------------------------------------------------


def test_gc_keeps_every_safety_snapshot_of_the_reflog(db_url, db_engine, tmp_path) -> None:
    two_commits(db_url, db_engine, tmp_path)
    kept = {}
    for n in range(3):  # three restores over three different live states
        put(db_engine, {1: f"live {n}", 10 + n: "x"})
        kept[n] = snap_json(tmp_path, "restore", "HEAD")["safety_snapshot"]  # type: ignore[index]
    assert len(set(kept.values())) == 3 and safety(tmp_path) == kept[2]
    assert [line.split()[1] for line in reflog(tmp_path, SAFETY).splitlines()] == [kept[0], kept[1], kept[2]]

    snap(tmp_path, "gc", "--prune=now")
    snap(tmp_path, "verify", "--read-data")
    for n, oid in kept.items():  # each one still restores in full
        snap(tmp_path, "restore", oid)
        assert rows(db_engine) == {1: f"live {n}", 10 + n: "x"}
