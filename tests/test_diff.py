"""diff and status: exact row and cell changes, mirror images, SQL that replays a diff."""

from __future__ import annotations

import decimal
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapgit import Repo
from snapgit.compare.diff import UnknownTableError
from snapgit.exchange.sqlgen import diff_to_sql
from snapgit.store.history import UnknownRevisionError

# --- random tables --------------------------------------------------------------------------

row_values = st.fixed_dictionaries(
    {
        "name": st.one_of(
            st.none(),
            st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12),
        ),
        "qty": st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1)),
        "price": st.one_of(st.none(), st.decimals(min_value=-99999, max_value=99999, places=2, allow_nan=False)),
        "ok": st.one_of(st.none(), st.booleans()),
    }
)
tables = st.dictionaries(st.integers(0, 60), row_values, max_size=40)


def write_sqlite(path: Path, rows: dict[int, dict]) -> None:
    con = sqlite3.connect(path)
    con.execute("DROP TABLE IF EXISTS items")
    con.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, price NUMERIC(10,2), ok BOOLEAN)")
    con.executemany(
        "INSERT INTO items VALUES (?,?,?,?,?)",
        [
            (k, r["name"], r["qty"], str(r["price"]) if r["price"] is not None else None, r["ok"])
            for k, r in rows.items()
        ],
    )
    con.commit()
    con.close()


def norm(r: dict) -> dict:
    """A row as snapgit reads it back from SQLite."""
    out = dict(r)
    return out


def expected_changes(a: dict[int, dict], b: dict[int, dict]) -> list[tuple[str, int, frozenset]]:
    out = []
    for k in sorted(set(a) | set(b)):
        if k not in b:
            out.append(("removed", k, frozenset()))
        elif k not in a:
            out.append(("added", k, frozenset()))
        else:
            cols = frozenset(c for c in a[k] if not _eq(a[k][c], b[k][c]))
            if cols:
                out.append(("changed", k, cols))
    return out


def _eq(x, y) -> bool:
    if isinstance(x, decimal.Decimal) and isinstance(y, decimal.Decimal):
        return x == y  # the column has a fixed scale: 1.5 and 1.50 are stored alike
    return type(x) is type(y) and x == y


def got_changes(repo: Repo, a: str, b: str) -> list[tuple[str, int, frozenset]]:
    out = []
    for d in repo.diff(a, b):
        for row in d.rows():
            out.append((row.op, row.key["id"], frozenset(row.changed_columns)))
    return out


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(a=tables, b=tables)
def test_diff_is_exact_and_mirrored(tmp_path_factory, a, b) -> None:
    d = tmp_path_factory.mktemp("diff")
    db = d / "db.sqlite"
    write_sqlite(db, a)
    repo = Repo.init(d, f"sqlite:///{db}")
    ca = repo.commit("a", allow_empty=True).commit_id
    write_sqlite(db, b)
    cb = repo.commit("b", allow_empty=True).commit_id
    assert got_changes(repo, ca.hex(), cb.hex()) == expected_changes(a, b)
    assert got_changes(repo, ca.hex(), ca.hex()) == []
    # mirror: the same keys, added <-> removed, the same changed columns
    flip = {"added": "removed", "removed": "added", "changed": "changed"}
    back = got_changes(repo, cb.hex(), ca.hex())
    assert back == [(flip[op], k, cols) for op, k, cols in got_changes(repo, ca.hex(), cb.hex())]
    # the live side reads like a commit: HEAD (b) against the live database (b) is empty
    assert all(not list(t.rows()) for t in repo.diff())
    repo.close()


def test_cell_values_and_stat(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    write_sqlite(
        db,
        {
            1: {"name": "a", "qty": 1, "price": decimal.Decimal("1.50"), "ok": True},
            2: {"name": "b", "qty": 2, "price": None, "ok": None},
        },
    )
    repo = Repo.init(tmp_path, f"sqlite:///{db}")
    repo.commit("one")
    con = sqlite3.connect(db)
    con.execute("UPDATE items SET qty = 5, price = 2.25 WHERE id = 1")
    con.execute("INSERT INTO items VALUES (3, 'c', NULL, NULL, 0)")
    con.execute("DELETE FROM items WHERE id = 2")
    con.commit()
    con.close()
    (d,) = repo.diff()
    rows = list(d.rows())
    assert [(r.op, r.key) for r in rows] == [("changed", {"id": 1}), ("removed", {"id": 2}), ("added", {"id": 3})]
    changed = rows[0]
    assert changed.changed_columns == ["qty", "price"]
    assert (changed.old["qty"], changed.new["qty"]) == (1, 5)
    assert (changed.old["price"], changed.new["price"]) == (decimal.Decimal("1.50"), decimal.Decimal("2.25"))
    assert rows[2].new == {"id": 3, "name": "c", "qty": None, "price": None, "ok": False}
    stat = d.stat()
    assert (stat.added, stat.removed, stat.changed) == (1, 1, 1)
    # nothing was written to the store by diff
    packs = sorted((tmp_path / ".snapstore" / "objects" / "pack").iterdir())
    list(repo.diff())
    repo.status()
    assert sorted((tmp_path / ".snapstore" / "objects" / "pack").iterdir()) == packs


def test_schema_changes_reported(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    write_sqlite(db, {1: {"name": "a", "qty": 1, "price": None, "ok": True}})
    repo = Repo.init(tmp_path, f"sqlite:///{db}")
    repo.commit("one")
    con = sqlite3.connect(db)
    con.execute("ALTER TABLE items ADD COLUMN note TEXT")
    con.execute("CREATE TABLE extra (k TEXT PRIMARY KEY)")
    con.commit()
    con.close()
    diffs = {d.name: d for d in repo.diff()}
    assert [c.kind for c in diffs["extra"].schema] == ["table_added"]
    assert [(c.kind, c.column) for c in diffs["items"].schema] == [("column_added", "note")]
    (row,) = list(diffs["items"].rows())
    assert row.op == "changed" and row.changed_columns == ["note"]


def test_errors(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    write_sqlite(db, {1: {"name": "a", "qty": 1, "price": None, "ok": True}})
    repo = Repo.init(tmp_path, f"sqlite:///{db}")
    repo.commit("one")
    with pytest.raises(UnknownRevisionError):
        repo.diff("nosuch")
    with pytest.raises(UnknownTableError, match="no table 'nope'"):
        repo.diff("HEAD", "HEAD", tables=["nope"])


# --- --sql replays a diff on every database --------------------------------------------------


def _items(meta: sa.MetaData) -> sa.Table:
    return sa.Table(
        "items",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(40)),
        sa.Column("qty", sa.Integer),
        sa.Column("price", sa.Numeric(10, 2)),
        sa.Column("ok", sa.Boolean),
    )


def _bag(meta: sa.MetaData) -> sa.Table:
    return sa.Table("bag", meta, sa.Column("label", sa.String(20)), sa.Column("n", sa.Integer))


def _load(engine: sa.Engine, rows: dict[int, dict], bag: list[tuple]) -> None:
    meta = sa.MetaData()
    items, bagt = _items(meta), _bag(meta)
    meta.drop_all(engine)
    meta.create_all(engine)
    with engine.begin() as conn:
        if rows:
            conn.execute(items.insert(), [{"id": k, **r} for k, r in rows.items()])
        if bag:
            conn.execute(bagt.insert(), [{"label": x, "n": n} for x, n in bag])


def _apply(engine: sa.Engine, statements: list[str]) -> None:
    with engine.begin() as conn:
        for s in statements:
            if not s.startswith("--"):
                conn.exec_driver_sql(s)


sql_rows = st.dictionaries(
    st.integers(0, 30),
    st.fixed_dictionaries(
        {
            "name": st.one_of(st.none(), st.text(alphabet="ab'\\\"é ;-", max_size=8)),
            "qty": st.one_of(st.none(), st.integers(-1000, 1000)),
            "price": st.one_of(st.none(), st.decimals(min_value=-999, max_value=999, places=2, allow_nan=False)),
            "ok": st.one_of(st.none(), st.booleans()),
        }
    ),
    max_size=15,
)
bags = st.lists(st.tuples(st.sampled_from(["x", "y", "it's"]), st.integers(0, 2)), max_size=6)


@settings(max_examples=8, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(a=sql_rows, b=sql_rows, bag_a=bags, bag_b=bags)
def test_sql_output_turns_a_into_b(db_url, db_kind, db_engine, tmp_path_factory, a, b, bag_a, bag_b) -> None:
    dialect = {"sqlite": "sqlite", "postgresql": "postgresql", "mariadb": "mysql"}[db_kind]
    d = tmp_path_factory.mktemp("sql")
    repo = Repo.init(d, db_url)
    _load(db_engine, a, bag_a)
    ca = repo.commit("a", allow_empty=True)
    _load(db_engine, b, bag_b)
    cb = repo.commit("b", allow_empty=True)
    _load(db_engine, a, bag_a)
    statements = list(diff_to_sql(repo.diff(ca.commit_id.hex(), cb.commit_id.hex()), dialect))
    _apply(db_engine, statements)
    after = [t for t in repo.diff(cb.commit_id.hex()) if list(t.rows())]
    assert after == [], statements
    repo.close()


# --- the CLI --------------------------------------------------------------------------------


def snap(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snapgit.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_cli_diff_status(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    write_sqlite(db, {1: {"name": "a", "qty": 1, "price": None, "ok": True}})
    assert snap(tmp_path, "init", "--db", "db.sqlite").returncode == 0
    assert snap(tmp_path, "commit", "-m", "one").returncode == 0
    st_clean = snap(tmp_path, "status")
    assert "clean" in st_clean.stdout
    assert snap(tmp_path, "diff", "--exit-code").returncode == 0
    con = sqlite3.connect(db)
    con.execute("UPDATE items SET name = 'b' WHERE id = 1")
    con.commit()
    con.close()
    assert snap(tmp_path, "diff", "--exit-code").returncode == 1
    lines = [json.loads(x) for x in snap(tmp_path, "diff", "--json").stdout.splitlines()]
    assert lines == [{"table": "items", "op": "changed", "key": {"id": 1}, "old": {"name": "a"}, "new": {"name": "b"}}]
    status = json.loads(snap(tmp_path, "status", "--json").stdout)
    assert status["clean"] is False and status["tables"]["items"]["changed"] == 1
    text = snap(tmp_path, "diff").stdout
    assert "name: 'a' -> 'b'" in text
    bad = snap(tmp_path, "diff", "HEAD", "nosuch")
    assert bad.returncode == 1 and "unknown revision" in bad.stderr and "Traceback" not in bad.stderr
    bad = snap(tmp_path, "diff", "--table", "nope")
    assert bad.returncode == 1 and "no table 'nope'" in bad.stderr
