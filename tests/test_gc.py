"""snap gc (snapgit/gc.py): keeps everything reachable, drops the rest, respects the grace
period, writes nothing on a dry run, survives kill -9 and concurrent commits."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import forkrun
from snapgit import Repo
from snapgit.errors import CorruptError, SnapError
from snapgit.objects import ObjType
from snapgit.ops.gc import _mark, parse_grace, root_ids
from snapgit.snapshot.record import commit_snapshot
from snapgit.store.history import read_commit, read_root, read_table
from snapgit.store.packindex import build_index
from snapgit.tree.prolly import iter_entries
from storekit import keep_only_the_tree_of

SNAP = [sys.executable, "-m", "snapgit.cli"]
IN_CI = os.environ.get("CI") == "true"


def snap(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SNAP, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}
    )


def make_db(path: Path, rows: int = 400) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, n REAL)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, f"row {i} " * 4, i / 3) for i in range(rows)])
    return con


def change(con: sqlite3.Connection, seed: int) -> None:
    con.execute("UPDATE t SET n = n + 1 WHERE id % 13 = ?", (seed % 13,))


def all_ids(repo: Repo) -> set[bytes]:
    return {oid for _pack, oid, _t, _d in repo.objects.iter_objects()}


def assert_complete(repo: Repo, cid: bytes) -> None:
    """Every object of the commit reads: tree, tables, schemas, nodes, every record."""
    for tid in read_root(repo.objects, read_commit(repo.objects, cid).tree).tables.values():
        entry = read_table(repo.objects, tid)
        repo.objects.get(entry.schema)
        n = sum(1 for _k, rid in iter_entries(repo.objects, entry.root) if repo.objects.get(rid))
        assert n == entry.rows


def files(root: Path) -> dict[str, tuple[int, float, str]]:
    return {
        p.relative_to(root).as_posix(): (
            p.stat().st_size,
            p.stat().st_mtime,
            hashlib.sha256(p.read_bytes()).hexdigest(),
        )
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def age(paths, seconds: float) -> None:
    t = time.time() - seconds
    for p in paths:
        os.utime(p, (t, t))


def forget_branch(store: Path, name: str) -> None:
    """Delete a branch and its reflog (what reflog expiry will do), so its commits become garbage."""
    with Repo.open(store) as repo:
        repo.delete_branch(name)
    (store / ".snapstore" / "logs" / "refs" / "heads" / name).unlink()


def commit_on_branch(repo: Repo, con: sqlite3.Connection, branch: str, seed: int) -> bytes:
    """A commit of ``change(seed)`` on a new branch, with HEAD back on main after it: garbage once
    the branch is forgotten."""
    repo.create_branch(branch)
    repo.refs.set_symbolic("HEAD", f"refs/heads/{branch}")
    change(con, seed)
    cid = repo.commit(branch).commit_id
    assert cid is not None
    repo.refs.set_symbolic("HEAD", "refs/heads/main")
    return cid


@pytest.fixture
def store(tmp_path: Path):
    con = make_db(tmp_path / "db.sqlite")
    repo = Repo.init(tmp_path, "db.sqlite")
    repo.commit("one")
    yield tmp_path, con, repo
    repo.close()
    con.close()


def test_parse_grace() -> None:
    assert parse_grace("now") == 0 and parse_grace("90") == 90 and parse_grace("30m") == 1800
    assert parse_grace("2h") == 7200 and parse_grace("1d") == 86400 and parse_grace("2w") == 1209600
    with pytest.raises(SnapError):
        parse_grace("soon")


# --- what is kept --------------------------------------------------------------------------------


@settings(max_examples=12 if not IN_CI else 20)
@given(
    st.lists(
        st.tuples(st.sampled_from(["commit", "branch", "switch", "delete", "tag"]), st.integers(0, 50)),
        min_size=1,
        max_size=12,
    )
)
def test_gc_keeps_exactly_what_is_reachable(ops) -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        con = make_db(tmp / "db.sqlite", rows=150)
        with Repo.init(tmp, "db.sqlite") as repo:
            repo.commit("base")
            branches = ["main"]
            for n, (op, x) in enumerate(ops):
                current = repo.head_ref().removeprefix("refs/heads/")
                if op == "commit":
                    change(con, x)
                    con.execute("DELETE FROM t WHERE id = ?", (x * 3,))
                    repo.commit(f"c{n}", allow_empty=True)
                elif op == "branch" and f"b{n}" not in branches:
                    repo.create_branch(f"b{n}")
                    branches.append(f"b{n}")
                elif op == "switch":
                    repo.refs.set_symbolic("HEAD", f"refs/heads/{branches[x % len(branches)]}")
                elif op == "delete" and len(branches) > 1:
                    victim = next(b for b in branches if b != current)
                    forget_branch(tmp, victim)
                    branches.remove(victim)
                elif op == "tag":
                    repo.create_tag(f"t{n}", message="tagged" if x % 2 else None)
            marks = _mark(repo.objects, root_ids(repo.store))
            marks.finish()
            before = all_ids(repo)
            reachable = {oid for oid in before if oid in marks}
            report = repo.gc(prune="now")
            assert report.objects_dropped == len(before - reachable)
        with Repo.open(tmp) as repo:
            assert all_ids(repo) == reachable  # everything reachable is there, nothing else
            for name, _value in {**repo.refs.list("refs/heads"), **repo.refs.list("refs/tags")}.items():
                assert_complete(repo, repo.resolve(name))
            report = repo.verify(read_data=True)
            assert report.ok, [p.describe() for p in report.problems]
        con.close()


def test_reflog_merge_head_and_saved_refs_are_roots(store) -> None:
    tmp, con, repo = store
    kept = {}
    for name in ("reflogged", "merging", "saved"):
        change(con, len(kept) + 1)
        repo.create_branch(name)
        repo.refs.set_symbolic("HEAD", f"refs/heads/{name}")
        kept[name] = repo.commit(name).commit_id
        repo.refs.set_symbolic("HEAD", "refs/heads/main")
        repo.delete_branch(name)
        if name != "reflogged":
            (tmp / ".snapstore" / "logs" / "refs" / "heads" / name).unlink()
    (tmp / ".snapstore" / "MERGE_HEAD").write_text(json.dumps({"theirs": kept["merging"].hex(), "ours": None}))
    repo.refs.set_if_equals("refs/snap/saved/x", None, kept["saved"].hex(), who="t", message="saved")
    repo.gc(prune="now")
    for cid in kept.values():
        assert_complete(repo, cid)
    assert repo.verify(read_data=True).ok


def test_delta_bases_of_kept_nodes_are_kept(store) -> None:
    """Only the second commit's tree stays reachable, through a parentless commit: its leaves
    are deltas against the first commit's, which must stay although nothing reaches them."""
    tmp, con, repo = store
    change(con, 1)
    second = repo.commit("two").commit_id
    assert second is not None
    orphan = keep_only_the_tree_of(repo, tmp, second)
    leaves = [nid for nid in _mark(repo.objects, {orphan}).few if repo.objects.stored_bases(nid)]
    assert leaves, "the second commit stored no delta: the test proves nothing"
    report = repo.gc(prune="now")
    assert report.objects_dropped > 0
    with Repo.open(tmp) as fresh:
        assert_complete(fresh, orphan)
        assert fresh.verify(read_data=True).ok


def test_an_unreadable_reachable_object_stops_gc_before_any_change(store) -> None:
    tmp, con, repo = store
    change(con, 2)
    repo.commit("two")
    pack = max((tmp / ".snapstore" / "objects" / "pack").glob("*.pack"), key=lambda p: p.stat().st_size)
    os.chmod(pack, 0o600)
    data = bytearray(pack.read_bytes())
    data[len(data) // 3] ^= 0xFF
    pack.write_bytes(bytes(data))
    before = files(tmp / ".snapstore")
    proc = snap(tmp, "gc", "--prune=now")
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith("error: gc stopped before changing anything")
    after = files(tmp / ".snapstore")
    assert {k: v for k, v in after.items() if k != "oplog.jsonl"} == {
        k: v for k, v in before.items() if k != "oplog.jsonl"
    }


# --- grace period, trash, dry run ------------------------------------------------------------------


def test_grace_period_and_two_phase_trash(store) -> None:
    tmp, con, repo = store
    root = tmp / ".snapstore"
    commit_on_branch(repo, con, "doomed", 3)
    forget_branch(tmp, "doomed")
    (root / "tmp" / "pack-crashed.tmp").write_bytes(b"x" * 100)
    young = repo.gc()  # default 1 h: every pack is younger
    assert young.objects_dropped == 0 and young.packs_young == young.packs_before and not young.deleted
    assert (root / "tmp" / "pack-crashed.tmp").exists()
    age(root.joinpath("objects", "pack").iterdir(), 7200)
    age([root / "tmp" / "pack-crashed.tmp"], 7200)
    old = repo.gc(prune="1h")
    assert old.objects_dropped > 0 and old.trashed
    assert old.deleted == ["tmp/pack-crashed.tmp"]  # the trash waits for a later gc
    trash = sorted((root / "objects" / "trash").iterdir())
    assert trash and repo.gc(prune="1h").deleted == []
    age(trash, 7200)
    later = repo.gc(prune="1h")
    assert sorted(later.deleted) == sorted(p.relative_to(root).as_posix() for p in trash)
    assert repo.verify(read_data=True).ok


def test_a_reader_that_listed_old_indexes_reads_through_the_trash(store) -> None:
    tmp, con, repo = store
    change(con, 4)
    cid = repo.commit("two").commit_id
    age((tmp / ".snapstore" / "objects" / "pack").iterdir(), 7200)
    reader = Repo.open(tmp)  # lists the indexes now
    try:
        assert snap(tmp, "gc", "--prune=1h").returncode == 0
        assert list((tmp / ".snapstore" / "objects" / "trash").glob("*.pack"))
        reader.objects._full_cache.clear()
        reader.objects._blocks._items.clear()
        assert_complete(reader, cid)
    finally:
        reader.close()


def test_dry_run_writes_nothing(store) -> None:
    tmp, con, repo = store
    repo.create_branch("doomed")
    change(con, 5)
    repo.commit("two")
    forget_branch(tmp, "doomed")
    (tmp / ".snapstore" / "tmp" / "old.tmp").write_text("x")
    age((tmp / ".snapstore").rglob("*"), 7200)
    before = files(tmp / ".snapstore")
    proc = snap(tmp, "gc", "--prune=now", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["dry_run"] and doc["packs_repacked"] >= 1
    after = files(tmp / ".snapstore")
    assert {k: v for k, v in after.items() if k != "oplog.jsonl"} == {
        k: v for k, v in before.items() if k != "oplog.jsonl"
    }
    assert not (tmp / ".snapstore" / "objects" / "trash").exists()


def test_orphan_pack_without_index_is_removed_after_the_grace_period(store) -> None:
    tmp, con, repo = store
    pack_dir = tmp / ".snapstore" / "objects" / "pack"
    orphan = pack_dir / ("pack-" + "ab" * 32 + ".pack")
    orphan.write_bytes(b"left by a writer killed between its two renames")
    assert repo.gc(prune="1h").deleted == []
    age([orphan], 7200)
    assert repo.gc(prune="1h").deleted == [f"objects/pack/{orphan.name}"]


def test_a_directory_in_tmp_goes_once_nothing_in_it_changed_for_the_grace_period(store) -> None:
    """A scratch store a killed status left in tmp/: deleted with all it holds once everything
    in it is older than the grace period. A directory's own mtime moves only when its entries
    do: a status still writing packs deep inside (young files, an old directory) keeps it."""
    tmp, con, repo = store
    left = tmp / ".snapstore" / "tmp" / "scratch-killed"
    deep = left / "objects" / "pack"
    deep.mkdir(parents=True)
    (deep / "pack-1.pack").write_bytes(b"x" * 1000)
    (left / "tmp").mkdir()
    writing = left / "tmp" / "pack-2.tmp"
    writing.write_bytes(b"y" * 500)
    everything = [writing, left / "tmp", deep / "pack-1.pack", deep, left / "objects", left]
    age(everything[1:], 7200)  # all old but the pack being written
    assert repo.gc(prune="1h").deleted == []
    assert writing.exists()
    age(everything, 7200)
    report = repo.gc(prune="1h")
    assert report.deleted == ["tmp/scratch-killed/"] and report.bytes_deleted >= 1500
    assert not left.exists()


# --- crashes and concurrency ---------------------------------------------------------------------


def test_kill_9_during_gc_leaves_a_consistent_store(tmp_path: Path) -> None:
    con = make_db(tmp_path / "db.sqlite", rows=3000)
    assert snap(tmp_path, "init", "--db", "db.sqlite").returncode == 0
    with Repo.open(tmp_path) as repo:
        repo.commit("base")
    trials = int(os.environ.get("SNAP_GC_CRASH_TRIALS", "50" if IN_CI else "12"))
    rng = random.Random(4321)
    duration = None
    killed = 0
    for trial in range(trials):
        with Repo.open(tmp_path) as repo:  # new work for gc: small packs, and garbage
            if trial % 3 == 0:
                repo.create_branch(f"b{trial}")
                repo.refs.set_symbolic("HEAD", f"refs/heads/b{trial}")
            change(con, trial)
            repo.commit(f"trial {trial}")
            if trial % 3 == 2:
                repo.refs.set_symbolic("HEAD", "refs/heads/main")
                for name in list(repo.refs.list("refs/heads")):
                    if name != "refs/heads/main":
                        forget_branch(tmp_path, name.removeprefix("refs/heads/"))
        heads = dict(Repo.open(tmp_path).refs.list("refs/heads"))
        started = time.monotonic()
        proc = subprocess.Popen(
            [*SNAP, "gc", "--prune=now"], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if duration is None:
            proc.wait()
            duration = time.monotonic() - started
            continue
        time.sleep(rng.uniform(0.0, duration))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
        if trial % 4 == 1:  # what a user does after a killed gc: run it again, nothing between
            assert snap(tmp_path, "gc", "--prune=now").returncode == 0
        with Repo.open(tmp_path) as repo:
            report = repo.verify(read_data=True)
            assert report.ok, (trial, [p.describe() for p in report.problems])
            assert repo.refs.list("refs/heads") == heads  # verify read every reachable object
            assert_complete(repo, bytes.fromhex(heads["refs/heads/main"]))
    assert killed >= trials // 3, f"only {killed} of {trials} gc runs were killed mid-way"
    with Repo.open(tmp_path) as repo:  # a killed gc's lock is reclaimed by the next writer
        change(con, 999)
        assert repo.commit("after the crashes").commit_id is not None
        assert repo.gc(prune="now").packs_after == 1
        assert repo.verify(read_data=True).ok


COMMITTER = """
import sqlite3, sys
from snapgit import Repo
con = sqlite3.connect("db.sqlite", isolation_level=None)
for i in range(int(sys.argv[1])):
    con.execute("UPDATE t SET n = n + 1 WHERE id % 7 = ?", (i % 7,))
    with Repo.open(".") as repo:
        if i % 4 == 3:
            repo.create_branch(f"x{i}")
        repo.commit(f"concurrent {i}")
print("done", flush=True)
"""


def test_gc_while_commits_run_loses_nothing_reachable(tmp_path: Path) -> None:
    con = make_db(tmp_path / "db.sqlite", rows=2000)
    assert snap(tmp_path, "init", "--db", "db.sqlite").returncode == 0
    assert snap(tmp_path, "commit", "-m", "base").returncode == 0
    env = {**os.environ, "SNAP_LOCK_TIMEOUT": "30"}
    committer = subprocess.Popen(
        [sys.executable, "-c", COMMITTER, "12"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ran = 0
    while committer.poll() is None:
        proc = snap(tmp_path, "gc", "--prune=now", env={"SNAP_LOCK_TIMEOUT": "30"})
        assert proc.returncode in (0, 4), proc.stderr
        ran += proc.returncode == 0
    out, err = committer.communicate()
    assert committer.returncode == 0 and "done" in out, err
    assert ran >= 2
    assert snap(tmp_path, "gc", "--prune=now").returncode == 0
    with Repo.open(tmp_path) as repo:
        report = repo.verify(read_data=True)
        assert report.ok, [p.describe() for p in report.problems]
        commits = repo.log("main")
        assert len(commits) == 13
        for cid, _c in commits:
            assert_complete(repo, cid)
    con.close()


def test_expired_reflog_entries_stop_keeping_a_deleted_branch(store) -> None:
    """A deleted branch's reflog keeps its commits until the entries expire (default 90 days);
    then gc removes the entries and the commits. A ref that exists keeps its newest entry."""
    tmp, con, repo = store
    for n in (7, 8):  # main's reflog: three entries, all of them to expire
        change(con, n)
        repo.commit(f"main {n}")
    main_head = repo.head()
    gone = commit_on_branch(repo, con, "experiment", 1)
    repo.delete_branch("experiment")
    report = repo.gc(prune="now", dry_run=True)
    assert report.reflog_expired == 0 and report.objects_dropped == 0  # the reflog still names it
    report = repo.gc(prune="now", expire="now")
    assert report.reflog_expired >= 2 and report.objects_dropped > 0
    assert not (tmp / ".snapstore" / "logs" / "refs" / "heads" / "experiment").exists()
    assert len(repo.refs.reflog("refs/heads/main")) == 1  # main exists: its newest entry stays
    with Repo.open(tmp) as fresh:  # (this process's repo has the commit in its caches)
        with pytest.raises(SnapError):
            assert_complete(fresh, gone)
        assert_complete(fresh, main_head)
        assert fresh.verify(read_data=True).ok
    dry = repo.gc(prune="now", expire="now", dry_run=True)
    assert dry.reflog_expired == 0 and dry.objects_dropped == 0


def test_a_second_gc_while_one_runs_is_refused_and_changes_nothing(store) -> None:
    """The first gc (a forked `snap gc`, made to wait inside its lock) runs to its end; a second
    one exits 4 saying so, and touches nothing; a commit meanwhile is kept out too."""
    tmp, con, repo = store
    commit_on_branch(repo, con, "doomed", 7)
    forget_branch(tmp, "doomed")
    ready = tmp / "gc-started"

    def slow_gc() -> None:
        from snapgit.ops import gc as gc_mod

        real = gc_mod.collect_garbage

        def waiting(*args, **kwargs):
            ready.touch()
            time.sleep(3)
            return real(*args, **kwargs)

        gc_mod.collect_garbage = waiting

    first = forkrun.start(tmp, "gc", "--prune=now", "--json", before=slow_gc)
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert first.poll() is None and time.monotonic() < deadline, first.result(["gc"])
        time.sleep(0.01)
    before = files(tmp / ".snapstore")
    second = forkrun.run(tmp, "gc", "--prune=now", env={"SNAP_LOCK_TIMEOUT": "0.3"})
    assert second.returncode == 4, second
    assert second.stderr.startswith("error: another snap gc is running (pid "), second.stderr
    commit = forkrun.run(tmp, "commit", "-m", "meanwhile", "--allow-empty", env={"SNAP_LOCK_TIMEOUT": "0.3"})
    assert commit.returncode == 4 and "snap gc is running on this store" in commit.stderr, commit
    after = files(tmp / ".snapstore")
    assert {k: v for k, v in after.items() if k != "oplog.jsonl"} == {
        k: v for k, v in before.items() if k != "oplog.jsonl"
    }
    done = first.result(["gc"])
    assert done.returncode == 0, done
    assert json.loads(done.stdout)["objects_dropped"] > 0
    with Repo.open(tmp) as fresh:
        assert fresh.verify(read_data=True).ok
        assert fresh.commit("after", allow_empty=True).commit_id is not None


def chain_copied_away_from_its_first_link(store) -> tuple[Path, set[str], set[str]]:
    """A branch that made a chain of three deltas, then gone; its first link in packs of their
    own, the rest copied by a gc into a new pack with most of main. Returns the store's folder,
    the first link's packs and the packs that gc made."""
    tmp, con, repo = store
    pack_dir = tmp / ".snapstore" / "objects" / "pack"
    repo.create_branch("side")
    repo.refs.set_symbolic("HEAD", "refs/heads/side")
    before = set(repo.objects.pack_names())
    first_link: set[str] = set()
    for n in range(3):  # one row each time: the same leaf, a chain of three deltas
        con.execute("UPDATE t SET n = ? WHERE id = 7", (n,))
        repo.commit(f"side {n}")
        if n == 0:
            first_link = set(repo.objects.pack_names()) - before  # a commit's objects, and a pack for itself
    age(pack_dir.iterdir(), 7200)
    for name in first_link:  # young: kept whole, while the others are repacked into one
        os.utime(pack_dir / f"pack-{name}.pack")
    first = repo.gc(prune="1h")
    assert first.packs_young == len(first_link) and first.packs_repacked == first.packs_before - len(first_link), first
    made = set(Repo.open(tmp).objects.pack_names()) - first_link
    repo.refs.set_symbolic("HEAD", "refs/heads/main")
    forget_branch(tmp, "side")
    age(pack_dir.iterdir(), 7200)
    return tmp, first_link, made


def test_dead_deltas_left_in_a_kept_pack_keep_their_chains(store) -> None:
    """A pack kept whole keeps its dead objects too, and every entry of every pack must still
    read (verify reads them all; a version that comes back is found there). Here the next gc
    would drop the first link's packs (all dead) and keep the new one whole (mostly live, and
    the only small pack). The CI run that found this had a link in the middle of a chain gone."""
    tmp, _first_link, made = chain_copied_away_from_its_first_link(store)
    with Repo.open(tmp) as fresh:
        fresh.gc(prune="now")
    with Repo.open(tmp) as fresh:
        kept = set(fresh.objects.pack_names())
        report = fresh.verify(read_data=True)
    assert made <= kept, "the pack the first gc made was not kept whole: the test's set-up no longer leads there"
    assert report.ok and not report.garbage, ([p.describe() for p in report.problems], report.garbage)


def test_a_chain_broken_by_a_killed_gc_is_garbage_and_the_next_gc_drops_it(store) -> None:
    """A gc killed between moving two packs away leaves dead deltas whose chain is gone: verify
    calls them garbage, not damage (nothing reaches them, or its walk would have failed), and
    reads the rest of their pack; the next gc repacks the pack they are in."""
    tmp, first_link, made = chain_copied_away_from_its_first_link(store)
    store_dir = tmp / ".snapstore" / "objects"
    (store_dir / "trash").mkdir(exist_ok=True)
    for name in first_link:  # what the killed gc had moved away, the index first
        for ext in (".idx", ".pack"):
            os.replace(store_dir / "pack" / f"pack-{name}{ext}", store_dir / "trash" / f"pack-{name}{ext}")
    with Repo.open(tmp) as fresh:
        report = fresh.verify(read_data=True)
        assert report.ok, [p.describe() for p in report.problems]
        assert report.objects_read == report.objects_indexed
        gone = [
            g
            for g in report.garbage
            if re.search(r"\.pack#\d+: a delta whose chain needs [0-9a-f]{16}, which is gone", g)
        ]
        assert len(gone) == 2, report.garbage  # the chain's second and third links
        fresh.gc(prune="now")
    with Repo.open(tmp) as fresh:
        assert not made & set(fresh.objects.pack_names())
        report = fresh.verify(read_data=True)
    assert report.ok and not report.garbage, ([p.describe() for p in report.problems], report.garbage)


# --- the rules gc keeps by (each one found missing by mutation testing, docs/mutation.md) ----------


def test_a_table_shared_with_a_commit_marked_before_does_not_end_the_walk(tmp_path: Path) -> None:
    """Two commits share table ``a`` (sorted first) and differ in ``b``: the second commit's walk
    meets ``a`` already marked, and must still go on to ``b``."""
    con = make_db(tmp_path / "db.sqlite")
    con.execute("CREATE TABLE b (id INTEGER PRIMARY KEY, v TEXT)")
    con.executemany("INSERT INTO b VALUES (?, ?)", [(i, f"b {i}") for i in range(300)])
    con.execute("ALTER TABLE t RENAME TO a")
    with Repo.init(tmp_path, "db.sqlite") as repo:
        first = repo.commit("one").commit_id
        con.execute("UPDATE b SET v = v || '!' WHERE id % 7 = 0")
        second = repo.commit("two").commit_id
        repo.gc(prune="now")
    with Repo.open(tmp_path) as fresh:
        assert_complete(fresh, first)
        assert_complete(fresh, second)
        report = fresh.verify(read_data=True)
        assert report.ok, [p.describe() for p in report.problems]


def test_a_young_packs_delta_keeps_its_old_dead_base(store) -> None:
    """A pack younger than the grace period is kept whole, and its deltas must read: their
    bases stay even where nothing else keeps them."""
    tmp, con, repo = store
    pack_dir = tmp / ".snapstore" / "objects" / "pack"
    repo.create_branch("side")
    repo.refs.set_symbolic("HEAD", "refs/heads/side")
    con.execute("UPDATE t SET n = -1 WHERE id = 7")
    repo.commit("the base")
    age(pack_dir.iterdir(), 7200)
    con.execute("UPDATE t SET n = -2 WHERE id = 7")
    repo.commit("the delta")  # its packs stay young
    repo.refs.set_symbolic("HEAD", "refs/heads/main")
    forget_branch(tmp, "side")
    with Repo.open(tmp) as fresh:
        report = fresh.gc(prune="1h")
        assert report.packs_young >= 1
    with Repo.open(tmp) as fresh:
        report = fresh.verify(read_data=True)
    assert report.ok and not report.garbage, ([p.describe() for p in report.problems], report.garbage)


def test_a_gc_after_one_killed_once_its_new_packs_were_published_loses_nothing(store) -> None:
    """A gc killed after publishing its new packs leaves every live object twice: in them and in
    the old packs. The next gc keeps one copy of each, not none and not two. It used to lose
    them all: copying the new pack first gave a pack of the same bytes, so of the same name, which
    it then moved away with the packs it replaced."""
    tmp, con, repo = store
    objects = [(t, d) for _pack, _oid, t, d in repo.objects.iter_objects()]
    with repo.objects.writer() as w:
        for otype, data in objects:
            w.add(otype, data)
    report = repo.gc(prune="now")
    assert (report.objects_before, report.objects_dropped, report.objects_after) == (
        2 * len(objects),
        len(objects),
        len(objects),
    )
    with Repo.open(tmp) as fresh:
        assert sorted(all_ids(fresh)) == sorted({hashlib.sha256(bytes((t,)) + d).digest() for t, d in objects})
        assert sum(fresh.objects.index(n).count for n in fresh.objects.pack_names()) == len(objects)
        assert_complete(fresh, fresh.head())


def test_a_lock_file_under_refs_is_not_a_root(store) -> None:
    """``refs/heads/x.lock`` is a writer's unfinished update (git's rule): what only it names goes."""
    tmp, con, repo = store
    doomed = commit_on_branch(repo, con, "doomed", 3)
    forget_branch(tmp, "doomed")
    (tmp / ".snapstore" / "refs" / "heads" / "main.lock").write_text(doomed.hex() + "\n")
    report = repo.gc(prune="now")
    assert report.objects_dropped > 0
    with Repo.open(tmp) as fresh:
        assert doomed not in all_ids(fresh)


def test_a_lone_pack_with_most_objects_dead_is_repacked_and_two_small_ones_merged(store) -> None:
    tmp, con, repo = store
    first = repo.gc(prune="now")  # the first commit's packs: small, all live, merged into one
    assert (first.packs_before, first.packs_after, first.packs_repacked) == (2, 1, 2), first
    repo.create_branch("big")
    repo.refs.set_symbolic("HEAD", "refs/heads/big")
    con.execute("UPDATE t SET v = v || 'changed'")  # every record: the branch outweighs main
    repo.commit("every row")
    repo.gc(prune="now")
    repo.refs.set_symbolic("HEAD", "refs/heads/main")
    forget_branch(tmp, "big")
    with Repo.open(tmp) as fresh:
        dry = fresh.gc(prune="now", dry_run=True)
        lone = fresh.gc(prune="now")
        assert (lone.packs_before, lone.packs_repacked, lone.packs_after) == (1, 1, 1), lone
        assert lone.objects_dropped > lone.objects_after / 2
        assert lone.objects_dropped == lone.objects_before - lone.objects_after == dry.objects_dropped


def test_the_report_agrees_with_the_files(store) -> None:
    """gc's figures, held to what the store's folder shows before and after."""
    tmp, con, repo = store
    pack_dir = tmp / ".snapstore" / "objects" / "pack"
    commit_on_branch(repo, con, "doomed", 4)
    forget_branch(tmp, "doomed")

    def state() -> tuple[int, int, int]:
        packs = sorted(pack_dir.glob("*.idx"))
        with Repo.open(tmp) as fresh:
            objects = sum(fresh.objects.index(n).count for n in fresh.objects.pack_names())
        return len(packs), sum(p.stat().st_size for p in pack_dir.iterdir()), objects

    packs, size, count = state()
    with Repo.open(tmp) as fresh:
        marks = _mark(fresh.objects, root_ids(fresh.store))
        marks.finish()
        live = sum(1 for oid in all_ids(fresh) if oid in marks)
    started = time.monotonic()
    dry = repo.gc(prune="now", dry_run=True)
    assert 0 < dry.seconds <= time.monotonic() - started
    assert (dry.packs_before, dry.bytes_before, dry.objects_before) == (packs, size, count)
    assert dry.objects_after == live and dry.objects_dropped == count - live
    started = time.monotonic()
    report = repo.gc(prune="now")
    took = time.monotonic() - started
    after = state()
    assert (report.packs_before, report.bytes_before, report.objects_before) == (packs, size, count)
    assert (report.packs_after, report.bytes_after, report.objects_after) == after
    assert report.objects_after == live and report.objects_dropped == count - live
    assert report.to_json()["objects_kept"] == live
    assert report.reachable == len(marks)
    assert report.packs_repacked + report.packs_dropped == packs and report.packs_dropped >= 1
    assert report.bytes_reclaimed == size - after[1] > 0
    assert 0 < report.seconds <= took
    assert report.reflog_expired == 0
    nothing = repo.gc(prune="now", expire="now")  # nothing to expire but main's newest entry
    assert (nothing.reflog_expired, nothing.packs_dropped, nothing.bytes_reclaimed) == (0, 0, 0)
    assert (tmp / ".snapstore" / "objects" / "trash").stat().st_mode & 0o777 == 0o700


def test_a_branch_is_a_root_without_its_reflog(store) -> None:
    """Refs keep their commits by themselves: a branch whose reflog is gone (expired, or never
    written by another tool) still keeps everything it reaches."""
    tmp, con, repo = store
    kept = commit_on_branch(repo, con, "kept", 5)
    (tmp / ".snapstore" / "logs" / "refs" / "heads" / "kept").unlink()
    repo.gc(prune="now")
    with Repo.open(tmp) as fresh:
        assert_complete(fresh, kept)
        assert fresh.verify(read_data=True).ok


def age_reflog(path: Path, seconds: float) -> None:
    """Make every line of a reflog ``seconds`` older (the time is its third field)."""
    lines = []
    for line in path.read_text().splitlines(keepends=True):
        old, new, t, rest = line.split(" ", 3)
        lines.append(f"{old} {new} {int(t) - int(seconds)} {rest}")
    path.write_text("".join(lines))


def test_once_expired_only_the_newest_reflog_line_of_a_ref_keeps_commits(store) -> None:
    """main moved to a commit and back (as `reset` does), then on: the commit only the old lines
    name goes once they expire; the newest line of a ref that exists counts whatever its age."""
    tmp, con, repo = store
    base = repo.head()
    change(con, 2)
    left_behind = repo.commit("left behind").commit_id
    repo.refs.set_if_equals("refs/heads/main", left_behind.hex(), base.hex(), who="t", message="reset")
    change(con, 3)
    newest = repo.commit("newest").commit_id
    assert len(repo.refs.reflog("refs/heads/main")) == 4
    for log in (tmp / ".snapstore" / "logs").rglob("*"):  # (HEAD has no reflog of its own)
        if log.is_file():
            age_reflog(log, 100 * 86400)
    repo.gc(prune="now")  # the default expiry: 90 days
    with Repo.open(tmp) as fresh:
        assert left_behind not in all_ids(fresh)
        assert_complete(fresh, newest)


def test_the_default_reflog_expiry_is_90_days(store) -> None:
    tmp, con, repo = store
    doomed = commit_on_branch(repo, con, "doomed", 6)
    repo.delete_branch("doomed")
    log = tmp / ".snapstore" / "logs" / "refs" / "heads" / "doomed"
    age_reflog(log, 90 * 86400 - 45)
    assert repo.gc(prune="now").reflog_expired == 0
    with Repo.open(tmp) as fresh:
        assert_complete(fresh, doomed)  # 45 s short of 90 days: its reflog still keeps it
    age_reflog(log, 90)
    assert repo.gc(prune="now").reflog_expired == 3  # 45 s past: created, committed to, deleted
    assert not log.exists()


@pytest.mark.parametrize("dead_prefix", ["above", "below"])
def test_an_index_that_sends_a_live_record_to_another_ordinal_stops_gc(store, dead_prefix: str) -> None:
    """Records are marked by id, never read, so a self-consistent index that swaps a live record
    with a dead object passes marking; the repack hashes what it copies (the dead one's ordinal,
    under the live one's prefix) and stops before changing anything, whichever prefix is larger."""
    tmp, con, repo = store
    side = commit_on_branch(repo, con, "side", 1)
    repo.gc(prune="now")  # one pack: main's objects and the branch's
    forget_branch(tmp, "side")
    change(con, 2)
    repo.commit("another small pack, so that the first is repacked")
    with Repo.open(tmp) as fresh:
        marks = _mark(fresh.objects, root_ids(fresh.store))
        marks.finish()
        stored = list(fresh.objects.iter_objects())
    mixed = next(p for p, oid, _t, _d in stored if oid == side)
    ids = [oid for p, oid, _t, _d in stored if p == mixed]
    types = {oid: t for p, oid, t, _d in stored if p == mixed}
    live = [i for i, oid in enumerate(ids) if oid in marks and types[oid] == ObjType.RECORD]
    dead = [i for i, oid in enumerate(ids) if oid not in marks]
    pairs = [(a, b) for a in live[:50] for b in dead if (ids[b] > ids[a]) == (dead_prefix == "above")]
    a, b = pairs[0]
    ids[a], ids[b] = ids[b], ids[a]
    idx = tmp / ".snapstore" / "objects" / "pack" / f"pack-{mixed}.idx"
    os.chmod(idx, 0o600)
    idx.write_bytes(build_index(mixed, ids))
    before = files(tmp / ".snapstore")
    with Repo.open(tmp) as fresh, pytest.raises(CorruptError, match=f"pack {mixed[:16]}: object {b} does not match"):
        fresh.gc(prune="now")
    after = files(tmp / ".snapstore")
    assert {k: v for k, v in after.items() if k != "oplog.jsonl"} == {
        k: v for k, v in before.items() if k != "oplog.jsonl"
    }


def test_a_commit_met_twice_does_not_end_the_walk_of_the_history(store) -> None:
    """History M1 -> [X, M2], M2 -> [A, B], B -> A: the walk meets A a second time while X still
    waits beneath it, and X's tree (its own rows) must still be kept."""
    tmp, con, repo = store
    change(con, 1)
    a = repo.commit("A").commit_id
    change(con, 2)
    b = repo.commit("B").commit_id
    x = commit_on_branch(repo, con, "x", 3)
    assert a and b and x
    tree_b = read_commit(repo.objects, b).tree
    repo.refs.set_if_equals("refs/heads/m2", None, a.hex(), who="t", message="at A")
    repo.refs.set_if_equals("refs/heads/top", None, x.hex(), who="t", message="at X")

    def merge(ref: str, first: bytes, second: bytes, message: str) -> bytes:
        cid, _ = commit_snapshot(
            repo.objects,
            repo.refs,
            ref=ref,
            expected_parent=first,
            tree_id=tree_b,
            author="t",
            message=message,
            meta={},
            extra_parents=[second],
            allow_same_tree=True,
        )
        assert cid is not None
        return cid

    m2 = merge("refs/heads/m2", a, b, "M2")
    m1 = merge("refs/heads/top", x, m2, "M1")
    assert read_commit(repo.objects, m1).parents == [x, m2]
    repo.refs.set_symbolic("HEAD", "refs/heads/top")
    for name in ("main", "x", "m2"):  # only top reaches anything: X through M1 alone
        (tmp / ".snapstore" / "refs" / "heads" / name).unlink()
    shutil.rmtree(tmp / ".snapstore" / "logs")
    repo.gc(prune="now")
    with Repo.open(tmp) as fresh:
        assert_complete(fresh, x)
        assert fresh.verify(read_data=True).ok


def test_the_default_grace_period_is_an_hour(store) -> None:
    """Packs younger than an hour are kept whole by a plain `gc` (a writer may be using them);
    older ones are not."""
    tmp, con, repo = store
    commit_on_branch(repo, con, "doomed", 4)
    forget_branch(tmp, "doomed")
    packs = list((tmp / ".snapstore" / "objects" / "pack").glob("*.pack"))
    age(packs, 3600 - 10)
    young = repo.gc()
    assert young.packs_young == len(packs) and young.objects_dropped == 0
    age(packs, 3600.5)
    old = repo.gc()
    assert old.packs_young == 0 and old.objects_dropped > 0


def test_a_dropped_branch_leaves_nothing_behind(store) -> None:
    """Two commits on a branch, the second's leaves deltas against the first's: once the branch
    is gone, both packs go whole, and no base is kept for a delta that goes too."""
    tmp, con, repo = store
    repo.create_branch("side")
    repo.refs.set_symbolic("HEAD", "refs/heads/side")
    for n in (1, 2):
        change(con, n)
        repo.commit(f"side {n}")
    repo.refs.set_symbolic("HEAD", "refs/heads/main")
    forget_branch(tmp, "side")
    with Repo.open(tmp) as fresh:
        marks = _mark(fresh.objects, root_ids(fresh.store))
        marks.finish()
        reachable = {oid for oid in all_ids(fresh) if oid in marks}
        report = fresh.gc(prune="now")
        assert report.packs_dropped >= 2
    with Repo.open(tmp) as fresh:
        assert all_ids(fresh) == reachable


def test_a_commit_only_an_annotated_tag_reaches_is_kept(store) -> None:
    """An annotated tag is an object of its own between the ref and the commit: gc walks
    through it, and goes on with the rest."""
    tmp, con, repo = store
    tagged = commit_on_branch(repo, con, "release-work", 8)
    repo.create_tag("v1", rev=tagged.hex(), message="the only way to it")
    forget_branch(tmp, "release-work")
    repo.gc(prune="now")
    with Repo.open(tmp) as fresh:
        assert_complete(fresh, tagged)
        assert_complete(fresh, fresh.head())
