"""Applying merge plans (snapgit.ops.apply): the order of writes that foreign keys accept.

PostgreSQL and MariaDB check a foreign key at each statement (MariaDB at each row), so a merge or
a restore that deletes a parent together with its children must delete the children first, and
one that adds a parent with its children must insert the parent first. SQLite checks them once,
before the commit, so there any order passes: these tests guard the order on the servers, and
the outcome (the rows) on every engine.

The tables have real FOREIGN KEYs; their names sort the parent first ("author" < "book"), so
neither alphabetical order nor the order the plans come in can hide a wrong dependency order.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from snapgit import Repo

AUTHORS = {1: "ann", 2: "bob", 3: "cy"}
BOOKS = {i: (i % 3 + 1, f"book {i}") for i in range(1, 10)}  # id -> (author_id, title)


def tables(meta: sa.MetaData) -> tuple[sa.Table, sa.Table]:
    author = sa.Table(
        "author",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(20), nullable=False),
    )
    book = sa.Table(
        "book",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("author_id", sa.Integer, sa.ForeignKey("author.id"), nullable=False),
        sa.Column("title", sa.String(40), nullable=False),
    )
    return author, book


def load(engine: sa.Engine, authors: dict[int, str], books: dict[int, tuple[int, str]]) -> None:
    """Make the database hold exactly these rows (children deleted first, parents inserted first)."""
    meta = sa.MetaData()
    author, book = tables(meta)
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(book.delete())
        conn.execute(author.delete())
        if authors:
            conn.execute(author.insert(), [{"id": k, "name": v} for k, v in authors.items()])
        if books:
            conn.execute(book.insert(), [{"id": k, "author_id": a, "title": t} for k, (a, t) in books.items()])


def contents(engine: sa.Engine) -> tuple[dict[int, str], dict[int, tuple[int, str]]]:
    with engine.connect() as conn:
        authors = {r.id: r.name for r in conn.execute(sa.text("SELECT id, name FROM author"))}
        books = {r.id: (r.author_id, r.title) for r in conn.execute(sa.text("SELECT id, author_id, title FROM book"))}
    return authors, books


def without_author(n: int) -> tuple[dict[int, str], dict[int, tuple[int, str]]]:
    return ({k: v for k, v in AUTHORS.items() if k != n}, {k: v for k, v in BOOKS.items() if v[0] != n})


@pytest.mark.parametrize("strategy", ["backup_wins", "database_wins", "manual"])
def test_merge_deletes_a_parent_with_its_children(db_url, db_engine, tmp_path, strategy) -> None:
    """Theirs deletes author 2 and every book of it; ours edits another author's book. Nothing
    conflicts, so every strategy merges the same: the children go first, then the parent."""
    load(db_engine, AUTHORS, BOOKS)
    repo = Repo.init(tmp_path, db_url)
    repo.commit("base")
    repo.create_branch("feature")
    repo.refs.set_symbolic("HEAD", "refs/heads/feature")
    load(db_engine, *without_author(2))
    repo.commit("theirs: author 2 and its books are gone")
    repo.refs.set_symbolic("HEAD", "refs/heads/main")
    ours_books = {**BOOKS, 3: (BOOKS[3][0], "ours")}
    load(db_engine, AUTHORS, ours_books)  # uncommitted: the merge commits it first
    result = repo.merge("feature", strategy=strategy)
    assert not result.in_progress
    assert result.totals()["deleted"] == 1 + sum(1 for a, _t in BOOKS.values() if a == 2)
    authors, books = without_author(2)
    assert contents(db_engine) == (authors, {**books, 3: (BOOKS[3][0], "ours")})
    assert all(not list(t.rows()) for t in repo.status())
    repo.close()


def test_restore_deletes_a_parent_with_its_children_and_adds_another(db_url, db_engine, tmp_path) -> None:
    """The snapshot lacks author 2 and its books, and has an author 4 with books the database
    lacks: restore deletes children before parents, inserts parents before children, and moves
    a book to the new author (an update that needs the insert first)."""
    authors, books = without_author(2)
    authors[4] = "dee"
    books.update({20: (4, "new 20"), 21: (4, "new 21")})
    books[3] = (4, "moved")  # author 1's book, moved to the new author
    load(db_engine, authors, books)
    repo = Repo.init(tmp_path, db_url)
    snapshot = repo.commit("the snapshot").commit_id
    load(db_engine, AUTHORS, BOOKS)
    repo.commit("later")
    result = repo.restore(snapshot.hex())
    assert result.totals()["conflicts"] == 0
    assert contents(db_engine) == (authors, books)
    assert all(not list(t.rows()) for t in repo.diff(snapshot.hex()))
    repo.close()


def test_restore_of_a_self_referencing_table_deletes_a_subtree(db_url, db_engine, tmp_path) -> None:
    """Rows of one table that refer to each other: the deleted subtree goes in one piece, the
    added one comes in parents first, whatever order the keys have (children have lower ids)."""
    meta = sa.MetaData()
    node = sa.Table(
        "node",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("node.id"), nullable=True),
    )
    meta.create_all(db_engine)

    def put(rows: dict[int, int | None]) -> None:
        with db_engine.begin() as conn:
            # delete leaves first: repeat until nothing refers to what is left
            while conn.execute(sa.select(sa.func.count()).select_from(node)).scalar():
                conn.execute(
                    node.delete().where(
                        ~node.c.id.in_(
                            sa.select(node.c.parent_id).where(node.c.parent_id.is_not(None)).scalar_subquery()
                        )
                    )
                )
            todo = dict(rows)
            while todo:  # roots first
                ready = {k: p for k, p in todo.items() if p is None or p not in todo}
                conn.execute(node.insert(), [{"id": k, "parent_id": p} for k, p in ready.items()])
                todo = {k: p for k, p in todo.items() if k not in ready}

    def rows() -> dict[int, int | None]:
        with db_engine.connect() as conn:
            return dict(conn.execute(sa.text("SELECT id, parent_id FROM node")).all())

    root_only = {100: None, 90: 100}
    put(root_only)
    repo = Repo.init(tmp_path, db_url)
    snapshot = repo.commit("one root").commit_id
    # two subtrees: under 90 the children have lower ids than their parents, under 100 higher
    grown = {**root_only, 80: 90, 70: 80, 60: 80, 50: 70, 110: 100, 120: 110, 130: 120, 125: 110}
    put(grown)
    later = repo.commit("two subtrees").commit_id
    repo.restore(snapshot.hex())
    assert rows() == root_only
    repo.restore(later.hex())
    assert rows() == grown
    repo.close()


def test_merge_moves_children_away_from_a_deleted_parent(db_url, db_kind, db_engine, tmp_path) -> None:
    """Theirs moves author 2's books to author 1, then deletes author 2: the books' updates must
    reach the database before the author's delete."""
    load(db_engine, AUTHORS, BOOKS)
    repo = Repo.init(tmp_path, db_url)
    repo.commit("base")
    repo.create_branch("feature")
    repo.refs.set_symbolic("HEAD", "refs/heads/feature")
    authors = {k: v for k, v in AUTHORS.items() if k != 2}
    books = {k: ((1, t) if a == 2 else (a, t)) for k, (a, t) in BOOKS.items()}
    load(db_engine, authors, books)
    repo.commit("theirs: author 2's books move to author 1, author 2 goes")
    repo.refs.set_symbolic("HEAD", "refs/heads/main")
    load(db_engine, AUTHORS, BOOKS)
    result = repo.merge("feature", strategy="backup_wins")
    assert result.totals()["deleted"] == 1
    assert contents(db_engine) == (authors, books)
    repo.close()


def test_restore_into_a_new_database_inserts_parents_first(make_db_url, make_engine, tmp_path, db_kind) -> None:
    """restore --into writes every row of a self-referencing table; children with lower keys
    than their parents must still come after them (the foreign keys are added after the rows)."""
    src = make_db_url("sqlite")
    engine = make_engine(src)
    meta = sa.MetaData()
    node = sa.Table(
        "node",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("node.id"), nullable=True),
    )
    meta.create_all(engine)
    tree = {100: None, 90: 100, 80: 90, 110: 100, 120: 110}
    with engine.begin() as conn:
        conn.execute(node.insert(), [{"id": k, "parent_id": p} for k, p in tree.items()])
    repo = Repo.init(tmp_path, src)
    cid = repo.commit("a tree").commit_id
    dst = make_db_url(db_kind)
    repo.restore(cid.hex(), into=dst)
    with make_engine(dst).connect() as conn:
        assert dict(conn.execute(sa.text("SELECT id, parent_id FROM node")).all()) == tree
    repo.close()


def test_merge_frees_a_unique_value_before_a_new_row_takes_it(db_url, db_engine, tmp_path) -> None:
    """Theirs deletes author 3 and adds author 4 under the same unique name: the delete is
    written before the insert, since no updated table refers to authors."""
    meta = sa.MetaData()
    author = sa.Table(
        "author",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(20), nullable=False, unique=True),
    )
    meta.create_all(db_engine)

    def put(rows: dict[int, str]) -> None:
        with db_engine.begin() as conn:
            conn.execute(author.delete())
            conn.execute(author.insert(), [{"id": k, "name": v} for k, v in rows.items()])

    def now() -> dict[int, str]:
        with db_engine.connect() as conn:
            return {r.id: r.name for r in conn.execute(sa.text("SELECT id, name FROM author"))}

    put({1: "ann", 2: "bob", 3: "cy"})
    repo = Repo.init(tmp_path, db_url)
    repo.commit("base")
    repo.create_branch("feature")
    repo.refs.set_symbolic("HEAD", "refs/heads/feature")
    put({1: "ann", 2: "bob", 4: "cy"})
    repo.commit("theirs: cy is author 4 now")
    repo.refs.set_symbolic("HEAD", "refs/heads/main")
    put({1: "ann", 2: "bob", 3: "cy"})
    result = repo.merge("feature", strategy="backup_wins")
    assert result.totals()["deleted"] == 1 and result.totals()["added"] == 1
    assert now() == {1: "ann", 2: "bob", 4: "cy"}
    repo.close()
