"""The three-way merge rules (snapgit.compare.mergeplan) under every strategy, against a model.

test_merge.py checks merges on every engine with a few random cases; this file runs many more
cases on SQLite (in process, a fraction of a second each) and covers ``manual`` too: the
conflicts the merge stops on must be the model's (key, kind, columns), nothing may be written
until they are resolved, and resolving all of them one way must give what the matching
automatic strategy gives. Explicit examples put every conflict kind (cells, add/add,
delete/modify, modify/delete) under every strategy, so a rule that only random cases reach
rarely (theirs winning a conflict) is checked on every run.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from snapgit import Repo
from snapgit.compare.mergeplan import MergeError
from test_merge import ALL_KINDS, COLS, CONFLICTS, X, Y, contents, edits, model, setup_branches

STRATEGIES = ["backup_wins", "database_wins", "manual-theirs", "manual-ours"]


def expected_conflicts(base, ours, theirs) -> set[tuple[int, str, tuple[str, ...]]]:
    """(key, kind, conflicting columns) the rules give, from the three tables alone."""
    out = set()
    for k in set(base) | set(ours) | set(theirs):
        b, o, t = base.get(k), ours.get(k), theirs.get(k)
        if o == t or o == b or t == b:
            continue
        if b is not None and o is not None and t is not None:
            cols = tuple(c for c in sorted(COLS) if o[c] != b[c] and t[c] != b[c] and o[c] != t[c])
            if cols:
                out.add((k, "cells", cols))
        elif b is None:
            out.add((k, "add/add", ("a", "b", "id")))
        elif o is None:
            out.add((k, "delete/modify", ("a", "b", "id")))
        else:
            out.add((k, "modify/delete", ("a", "b", "id")))
    return out


def found_conflicts(repo: Repo) -> set[tuple[int, str, tuple[str, ...]]]:
    out = set()
    for plan, c in repo.conflicts():
        row = dict(zip(plan.schema.sorted_names, c.theirs or c.ours or c.base, strict=False))
        out.add((row["id"], c.kind, tuple(sorted(c.columns))))
    return out


def examples(test):
    """@example: every conflict kind under every strategy, and all kinds at once."""
    for case in [*CONFLICTS.values(), ALL_KINDS]:
        for strategy in STRATEGIES:
            test = example(case=case, strategy=strategy)(test)
    return test


# twice the profile's examples: 200 on CI and for developers
@settings(max_examples=2 * settings.default.max_examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=edits(), strategy=st.sampled_from(STRATEGIES))
@examples
# a cell changed alike on both sides is no conflict, next to one that is
@example(case=({1: X}, {1: {"a": 2, "b": "y"}}, {1: {"a": 2, "b": "z"}}), strategy="manual-theirs")
# the same row added on both sides converges
@example(case=({}, {1: X, 2: Y}, {1: X, 3: Y}), strategy="manual-theirs")
def test_every_strategy_merges_as_the_model_says(case, strategy) -> None:
    base, ours, theirs = case
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        url = f"sqlite:///{tmp / 'db.sqlite'}"
        sqlite3.connect(tmp / "db.sqlite").close()  # snapgit never creates the database it versions
        engine = sa.create_engine(url)
        repo = Repo.init(tmp, url)
        try:
            setup_branches(repo, engine, base, ours, theirs)
            conflicts = expected_conflicts(base, ours, theirs)
            if strategy.startswith("manual"):
                side = strategy.removeprefix("manual-")
                result = repo.merge("feature", strategy="manual")
                assert result.in_progress == bool(conflicts)
                if conflicts:
                    assert contents(engine) == ours  # nothing is written before the conflicts are resolved
                    assert found_conflicts(repo) == conflicts
                    with pytest.raises(MergeError, match="not resolved"):
                        repo.merge_continue()
                    assert repo.resolve_conflicts(side) == len(conflicts)
                    assert {c.resolution for _p, c in repo.conflicts()} == {side}
                    repo.merge_continue()
                assert repo.merge_state() is None
                want = model(base, ours, theirs, "backup_wins" if side == "theirs" else "database_wins")
            else:
                result = repo.merge("feature", strategy=strategy)
                assert not result.in_progress
                found = {(c.kind, c.resolution) for p in result.plans for c in p.conflicts}
                assert found == {
                    (kind, "theirs" if strategy == "backup_wins" else "ours") for _k, kind, _c in conflicts
                }
                want = model(base, ours, theirs, strategy)
            assert contents(engine) == want
            assert all(not list(t.rows()) for t in repo.status())
        finally:
            repo.close()
            engine.dispose()


def test_restore_deletes_what_the_snapshot_lacks_and_is_never_a_conflict(tmp_path) -> None:
    """Restore is a backup_wins merge whose base is the live state: rows the snapshot lacks are
    deleted, rows it has are put back as they were, whatever was edited since."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    sqlite3.connect(tmp_path / "db.sqlite").close()
    engine = sa.create_engine(url)
    from test_merge import load

    snapshot = {1: X, 2: Y, 3: {"a": None, "b": "z"}}
    load(engine, snapshot)
    repo = Repo.init(tmp_path, url)
    first = repo.commit("snapshot").commit_id
    load(engine, {1: {"a": 9, "b": "x"}, 3: {"a": None, "b": "y"}, 4: X, 5: Y})  # changed, deleted, added
    repo.commit("later")
    load(engine, {1: {"a": 10, "b": "x"}, 4: Y, 6: X})  # and uncommitted edits on top
    result = repo.restore(first.hex())
    assert result.totals()["conflicts"] == 0
    assert result.totals()["deleted"] == 2 and result.totals()["added"] == 2 and result.totals()["updated"] == 1
    assert contents(engine) == snapshot
    engine.dispose()
    repo.close()


def model_with_counts(base, ours, theirs, strategy, ignore=()):
    """(the table after merging theirs into ours, the merge's counts), with the columns in
    ``ignore`` left out of every comparison: a change to them alone is no change, they never
    conflict, and a row merged cell by cell keeps the database's value in them. Only the keys
    that changed on either side are counted: each is added, updated, deleted, skipped (kept as
    the database has it) or a conflict."""

    def same(x, y):
        if x is None or y is None:
            return x is y
        return all(x[c] == y[c] for c in COLS if c not in ignore)

    out = {}
    n = {"added": 0, "updated": 0, "deleted": 0, "skipped": 0, "conflicts": 0}
    for k in set(base) | set(ours) | set(theirs):
        b, o, t = base.get(k), ours.get(k), theirs.get(k)
        r = o
        if t == b:
            if o != b:
                n["skipped"] += 1  # changed in the database only
        elif o == b:  # changed in the snapshot only
            if b is not None and t is not None and same(b, t):
                n["skipped"] += 1
            else:
                r = t
                n["added" if b is None else "deleted" if t is None else "updated"] += 1
        elif same(o, t) or (o is None and same(b, t)):
            n["skipped"] += 1  # the same change but for ignored cells; or deleted here, touched there
        elif t is None and same(b, o):
            r = None  # deleted there, touched here in ignored cells only
            n["deleted"] += 1
        elif b is not None and o is not None and t is not None:
            r, conflict = {}, False
            for c in COLS:
                if c in ignore:
                    r[c] = o[c]
                elif o[c] == b[c]:
                    r[c] = t[c]
                elif t[c] == b[c] or o[c] == t[c]:
                    r[c] = o[c]
                else:
                    conflict = True
                    r[c] = t[c] if strategy == "backup_wins" else o[c]
            n["conflicts" if conflict else "skipped" if r == o else "updated"] += 1
        else:
            n["conflicts"] += 1
            r = t if strategy == "backup_wins" else o
        if r is not None:
            out[k] = r
    return out, n


def _ignored(ignore, *cases):
    def wrap(test):
        for case in cases:
            for strategy in ("backup_wins", "database_wins"):
                test = example(case=case, strategy=strategy, ignore=ignore)(test)
        return test

    return wrap


_B = {"a": 1, "b": "y"}  # X with only b changed
_Z = {"a": 1, "b": "z"}  # X with only b changed, otherwise


@settings(max_examples=settings.default.max_examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=edits(),
    strategy=st.sampled_from(["backup_wins", "database_wins"]),
    ignore=st.sampled_from([(), ("a",), ("b",)]),
)
# b ignored: each way a change to b alone is no change, each followed by a key whose change
# must still merge (a rule that stopped the walk would lose it)
@_ignored(
    ("b",),
    ({1: X, 2: X}, {1: X, 2: X}, {1: _B, 2: Y}),  # only theirs, and only b
    ({1: X, 2: X}, {1: _B, 2: X}, {1: _Z, 2: Y}),  # both, differently in b only
    ({1: X, 2: X}, {2: X}, {1: _B, 2: Y}),  # deleted here, only b there
    ({1: X, 2: X}, {1: _B, 2: X}, {2: Y}),  # only b here, deleted there
    ({1: X, 2: X}, {2: X}, {1: Y, 2: Y}),  # deleted here, a changed there: a conflict
    ({1: X, 2: X}, {1: Y, 2: X}, {2: Y}),  # a changed here, deleted there: a conflict
    ({1: X}, {1: {"a": 2, "b": "y"}}, {1: {"a": 3, "b": "z"}}),  # a conflict in a, b keeps ours
    ({1: X, 2: X}, {1: {"a": 2, "b": "y"}, 2: X}, {1: {"a": 1, "b": "z"}, 2: Y}),  # merged = ours
    ({}, {1: X, 2: X}, {1: _B, 2: Y}),  # added on both, the same but for b; and add/add
)
# nothing ignored: a merged row that equals ours is skipped, once; one that takes a cell of
# each side is an update, once
@_ignored(
    (),
    ({1: X, 2: X}, {1: Y, 2: X}, {1: Y, 2: {"a": 1, "b": "z"}}),
    ({1: X, 2: X}, {1: {"a": 2, "b": "x"}, 2: X}, {1: {"a": 1, "b": "y"}, 2: X}),
    ({1: X}, {1: {"a": 2, "b": "y"}}, {1: {"a": 2, "b": "x"}}),  # a cell changed alike on both sides
    ({}, {1: X, 2: Y}, {1: X, 3: Y}),  # the same row added on both sides (in leaves that differ)
    # rows merged cell by cell that sort before ours (theirs' b is smaller), without a conflict
    # and with one: whatever the byte order of the rows, the merged row is written
    ({1: {"a": 1, "b": "y"}}, {1: {"a": 2, "b": "y"}}, {1: {"a": 1, "b": "x"}}),
    ({1: {"a": 1, "b": "y"}}, {1: {"a": 2, "b": "y"}}, {1: {"a": 3, "b": "x"}}),
    # the same change on both sides: the table is planned, each key skipped (the tables' ids
    # sort either way round from the base's)
    ({1: X}, {1: Y}, {1: Y}),
    ({1: X}, {}, {}),
    ({}, {1: X}, {1: X}),
    ({1: Y}, {1: X}, {1: X}),
    ({1: X, 2: Y}, {1: X, 2: X}, {1: X, 2: X}),
    ({1: X, 2: Y}, {2: Y, 3: X}, {2: Y, 3: X}),
)
def test_counts_and_ignored_columns_follow_the_model(case, strategy, ignore) -> None:
    """What a merge writes and what it says it did (added, updated, deleted, skipped,
    conflicts), with and without ignored columns."""
    from snapgit.store.config import TableConfig

    base, ours, theirs = case
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        url = f"sqlite:///{tmp / 'db.sqlite'}"
        sqlite3.connect(tmp / "db.sqlite").close()
        engine = sa.create_engine(url)
        repo = Repo.init(tmp, url)
        try:
            if ignore:
                repo.config.table["items"] = TableConfig(ignore=list(ignore))
                repo.store.save_config()
                repo.close()
                repo = Repo.open(tmp)
            setup_branches(repo, engine, base, ours, theirs)
            want, counts = model_with_counts(base, ours, theirs, strategy, ignore)
            result = repo.merge("feature", strategy=strategy)
            assert contents(engine) == want
            assert result.totals() == counts
            assert sum(p.considered for p in result.plans) == sum(counts.values())
            side = "resolved_theirs" if strategy == "backup_wins" else "resolved_ours"
            assert sum(getattr(p, side) for p in result.plans) == counts["conflicts"]
            assert sum(p.resolved_ours + p.resolved_theirs for p in result.plans) == counts["conflicts"]
            # a key is written exactly when the merge leaves it otherwise than the database had it
            assert sum(p.writes for p in result.plans) == sum(want.get(k) != ours.get(k) for k in {*want, *ours})
        finally:
            repo.close()
            engine.dispose()


def test_a_table_unchanged_on_every_side_is_left_out_of_the_plan(tmp_path) -> None:
    """Only the tables that changed on some side are planned (and listed by ``merge --json``);
    one that did not, before and after one that did, is passed over."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    con = sqlite3.connect(tmp_path / "db.sqlite")
    for other in ("accounts", "zones"):
        con.execute(f"CREATE TABLE {other} (id INTEGER PRIMARY KEY, v TEXT)")
        con.execute(f"INSERT INTO {other} VALUES (1, 'same everywhere')")
    con.commit()
    con.close()
    engine = sa.create_engine(url)
    repo = Repo.init(tmp_path, url)
    try:
        setup_branches(repo, engine, {1: X}, {1: X}, {1: Y})
        result = repo.merge("feature", strategy="backup_wins")
        assert [p.name for p in result.plans] == ["items"]
        assert list(result.to_json()["tables"]) == ["items"]
        assert contents(engine) == {1: Y}
    finally:
        repo.close()
        engine.dispose()


@pytest.mark.parametrize("other", ["record", "commit"])
def test_a_table_whose_schema_is_another_kind_of_object_is_damage(tmp_path, other: str) -> None:
    """A snapshot (made here object by object) whose table names a record, or a commit, as its
    schema: the merge stops as on any damage (CorruptError, exit 3), writing nothing."""
    import dataclasses

    from snapgit.encoding import encode_row
    from snapgit.errors import CorruptError
    from snapgit.objects import ObjType, Root
    from snapgit.store.history import read_commit, read_root, read_table

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    sqlite3.connect(tmp_path / "db.sqlite").close()
    engine = sa.create_engine(url)
    repo = Repo.init(tmp_path, url)
    try:
        setup_branches(repo, engine, {1: X}, {1: X}, {1: Y})
        feature = repo.resolve("feature")
        head = read_commit(repo.objects, feature)
        entry = read_table(repo.objects, read_root(repo.objects, head.tree).tables["items"])
        with repo.objects.writer() as w:
            bad = w.add(ObjType.RECORD, encode_row([1, "not a schema"])) if other == "record" else repo.head()
            table = w.add(ObjType.TABLE, dataclasses.replace(entry, schema=bad).encode())
            tree = w.add(ObjType.ROOT, Root({"items": table}).encode())
            commit = dataclasses.replace(head, tree=tree, parents=[feature], message="damaged")
            broken = w.add(ObjType.COMMIT, commit.encode())
        with pytest.raises(CorruptError, match=f"object {bad.hex()} is not a schema"):
            repo.merge(broken.hex(), strategy="backup_wins")
        assert contents(engine) == {1: X}
    finally:
        repo.close()
        engine.dispose()
