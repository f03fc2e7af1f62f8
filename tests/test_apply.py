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
    target = make_engine(dst)
    with target.connect() as conn:
        assert dict(conn.execute(sa.text("SELECT id, parent_id FROM node")).all()) == tree
    # and the foreign key is there once the rows are in: the database itself refuses an orphan
    with target.connect() as conn:
        if db_kind == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys = ON")
        with pytest.raises(sa.exc.IntegrityError):
            conn.execute(sa.text("INSERT INTO node (id, parent_id) VALUES (1, 999)"))
        conn.rollback()
        conn.execute(sa.text("INSERT INTO node (id, parent_id) VALUES (1, 120)"))
        conn.rollback()
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


# --- the order itself, on any engine ----------------------------------------------------------
# SQLite checks foreign keys only at the end, so the tests above see a wrong order on the
# servers alone. These record the writes apply_plans asks for and check their order directly.

from contextlib import contextmanager  # noqa: E402

from hypothesis import example, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from snapgit.compare.mergeplan import TablePlan  # noqa: E402
from snapgit.compare.writeorder import generations  # noqa: E402
from snapgit.ops.apply import BATCH, apply_plans  # noqa: E402
from snapgit.schema import Column, ForeignKey, TableSchema  # noqa: E402


class Recorder:
    """A database whose write transaction records what it is asked to do (snapgit.db.write's
    interface: delete_rows, update_rows, insert_rows, check_foreign_keys, reset_sequences)."""

    dialect = "sqlite"  # apply_plans checks values against live columns only on the servers

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    @contextmanager
    def write(self):
        yield self

    def delete_rows(self, schema, key, rows):
        self.calls.append(("delete", schema.name, [tuple(r) for r in rows]))

    def update_rows(self, schema, key, rows):
        self.calls.append(("update", schema.name, [tuple(r) for r in rows]))

    def insert_rows(self, schema, rows):
        self.calls.append(("insert", schema.name, [tuple(r) for r in rows]))

    def check_foreign_keys(self, names):
        self.calls.append(("check", tuple(sorted(names))))

    def reset_sequences(self, schema):
        self.calls.append(("sequences", schema.name))


def schema(name: str, *fks: ForeignKey, extra: tuple[str, ...] = ()) -> TableSchema:
    cols = ("id", "parent_id", *extra)
    return TableSchema(name, tuple(Column(c, "integer") for c in cols), ("id",), foreign_keys=fks)


NODE = schema("node", ForeignKey(("parent_id",), "node", ("id",)))  # rows: (id, parent_id)
# rows in sorted-name order: id, parent_id
A = schema("a")  # the parent table
B = schema("b", ForeignKey(("parent_id",), "a", ("id",)))  # B's rows refer to A's
C = schema("c", ForeignKey(("parent_id",), "b", ("id",)))  # and C's to B's


def test_tables_are_written_in_foreign_key_order() -> None:
    b = TablePlan("b", B, ["id"], deletes=[[9, 9]])
    b.update([1, 1], was=[1, 8])  # b's row 1 moves from a's row 8 (which goes) to a's row 1 (added)
    plans = [
        TablePlan("c", C, ["id"], inserts=[[1, 1]], deletes=[[9, 9]]),
        TablePlan("a", A, ["id"], inserts=[[1, None]], updates=[[2, None]], deletes=[[9, None], [8, None]]),
        b,
    ]
    db = Recorder()
    apply_plans(db, plans)
    assert db.calls == [
        ("delete", "c", [(9, 9)]),
        ("delete", "b", [(9, 9)]),  # children first
        ("delete", "a", [(9, None)]),  # what no update moves away from goes first
        ("update", "a", [(2, None)]),
        ("insert", "a", [(1, None)]),  # then parents first
        ("update", "b", [(1, 1)]),
        ("insert", "c", [(1, 1)]),
        ("delete", "a", [(8, None)]),  # b's row 1 referred to it until its update
        ("check", ("a", "b", "c")),
        ("sequences", "c"),
        ("sequences", "a"),  # the tables that got inserts, and only those
    ]


def test_deletes_an_update_moves_away_from_wait_with_what_they_refer_to() -> None:
    """The row an update moves away from goes after the update, and so do the deleted rows it
    refers to (children still go before their parents); the other deletes of the same tables
    go first."""
    c = TablePlan("c", C, ["id"])
    c.update([1, 2], was=[1, 7])  # c's row 1 leaves b's row 7, which goes, as does a's row 5 it refers to
    plans = [
        TablePlan("a", A, ["id"], deletes=[[5, None], [6, None]]),
        TablePlan("b", B, ["id"], deletes=[[7, 5], [4, 6]], inserts=[[2, None]]),
        c,
    ]
    db = Recorder()
    apply_plans(db, plans)
    assert [call for call in db.calls if call[0] in ("delete", "update", "insert")] == [
        ("delete", "b", [(4, 6)]),
        ("delete", "a", [(6, None)]),
        ("insert", "b", [(2, None)]),
        ("update", "c", [(1, 2)]),
        ("delete", "b", [(7, 5)]),
        ("delete", "a", [(5, None)]),
    ]


def test_nothing_to_write_opens_no_transaction() -> None:
    db = Recorder()
    apply_plans(db, [TablePlan("a", A, ["id"]), TablePlan("b", B, ["id"])])
    assert db.calls == []


def test_big_plans_are_written_in_batches() -> None:
    rows = [[i, None] for i in range(12_001)]
    from test_repo import Recorder as Progress

    db, seen = Recorder(), Progress()
    apply_plans(db, [TablePlan("a", A, ["id"], inserts=rows, updates=rows, deletes=rows)], seen)
    sizes = [(c[0], len(c[2])) for c in db.calls if c[0] in ("delete", "update", "insert")]
    assert BATCH == 5000
    assert sizes == [(op, n) for op in ("delete", "update", "insert") for n in (5000, 5000, 2001)]
    assert [r for c in db.calls if c[0] == "insert" for r in c[2]] == [tuple(r) for r in rows]
    # the table shows twice: its deletes, then its updates and inserts together, each bar filled
    assert seen.per_table() == [("a", 12_001, 12_001), ("a", 24_002, 24_002)]


def test_each_table_with_writes_is_announced_with_its_count_and_none_without() -> None:
    """A table with only inserts, one with only updates, one with only deletes: each pass
    announces the tables it writes, with their rows, and no other."""
    from test_repo import Recorder as Progress

    rows = [[i, None] for i in range(3)]
    db, seen = Recorder(), Progress()
    apply_plans(
        db,
        [
            TablePlan("a", A, ["id"], inserts=rows),
            TablePlan("c", schema("c"), ["id"], updates=rows[:2]),
            TablePlan("d", schema("d"), ["id"], deletes=rows[:1]),
        ],
        seen,
    )
    assert seen.per_table() == [("d", 1, 1), ("a", 3, 3), ("c", 2, 2)]


def test_self_referencing_rows_are_written_parents_first_and_deleted_children_first() -> None:
    tree = [[50, 70], [60, 80], [70, 80], [80, 90], [90, None], [95, 90]]  # (id, parent_id)
    db = Recorder()
    apply_plans(db, [TablePlan("node", NODE, ["id"], inserts=tree, deletes=tree)])
    deletes = [c[2] for c in db.calls if c[0] == "delete"]
    inserts = [c[2] for c in db.calls if c[0] == "insert"]
    assert inserts == [[(90, None)], [(80, 90), (95, 90)], [(60, 80), (70, 80)], [(50, 70)]]
    assert deletes == list(reversed(inserts))


# id -> parent id (None: a root; an id not among the rows: a parent the database has already)
forests = st.dictionaries(st.integers(0, 30), st.one_of(st.none(), st.integers(0, 40)), max_size=25)


def depth_of(parents: dict[int, int | None], k: int) -> int | None:
    """Generations above ``k`` among these rows; None on a cycle."""
    seen = {k}
    d = 0
    while (p := parents[k]) is not None and p in parents and p != k:
        if p in seen:
            return None
        seen.add(p)
        d, k = d + 1, p
    return d


@given(forests)
@example({1: None, 2: 1})  # two rows, one the other's parent
@example({1: 1, 2: 1})  # a row that refers to itself is no one's child
@example({3: 2, 2: 1, 1: None, 4: 9})  # a chain in reverse key order, and a parent elsewhere
@example({1: 2, 2: 1, 3: 1})  # a cycle: every row is still written, once
def test_generations_put_each_row_one_after_its_parent(parents: dict[int, int | None]) -> None:
    rows = [[k, p] for k, p in parents.items()]
    out = generations(NODE, rows)
    assert sorted(tuple(r) for g in out for r in g) == sorted(tuple(r) for r in rows)
    assert all(out), "an empty generation"
    where = {r[0]: i for i, g in enumerate(out) for r in g}
    for k, p in parents.items():
        d = depth_of(parents, k)
        if d is not None:
            assert where[k] == d, (k, out)  # exactly one after its parent: as early as it can be
        if p is not None and p in parents and p != k and d is not None:
            assert where[p] < where[k]
    for g in out:  # the order within a generation is the order rows came in
        assert [r[0] for r in g] == [k for k in parents if where[k] == out.index(g)]


def test_generations_follow_only_references_to_the_table_itself() -> None:
    # a foreign key to another table, one whose columns are NULL, and a composite one
    for elsewhere in ("aardvark", "zebra"):  # (names before and after the table's own)
        other = schema("node", ForeignKey(("parent_id",), elsewhere, ("id",)))
        assert generations(other, [[1, None], [2, 1]]) == [[[1, None], [2, 1]]]
    # names are compared by value: one decoded from a stored schema is not the same object
    same = schema("node", ForeignKey(("parent_id",), "".join(["no", "de"]), ("id",)))
    assert generations(same, [[2, 1], [1, None]]) == [[[1, None]], [[2, 1]]]
    assert generations(NODE, [[2, None], [1, None]]) == [[[2, None], [1, None]]]
    pair = TableSchema(
        "pair",
        tuple(Column(c, "integer") for c in ("a", "b", "pa", "pb")),
        ("a", "b"),
        foreign_keys=(ForeignKey(("pa", "pb"), "pair", ("a", "b")),),
    )
    rows = [[1, 2, 1, 1], [1, 1, None, None], [2, 2, 1, None]]  # (a, b, pa, pb)
    assert generations(pair, rows) == [[[1, 1, None, None], [2, 2, 1, None]], [[1, 2, 1, 1]]]
    assert generations(NODE, []) == [] and generations(NODE, [[1, None]]) == [[[1, None]]]


def test_restore_into_a_new_database_writes_each_table_its_own_rows_and_says_so(tmp_path) -> None:
    """Several tables, one of them empty and one over two batches: each gets its rows (as
    SQLite itself reads them back), and the progress names each table once, in order, with its
    row count, and counts every row it writes against the table it is writing."""
    import sqlite3

    from snapgit.ops.apply import BATCH
    from test_repo import Recorder

    src = tmp_path / "src.sqlite"
    con = sqlite3.connect(src)
    con.execute("CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT)")
    con.execute("CREATE TABLE b (id INTEGER PRIMARY KEY, a_id INTEGER REFERENCES a(id))")
    con.execute("CREATE TABLE c (id INTEGER PRIMARY KEY, w REAL)")
    con.execute("CREATE TABLE d (id INTEGER PRIMARY KEY)")  # empty, and the last
    big = 2 * BATCH + 7
    con.executemany("INSERT INTO a VALUES (?, ?)", [(i, f"a{i}") for i in range(big)])
    con.executemany("INSERT INTO c VALUES (?, ?)", [(i, i / 4) for i in range(9)])
    con.commit()
    con.close()

    repo = Repo.init(tmp_path, f"sqlite:///{src}")
    cid = repo.commit("three tables").commit_id
    dst = tmp_path / "dst.sqlite"
    sqlite3.connect(dst).close()
    seen = Recorder()
    repo.restore(cid.hex(), into=f"sqlite:///{dst}", progress=seen)
    repo.close()

    def dump(path, table):
        with sqlite3.connect(path) as c:
            return c.execute(
                f"SELECT quote(id), quote({'v' if table == 'a' else 'w' if table == 'c' else 'a_id'}) "
                f"FROM {table} ORDER BY id"
            ).fetchall()

    for table in ("a", "b", "c"):
        assert dump(dst, table) == dump(src, table), table
    with sqlite3.connect(dst) as c:
        assert c.execute("SELECT count(*) FROM d").fetchone() == (0,)
    assert seen.per_table() == [("a", big, big), ("b", 0, 0), ("c", 9, 9), ("d", 0, 0)]
    # rows go in batches of BATCH or more (whole leaves), but for each table's last
    a_batches = [c[1] for c in seen.calls[1 : seen.calls.index(("table", "b", 0))]]
    assert all(n >= BATCH for n in a_batches[:-1]) and len(a_batches) <= big // BATCH + 1, a_batches
    # and a batch is written once it reaches BATCH, not held until the table ends (whole leaves
    # of a few hundred rows at most go past it)
    assert max(a_batches) < BATCH + 1_000, a_batches


def _pg_catalog(url: str) -> tuple[list, list]:
    """The constraints and indexes of a PostgreSQL database's tables, as its catalog has them."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            constraints = conn.execute(
                sa.text(
                    "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2"
                )
            ).all()
            indexes = conn.execute(
                sa.text(
                    "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1, 2"
                )
            ).all()
    finally:
        engine.dispose()
    return constraints, indexes


def test_restore_into_postgresql_ends_with_the_keys_a_create_table_gives(make_db_url, make_engine, tmp_path) -> None:
    """The primary keys, unique constraints and indexes are added after the rows on PostgreSQL:
    the catalog ends up as when the tables are created with them, names included."""
    from snapgit.db import Database

    src = make_db_url("sqlite")
    engine = make_engine(src)
    meta = sa.MetaData()
    sa.Table(
        "shelf",
        meta,
        sa.Column("room", sa.String(10), primary_key=True),
        sa.Column("no", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("label", sa.String(20)),
        sa.UniqueConstraint("label"),
    )
    item = sa.Table(
        "item",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("room", sa.String(10)),
        sa.Column("no", sa.Integer),
        sa.Column("sku", sa.String(12), nullable=False),
        sa.Column("name", sa.String(30)),
        sa.ForeignKeyConstraint(["room", "no"], ["shelf.room", "shelf.no"]),
        sa.Index("ix_item_room_no", "room", "no"),
        sa.Index("ux_item_sku", "sku", unique=True),
    )
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO shelf VALUES ('a', 1, 'top'), ('a', 2, NULL), ('b', 1, 'low')"))
        conn.execute(
            item.insert(), [{"id": i, "room": "ab"[i % 2], "no": 1, "sku": f"s{i}", "name": None} for i in range(50)]
        )
    repo = Repo.init(tmp_path, src)
    cid = repo.commit("shelves").commit_id
    restored = make_db_url("postgresql")
    repo.restore(cid.hex(), into=restored)
    repo.close()
    created = make_db_url("postgresql")
    with Database.connect(src) as db, db.snapshot() as snap:
        schemas = snap.reflect(["item", "shelf"])
    with Database.connect(created) as db, db.write() as tx:
        tx.create_tables(schemas, source_dialect="sqlite")
    want = _pg_catalog(created)
    assert len(want[0]) == 4 and len(want[1]) == 5  # 2 keys, 1 unique, 1 foreign key; their indexes, 2 more
    assert _pg_catalog(restored) == want
    with make_engine(restored).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM item")).scalar() == 50


def test_restore_into_postgresql_whose_rows_break_a_key_leaves_no_table(make_db_url, make_engine, tmp_path) -> None:
    """SQLite lets a text primary key hold NULL; PostgreSQL's primary key does not. Added after
    the rows, the key refuses them: one line naming the table and the column, and the tables
    made for the restore are gone again."""
    src = make_db_url("sqlite")
    engine = make_engine(src)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)")
        conn.exec_driver_sql("INSERT INTO t VALUES (NULL, 1), ('a', 2)")
        conn.exec_driver_sql("CREATE TABLE u (id INTEGER PRIMARY KEY, k TEXT REFERENCES t (k))")
    repo = Repo.init(tmp_path, src)
    cid = repo.commit("null key").commit_id
    dst = make_db_url("postgresql")
    from snapgit.db import DatabaseError

    with pytest.raises(DatabaseError, match=r"table t .*column \"k\""):
        repo.restore(cid.hex(), into=dst)
    repo.close()
    with make_engine(dst).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")).scalar() == 0
