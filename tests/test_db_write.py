"""Writing live databases: values that read back as written, updates and deletes by key and
without one, all-or-nothing transactions, foreign keys, sequences, tables from portable schemas.

Every test runs on SQLite, PostgreSQL and MariaDB (``db_url`` from conftest) unless it is about
one database's own behaviour. The contract throughout: what is written reads back, through the
ordinary scan, as the same canonical values (the same ``encode_row`` bytes).
"""

from __future__ import annotations

import collections
import datetime as dt
import decimal
import math
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapgit.db import Database, DatabaseError, ForeignKeyViolationError, RowMatchError
from snapgit.encoding import Json, Spelled, canonical_value, encode_row
from snapgit.schema import Column, ForeignKey, Index, TableSchema

UTC = dt.UTC
D = decimal.Decimal


def kind_of(url: str) -> str:
    return {"sqlite": "sqlite", "postgresql": "postgresql", "mysql": "mariadb"}[sa.make_url(url).get_backend_name()]


def read_all(url: str, table: str, key: Sequence[str] | None = None) -> tuple[TableSchema, list[tuple[Any, ...]]]:
    with Database.connect(url) as db, db.snapshot() as snap:
        (schema,) = snap.reflect([table])
        rows = [r for batch in snap.scan(schema, key) for r in batch]
    return schema, rows if key else sorted(rows, key=encode_row)


def contents(url: str, table: str) -> list[bytes]:
    """A table's rows as sorted canonical bytes: equal lists mean equal tables."""
    return sorted(encode_row(r) for r in read_all(url, table)[1])


def run_sql(engine: sa.Engine, *statements: str) -> None:
    with engine.begin() as conn:
        for s in statements:
            conn.exec_driver_sql(s)


def create(url: str, *schemas: TableSchema) -> None:
    with Database.connect(url) as db, db.write() as tx:
        tx.create_tables(list(schemas))


def row(schema: TableSchema, **values: Any) -> tuple[Any, ...]:
    return tuple(values.get(n) for n in schema.sorted_names)


# --- every portable type reads back as written --------------------------------------------------

_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
_text = st.text(_chars, max_size=20)
_nice_floats = st.integers(-(2**20), 2**20).map(lambda i: i / 4).filter(lambda f: not f.is_integer())
_json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | _nice_floats | _text
_json = st.recursive(
    _json_scalars,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(_text, kids, max_size=3),
    max_leaves=8,
).map(Json)
_offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))


def _ints(bits: int) -> st.SearchStrategy[int]:
    return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def _floats(kind: str, width: int = 64) -> st.SearchStrategy[float]:
    # NaN and -0.0: PostgreSQL only (SQLite refuses NaN, it would store NULL; SQLite and MariaDB
    # store -0.0 as 0.0); infinities: not in MariaDB
    floats = st.floats(width=width, allow_nan=kind == "postgresql", allow_infinity=kind != "mariadb")
    if kind == "postgresql":
        return floats
    return floats.filter(lambda f: f != 0 or math.copysign(1, f) > 0)


def _quantized(places: int, digits: int) -> st.SearchStrategy[decimal.Decimal]:
    exp = D(1).scaleb(-places)
    ctx = decimal.Context(prec=100)
    limit = 10 ** (digits - places) - 1
    return st.decimals(-limit, limit, places=places).map(
        lambda v: abs(v.quantize(exp, context=ctx)) if not v else v.quantize(exp, context=ctx)
    )


def _aware(kind: str) -> st.SearchStrategy[dt.datetime]:
    lo, hi = (
        (dt.datetime(1970, 1, 2), dt.datetime(2038, 1, 18))
        if kind == "mariadb"
        else (
            dt.datetime(1001, 1, 1),
            dt.datetime(9998, 12, 31),
        )
    )
    return st.datetimes(min_value=lo, max_value=hi, timezones=_offsets)


def _pg_numeric(v: decimal.Decimal) -> decimal.Decimal:
    """The numerics PostgreSQL has: one NaN (no sign, no signalling), no negative zero."""
    return D("NaN") if v.is_nan() else abs(v) if not v else v


_ALL = ("sqlite", "postgresql", "mariadb")
# (portable type, values, the kinds whose tables hold it exactly)
TYPES: list[tuple[str, Callable[[str], st.SearchStrategy[Any]], tuple[str, ...]]] = [
    ("smallint", lambda k: _ints(16), _ALL),
    ("integer", lambda k: _ints(32), _ALL),
    ("bigint", lambda k: _ints(64), _ALL),
    ("boolean", lambda k: st.booleans(), _ALL),
    ("real", lambda k: _floats(k, 32), _ALL),  # SQLite's real is a double: the values agree
    ("double", _floats, _ALL),
    ("numeric(15,4)", lambda k: _quantized(4, 15), _ALL),
    ("numeric(38,10)", lambda k: _quantized(10, 38), ("postgresql", "mariadb")),
    ("numeric", lambda k: st.decimals(allow_nan=True, allow_infinity=False).map(_pg_numeric), ("postgresql",)),
    ("text", lambda k: _text, _ALL),
    ("varchar(20)", lambda k: _text, _ALL),
    ("char(8)", lambda k: st.text(_chars, max_size=8).filter(lambda s: not s.endswith(" ")), _ALL),
    ("bytes", lambda k: st.binary(max_size=40), _ALL),
    ("date", lambda k: st.dates(min_value=dt.date(1000 if k == "mariadb" else 1, 1, 1)), _ALL),
    ("time", lambda k: st.times(), _ALL),
    ("timetz", lambda k: st.times(timezones=_offsets), ("sqlite", "postgresql")),
    ("timestamp", lambda k: st.datetimes(min_value=dt.datetime(1000, 1, 1)), _ALL),
    ("timestamptz", _aware, _ALL),
    ("interval", lambda k: st.timedeltas(-dt.timedelta(10**6), dt.timedelta(10**6)), ("postgresql",)),
    # MariaDB refuses UUIDs of an unknown variant
    ("uuid", lambda k: st.uuids(version=4) | st.uuids(version=1) if k == "mariadb" else st.uuids(), _ALL),
    ("json", lambda k: _json, _ALL),
    ("array<integer>", lambda k: st.lists(st.none() | _ints(32), max_size=4), ("postgresql",)),
    ("array<text>", lambda k: st.lists(st.none() | _text, max_size=4), ("postgresql",)),
    ("array<json>", lambda k: st.lists(st.none() | _json, max_size=3), ("postgresql",)),
]

_EXAMPLES = int(os.environ.get("SNAP_TEST_DB_EXAMPLES", "20"))


def _column_name(portable: str) -> str:
    return "c_" + "".join(ch if ch.isalnum() else "_" for ch in portable)


def test_the_write_path_does_not_load_the_read_path() -> None:
    """write.py owns the write transaction's lifecycle and knows nothing of database.py, which
    only calls it: importing it loads no Database (the two modules imported each other)."""
    import subprocess
    import sys

    code = "import sys, snapgit.db.write; print('snapgit.db.database' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_write_transaction_on_a_connection_of_its_own(tmp_path) -> None:
    """WriteTransaction.begin runs the lifecycle Database.write used to drive from outside:
    commit when the block ends cleanly, roll back on an exception."""
    from snapgit.db.write import WriteTransaction

    path = tmp_path / "own.db"
    sqlite3.connect(path).execute("CREATE TABLE t (id INTEGER PRIMARY KEY)").connection.close()
    schema = TableSchema("t", [Column("id", "bigint", nullable=False)], primary_key=["id"])
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            with WriteTransaction.begin(conn, "sqlite", "own.db") as tx:
                tx.insert_rows(schema, [(1,)])
            with pytest.raises(RuntimeError):
                with WriteTransaction.begin(conn, "sqlite", "own.db") as tx:
                    tx.insert_rows(schema, [(2,)])
                    raise RuntimeError("boom")
    finally:
        engine.dispose()
    assert sqlite3.connect(path).execute("SELECT id FROM t").fetchall() == [(1,)]


def test_every_portable_type_reads_back_as_written(db_url: str, db_engine: sa.Engine) -> None:
    kind = kind_of(db_url)
    types = [(p, values) for p, values, kinds in TYPES if kind in kinds]
    columns = [Column("id", "integer", False)] + [Column(_column_name(p), p) for p, _ in types]
    schema = TableSchema("vals", tuple(columns), ("id",))
    create(db_url, schema)
    with Database.connect(db_url) as db:
        with db.snapshot() as snap:
            (live,) = snap.reflect(["vals"])
        expected_types = {_column_name(p): p for p, _ in types}
        if kind == "sqlite":
            expected_types[_column_name("real")] = "double"
        assert {c.name: c.type for c in live.columns if c.name != "id"} == expected_types
        order = live.sorted_names
        value_of = {_column_name(p): v for p, v in types}

        @settings(max_examples=_EXAMPLES, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(st.lists(st.fixed_dictionaries({n: st.none() | value_of[n](kind) for n in value_of}), max_size=5))
        def check(dicts: list[dict[str, Any]]) -> None:
            run_sql(db_engine, "DELETE FROM vals")
            rows = [tuple(i if n == "id" else d[n] for n in order) for i, d in enumerate(dicts)]
            with db.write() as tx:
                tx.insert_rows(live, rows)
            with db.snapshot() as snap:
                got = [r for batch in snap.scan(live, ["id"]) for r in batch]
            want = [tuple(canonical_value(v) for v in r) for r in rows]
            assert [encode_row(r) for r in got] == [encode_row(r) for r in want], (got, want)
            # and every row is found again by its values alone (the keyless delete)
            with db.write() as tx:
                tx.delete_rows(live, None, got[::-1])
            with db.snapshot() as snap:
                assert snap.count("vals") == 0

        check()


def test_types_a_database_does_not_have(make_db_url: Callable[[str], str]) -> None:
    """Kept in the nearest type that loses nothing, as documented in snapgit.db.ddl."""
    schema = TableSchema(
        "odd",
        (
            Column("id", "integer", False),
            Column("span", "interval"),
            Column("ints", "array<integer>"),
            Column("at", "timetz"),
            Column("amount", "numeric"),
        ),
        ("id",),
    )
    values = row(
        schema,
        id=1,
        span=dt.timedelta(days=3, microseconds=5),
        ints=[1, None, 3],
        at=dt.time(12, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        amount=D("1.50"),
    )
    for kind in ("sqlite", "mariadb"):
        url = make_db_url(kind)
        create(url, schema)
        with Database.connect(url) as db, db.write() as tx:
            tx.insert_rows(schema, [values])
        live, (got,) = read_all(url, "odd")
        types = {c.name: c.type for c in live.columns}
        read = dict(zip(live.sorted_names, got, strict=False))
        assert types["span"] == "bigint" and read["span"] == 3 * 86_400_000_000 + 5
        assert types["ints"] == "json" and read["ints"] == Json([1, None, 3])
        if kind == "sqlite":
            assert types["at"] == "timetz" and read["at"] == values[schema.sorted_names.index("at")]
            assert types["amount"] == "numeric" and read["amount"] == D("1.5")  # no scale to keep
        else:
            assert types["at"] == "varchar(32)" and read["at"] == "12:30:00.000000+02:00"
            assert types["amount"] == "numeric(65,30)" and read["amount"] == D("1.5" + "0" * 29)


def test_values_sqlite_cannot_hold_are_refused(make_db_url: Callable[[str], str]) -> None:
    url = make_db_url("sqlite")
    schema = TableSchema(
        "t", (Column("id", "integer", False), Column("x", "double"), Column("n", "numeric(38,10)")), ("id",)
    )
    create(url, schema)
    with Database.connect(url) as db:
        with pytest.raises(DatabaseError, match=r"cannot write nan to column t\.x \(sqlite\): SQLite cannot store NaN"):
            with db.write() as tx:
                tx.insert_rows(schema, [(1, None, 0.5), (2, None, math.nan)])
        with pytest.raises(DatabaseError, match=r"column t\.n .*15 significant digits"):
            with db.write() as tx:
                tx.insert_rows(schema, [(1, D("1234567890123456789.0123456789"), None)])
        with db.write() as tx:  # 15 digits, or an integer: exact
            tx.insert_rows(
                schema, [(1, D("12345678901.2345000000"), 1.5), (2, D("1234567890123456789.0000000000"), None)]
            )
    assert read_all(url, "t", ["id"])[1] == [
        (1, D("12345678901.2345000000"), 1.5),
        (2, D("1234567890123456789.0000000000"), None),
    ]


# --- updates and deletes ------------------------------------------------------------------------

PEOPLE = TableSchema(
    "people",
    (
        Column("id", "integer", False),
        Column("dept", "integer", False),
        Column("name", "text"),
        Column("born", "date"),
        Column("doc", "json"),
    ),
    ("id", "dept"),
)


def _person(i: int, dept: int, name: str | None, doc: Any = None) -> tuple[Any, ...]:
    return row(
        PEOPLE,
        id=i,
        dept=dept,
        name=name,
        born=dt.date(1990, 1, 1) + dt.timedelta(days=i),
        doc=None if doc is None else Json(doc),
    )


def test_update_and_delete_by_key(db_url: str) -> None:
    create(db_url, PEOPLE)
    people = [_person(i, d, f"p{i}{d}", {"n": i}) for i in range(1, 6) for d in (1, 2)]
    with Database.connect(db_url) as db:
        with db.write() as tx:
            tx.insert_rows(PEOPLE, people)
        changed = [_person(1, 2, "renamed", [1, 2]), _person(3, 1, None), _person(5, 2, "x", {"b": None})]
        gone = [_person(2, 1, "p21", {"n": 2}), _person(4, 2, "p42", {"n": 4}), _person(5, 1, "p51", {"n": 5})]
        with db.write() as tx:
            tx.update_rows(PEOPLE, ["id", "dept"], changed)
            tx.delete_rows(PEOPLE, ["id", "dept"], gone)
    by_key = {(r[PEOPLE.sorted_names.index("id")], r[PEOPLE.sorted_names.index("dept")]): r for r in people}
    for r in changed:
        by_key[(r[PEOPLE.sorted_names.index("id")], r[PEOPLE.sorted_names.index("dept")])] = r
    for r in gone:
        del by_key[(r[PEOPLE.sorted_names.index("id")], r[PEOPLE.sorted_names.index("dept")])]
    assert contents(db_url, "people") == sorted(encode_row(r) for r in by_key.values())


def test_a_key_with_nulls(db_url: str, db_engine: sa.Engine) -> None:
    """A natural key (from the config) may have NULLs: ``= NULL`` never matches, so NULL key
    columns are matched with IS NULL."""
    run_sql(db_engine, "CREATE TABLE nk (a INTEGER, b VARCHAR(10), v INTEGER)")
    schema = TableSchema("nk", (Column("a", "integer"), Column("b", "varchar(10)"), Column("v", "integer")))
    with Database.connect(db_url) as db:
        with db.write() as tx:
            tx.insert_rows(schema, [(1, "x", 10), (1, None, 20), (None, None, 30), (None, "y", 40)])
        with db.write() as tx:
            tx.update_rows(schema, ["a", "b"], [(1, None, 21), (None, None, 31)])
            tx.delete_rows(schema, ["a", "b"], [(1, "x", 10), (None, "y", 40)])
    assert read_all(db_url, "nk")[1] == sorted([(1, None, 21), (None, None, 31)], key=encode_row)


_KEYLESS_DDL = {
    "sqlite": "CREATE TABLE k (a INTEGER, s VARCHAR(10), j JSON)",
    "postgresql": "CREATE TABLE k (a INTEGER, s VARCHAR(10), j json)",
    # the database's default collation: utf8mb4_general_ci ignores case and trailing spaces
    "mariadb": "CREATE TABLE k (a INTEGER, s VARCHAR(10), j JSON)",
}


def test_keyless_deletes_remove_one_exact_occurrence_per_row(db_url: str, db_engine: sa.Engine) -> None:
    kind = kind_of(db_url)
    run_sql(db_engine, _KEYLESS_DDL[kind])
    q = '"k"' if kind != "mariadb" else "`k`"
    # JSON as the application wrote it: spaces, keys out of order
    run_sql(
        db_engine,
        f"INSERT INTO {q} VALUES (1, 'abc', '{{\"b\": 1, \"a\": [2]}}'), (1, 'abc', '{{\"a\":[2],\"b\":1}}'), "
        f"(1, 'ABC', '{{\"a\": [2], \"b\": 1}}'), (1, 'abc ', '{{\"a\": [2], \"b\": 1}}'), "
        f"(NULL, NULL, NULL), (NULL, NULL, NULL), (2, 'x', NULL), (3, 'y', '2.5')",
    )
    schema, before = read_all(db_url, "k")
    assert schema.sorted_names == ["a", "j", "s"]
    doc = Json({"a": [2], "b": 1})
    # a row is its exact record: the document as spelled, where that is not its canonical text
    spelled = Spelled(doc, '{"a": [2], "b": 1}', "mysql" if kind == "mariadb" else kind)
    remove = [(1, doc, "abc"), (None, None, None), (1, spelled, "abc "), (3, Json(2.5), "y")]
    with Database.connect(db_url) as db, db.write() as tx:
        tx.delete_rows(schema, None, remove)
    left = collections.Counter(encode_row(r) for r in before)
    left.subtract(encode_row(r) for r in remove)
    assert contents(db_url, "k") == sorted(left.elements())
    assert sorted(r[2] or "" for r in read_all(db_url, "k")[1]) == ["", "ABC", "abc", "x"]

    # a row that is there once cannot be deleted twice: nothing is deleted
    snapshot = contents(db_url, "k")
    with Database.connect(db_url) as db:
        with pytest.raises(RowMatchError, match=r"cannot delete from table k .*row \(a, j, s\)=\(2, NULL, 'x'\)"):
            with db.write() as tx:
                tx.delete_rows(schema, None, [(1, spelled, "ABC"), (2, None, "x"), (2, None, "x")])
    assert contents(db_url, "k") == snapshot


def test_rows_that_are_not_there(db_url: str) -> None:
    create(db_url, PEOPLE)
    with Database.connect(db_url) as db:
        with db.write() as tx:
            tx.insert_rows(PEOPLE, [_person(1, 1, "a"), _person(2, 1, "b")])
        before = contents(db_url, "people")
        with pytest.raises(
            RowMatchError, match=r"cannot update rows of table people .*key \(id, dept\)=\(7, 1\) is not there"
        ) as info:
            with db.write() as tx:
                tx.delete_rows(PEOPLE, ["id", "dept"], [_person(2, 1, "b")])
                tx.update_rows(PEOPLE, ["id", "dept"], [_person(1, 1, "new"), _person(7, 1, "nobody")])
        assert info.value.hint
        with pytest.raises(
            RowMatchError, match=r"cannot delete rows from table people .*key \(id, dept\)=\(9, 9\) is not there"
        ):
            with db.write() as tx:
                tx.delete_rows(PEOPLE, ["id", "dept"], [_person(1, 1, "a"), _person(9, 9, "z")])
        with pytest.raises(RowMatchError, match=r"key \(dept\)=\(1\) matches 2 rows"):  # not a unique key
            with db.write() as tx:
                tx.delete_rows(PEOPLE, ["dept"], [_person(1, 1, "a")])
    assert contents(db_url, "people") == before


ODD = TableSchema(
    'Odd "Name" 100%',
    (Column("a b", "integer", False), Column("100%", "varchar(10)"), Column("ü`x", "integer")),
    ("a b",),
)


def test_names_that_need_quoting(db_url: str) -> None:
    """Quotes, backquotes, spaces and "%" (a placeholder character for psycopg and PyMySQL)."""
    create(db_url, ODD)
    keyless = TableSchema("50% keyless", ODD.columns)
    create(db_url, keyless)
    with Database.connect(db_url) as db:
        for schema in (ODD, keyless):
            with db.write() as tx:
                tx.insert_rows(schema, [("%s", i, i * 10) for i in range(5)])
                tx.update_rows(schema, ["a b"], [("%%", 1, 11)])
                tx.delete_rows(schema, ["a b"] if schema.primary_key else None, [("%s", 2, 20)])
                tx.reset_sequences(schema)
            assert read_all(db_url, schema.name)[1] == sorted(
                [("%s", 0, 0), ("%%", 1, 11), ("%s", 3, 30), ("%s", 4, 40)], key=encode_row
            )
        with db.write() as tx:
            tx.drop_tables([ODD.name, keyless.name])


# --- one transaction ----------------------------------------------------------------------------


def test_an_exception_in_the_block_leaves_the_database_as_it_was(db_url: str) -> None:
    create(db_url, PEOPLE)
    with Database.connect(db_url) as db:
        with db.write() as tx:
            tx.insert_rows(PEOPLE, [_person(i, 1, f"p{i}") for i in range(1, 20)])
        before = contents(db_url, "people")
        with pytest.raises(RuntimeError, match="changed my mind"):
            with db.write() as tx:
                tx.insert_rows(PEOPLE, [_person(i, 2, f"q{i}") for i in range(1, 500)])
                tx.update_rows(PEOPLE, ["id", "dept"], [_person(3, 1, "changed")])
                tx.delete_rows(PEOPLE, ["id", "dept"], [_person(4, 1, "p4")])
                raise RuntimeError("changed my mind")
        assert contents(db_url, "people") == before

        # a failed write that the block swallows still rolls everything back
        with pytest.raises(DatabaseError, match="rolled back: an earlier write failed") as info:
            with db.write() as tx:
                tx.insert_rows(PEOPLE, [_person(100, 1, "new")])
                with pytest.raises(DatabaseError, match="cannot insert rows into table people"):
                    tx.insert_rows(PEOPLE, [_person(1, 1, "duplicate key")])
                with pytest.raises(DatabaseError, match="an earlier write .* failed"):
                    tx.insert_rows(PEOPLE, [_person(101, 1, "after the failure")])
        assert "\n" not in str(info.value)
    assert contents(db_url, "people") == before


def test_sqlite_takes_the_write_lock_up_front(make_db_url: Callable[[str], str]) -> None:
    url = make_db_url("sqlite")
    create(url, PEOPLE)
    path = sa.make_url(url).database
    with Database.connect(url) as db, db.write():
        other = sqlite3.connect(path, timeout=0)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()


# --- foreign keys -------------------------------------------------------------------------------

PARENT = TableSchema("parent", (Column("id", "integer", False), Column("name", "varchar(20)")), ("id",))
CHILD = TableSchema(
    "child",
    (Column("id", "integer", False), Column("parent_id", "integer", False), Column("note", "text")),
    ("id",),
    foreign_keys=(ForeignKey(("parent_id",), "parent", ("id",), "fk_child_parent"),),
    indexes=(Index(("parent_id",), False, "ix_child_parent"),),
)


def test_foreign_key_violations(db_url: str) -> None:
    kind = kind_of(db_url)
    create(db_url, CHILD, PARENT)
    with Database.connect(db_url) as db:
        with db.write() as tx:
            tx.insert_rows(PARENT, [(1, "one"), (2, "two")])
            tx.insert_rows(CHILD, [(1, None, 1), (2, "b", 1)])
            tx.check_foreign_keys(["parent", "child"])
        before = (contents(db_url, "parent"), contents(db_url, "child"))

        # a child whose parent is missing
        with pytest.raises(ForeignKeyViolationError) as info:
            with db.write() as tx:
                tx.insert_rows(CHILD, [(3, "c", 2), (4, "orphan", 99)])
                tx.check_foreign_keys(["child"])  # SQLite finds it here, the others at the INSERT
        err = info.value
        message = str(err)
        assert (err.table, err.ref_table) == ("child", "parent")
        assert "(parent_id)=(99)" in message and "is not present in table parent" in message
        if kind == "sqlite":
            assert message == (
                "foreign key violation in table child: (parent_id)=(99) of row (id)=(4) is not present in table parent"
            )
        else:
            assert message == (
                "foreign key violation in table child: (parent_id)=(99) is not present in table parent "
                "(constraint fk_child_parent)"
            )
        assert err.hint and "\n" not in message

        # a parent deleted while children refer to it
        with pytest.raises(ForeignKeyViolationError) as info:
            with db.write() as tx:
                tx.delete_rows(PARENT, ["id"], [(2, "two"), (1, "one")])
                tx.check_foreign_keys(["parent"])  # SQLite: the tables that refer to parent too
        err = info.value
        assert (err.table, err.ref_table) == ("child", "parent")
        if kind == "sqlite":
            assert str(err) == (
                "foreign key violation in table child: (parent_id)=(1) of row (id)=(1) "
                "is not present in table parent (and 1 more row)"
            )
        else:
            assert str(err) == (
                "foreign key violation in table child: rows still refer to (id)=(1) of table parent, "
                "which is being deleted (constraint fk_child_parent)"
            )
        # a child moved to a parent that is not there
        with pytest.raises(
            ForeignKeyViolationError,
            match=r"in table child: \(parent_id\)=\(77\) (of row \(id\)=\(2\) )?is not present in table parent",
        ):
            with db.write() as tx:
                tx.update_rows(CHILD, ["id"], [(2, "moved", 77)])
                tx.check_foreign_keys(["child"])
    assert (contents(db_url, "parent"), contents(db_url, "child")) == before


def test_postgresql_deferred_constraints_are_checked_on_request(
    make_db_url: Callable[[str], str], make_engine: Callable[[str], sa.Engine]
) -> None:
    url = make_db_url("postgresql")
    run_sql(
        make_engine(url),
        "CREATE TABLE parent (id integer PRIMARY KEY, name varchar(20))",
        "CREATE TABLE child (id integer PRIMARY KEY, parent_id integer NOT NULL CONSTRAINT fk_late "
        "REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED, note text)",
    )
    with Database.connect(url) as db:
        with pytest.raises(
            ForeignKeyViolationError,
            match=r"in table child: \(parent_id\)=\(5\) is not present in table parent \(constraint fk_late\)",
        ):
            with db.write() as tx:
                tx.insert_rows(CHILD, [(1, None, 5)])  # accepted: the check is deferred
                tx.check_foreign_keys(["child"])
        with pytest.raises(ForeignKeyViolationError, match="constraint fk_late"):
            with db.write() as tx:  # without the check, at COMMIT
                tx.insert_rows(CHILD, [(1, None, 5)])
    assert contents(url, "child") == []


# --- sequences ----------------------------------------------------------------------------------

_SERIAL_DDL = {
    "sqlite": [
        "CREATE TABLE s1 (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)",
        "CREATE TABLE s2 (id INTEGER PRIMARY KEY, v TEXT)",
    ],
    "postgresql": [
        "CREATE TABLE s1 (id serial PRIMARY KEY, v text)",
        "CREATE TABLE s2 (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text)",
    ],
    "mariadb": [
        "CREATE TABLE s1 (id INT AUTO_INCREMENT PRIMARY KEY, v TEXT)",
        "CREATE TABLE s2 (id BIGINT AUTO_INCREMENT PRIMARY KEY, v TEXT)",
    ],
}


def test_reset_sequences_moves_counters_past_the_largest_id(db_url: str, db_engine: sa.Engine) -> None:
    kind = kind_of(db_url)
    run_sql(db_engine, *_SERIAL_DDL[kind])
    created = TableSchema("s3", (Column("id", "integer", False, autoincrement=True), Column("v", "text")), ("id",))
    create(db_url, created)
    with Database.connect(db_url) as db:
        with db.snapshot() as snap:
            schemas = snap.reflect(["s1", "s2", "s3"])
        assert all(s.column("id").autoincrement for s in schemas)
        with db.write() as tx:
            for s in schemas:
                tx.insert_rows(s, [(i, f"v{i}") for i in range(1, 11)])
                tx.reset_sequences(s)
    with db_engine.begin() as conn:
        for name in ("s1", "s2", "s3"):
            conn.exec_driver_sql(f"INSERT INTO {name} (v) VALUES ('next')")
            assert conn.exec_driver_sql(f"SELECT id FROM {name} WHERE v = 'next'").scalar() == 11, name
    # never back: with the counter ahead of the largest id, it stays ahead
    with Database.connect(db_url) as db, db.write() as tx:
        tx.delete_rows(schemas[0], ["id"], [(11, "next")])
        tx.reset_sequences(schemas[0])
    with db_engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO s1 (v) VALUES ('after')")
        assert conn.exec_driver_sql("SELECT id FROM s1 WHERE v = 'after'").scalar() == 12


# --- tables from portable schemas ---------------------------------------------------------------


def _source_tables(engine: sa.Engine) -> tuple[sa.Table, sa.Table]:
    md = sa.MetaData()
    parent = sa.Table(
        "parent",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(10), nullable=False, unique=True),
        sa.Column("note", sa.Text),
    )
    child = sa.Table(
        "child",
        md,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("parent.id", name="fk_child_parent"), nullable=False),
        sa.Column("name", sa.String(20)),
        sa.Column("score", sa.Numeric(8, 3)),
        sa.Column("flag", sa.Boolean),
        sa.Column("day", sa.Date),
        sa.Column("at", sa.DateTime),
        sa.Column("ratio", sa.Double),
        sa.Column("blob", sa.LargeBinary),
        sa.Column("doc", sa.JSON(none_as_null=True)),
        sa.UniqueConstraint("parent_id", "name", name="uq_child_parent_name"),
    )
    sa.Index("ix_child_name", child.c.name)
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(parent.insert(), [{"id": i, "code": f"c{i}", "note": "ünïcode" * i} for i in range(1, 4)])
        conn.execute(
            child.insert(),
            [
                {
                    "id": i,
                    "parent_id": i % 3 + 1,
                    "name": f"n{i}",
                    "score": D(i) / 8,
                    "flag": i % 2 == 0,
                    "day": dt.date(2024, 1, i),
                    "at": dt.datetime(2024, 1, i, 12, 30, 15),
                    "ratio": i / 3,
                    "blob": bytes([i, 0, 255]),
                    "doc": {"i": i, "list": [1, None]},
                }
                for i in range(1, 9)
            ],
        )
    return parent, child


@pytest.mark.parametrize(
    ("source", "target"),
    [("sqlite", "postgresql"), ("postgresql", "mariadb"), ("mariadb", "sqlite")],
)
def test_create_tables_from_another_database(
    source: str, target: str, make_db_url: Callable[[str], str], make_engine: Callable[[str], sa.Engine]
) -> None:
    src = make_db_url(source)
    _source_tables(make_engine(src))
    with Database.connect(src) as db, db.snapshot() as snap:
        schemas = snap.reflect()
        data = {s.name: [r for b in snap.scan(s, s.primary_key) for r in b] for s in schemas}
    dst = make_db_url(target)
    with Database.connect(dst) as db:
        with db.write() as tx:
            tx.create_tables(schemas)
        with db.write() as tx:
            for s in schemas[::-1]:  # parent, then child
                tx.insert_rows(s, data[s.name])
            tx.check_foreign_keys([s.name for s in schemas])
        with db.snapshot() as snap:
            made = snap.reflect()
            copied = {s.name: [r for b in snap.scan(s, s.primary_key) for r in b] for s in made}

    def described(s: TableSchema) -> dict[str, Any]:
        return {
            "columns": [(c.name, c.type, c.nullable) for c in s.columns],
            "primary_key": s.primary_key,
            "unique": s.unique,
            "foreign_keys": [(f.columns, f.ref_table, f.ref_columns, f.name) for f in s.foreign_keys],
            "autoincrement": [c.name for c in s.columns if c.autoincrement],
            "indexes": sorted((i.columns, i.unique) for i in s.indexes if i.name == "ix_child_name"),
        }

    assert [described(s) for s in made] == [described(s) for s in schemas]
    assert [s.name for s in made] == ["child", "parent"]
    assert made[0].foreign_keys[0].name == "fk_child_parent"
    # a spelling is the source engine's: another engine gets the value
    assert {n: [encode_row(r) for r in rows] for n, rows in copied.items()} == {
        n: [encode_row([v.value if type(v) is Spelled else v for v in r]) for r in rows] for n, rows in data.items()
    }


def test_column_types_per_database() -> None:
    from snapgit.db.ddl import Target, column_type, create_table_sql

    sqlite, pg, maria, mysql = Target("sqlite"), Target("postgresql"), Target("mysql"), Target("mysql", mariadb=False)
    assert [column_type(t, pg) for t in ("numeric(10,2)", "char(3)", "json", "array<varchar(5)>", "timetz")] == [
        "numeric(10,2)",
        "char(3)",
        "jsonb",
        "varchar(5)[]",
        "time with time zone",
    ]
    assert [column_type(t, sqlite) for t in ("timestamptz", "uuid", "array<integer>", "interval")] == [
        "TIMESTAMPTZ",
        "UUID",
        "JSON",
        "BIGINT",
    ]
    assert [column_type(t, maria) for t in ("text", "bytes", "uuid", "numeric", "timestamptz")] == [
        "LONGTEXT",
        "LONGBLOB",
        "UUID",
        "DECIMAL(65,30)",
        "TIMESTAMP(6)",
    ]
    assert column_type("uuid", mysql) == "CHAR(36)"
    with pytest.raises(DatabaseError, match="no column type for the portable type point"):
        column_type("point", pg)
    # MariaDB cannot index LONGTEXT: text in a key shares InnoDB's 3072 key bytes
    keyed = TableSchema(
        "k",
        (Column("a", "text", False), Column("b", "text", False), Column("c", "bytes"), Column("d", "text")),
        ("a", "b"),
        indexes=(Index(("c",), False, "ix_c"), Index(("d",), False, None)),
    )
    (sql,) = create_table_sql(keyed, maria, [])
    assert "`a` VARCHAR(384) NOT NULL" in sql and "`b` VARCHAR(384) NOT NULL" in sql
    assert "`c` VARBINARY(3072) NULL" in sql and "`d` VARCHAR(768) NULL" in sql
    assert "INDEX `ix_k_d` (`d`)" in sql and sql.endswith("COLLATE=utf8mb4_nopad_bin")


def test_create_tables_refuses_what_it_cannot_do(db_url: str) -> None:
    create(db_url, PARENT)
    with Database.connect(db_url) as db:
        with pytest.raises(DatabaseError, match=r"^table parent exists already in "):
            with db.write() as tx:
                tx.create_tables([CHILD, PARENT])
        orphan = TableSchema(
            "orphan",
            (Column("id", "integer", False), Column("x", "integer")),
            ("id",),
            foreign_keys=(ForeignKey(("x",), "nowhere", ("id",)),),
        )
        with pytest.raises(DatabaseError, match="foreign key to table nowhere, which is neither being created nor in"):
            with db.write() as tx:
                tx.create_tables([orphan])
        with pytest.raises(DatabaseError, match="cannot both create or drop tables and write rows") as info:
            with db.write() as tx:
                tx.create_tables([CHILD])
                tx.insert_rows(CHILD, [(1, None, 1)])
        assert "MariaDB commits DDL" in (info.value.hint or "")
        with db.snapshot() as snap:
            assert snap.table_names() == ["parent"]  # MariaDB too: the CREATE is undone
        create(db_url, CHILD)
        with db.write() as tx:
            tx.drop_tables(["parent", "child", "never_made"])
        with db.snapshot() as snap:
            assert snap.table_names() == []


def test_create_tables_with_a_cycle(db_url: str) -> None:
    a = TableSchema(
        "a",
        (Column("id", "integer", False), Column("b_id", "integer")),
        ("id",),
        foreign_keys=(ForeignKey(("b_id",), "b", ("id",), "fk_a_b"),),
    )
    b = TableSchema(
        "b",
        (Column("id", "integer", False), Column("a_id", "integer")),
        ("id",),
        foreign_keys=(ForeignKey(("a_id",), "a", ("id",), "fk_b_a"),),
    )
    create(db_url, a, b)
    with Database.connect(db_url) as db:
        with db.snapshot() as snap:
            made = snap.reflect()
        assert [[(f.columns, f.ref_table, f.name) for f in s.foreign_keys] for s in made] == [
            [(("b_id",), "b", "fk_a_b")],
            [(("a_id",), "a", "fk_b_a")],
        ]
        with db.write() as tx:
            tx.drop_tables(["a", "b"])
        with db.snapshot() as snap:
            assert snap.table_names() == []


# --- each database's own ways -------------------------------------------------------------------


def test_sqlite_writes_spelled_values_as_read_and_canonical_values_in_one_form(
    make_db_url: Callable[[str], str],
) -> None:
    """A value read with its spelling is written with it (the key included); a canonical value
    in the one form the reader keeps no spelling for, whatever the column's other values look
    like (a form sampled from them would re-spell the canonical ones among them)."""
    url = make_db_url("sqlite")
    path = sa.make_url(url).database
    u1, u2 = uuid.UUID(int=0xA1), uuid.UUID(int=0xB2)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE ev (id UUID PRIMARY KEY, at DATETIME, n INTEGER)")
        conn.execute("INSERT INTO ev VALUES (?, '2013-01-01T05:00:00', 1)", (str(u1),))
    schema, rows = read_all(url, "ev")
    key = Spelled(u1, str(u1), "sqlite")
    assert rows == [(Spelled(dt.datetime(2013, 1, 1, 5), "2013-01-01T05:00:00", "sqlite"), key, 1)]
    with Database.connect(url) as db, db.write() as tx:
        tx.update_rows(schema, ["id"], [(dt.datetime(2014, 2, 2, 6, 0, 0, 5), key, 2)])
        tx.insert_rows(schema, [(dt.datetime(2015, 3, 3), u2, 3)])
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT id, at, n FROM ev ORDER BY n").fetchall() == [
            (str(u1), "2014-02-02 06:00:00.000005", 2),
            (u2.hex, "2015-03-03 00:00:00", 3),
        ]
    with Database.connect(url) as db, db.write() as tx:
        tx.update_rows(schema, ["id"], rows)
    assert read_all(url, "ev")[1] == [*rows, (dt.datetime(2015, 3, 3), u2, 3)]


def test_mariadb_refuses_tables_without_transactions(
    make_db_url: Callable[[str], str], make_engine: Callable[[str], sa.Engine]
) -> None:
    url = make_db_url("mariadb")
    run_sql(make_engine(url), "CREATE TABLE m (id INT PRIMARY KEY) ENGINE=MyISAM")
    schema = TableSchema("m", (Column("id", "integer", False),), ("id",))
    with Database.connect(url) as db:
        with pytest.raises(DatabaseError, match="table m .* uses the MyISAM engine, which has no transactions") as info:
            with db.write() as tx:
                tx.insert_rows(schema, [(1,)])
        assert "ENGINE=InnoDB" in (info.value.hint or "")


def test_restore_into_a_new_sqlite_file(tmp_path: Any) -> None:
    path = tmp_path / "new.db"
    with pytest.raises(DatabaseError, match="does not exist"):
        Database.connect(str(path))
    with Database.connect(str(path), create=True) as db, db.write() as tx:
        tx.create_tables([PARENT])
    assert path.exists()


# --- batches ------------------------------------------------------------------------------------

ROWS = 20_000
_BIG = TableSchema(
    "big",
    (
        Column("id", "integer", False),
        Column("name", "text"),
        Column("amount", "numeric(12,2)"),
        Column("at", "timestamp"),
    ),
    ("id",),
)


def test_twenty_thousand_rows_go_in_batches(db_url: str) -> None:
    kind = kind_of(db_url)
    create(db_url, _BIG)
    at = dt.datetime(2024, 5, 1, 8, 30)
    rows = [(D(i) / 100, at, i, f"name {i}") for i in range(ROWS)]
    times = {}
    with Database.connect(db_url) as db:
        start = time.perf_counter()
        with db.write() as tx:
            tx.insert_rows(_BIG, rows)
        times["insert"] = time.perf_counter() - start
        start = time.perf_counter()
        changed = [(r[0] + 1, r[1], r[2], r[3] + "!") for r in rows[::2]]
        with db.write() as tx:
            tx.update_rows(_BIG, ["id"], changed)
        times["update"] = time.perf_counter() - start
        start = time.perf_counter()
        with db.write() as tx:
            tx.delete_rows(_BIG, ["id"], rows[1::2])
        times["delete"] = time.perf_counter() - start
    assert read_all(db_url, "big", ["id"])[1] == changed
    limit = 3.0 if kind == "sqlite" else 10.0
    assert all(t < limit for t in times.values()), times
