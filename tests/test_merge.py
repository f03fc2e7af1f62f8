"""merge and restore against real databases, checked against a model of the three-way rules."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from snapgit import Repo
from snapgit.db import DatabaseError
from snapgit.errors import SnapError

COLS = ("a", "b")

row = st.fixed_dictionaries({"a": st.one_of(st.none(), st.integers(0, 3)), "b": st.sampled_from(["x", "y", "z"])})
table = st.dictionaries(st.integers(0, 12), row, max_size=10)


def edits(base_strategy=table):
    """(base, ours, theirs): ours and theirs each a random edit of base."""

    @st.composite
    def build(draw):
        base = draw(base_strategy)

        def edit(d):
            out = dict(d)
            for k in list(out):
                choice = draw(st.sampled_from(["keep", "keep", "drop", "change"]))
                if choice == "drop":
                    del out[k]
                elif choice == "change":
                    col = draw(st.sampled_from(COLS))
                    out[k] = {**out[k], col: draw(row)[col]}
            for k, v in draw(st.dictionaries(st.integers(0, 12), row, max_size=3)).items():
                if k not in out:
                    out[k] = v
            return out

        return base, edit(base), edit(base)

    return build()


X, Y = {"a": 1, "b": "x"}, {"a": 2, "b": "x"}

# (base, ours, theirs) with one conflict of each kind; the cells conflict has a cell that only
# theirs changed, which merges whoever wins the conflicting one
CONFLICTS = {
    "cells": ({1: X}, {1: {"a": 2, "b": "x"}}, {1: {"a": 3, "b": "y"}}),
    "add/add": ({}, {1: X}, {1: Y}),
    "delete/modify": ({1: X}, {}, {1: Y}),
    "modify/delete": ({1: X}, {1: Y}, {}),
}
# every kind at once (1 cells, with a cell only ours changed; 2 add/add, 4 modify/delete,
# 5 delete/modify), next to keys that merge without conflict (3 and 6 changed, 7 deleted, 8 added
# by theirs; 9 changed by ours)
ALL_KINDS = (
    {1: X, 3: X, 4: X, 5: X, 6: X, 7: X, 9: X},
    {1: {"a": 2, "b": "y"}, 2: X, 3: X, 4: Y, 6: X, 7: X, 9: Y},
    {1: {"a": 3, "b": "x"}, 2: Y, 3: Y, 5: Y, 6: Y, 8: X, 9: X},
)


def model(base, ours, theirs, strategy):
    """The expected table after merging theirs into ours."""
    out = {}
    for k in set(base) | set(ours) | set(theirs):
        b, o, t = base.get(k), ours.get(k), theirs.get(k)
        if o == t:
            r = o
        elif o == b:
            r = t
        elif t == b:
            r = o
        elif b is not None and o is not None and t is not None:
            r = {}
            for c in COLS:
                if o[c] == b[c]:
                    r[c] = t[c]
                elif t[c] == b[c] or o[c] == t[c]:
                    r[c] = o[c]
                else:
                    r[c] = t[c] if strategy == "backup_wins" else o[c]
        else:
            r = t if strategy == "backup_wins" else o
        if r is not None:
            out[k] = r
    return out


def items_table(meta):
    return sa.Table(
        "items",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("a", sa.Integer),
        sa.Column("b", sa.String(5)),
    )


def load(engine, rows):
    meta = sa.MetaData()
    t = items_table(meta)
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(t.delete())
        if rows:
            conn.execute(t.insert(), [{"id": k, **v} for k, v in rows.items()])


def contents(engine):
    with engine.connect() as conn:
        return {r.id: {"a": r.a, "b": r.b} for r in conn.execute(sa.text("SELECT id, a, b FROM items"))}


def setup_branches(repo, engine, base, ours, theirs):
    load(engine, base)
    repo.commit("base", allow_empty=True)
    repo.create_branch("feature")
    repo.refs.set_symbolic("HEAD", "refs/heads/feature")
    load(engine, theirs)
    repo.commit("theirs", allow_empty=True)
    repo.refs.set_symbolic("HEAD", "refs/heads/main")
    load(engine, ours)


def conflict_examples(test):
    """@example: every conflict kind, and all kinds at once, under each automatic strategy."""
    for case in [*CONFLICTS.values(), ALL_KINDS]:
        for strategy in ("backup_wins", "database_wins"):
            test = example(case=case, strategy=strategy)(test)
    return test


# (random cases on top of the examples; test_mergeplan.py runs many more on SQLite alone)
@settings(max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=edits(), strategy=st.sampled_from(["backup_wins", "database_wins"]))
@conflict_examples
def test_merge_matches_model(db_url, db_engine, tmp_path_factory, case, strategy):
    base, ours, theirs = case
    repo = Repo.init(tmp_path_factory.mktemp("m"), db_url)
    setup_branches(repo, db_engine, base, ours, theirs)
    preview = repo.merge("feature", strategy=strategy, preview=True)
    result = repo.merge("feature", strategy=strategy)
    assert contents(db_engine) == model(base, ours, theirs, strategy)
    assert preview.totals() == result.totals()
    keys_considered = {
        k for k in set(base) | set(ours) | set(theirs) if ours.get(k) != base.get(k) or theirs.get(k) != base.get(k)
    }
    assert sum(result.totals().values()) == len(keys_considered)
    # a merge commit with two parents records the result; the live database equals it
    head = repo.read_commit(repo.head())
    if not result.fast_forward:
        assert len(head.parents) == 2
    assert all(not list(t.rows()) for t in repo.status())
    # merging again changes nothing
    again = repo.merge("feature", strategy=strategy)
    assert again.totals()["added"] + again.totals()["updated"] + again.totals()["deleted"] == 0
    assert contents(db_engine) == model(base, ours, theirs, strategy)
    repo.close()


def test_manual_merge_conflicts_resolve_continue(tmp_path):
    db = tmp_path / "db.sqlite"
    import sqlite3

    sqlite3.connect(db).close()
    engine = sa.create_engine(f"sqlite:///{db}")
    repo = Repo.init(tmp_path, f"sqlite:///{db}")
    base = {1: {"a": 1, "b": "x"}, 2: {"a": 2, "b": "x"}, 3: {"a": 3, "b": "x"}}
    ours = {1: {"a": 10, "b": "x"}, 2: {"a": 2, "b": "y"}, 3: {"a": 3, "b": "x"}}
    theirs = {1: {"a": 20, "b": "x"}, 2: {"a": 2, "b": "x"}, 3: {"a": 3, "b": "z"}, 4: {"a": 4, "b": "x"}}
    setup_branches(repo, engine, base, ours, theirs)
    before = contents(engine)
    result = repo.merge("feature", strategy="manual")
    assert result.in_progress
    assert contents(engine) == before  # nothing written
    with pytest.raises(SnapError, match="already in progress"):
        repo.merge("feature", strategy="manual")
    conflicts = repo.conflicts()
    assert [(c.table, c.kind, c.columns) for _p, c in conflicts] == [("items", "cells", ["a"])]
    with pytest.raises(SnapError, match="not resolved"):
        repo.merge_continue()
    assert repo.resolve_conflicts("theirs", keys=["id=1"]) == 1
    merged = repo.merge_continue()
    assert repo.merge_state() is None
    assert contents(engine) == {
        1: {"a": 20, "b": "x"},
        2: {"a": 2, "b": "y"},
        3: {"a": 3, "b": "z"},
        4: {"a": 4, "b": "x"},
    }
    assert merged.merge_commit is not None
    engine.dispose()


def test_manual_merge_abort_leaves_database(tmp_path):
    import sqlite3

    db = tmp_path / "db.sqlite"
    sqlite3.connect(db).close()
    engine = sa.create_engine(f"sqlite:///{db}")
    repo = Repo.init(tmp_path, f"sqlite:///{db}")
    setup_branches(repo, engine, {1: {"a": 1, "b": "x"}}, {1: {"a": 2, "b": "x"}}, {1: {"a": 3, "b": "x"}})
    assert repo.merge("feature", strategy="manual").in_progress
    repo.merge_abort()
    assert repo.merge_state() is None
    assert contents(engine) == {1: {"a": 2, "b": "x"}}
    engine.dispose()


def test_fk_violation_rolls_back_and_leaves_no_trace(db_url, db_engine, tmp_path):
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
    repo = Repo.init(tmp_path, db_url)
    repo.commit("base")
    repo.create_branch("feature")
    repo.refs.set_symbolic("HEAD", "refs/heads/feature")
    with db_engine.begin() as conn:  # theirs: a child of parent 2
        conn.execute(child.insert(), [{"id": 2, "parent_id": 2}])
    repo.commit("theirs")
    repo.refs.set_symbolic("HEAD", "refs/heads/main")
    with db_engine.begin() as conn:  # ours: back to base, then parent 2 deleted
        conn.execute(child.delete().where(child.c.id == 2))
        conn.execute(parent.delete().where(parent.c.id == 2))

    def snapshot():
        with db_engine.connect() as conn:
            return (
                sorted(conn.execute(sa.text("SELECT id FROM parent")).all()),
                sorted(conn.execute(sa.text("SELECT id, parent_id FROM child")).all()),
            )

    before = snapshot()
    head_before = repo.head()
    with pytest.raises(DatabaseError, match="child"):
        repo.merge("feature", strategy="backup_wins")
    assert snapshot() == before
    assert repo.merge_state() is None
    assert repo.head() == head_before  # the branch did not move
    safety = repo.read_commit(repo.resolve("refs/snap/safety"))  # the pre-merge snapshot, off the branch
    assert safety.message.startswith("snapshot of the database before merging")
    assert safety.parents == [head_before]
    repo.close()


def test_restore_then_diff_is_empty(db_url, db_engine, tmp_path):
    repo = Repo.init(tmp_path, db_url)
    load(db_engine, {1: {"a": 1, "b": "x"}, 2: {"a": None, "b": "y"}})
    first = repo.commit("one").commit_id
    load(db_engine, {2: {"a": 5, "b": "y"}, 3: {"a": 3, "b": "z"}})
    repo.commit("two")
    result = repo.restore(first.hex())
    assert result.totals()["added"] == 1 and result.totals()["deleted"] == 1 and result.totals()["updated"] == 1
    assert contents(db_engine) == {1: {"a": 1, "b": "x"}, 2: {"a": None, "b": "y"}}
    assert all(not list(t.rows()) for t in repo.diff(first.hex()))
    assert repo.read_commit(repo.head()).message == "two"  # HEAD did not move
    repo.close()


@pytest.mark.parametrize("source,target", [("sqlite", "postgresql"), ("postgresql", "mariadb"), ("mariadb", "sqlite")])
def test_restore_into_another_database(make_db_url, make_engine, tmp_path, source, target):
    src = make_db_url(source)
    dst = make_db_url(target)
    engine = make_engine(src)
    meta = sa.MetaData()
    parent = sa.Table(
        "parent",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(20), nullable=False),
        sa.Column("price", sa.Numeric(10, 2)),
    )
    child = sa.Table(
        "child",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("parent.id")),
        sa.Column("note", sa.Text),
    )
    meta.create_all(engine)
    import decimal

    with engine.begin() as conn:
        conn.execute(
            parent.insert(), [{"id": i, "name": f"p{i}", "price": decimal.Decimal(f"{i}.25")} for i in range(1, 30)]
        )
        conn.execute(
            child.insert(),
            [{"id": i, "parent_id": i % 29 + 1, "note": None if i % 3 else "n'ote"} for i in range(1, 60)],
        )
    repo = Repo.init(tmp_path, src)
    c = repo.commit("source").commit_id
    repo.restore(c.hex(), into=dst)
    assert all(not list(t.rows()) for t in repo.diff(c.hex(), None, db_url=dst))
    repo.close()


def test_cli_merge(tmp_path):
    import sqlite3

    db = tmp_path / "db.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, a INTEGER, b TEXT)")
    con.executemany("INSERT INTO items VALUES (?,?,?)", [(1, 1, "x"), (2, 2, "x")])
    con.commit()

    def snap(*args):
        return subprocess.run(
            [sys.executable, "-m", "snapgit.cli", *args], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )

    assert snap("init", "--db", "db.sqlite").returncode == 0
    assert snap("commit", "-m", "base").returncode == 0
    assert snap("checkout", "-b", "feature").returncode == 0
    con.execute("UPDATE items SET a = 10 WHERE id = 1")
    con.commit()
    assert snap("commit", "-m", "feature change").returncode == 0
    co = snap("checkout", "main")
    assert co.returncode == 0, co.stderr
    assert con.execute("SELECT a FROM items WHERE id = 1").fetchone() == (1,)
    con.execute("UPDATE items SET b = 'y' WHERE id = 2")
    con.commit()
    prev = snap("merge", "feature", "--strategy", "database_wins", "--preview", "--json")
    doc = json.loads(prev.stdout)
    assert doc["tables"]["items"]["to_update"] == 1
    assert con.execute("SELECT a FROM items WHERE id = 1").fetchone() == (1,)
    done = snap("merge", "feature", "--strategy", "database_wins")
    assert done.returncode == 0, done.stderr
    assert "1 updated" in done.stdout and "snap restore" in done.stdout
    assert con.execute("SELECT id, a, b FROM items ORDER BY id").fetchall() == [(1, 10, "x"), (2, 2, "y")]
    oplog = [json.loads(x) for x in snap("oplog", "--json").stdout.splitlines()]
    assert "merge" in [e["op"] for e in oplog]
    con.close()


def test_restore_into_a_new_sqlite_file(tmp_path):
    import sqlite3

    db = tmp_path / "db.sqlite"
    sqlite3.connect(db).close()
    engine = sa.create_engine(f"sqlite:///{db}")
    load(engine, {1: {"a": 1, "b": "x"}, 2: {"a": None, "b": "y"}})
    repo = Repo.init(tmp_path, f"sqlite:///{db}")
    c = repo.commit("one").commit_id
    target = tmp_path / "sub" / "copy.sqlite"
    target.parent.mkdir()
    repo.restore(c.hex(), into=str(target))
    assert all(not list(t.rows()) for t in repo.diff(c.hex(), None, db_url=f"sqlite:///{target}"))
    with pytest.raises(DatabaseError):  # its tables exist now: a second restore into it refuses
        repo.restore(c.hex(), into=str(target))
    engine.dispose()
    repo.close()


def test_natural_key_and_ignored_columns(tmp_path):
    """Rows are matched by the configured natural key; ignored columns never conflict."""
    import sqlite3

    from snapgit.store.config import TableConfig

    db = tmp_path / "db.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, code TEXT, company INTEGER, qty INTEGER, updated_at TEXT)")
    con.executemany("INSERT INTO items VALUES (?,?,?,?,?)", [(1, "A", 1, 5, "t0"), (2, "B", 1, 6, "t0")])
    con.commit()
    repo = Repo.init(tmp_path, f"sqlite:///{db}")
    repo.config.table["items"] = TableConfig(key=["code", "company"], ignore=["id", "updated_at"])
    repo.store.save_config()
    repo = Repo.open(tmp_path)
    repo.commit("base")
    assert repo.tables()[0].key == ["code", "company"]
    repo.create_branch("feature")
    repo.refs.set_symbolic("HEAD", "refs/heads/feature")
    con.execute("UPDATE items SET qty = 50, updated_at = 't1' WHERE code = 'A'")
    con.commit()
    repo.commit("feature: qty of A")
    repo.refs.set_symbolic("HEAD", "refs/heads/main")
    # the live database: the same rows, renumbered, and a touch of updated_at
    con.execute("DELETE FROM items")
    con.executemany("INSERT INTO items VALUES (?,?,?,?,?)", [(10, "A", 1, 5, "t2"), (11, "B", 1, 6, "t0")])
    con.commit()
    result = repo.merge("feature", strategy="manual")
    assert not result.in_progress, [c.kind for p in result.plans for c in p.conflicts]
    assert con.execute("SELECT id, code, qty, updated_at FROM items ORDER BY code").fetchall() == [
        (10, "A", 50, "t2"),
        (11, "B", 6, "t0"),
    ]
    con.close()
    repo.close()


def test_checkout_refuses_dirty_and_force_saves_to_a_ref(tmp_path):
    import sqlite3

    db = tmp_path / "db.sqlite"
    sqlite3.connect(db).close()
    engine = sa.create_engine(f"sqlite:///{db}")
    load(engine, {1: {"a": 1, "b": "x"}})
    repo = Repo.init(tmp_path, f"sqlite:///{db}")
    repo.commit("one")
    repo.checkout("HEAD", new_branch="feature")
    load(engine, {1: {"a": 2, "b": "x"}})
    feature_commit = repo.commit("feature").commit_id
    repo.checkout("main")
    assert contents(engine) == {1: {"a": 1, "b": "x"}}
    load(engine, {1: {"a": 3, "b": "x"}, 2: {"a": 0, "b": "y"}})  # uncommitted work
    with pytest.raises(SnapError, match="uncommitted changes"):
        repo.checkout("feature")
    main_before = repo.head()
    done = repo.checkout("feature", force=True)
    assert done["saved"] == "refs/snap/safety"  # the safety snapshot's ref, as for merge and restore
    assert contents(engine) == {1: {"a": 2, "b": "x"}}
    assert repo.head() == feature_commit and repo.head_ref() == "refs/heads/feature"
    assert repo.resolve("main") == main_before  # main gained no commit
    saved = repo.resolve(done["saved"])
    assert [t.rows for t in repo.tables(saved.hex())] == [2]  # the uncommitted rows were kept there
    repo.checkout("main")
    engine.dispose()
    repo.close()
