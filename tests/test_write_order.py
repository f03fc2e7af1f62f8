"""The order of writes foreign keys accept, where one change holds rows that depend on each other
(snapgit.compare.writeorder), through both writers of changes: a merge or restore applied to the
live database, and the SQL that ``snap diff --sql`` prints, run by the database itself.

PostgreSQL checks a foreign key at the end of each statement, MariaDB at each row, SQLite (with
``PRAGMA foreign_keys = ON`` and no deferral) at the end of each statement too: every case here
fails on all three engines when the order is wrong.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from snapgit import Repo
from snapgit.compare.writeorder import updates_after_inserts
from snapgit.schema import Column, ForeignKey, TableSchema

NODE = """CREATE TABLE node (id INTEGER PRIMARY KEY, parent_id INTEGER NULL,
    label VARCHAR(20) NULL UNIQUE, FOREIGN KEY (parent_id) REFERENCES node (id))"""
TEAM = "CREATE TABLE team (id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL)"
TEAM_UNIQUE = "CREATE TABLE team (id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL UNIQUE)"
PLAYER = """CREATE TABLE player (id INTEGER PRIMARY KEY, team_id INTEGER NOT NULL,
    FOREIGN KEY (team_id) REFERENCES team (id))"""


def connect(engine: sa.Engine) -> sa.Connection:
    conn = engine.connect()
    if engine.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA foreign_keys = ON")
    return conn


def run(engine: sa.Engine, *statements: str) -> None:
    with connect(engine) as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
        conn.commit()


def rows(engine: sa.Engine, table: str) -> set[tuple]:
    with engine.connect() as conn:
        return set(conn.exec_driver_sql(f"SELECT * FROM {table}").all())


# Each case: the tables, the rows before, the statements that make the rows after. The "after"
# side is the snapshot restored or merged in; the "before" side is the live database.
CASES = {
    # an existing row comes to refer to a row added in the same change (same table)
    "reparent_to_a_new_row": (
        [NODE],
        ["INSERT INTO node VALUES (1, NULL, 'a')"],
        ["INSERT INTO node VALUES (2, NULL, 'b')", "UPDATE node SET parent_id = 2 WHERE id = 1"],
    ),
    # a whole chain re-hung under a new root whose key sorts after theirs
    "chain_under_a_new_root": (
        [NODE],
        ["INSERT INTO node VALUES (5, NULL, 'e')", "INSERT INTO node VALUES (6, 5, 'f')"],
        [
            "INSERT INTO node VALUES (9, NULL, 'r')",
            "INSERT INTO node VALUES (8, 9, 'q')",
            "UPDATE node SET parent_id = 8 WHERE id = 5",
        ],
    ),
    # an update gives up a unique label that an inserted row takes (updates must stay first)
    "unique_label_passed_on": (
        [NODE],
        ["INSERT INTO node VALUES (1, NULL, 'a')"],
        ["UPDATE node SET label = 'z' WHERE id = 1", "INSERT INTO node VALUES (2, 1, 'a')"],
    ),
    # the same way back: the row that goes (deleted first) frees the label the update takes back
    # ("unique_label_passed_on" restored backwards; it once failed on every engine)
    "unique_label_taken_back": (
        [NODE],
        ["INSERT INTO node VALUES (1, NULL, 'z')", "INSERT INTO node VALUES (2, 1, 'a')"],
        ["DELETE FROM node WHERE id = 2", "UPDATE node SET label = 'a' WHERE id = 1"],
    ),
    # a row moves away from its parent, which goes with its own parent: both wait for the update
    # (the grandparent must not go first: the parent still refers to it)
    "grandchild_leaves_a_deleted_line": (
        [NODE],
        [
            "INSERT INTO node VALUES (1, NULL, 'g')",
            "INSERT INTO node VALUES (2, 1, 'p')",
            "INSERT INTO node VALUES (3, 2, 'c')",
            "INSERT INTO node VALUES (4, NULL, 'x')",
        ],
        [
            "UPDATE node SET parent_id = 4 WHERE id = 3",
            "DELETE FROM node WHERE id = 2",
            "DELETE FROM node WHERE id = 1",
        ],
    ),
    # a new team takes the name of a team that goes, while a player leaves another team that
    # goes: the first must go before the insert (the name is unique), the second only after the
    # player's move (rows of one table, one deleted early, one late)
    "team_name_passed_on": (
        [TEAM_UNIQUE, PLAYER],
        [
            "INSERT INTO team VALUES (1, 'x')",
            "INSERT INTO team VALUES (3, 'z')",
            "INSERT INTO team VALUES (4, 'w')",
            "INSERT INTO player VALUES (1, 1)",
        ],
        [
            "DELETE FROM team WHERE id = 3",
            "INSERT INTO team VALUES (2, 'z')",
            "UPDATE player SET team_id = 4 WHERE id = 1",
            "DELETE FROM team WHERE id = 1",
        ],
    ),
    # a child moves away from a parent that goes in the same change
    "child_leaves_a_deleted_parent": (
        [TEAM, PLAYER],
        ["INSERT INTO team VALUES (1, 'x')", "INSERT INTO team VALUES (2, 'y')", "INSERT INTO player VALUES (1, 2)"],
        ["UPDATE player SET team_id = 1 WHERE id = 1", "DELETE FROM team WHERE id = 2"],
    ),
    # a subtree goes, children with lower keys than their parents
    "subtree_deleted": (
        [NODE],
        [
            "INSERT INTO node VALUES (9, NULL, 'r')",
            "INSERT INTO node VALUES (5, 9, 'e')",
            "INSERT INTO node VALUES (3, 5, 'c')",
        ],
        ["DELETE FROM node WHERE id = 3", "DELETE FROM node WHERE id = 5"],
    ),
}


def tables_of(case: str) -> list[str]:
    return ["node"] if CASES[case][0] == [NODE] else ["team", "player"]


def setup(engine: sa.Engine, case: str) -> None:
    ddl, before, _after = CASES[case]
    run(engine, *ddl, *before)


@pytest.mark.parametrize("case", sorted(CASES))
def test_restore_and_merge_write_in_an_order_the_keys_accept(db_url, db_engine, tmp_path, case) -> None:
    setup(db_engine, case)
    names = tables_of(case)
    repo = Repo.init(tmp_path, db_url)
    try:
        base = repo.commit("before").commit_id
        before = {t: rows(db_engine, t) for t in names}
        repo.create_branch("feature")
        repo.refs.set_symbolic("HEAD", "refs/heads/feature")
        run(db_engine, *CASES[case][2])
        after = {t: rows(db_engine, t) for t in names}
        assert after != before
        target = repo.commit("after").commit_id
        repo.refs.set_symbolic("HEAD", "refs/heads/main")
        repo.restore(base.hex())
        assert {t: rows(db_engine, t) for t in names} == before
        repo.restore(target.hex())
        assert {t: rows(db_engine, t) for t in names} == after
        repo.restore(base.hex())
        result = repo.merge("feature", strategy="backup_wins")
        assert result.totals()["added"] + result.totals()["updated"] + result.totals()["deleted"] > 0
        assert {t: rows(db_engine, t) for t in names} == after
    finally:
        repo.close()


@pytest.mark.parametrize("case", sorted(CASES))
def test_diff_sql_runs_in_the_database(db_url, db_kind, db_engine, tmp_path, case) -> None:
    """`snap diff A B --sql` piped into the database turns A's rows into B's."""
    setup(db_engine, case)
    repo = Repo.init(tmp_path, db_url)
    try:
        base = repo.commit("before").commit_id.hex()
        before = {t: rows(db_engine, t) for t in tables_of(case)}
        run(db_engine, *CASES[case][2])
        after = {t: rows(db_engine, t) for t in tables_of(case)}
        target = repo.commit("after").commit_id.hex()
    finally:
        repo.close()
    dialect = {"sqlite": "sqlite", "postgresql": "postgresql", "mariadb": "mysql"}[db_kind]
    for a, b, want in ((target, base, before), (base, target, after)):
        out = subprocess.run(
            [sys.executable, "-m", "snapgit.cli", "-C", str(tmp_path), "diff", a, b, "--sql", "--dialect", dialect],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        statements = [s for s in out.splitlines() if s.strip() and not s.startswith("--")]
        assert statements
        run(db_engine, *statements)
        assert {t: rows(db_engine, t) for t in tables_of(case)} == want, out


def _schema() -> TableSchema:
    return TableSchema(
        name="node",
        columns=[Column("id", "integer", nullable=False), Column("parent_id", "integer", nullable=True)],
        primary_key=["id"],
        foreign_keys=[ForeignKey(["parent_id"], "node", ["id"])],
    )


@given(
    updates=st.dictionaries(st.integers(0, 20), st.one_of(st.none(), st.integers(0, 40)), max_size=10),
    inserted=st.sets(st.integers(21, 40), max_size=10),
)
def test_only_updates_that_refer_to_inserted_rows_wait(updates: dict[int, int | None], inserted: set[int]) -> None:
    schema = _schema()
    ups = [[k, p] for k, p in sorted(updates.items())]
    ins = [[k, None] for k in sorted(inserted)]
    first, last = updates_after_inserts(schema, ups, ins)
    assert [r for r in ups if r in first or r in last] == ups and len(first) + len(last) == len(ups)
    assert all(r[1] in inserted for r in last)
    assert not any(r[1] in inserted for r in first)
