"""gc (snapgit.ops.gc) against an oracle of its own: what must survive is computed here, not by
gc's marking.

The oracle reads the store's files as docs/format.md describes them (refs and HEAD, every reflog
line, MERGE_HEAD), takes every stored object once (``iter_objects``: a dump, no lookups), and
walks it: commits -> parents -> snapshot trees -> tables -> schema and tree nodes -> records,
tags -> targets. To that it adds the delta bases of the nodes it reached (a stored delta needs
its base to be read). After ``gc --prune=now`` the store must hold every object of that set and
nothing else.

The random histories merge branches (two-parent commits) and forget the merged branch, so part
of the history is reachable only through a merge commit's second parent; a manual merge may be
left unfinished, so MERGE_HEAD holds commits too.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from snapgit import Repo
from snapgit.objects import Commit, Node, ObjType, Root, TableEntry, Tag

ZERO = "0" * 64


def store_roots(store: Path) -> set[bytes]:
    """Commit and tag ids named by HEAD, refs/**, logs/** (old and new of every line) and
    MERGE_HEAD, read from the files themselves."""
    found: set[str] = set()
    head = (store / "HEAD").read_text().strip()
    if not head.startswith("ref: "):
        found.add(head)
    for p in (store / "refs").rglob("*"):
        if p.is_file() and not p.name.endswith(".lock"):
            found.add(p.read_text().strip())
    for p in (store / "logs").rglob("*") if (store / "logs").is_dir() else []:
        if p.is_file() and not p.name.endswith(".expire"):
            for line in p.read_text().splitlines():
                old, new = line.split(" ")[:2]
                found.update((old, new))
    if (store / "MERGE_HEAD").exists():
        state = json.loads((store / "MERGE_HEAD").read_text())
        found.update(state.get(k) for k in ("ours", "theirs", "base"))
    return {bytes.fromhex(h) for h in found if h and h != ZERO}


def dump(repo: Repo) -> dict[bytes, tuple[int, bytes]]:
    return {oid: (otype, data) for _pack, oid, otype, data in repo.objects.iter_objects()}


def must_survive(repo: Repo) -> set[bytes]:
    """The oracle: every object reachable from the store's roots, with the delta bases of nodes."""
    objects = dump(repo)
    keep: set[bytes] = set()
    todo = list(store_roots(repo.store.root))
    nodes: list[bytes] = []
    while todo:
        oid = todo.pop()
        if oid in keep:
            continue
        keep.add(oid)
        otype, data = objects[oid]  # a KeyError here: the store lost a reachable object already
        if otype == ObjType.TAG:
            todo.append(Tag.decode(data).target)
        elif otype == ObjType.COMMIT:
            commit = Commit.decode(data)
            todo.extend(commit.parents)
            todo.append(commit.tree)
        elif otype == ObjType.ROOT:
            todo.extend(Root.decode(data).tables.values())
        elif otype == ObjType.TABLE:
            entry = TableEntry.decode(data)
            keep.add(entry.schema)
            nodes.append(entry.root)
        else:
            raise AssertionError(f"a root or a commit names an object of type {otype}")
    while nodes:
        nid = nodes.pop()
        if nid in keep:
            continue
        keep.add(nid)
        node = Node.decode(objects[nid][1])
        if node.level:
            nodes.extend(node.ids)
        else:
            keep.update(node.ids)
    for nid in [o for o in keep if objects[o][0] == ObjType.NODE]:
        bases = repo.objects.stored_bases(nid)
        while bases:
            base = bases.pop()
            if base not in keep:
                keep.add(base)
                bases.extend(repo.objects.stored_bases(base))
    return keep


def stored(store_dir: Path) -> set[bytes]:
    with Repo.open(store_dir) as fresh:  # (a repo that ran gc may still have objects cached)
        return set(dump(fresh))


def forget_branch(repo: Repo, name: str) -> None:
    """Delete a branch and its reflog, as reflog expiry eventually does."""
    repo.delete_branch(name)
    (repo.store.root / "logs" / "refs" / "heads" / name).unlink()


def make_db(path: Path, rows: int) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, n REAL)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, f"row {i} " * 4, i / 3) for i in range(rows)])
    return con


OPS = st.sampled_from(["commit", "commit", "branch", "switch", "merge", "merge", "manual", "abort", "delete", "tag"])


# the profile's examples (100 on CI: five times the older property's), about 1 s each
@settings(max_examples=settings.default.max_examples, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(OPS, st.integers(0, 50)), min_size=1, max_size=10))
# a merge whose branch is then forgotten: its commits are reachable through the second parent only
@example([("branch", 0), ("switch", 1), ("commit", 1), ("switch", 0), ("commit", 2), ("merge", 1), ("delete", 0)])
# an unfinished manual merge of a forgotten branch: only MERGE_HEAD keeps its commit
@example([("branch", 0), ("switch", 1), ("commit", 1), ("switch", 0), ("commit", 1), ("manual", 1), ("delete", 0)])
def test_gc_keeps_what_the_oracle_says_and_nothing_else(ops) -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        con = make_db(tmp / "db.sqlite", rows=80)
        with Repo.init(tmp, "db.sqlite") as repo:
            repo.commit("base")
            branches = ["main"]
            merges = 0
            for n, (op, x) in enumerate(ops):
                current = repo.head_ref().removeprefix("refs/heads/")
                other = [b for b in branches if b != current]
                if op == "commit":
                    con.execute("UPDATE t SET n = n + 1 WHERE id % 11 = ?", (x % 11,))
                    con.execute("DELETE FROM t WHERE id = ?", (x * 2,))
                    repo.commit(f"c{n}", allow_empty=True)
                elif op == "branch":
                    repo.create_branch(f"b{n}")
                    branches.append(f"b{n}")
                elif op == "switch":
                    repo.refs.set_symbolic("HEAD", f"refs/heads/{branches[x % len(branches)]}")
                elif op in ("merge", "manual") and other and repo.merge_state() is None:
                    # both sides edit row x: a conflict for the manual merge to stop on
                    con.execute("UPDATE t SET v = ? WHERE id = ?", (f"{current} {n}", 40 + x % 40))
                    result = repo.merge(other[x % len(other)], strategy="backup_wins" if op == "merge" else "manual")
                    merges += result.merge_commit is not None and not result.fast_forward
                elif op == "abort" and repo.merge_state() is not None:
                    repo.merge_abort()
                elif op == "delete" and other:
                    victim = other[x % len(other)]
                    forget_branch(repo, victim)
                    branches.remove(victim)
                elif op == "tag":
                    repo.create_tag(f"t{n}", message="tagged" if x % 2 else None)
            expected = must_survive(repo)
            before = set(dump(repo))
            assert expected <= before
            report = repo.gc(prune="now")
            assert report.objects_dropped == len(before - expected)
        after = stored(tmp)
        assert expected - after == set(), "gc dropped objects that are still reachable"
        assert after - expected == set(), "gc kept objects nothing reaches"
        with Repo.open(tmp) as repo:
            report = repo.verify(read_data=True)
            assert report.ok, [p.describe() for p in report.problems]
        con.close()


# --- a merge whose branch is gone, on every engine -------------------------------------------


def snap(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snapgit.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_gc_keeps_the_second_parent_of_a_merge_whose_branch_is_gone(db_url, db_engine, tmp_path) -> None:
    meta = sa.MetaData()
    items = sa.Table(
        "items", meta, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False), sa.Column("v", sa.String(20))
    )
    meta.create_all(db_engine)
    with db_engine.begin() as conn:
        conn.execute(items.insert(), [{"id": i, "v": f"v{i}"} for i in range(300)])
    repo = Repo.init(tmp_path, db_url)
    repo.commit("base")
    repo.create_branch("feature")
    repo.refs.set_symbolic("HEAD", "refs/heads/feature")
    with db_engine.begin() as conn:  # rows only the feature branch ever had
        conn.execute(items.insert(), [{"id": i, "v": f"feature {i}"} for i in range(1000, 1200)])
        conn.execute(items.update().where(items.c.id < 100).values(v="feature"))
    feature = repo.commit("feature").commit_id
    with db_engine.begin() as conn:  # and a later state of it that the merge does not take
        conn.execute(items.delete().where(items.c.id >= 1000))
    feature_tip = repo.commit("feature, later").commit_id
    repo.refs.set_symbolic("HEAD", "refs/heads/main")
    with db_engine.begin() as conn:
        conn.execute(items.delete())
        conn.execute(items.insert(), [{"id": i, "v": f"v{i}" if i % 50 else "ours"} for i in range(300)])
    merged = repo.merge(feature.hex(), strategy="backup_wins")
    assert merged.merge_commit is not None and not merged.fast_forward
    merge_commit = repo.read_commit(merged.merge_commit)
    assert merge_commit.parents[1] == feature
    repo.delete_branch("feature")
    logs = repo.store.root / "logs"
    (logs / "refs" / "heads" / "feature").unlink()
    named = {
        p.relative_to(logs).as_posix(): [line.split(" ")[:2] for line in p.read_text().splitlines()]
        for p in logs.rglob("*")
        if p.is_file()
    }
    assert not any(feature.hex() in ids for lines in named.values() for ids in lines), named  # only the merge
    expected = must_survive(repo)
    assert feature in expected and feature_tip not in expected
    repo.close()

    gc = snap(tmp_path, "gc", "--prune=now", "--json")
    assert gc.returncode == 0, gc.stderr
    assert json.loads(gc.stdout)["objects_dropped"] > 0  # feature's later commit went
    assert stored(tmp_path) == expected
    log = snap(tmp_path, "log", "--json")
    assert log.returncode == 0, log.stderr
    ids = [c["id"] for c in json.loads(log.stdout)]
    assert merged.merge_commit.hex() in ids and feature.hex() in ids
    assert snap(tmp_path, "show", feature.hex(), "--json").returncode == 0
    check = snap(tmp_path, "verify", "--read-data", "--json")
    assert check.returncode == 0 and json.loads(check.stdout)["ok"], check.stdout + check.stderr
    diff = snap(tmp_path, "diff", feature.hex(), merged.merge_commit.hex(), "--stat")
    assert diff.returncode == 0, diff.stderr  # every row of both sides still reads
