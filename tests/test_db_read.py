"""Reading live databases: reflection, scans in key order, canonical values, snapshots, errors.

Every test runs on SQLite, PostgreSQL and MariaDB (``db_url`` from conftest) unless it is about
one database's own types.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import os
import pathlib
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import mysql, postgresql

from snapgit.db import Database, DatabaseError, UnsupportedTypeError, normalize_url
from snapgit.db.types import column_read
from snapgit.encoding import Json, Spelled, canonical_value, decode_row, encode_key, encode_row
from snapgit.schema import Column, ForeignKey, Index, TableSchema

UTC = dt.UTC
D = decimal.Decimal


def read_all(
    url: str, table: str, key: Sequence[str] | None = None, batch_size: int = 10_000
) -> tuple[TableSchema, list[tuple[Any, ...]]]:
    with Database.connect(url) as db, db.snapshot() as snap:
        (schema,) = snap.reflect([table])
        return schema, [row for batch in snap.scan(schema, key, batch_size) for row in batch]


def kind_of(url: str) -> str:
    return {"sqlite": "sqlite", "postgresql": "postgresql", "mysql": "mariadb"}[sa.make_url(url).get_backend_name()]


def _tz_text(value: dt.datetime) -> str:
    return value.isoformat(sep=" ")


class SqliteTimestampTz(sa.types.UserDefinedType):
    """An aware datetime in SQLite: a column declared TIMESTAMPTZ holding ISO text with an offset."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "TIMESTAMPTZ"

    def bind_processor(self, dialect: Any) -> Callable[[Any], Any]:
        return lambda v: None if v is None else _tz_text(v)


# --- reflection ---------------------------------------------------------------------------------


def _make_parent_child(engine: sa.Engine) -> None:
    md = sa.MetaData()
    sa.Table(
        "parent",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(10), nullable=False, unique=True),
        sa.Column("note", sa.Text, server_default="none"),
    )
    child = sa.Table(
        "child",
        md,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("parent.id", name="fk_child_parent"), nullable=False),
        sa.Column("name", sa.String(20)),
        sa.Column("Score", sa.Numeric(8, 3)),
        sa.UniqueConstraint("parent_id", "name", name="uq_child_parent_name"),
    )
    sa.Index("ix_child_name", child.c.name)
    sa.Table(
        'Odd "Name"',
        md,
        sa.Column("a b", sa.String(5), primary_key=True),
        sa.Column("ü", sa.Text),
        sa.Column("100%", sa.Integer),
    )
    md.create_all(engine)


def test_reflect_columns_keys_and_indexes(db_url: str, db_engine: sa.Engine) -> None:
    _make_parent_child(db_engine)
    with Database.connect(db_url) as db, db.snapshot() as snap:
        assert snap.table_names() == ['Odd "Name"', "child", "parent"]
        schemas = snap.reflect()
        assert [s.name for s in schemas] == ['Odd "Name"', "child", "parent"]
        assert snap.reflect(["parent", "child"]) == schemas[1:]
    odd, child, parent = schemas

    assert [(c.name, c.type, c.nullable) for c in parent.columns] == [
        ("id", "integer", False),
        ("code", "varchar(10)", False),
        ("note", "text", True),
    ]
    assert parent.primary_key == ("id",)
    assert parent.column("id").autoincrement
    assert parent.column("note").default is not None and "none" in parent.column("note").default
    assert parent.unique == (("code",),)
    assert parent.foreign_keys == ()

    assert [(c.name, c.type) for c in child.columns] == [
        ("id", "bigint"),
        ("parent_id", "integer"),
        ("name", "varchar(20)"),
        ("Score", "numeric(8,3)"),
    ]
    assert child.sorted_names == ["Score", "id", "name", "parent_id"]
    assert child.primary_key == ("id",)
    assert not child.column("id").autoincrement
    assert child.unique == (("parent_id", "name"),)
    assert child.foreign_keys == (ForeignKey(("parent_id",), "parent", ("id",), child.foreign_keys[0].name),)
    assert Index(("name",), False, "ix_child_name") in child.indexes
    assert all(not (i.unique and i.columns == ("parent_id", "name")) for i in child.indexes)
    assert all(c.native for c in child.columns)

    assert odd.primary_key == ("a b",) and odd.column_names == ["a b", "ü", "100%"]
    assert TableSchema.from_obj(child.to_obj()) == child
    with db_engine.begin() as conn:
        conn.execute(
            sa.text('INSERT INTO "Odd ""Name""" VALUES (:a, :b, :c)')
            if kind_of(db_url) != "mariadb"
            else sa.text('INSERT INTO `Odd "Name"` VALUES (:a, :b, :c)'),
            {"a": "k", "b": "v", "c": 7},
        )
    _, rows = read_all(db_url, 'Odd "Name"', ["a b"])
    assert rows == [(7, "k", "v")]  # sorted names: "100%" < "a b" < "ü"


def test_reflect_is_deterministic_and_portable_schemas_agree(
    make_db_url: Callable[[str], str], make_engine: Callable[[str], sa.Engine]
) -> None:
    portable = []
    for kind in ("sqlite", "postgresql", "mariadb"):
        url = make_db_url(kind)
        _make_parent_child(make_engine(url))
        with Database.connect(url) as db, db.snapshot() as snap:
            first = snap.reflect()
            assert snap.reflect() == first
        portable.append([(s.name, s.portable().columns, s.primary_key, s.unique) for s in first])
    assert portable[0] == portable[1] == portable[2]


def test_sqlite_internal_tables_are_not_listed(make_db_url: Callable[[str], str]) -> None:
    url = make_db_url("sqlite")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, x)")
        conn.exec_driver_sql("INSERT INTO t (x) VALUES (1)")
        conn.exec_driver_sql("CREATE VIEW v AS SELECT * FROM t")
        assert conn.exec_driver_sql("SELECT count(*) FROM sqlite_sequence").scalar() == 1
    engine.dispose()
    with Database.connect(url) as db, db.snapshot() as snap:
        assert snap.table_names() == ["t"]
        (t,) = snap.reflect()
        assert [(c.name, c.type, c.autoincrement) for c in t.columns] == [
            ("id", "integer", True),
            ("x", "text", False),
        ]


def test_generated_columns_are_left_out(db_url: str, db_engine: sa.Engine) -> None:
    md = sa.MetaData()
    sa.Table(
        "g",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("a", sa.Integer),
        sa.Column("doubled", sa.Integer, sa.Computed("a * 2", persisted=True)),
    )
    md.create_all(db_engine)
    with db_engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO g (id, a) VALUES (1, 21)")
    schema, rows = read_all(db_url, "g", ["id"])
    assert schema.column_names == ["id", "a"]
    assert rows == [(21, 1)]


# --- scans --------------------------------------------------------------------------------------


def test_scan_in_key_order_with_sorted_column_names(db_url: str, db_engine: sa.Engine) -> None:
    md = sa.MetaData()
    t = sa.Table(
        "t",
        md,
        sa.Column("zeta", sa.Text),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("Mid", sa.BigInteger),
        sa.Column("alpha", sa.Boolean),
    )
    md.create_all(db_engine)
    ids = [5, -3, 17, 0, 2**31 - 1, 9, -(2**31), 4, 11, 1]
    with db_engine.begin() as conn:
        conn.execute(t.insert(), [{"id": i, "zeta": f"z{i}", "Mid": i * 2, "alpha": i % 2 == 0} for i in ids])
    schema, rows = read_all(db_url, "t", ["id"], batch_size=3)
    assert schema.sorted_names == ["Mid", "alpha", "id", "zeta"]
    assert rows == [(i * 2, i % 2 == 0, i, f"z{i}") for i in sorted(ids)]
    assert all(type(r[1]) is bool for r in rows)

    with Database.connect(db_url) as db, db.snapshot() as snap:
        batches = list(snap.scan(schema, ["id"], batch_size=4))
        assert [len(b) for b in batches] == [4, 4, 2]
        assert all(type(b) is list and all(type(r) is tuple for r in b) for b in batches)
        assert sorted(r for b in snap.scan(schema, None) for r in b) == sorted(rows)
        assert snap.count("t") == len(ids)


_COLLATIONS = {"sqlite": "NOCASE", "postgresql": "und-x-icu", "mariadb": "utf8mb4_general_ci"}


def test_text_keys_come_in_code_point_order(db_url: str, db_engine: sa.Engine) -> None:
    kind = kind_of(db_url)
    md = sa.MetaData()
    t = sa.Table(
        "words",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("w", sa.String(10, collation=_COLLATIONS[kind])),
        sa.Column("n", sa.Integer),
    )
    sa.Index("ix_words_w", t.c.w)
    md.create_all(db_engine)
    words = ["B", "a", "Á", "b", None, "ab", "A", "é", "Z", "ß", "😀", "a b", "a\tb"]
    with db_engine.begin() as conn:
        conn.execute(t.insert(), [{"id": i, "w": w, "n": i % 3} for i, w in enumerate(words)])
    schema, rows = read_all(db_url, "words", ["w"])
    got = [r[schema.sorted_names.index("w")] for r in rows]
    assert got == [None, "A", "B", "Z", "a", "a\tb", "a b", "ab", "b", "Á", "ß", "é", "😀"]
    keys = [encode_key([w]) for w in got]
    assert keys == sorted(keys)

    schema, rows = read_all(db_url, "words", ["n", "w"])  # a two-column key, NULLs first
    pos = [schema.sorted_names.index("n"), schema.sorted_names.index("w")]
    keys = [encode_key([r[p] for p in pos]) for r in rows]
    assert keys == sorted(keys) and len(rows) == len(words)


def test_snapshot_is_consistent_across_tables_and_scans(db_url: str, db_engine: sa.Engine) -> None:
    md = sa.MetaData()
    a = sa.Table("a", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False))
    b = sa.Table("b", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False))
    md.create_all(db_engine)
    with db_engine.begin() as conn:
        if kind_of(db_url) == "sqlite":  # so that a writer can commit while a reader reads
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        conn.execute(a.insert(), [{"id": i} for i in range(3)])
        conn.execute(b.insert(), [{"id": i} for i in range(3)])
    with Database.connect(db_url) as db:
        with db.snapshot() as snap:
            sa_, sb = snap.reflect()
            assert [r for batch in snap.scan(sa_, ["id"]) for r in batch] == [(0,), (1,), (2,)]
            with db_engine.begin() as conn:  # another session writes both tables meanwhile
                conn.execute(a.insert(), [{"id": 10}])
                conn.execute(b.delete().where(b.c.id == 0))
            assert snap.count("a") == 3
            assert [r for batch in snap.scan(sb, ["id"]) for r in batch] == [(0,), (1,), (2,)]
        with db.snapshot() as snap:
            assert (snap.count("a"), snap.count("b")) == (4, 2)


def test_one_scan_at_a_time(db_url: str, db_engine: sa.Engine) -> None:
    with db_engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1), (2), (3), (4), (5)")
    with Database.connect(db_url) as db, db.snapshot() as snap:
        (t,) = snap.reflect()
        first = snap.scan(t, ["id"], batch_size=2)
        assert next(first) == [(1,), (2,)]
        # a second read closes the unfinished scan ...
        assert [r for b in snap.scan(t, ["id"]) for r in b] == [(i,) for i in range(1, 6)]
        # ... which then refuses to go on rather than end with rows missing
        with pytest.raises(RuntimeError, match="closed when another read"):
            next(first)
        second = snap.scan(t, ["id"], batch_size=2)
        assert next(second) == [(1,), (2,)]
        assert snap.count("t") == 5
        with pytest.raises(RuntimeError):
            list(second)


def test_a_scan_given_up_half_way_can_be_read_again(db_url: str, db_engine: sa.Engine) -> None:
    """What commit does when the database's order disagrees with the key encoding's."""
    with db_engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        conn.execute(sa.text("INSERT INTO t VALUES (:i)"), [{"i": i} for i in range(2500)])
    with Database.connect(db_url) as db, db.snapshot() as snap:
        (t,) = snap.reflect()

        def give_up() -> None:
            for batch in snap.scan(t, ["id"], batch_size=100):
                if batch[0][0] >= 300:
                    raise ValueError("out of order")

        with pytest.raises(ValueError):
            give_up()
        assert sum(len(b) for b in snap.scan(t, None, batch_size=100)) == 2500
        assert snap.count("t") == 2500


# --- canonical values: every portable type on every database -------------------------------------

_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
_text = st.text(_chars, max_size=20)
_nice_floats = st.integers(-(2**20), 2**20).map(lambda i: i / 4).filter(lambda f: not f.is_integer())
_json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | _nice_floats | _text
_json = st.recursive(
    _json_scalars,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(_text, kids, max_size=3),
    max_leaves=8,
)
_offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))


def _ints(bits: int) -> st.SearchStrategy[int]:
    return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def _floats(kind: str, width: int = 64) -> st.SearchStrategy[float]:
    # NaN and -0.0: PostgreSQL only (SQLite stores NaN as NULL; SQLite and MariaDB store -0.0 as
    # 0.0); infinities: not in MariaDB
    floats = st.floats(width=width, allow_nan=kind == "postgresql", allow_infinity=kind != "mariadb")
    if kind == "postgresql":
        return floats
    return floats.filter(lambda f: f != 0 or math.copysign(1, f) > 0)


def _quantize(places: int) -> Callable[[decimal.Decimal], decimal.Decimal]:
    exp = D(1).scaleb(-places)
    context = decimal.Context(prec=100)
    return lambda v: abs(v).quantize(exp, context=context) if not v else v.quantize(exp, context=context)


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


@dataclass
class Case:
    """A portable type: its SQLAlchemy type per database, the values each can hold, how to write
    a value, and the canonical value it should read back as."""

    portable: str
    sa_type: Callable[[str], Any]
    values: Callable[[str], st.SearchStrategy[Any]]
    kinds: tuple[str, ...] = ("sqlite", "postgresql", "mariadb")
    portable_on: dict[str, str] = field(default_factory=dict)
    to_db: Callable[[str, Any], Any] = lambda kind, v: v
    expected: Callable[[Any], Any] = canonical_value


def _tz_to_db(kind: str, v: dt.datetime) -> Any:
    # PyMySQL drops tzinfo: write the UTC wall time (the test sessions are in UTC)
    return v.astimezone(UTC).replace(tzinfo=None) if kind == "mariadb" else v


CASES = [
    Case("smallint", lambda k: sa.SmallInteger(), lambda k: _ints(16)),
    Case("integer", lambda k: sa.Integer(), lambda k: _ints(32)),
    Case("bigint", lambda k: sa.BigInteger(), lambda k: _ints(64)),
    Case("boolean", lambda k: sa.Boolean(), lambda k: st.booleans()),
    Case("real", lambda k: sa.Float(precision=24), lambda k: _floats(k, 32), portable_on={"sqlite": "double"}),
    Case("double", lambda k: sa.Double(), _floats),
    Case(
        "numeric(15,4)",
        lambda k: sa.Numeric(15, 4),
        lambda k: st.decimals(-(10**11) + 1, 10**11 - 1, places=4),
        expected=_quantize(4),
    ),
    Case(
        "numeric(38,10)",
        lambda k: sa.Numeric(38, 10),
        lambda k: st.decimals(-(10**28) + 1, 10**28 - 1, places=10),
        kinds=("postgresql", "mariadb"),
        expected=_quantize(10),
    ),
    Case("text", lambda k: sa.Text(), lambda k: _text),
    Case("varchar(20)", lambda k: sa.String(20), lambda k: _text),
    Case("char(8)", lambda k: sa.CHAR(8), lambda k: st.text(_chars, max_size=8).filter(lambda s: not s.endswith(" "))),
    Case("bytes", lambda k: sa.LargeBinary(), lambda k: st.binary(max_size=40)),
    Case("date", lambda k: sa.Date(), lambda k: st.dates(min_value=dt.date(1000, 1, 1))),
    Case("time", lambda k: mysql.TIME(fsp=6) if k == "mariadb" else sa.Time(), lambda k: st.times()),
    Case(
        "timestamp",
        lambda k: mysql.DATETIME(fsp=6) if k == "mariadb" else sa.DateTime(),
        lambda k: st.datetimes(min_value=dt.datetime(1000, 1, 1)),
    ),
    Case(
        "timestamptz",
        lambda k: {
            "sqlite": SqliteTimestampTz(),
            "postgresql": sa.DateTime(timezone=True),
            "mariadb": mysql.TIMESTAMP(fsp=6),
        }[k],
        _aware,
        to_db=_tz_to_db,
    ),
    # MariaDB refuses UUIDs of an unknown variant
    Case(
        "uuid",
        lambda k: sa.UUID(),
        lambda k: st.uuids(version=4) | st.uuids(version=1) if k == "mariadb" else st.uuids(),
    ),
    Case(
        "json",
        lambda k: sa.JSON(none_as_null=True),
        lambda k: _json.map(Json),
        to_db=lambda k, v: sa.JSON.NULL if v.value is None else v.value,
    ),
    Case(
        "json",
        lambda k: postgresql.JSONB(none_as_null=True),
        lambda k: _json.map(Json),
        kinds=("postgresql",),
        to_db=lambda k, v: sa.JSON.NULL if v.value is None else v.value,
    ),
    Case(
        "interval",
        lambda k: sa.Interval(),
        lambda k: st.timedeltas(-dt.timedelta(10**6), dt.timedelta(10**6)),
        kinds=("postgresql",),
    ),
    Case(
        "array<integer>",
        lambda k: postgresql.ARRAY(sa.Integer),
        lambda k: st.lists(st.none() | _ints(32), max_size=4),
        kinds=("postgresql",),
    ),
    Case(
        "array<text>",
        lambda k: postgresql.ARRAY(sa.Text),
        lambda k: st.lists(st.none() | _text, max_size=4),
        kinds=("postgresql",),
    ),
]


_EXAMPLES = int(os.environ.get("SNAP_TEST_DB_EXAMPLES", "15"))  # more: a longer hunt for bugs


def _case_id(case: Case) -> str:
    return case.portable if case.kinds != ("postgresql",) or case.portable != "json" else "jsonb"


def meaning(v: Any) -> Any:
    """A value without the spelling its database kept beside it."""
    return v.value if type(v) is Spelled else v


@pytest.mark.parametrize(
    ("case", "db_kind"),  # db_kind overrides conftest's fixture: only the pairs that exist
    [pytest.param(c, k, id=f"{k}-{_case_id(c)}") for c in CASES for k in c.kinds],
)
def test_values_read_back_canonical(case: Case, db_kind: str, db_url: str, db_engine: sa.Engine) -> None:
    kind = db_kind
    md = sa.MetaData()
    t = sa.Table(
        "vals",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("v", case.sa_type(kind)),
    )
    md.create_all(db_engine)
    with Database.connect(db_url) as db:
        with db.snapshot() as snap:
            (schema,) = snap.reflect()
        assert schema.column("v").type == case.portable_on.get(kind, case.portable)

        @settings(max_examples=_EXAMPLES, suppress_health_check=[HealthCheck.too_slow])
        @given(st.lists(st.none() | case.values(kind), max_size=6))
        def check(values: list[Any]) -> None:
            with db_engine.begin() as conn:
                conn.execute(t.delete())
                if values:
                    conn.execute(
                        t.insert(),
                        [{"id": i, "v": None if v is None else case.to_db(kind, v)} for i, v in enumerate(values)],
                    )
            with db.snapshot() as snap:
                spelled = [r for batch in snap.scan(schema, ["id"]) for r in batch]
                # what a commit reads: values in the encoder's form, the same bytes
                for_encoder = [r for batch in snap.scan(schema, ["id"], values_of=["id"]) for r in batch]
            assert [encode_row(r) for r in for_encoder] == [encode_row(r) for r in spelled]
            # the value (a spelling of SQLAlchemy's own, '.000000' or '{"a": 1}', is kept beside
            # it: tests/test_spelling.py)
            rows = [tuple(meaning(v) for v in r) for r in spelled]
            expected = [(i, None if v is None else case.expected(v)) for i, v in enumerate(values)]
            assert [encode_row(r) for r in rows] == [encode_row(e) for e in expected], (rows, expected)
            for row, exp in zip(rows, expected, strict=False):
                assert type(row[1]) is type(exp[1])
                if not (isinstance(exp[1], float) and math.isnan(exp[1])):
                    assert row == exp
                again = decode_row(encode_row(row))
                assert encode_row(again) == encode_row(row)

        check()


_SAME_ROWS = [
    {
        "id": 1,
        "flag": True,
        "small": -7,
        "big": 2**62,
        "dbl": 0.1,
        "num": D("12345.6700"),
        "txt": "héllo\nwörld 😀",
        "name": "Zoë",
        "code": "AB",
        "blob": b"\x00\xff\x10",
        "day": dt.date(2024, 2, 29),
        "at_time": dt.time(23, 59, 58, 999999),
        "at": dt.datetime(2013, 1, 1, 5, 0, 0, 123),
        "at_tz": dt.datetime(2020, 6, 1, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        "uid": uuid.UUID("f81d4fae-7dec-11d0-a765-00a0c91e6bf6"),
        "doc": {"b": [1, 2.5, None, "x"], "a": {"nested": True}},
    },
    {
        "id": 2,
        "flag": False,
        "small": 32767,
        "big": -(2**63),
        "dbl": -1e300,
        "num": D("-0.0001"),
        "txt": "",
        "name": "",
        "code": " x",
        "blob": b"",
        "day": dt.date(1000, 1, 1),
        "at_time": dt.time(0, 0),
        "at": dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
        "at_tz": dt.datetime(1970, 1, 2, tzinfo=UTC),
        # not all digits: SQLite's NUMERIC affinity (a column declared UUID) would store the
        # hex text '000...0' as the integer 0
        "uid": uuid.UUID(int=0xA),
        "doc": "just a string",
    },
    {"id": 3, "doc": 42},
    {"id": 4},
]


def test_same_rows_give_the_same_bytes_on_every_database(
    make_db_url: Callable[[str], str], make_engine: Callable[[str], sa.Engine]
) -> None:
    results = {}
    for kind in ("sqlite", "postgresql", "mariadb"):
        url = make_db_url(kind)
        md = sa.MetaData()
        six = {"sqlite": {}, "postgresql": {}, "mariadb": {"fsp": 6}}[kind]
        t = sa.Table(
            "same",
            md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("flag", sa.Boolean),
            sa.Column("small", sa.SmallInteger),
            sa.Column("big", sa.BigInteger),
            sa.Column("dbl", sa.Double),
            sa.Column("num", sa.Numeric(15, 4)),
            sa.Column("txt", sa.Text),
            sa.Column("name", sa.String(20)),
            sa.Column("code", sa.CHAR(4)),
            sa.Column("blob", sa.LargeBinary),
            sa.Column("day", sa.Date),
            sa.Column("at_time", mysql.TIME(**six) if six else sa.Time),
            sa.Column("at", mysql.DATETIME(**six) if six else sa.DateTime),
            sa.Column(
                "at_tz",
                {
                    "sqlite": SqliteTimestampTz(),
                    "postgresql": sa.DateTime(timezone=True),
                    "mariadb": mysql.TIMESTAMP(fsp=6),
                }[kind],
            ),
            sa.Column("uid", sa.UUID),
            sa.Column("doc", sa.JSON(none_as_null=True)),
        )
        engine = make_engine(url)
        md.create_all(engine)
        rows = [{c.name: r.get(c.name) for c in t.columns} for r in _SAME_ROWS]
        if kind == "mariadb":
            for r in rows:
                if r["at_tz"] is not None:
                    r["at_tz"] = _tz_to_db(kind, r["at_tz"])
        with engine.begin() as conn:
            conn.execute(t.insert(), rows)
        engine.dispose()
        schema, spelled = read_all(url, "same", ["id"])
        # SQLAlchemy spells some values its own way on SQLite ('.000000', '{"a": 1}'), kept
        # beside them; the values themselves are the same on every database
        got = [tuple(meaning(v) for v in r) for r in spelled]
        results[kind] = ([c.type for c in schema.columns], [encode_row(r) for r in got], got)
    types, rows_bytes, got = results["sqlite"]
    for kind in ("postgresql", "mariadb"):
        assert results[kind][0] == types, kind
        for row, other in zip(got, results[kind][2], strict=False):
            assert dict(zip(sorted(_SAME_ROWS[0]), other, strict=False)) == dict(
                zip(sorted(_SAME_ROWS[0]), row, strict=False)
            ), kind
        assert results[kind][1] == rows_bytes, kind
    names = sorted(c for c in _SAME_ROWS[0])
    first = dict(zip(names, got[0], strict=False))
    assert first["doc"] == Json({"a": {"nested": True}, "b": [1, 2.5, None, "x"]})
    assert first["at_tz"] == dt.datetime(2020, 6, 1, 10, 30, tzinfo=UTC)
    assert first["num"].as_tuple().exponent == -4
    assert dict(zip(names, got[2], strict=False))["doc"] == Json(42)
    assert dict(zip(names, got[3], strict=False))["doc"] is None  # SQL NULL, not JSON null


# --- each database's own types ------------------------------------------------------------------


def test_sqlite_keeps_what_its_types_do_not_promise(make_db_url: Callable[[str], str]) -> None:
    url = make_db_url("sqlite")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE s (id INTEGER PRIMARY KEY, n INTEGER, b BOOLEAN, at DATETIME, "
            "num NUMERIC(10,2), j JSON, u UUID, anything)"
        )
        conn.exec_driver_sql(
            "INSERT INTO s VALUES "
            "(1, 'text', 2, 'last tuesday', 'n/a', 'not json', 'XYZ', x'00'), "
            "(2, 5, 1, '2013-01-01 05:00:00', 1.5, '{\"a\":1}', 'f81d4fae7dec11d0a76500a0c91e6bf6', 2.5), "
            "(3, 6, 0, 1357016400, 7, '[1]', 'f81d4fae-7dec-11d0-a765-00a0c91e6bf6', 'txt')"
        )
    engine.dispose()
    schema, rows = read_all(url, "s", ["id"])
    assert schema.sorted_names == ["anything", "at", "b", "id", "j", "n", "num", "u"]
    u = uuid.UUID("f81d4fae-7dec-11d0-a765-00a0c91e6bf6")
    assert rows == [
        (b"\x00", "last tuesday", 2, 1, "not json", "text", "n/a", "XYZ"),
        (2.5, dt.datetime(2013, 1, 1, 5), True, 2, Json({"a": 1}), 5, D("1.50"), u),
        # 36 digits, where a UUID is written with 32: kept as spelled
        ("txt", 1357016400, False, 3, Json([1]), 6, D("7.00"), Spelled(u, str(u), "sqlite")),
    ]


def test_sqlite_remembered_conversions_keep_each_storage_class(
    make_db_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Text values of a column are converted once and remembered: what is read equals what
    the plain converters give, for every storage class the column's affinity left (text,
    integer, real, NULL), with the remembered dict emptied again and again as it fills."""
    import snapgit.db.rows as rows_mod

    monkeypatch.setattr(rows_mod, "MEMO_MAX", 3)
    url = make_db_url("sqlite")
    engine = sa.create_engine(url)
    values = [
        "1",
        1,
        1.5,
        "x1",
        "2013-01-01 05:00:00",
        "",
        None,
        "2013-01-01 05:00:00",
        "2013-01-01T05:00",
        "2013-01-01 05:00:00+02:00",
        1.0,
        "1",
        "2014-02-03 04:05:06.5",
        "2013-01-01 05:00:00",
    ]
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE s (id INTEGER PRIMARY KEY, at DATETIME, d DATE)")
        for i, v in enumerate(values * 3):
            conn.exec_driver_sql(
                "INSERT INTO s VALUES (?, ?, ?)", (i, v, v if isinstance(v, str) and len(v) < 12 else "2020-02-29")
            )
    engine.dispose()
    raw = sqlite3.connect(url.removeprefix("sqlite:///"))
    stored = raw.execute("SELECT at, d FROM s ORDER BY id").fetchall()  # as the column's affinity left them
    raw.close()
    assert {type(a) for a, _d in stored} == {str, int, float, type(None)}
    at, day = (column_read("sqlite", t, None).convert for t in ("timestamp", "date"))
    assert at is not None and day is not None
    want = [(at(a), day(d)) for a, d in stored]
    assert Spelled(dt.datetime(2013, 1, 1, 5), "2013-01-01T05:00", "sqlite") in [w[0] for w in want]
    with Database.connect(url) as db, db.snapshot() as snap:
        (schema,) = snap.reflect(["s"])
        for values_of in (None, ["id"]):
            got = [r for batch in snap.scan(schema, ["id"], 4, values_of=values_of) for r in batch]
            decoded = [tuple(decode_row(encode_row(r))[:2]) for r in got]
            assert decoded == want
            assert [tuple(map(type, r)) for r in decoded] == [tuple(map(type, w)) for w in want]


def test_postgresql_types(make_db_url: Callable[[str], str]) -> None:
    url = make_db_url("postgresql")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TYPE mood AS ENUM ('sad', 'happy')")
        conn.exec_driver_sql("CREATE DOMAIN posint AS integer CHECK (VALUE > 0)")
        conn.exec_driver_sql(
            "CREATE TABLE p (id serial PRIMARY KEY, m mood, ip inet, cash money, x xml, bits bit(4), "
            "pi posint, f float8, nn numeric, tz timetz, codes char(3)[], docs jsonb[], r real[], "
            'name text COLLATE "C")'
        )
        conn.exec_driver_sql(
            "INSERT INTO p (m, ip, cash, x, bits, pi, f, nn, tz, codes, docs, r, name) VALUES "
            "('happy', '10.0.0.1/8', 12.5, '<a>1</a>', B'1010', 7, 'NaN', 'NaN', '12:00:00+02', "
            "'{a,bc}', ARRAY['{\"k\": null}'::jsonb, 'null'::jsonb], '{0.1}', 'x'), "
            "('sad', NULL, NULL, NULL, NULL, NULL, '-Infinity', 1.50, NULL, NULL, NULL, NULL, NULL)"
        )
    engine.dispose()
    schema, rows = read_all(url, "p", ["m"])
    types = {c.name: c.type for c in schema.columns}
    assert types == {
        "id": "integer",
        "m": "text",
        "ip": "text",
        "cash": "numeric",
        "x": "text",
        "bits": "text",
        "pi": "integer",
        "f": "double",
        "nn": "numeric",
        "tz": "timetz",
        "codes": "array<char(3)>",
        "docs": "array<json>",
        "r": "array<real>",
        "name": "text",
    }
    assert schema.column("name").native == 'text COLLATE "C"'
    assert schema.column("id").autoincrement
    happy, sad = (dict(zip(schema.sorted_names, r, strict=False)) for r in rows)  # by label, not enum order
    assert happy["m"] == "happy" and happy["ip"] == "10.0.0.1/8" and happy["cash"] == D("12.50")
    assert happy["x"] == "<a>1</a>" and happy["bits"] == "1010" and happy["pi"] == 7
    assert math.isnan(happy["f"]) and happy["nn"].is_nan()
    assert happy["tz"] == dt.time(12, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert happy["codes"] == ["a", "bc"]
    assert happy["docs"] == [Json({"k": None}), Json(None)]
    assert happy["r"] == [0.10000000149011612]  # the exact float4, as MariaDB's FLOAT reads
    assert sad["f"] == -math.inf and sad["nn"] == D("1.50") and sad["codes"] is None


def test_postgresql_table_without_columns(make_db_url: Callable[[str], str]) -> None:
    url = make_db_url("postgresql")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE nothing ()")
        conn.exec_driver_sql("INSERT INTO nothing DEFAULT VALUES")
        conn.exec_driver_sql("INSERT INTO nothing DEFAULT VALUES")
    engine.dispose()
    schema, rows = read_all(url, "nothing", None)
    assert schema.columns == () and rows == [(), ()]


def test_mariadb_types(make_db_url: Callable[[str], str]) -> None:
    url = make_db_url("mariadb")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE m (id int unsigned PRIMARY KEY, e enum('zz','aa'), s set('x','y'), "
            "y year, b1 bit(1), b8 bit(8), tu tinyint unsigned, bu bigint unsigned, t time(6), "
            "ip inet6, f float, l1 varchar(10) CHARACTER SET latin1, tb tinyint(1))"
        )
        conn.exec_driver_sql(
            "INSERT INTO m VALUES "
            "(1, 'zz', 'x,y', 2024, b'1', b'10000001', 255, 18446744073709551615, '100:00:00', "
            "'::1', 0.1, 'Ä', 2), "
            "(2, 'aa', '', 1999, b'0', b'0', 0, 0, '12:34:56.5', NULL, NULL, 'a', 1)"
        )
    engine.dispose()
    schema, rows = read_all(url, "m", ["e"])
    types = {c.name: c.type for c in schema.columns}
    assert types == {
        "id": "bigint",
        "e": "text",
        "s": "text",
        "y": "smallint",
        "b1": "boolean",
        "b8": "bigint",
        "tu": "smallint",
        "bu": "bigint",
        "t": "time",
        "ip": "text",
        "f": "real",
        "l1": "varchar(10)",
        "tb": "boolean",
    }
    assert "latin1" in (schema.column("l1").native or "")
    aa, zz = (dict(zip(schema.sorted_names, r, strict=False)) for r in rows)  # by label, not enum index
    assert (aa["e"], zz["e"]) == ("aa", "zz")
    assert zz["s"] == "x,y" and zz["y"] == 2024 and zz["b1"] is True and zz["b8"] == 129
    assert zz["tu"] == 255 and zz["bu"] == 2**64 - 1 and zz["t"] == dt.timedelta(hours=100)
    assert zz["ip"] == "::1" and zz["f"] == 0.10000000149011612 and zz["l1"] == "Ä"
    assert zz["tb"] == 2 and aa["tb"] is True
    assert aa["t"] == dt.time(12, 34, 56, 500000) and aa["b1"] is False
    encode_row(rows[0]), encode_row(rows[1])


# --- errors -------------------------------------------------------------------------------------


def _assert_clean(err: DatabaseError, *secrets: str) -> str:
    message = str(err)
    assert "\n" not in message
    for s in secrets:
        assert s not in message
        assert s not in (err.hint or "")
    return message


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://snap:s3cr3tpw@127.0.0.1:1/nodb",
        "mysql://snap:s3cr3tpw@127.0.0.1:1/nodb",
    ],
    ids=["postgresql", "mariadb"],
)
def test_unreachable_server(url: str) -> None:
    with pytest.raises(DatabaseError) as info:
        Database.connect(url)
    message = _assert_clean(info.value, "s3cr3tpw")
    assert message.startswith("cannot connect to ")
    assert "snap@127.0.0.1:1/nodb" in message
    assert info.value.hint


def test_wrong_password_is_not_echoed(make_db_url: Callable[[str], str]) -> None:
    url = sa.make_url(make_db_url("mariadb")).set(password="hunter2-wrong")
    with pytest.raises(DatabaseError) as info:
        Database.connect(url.render_as_string(hide_password=False))
    assert "Access denied" in _assert_clean(info.value, "hunter2-wrong")


def test_bad_url() -> None:
    with pytest.raises(DatabaseError) as info:
        Database.connect("postgres ql://u:s3cr3tpw@h/db")
    assert _assert_clean(info.value, "s3cr3tpw").startswith("invalid database URL")


def test_missing_sqlite_file_is_not_created(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "nope.db"
    with pytest.raises(DatabaseError, match="does not exist") as info:
        Database.connect(str(path))
    _assert_clean(info.value)
    assert str(path) in str(info.value)
    assert not path.exists()
    with pytest.raises(DatabaseError, match="does not exist"):
        Database.connect(f"sqlite:///{path}")
    assert not path.exists()


def test_a_file_that_is_not_a_database(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are not the rows you are looking for\n" * 100)
    with pytest.raises(DatabaseError, match="cannot connect to sqlite:///.*notes.txt: file is not a database"):
        Database.connect(str(path))


def test_unknown_table(db_url: str, db_engine: sa.Engine) -> None:
    with db_engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE known (id INTEGER PRIMARY KEY)")
    with Database.connect(db_url) as db, db.snapshot() as snap:
        with pytest.raises(DatabaseError, match="no table nope in ") as info:
            snap.reflect(["known", "nope"])
        _assert_clean(info.value)
        with pytest.raises(DatabaseError, match="no tables nope, zip in "):
            snap.reflect(["zip", "nope"])
        with pytest.raises(DatabaseError, match="no table nope in "):
            snap.count("nope")
        (known,) = snap.reflect(["known"])
        with pytest.raises(DatabaseError, match="key column idx is not a column of table known"):
            snap.scan(known, ["idx"])
        gone = TableSchema("gone", known.columns, ("id",))
        with pytest.raises(DatabaseError, match="no table gone"):
            snap.scan(gone, ["id"])
        assert snap.count("known") == 0  # the snapshot is still usable


_UNSUPPORTED: dict[str, tuple[str, str]] = {}


def test_unsupported_type(db_url: str, db_engine: sa.Engine) -> None:
    kind = kind_of(db_url)
    if kind == "sqlite":  # every declared type has an affinity in SQLite
        with db_engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE geo (id integer PRIMARY KEY, p POINT)")
        with Database.connect(db_url) as db, db.snapshot() as snap:
            # SQLite's first affinity rule: a type name containing "INT" is an integer
            assert snap.reflect()[0].column("p") == Column("p", "integer", True, None, "POINT")
        return
    if kind == "postgresql":  # every type has a text form: one snapgit has no typed form for is text
        with db_engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE geo (id integer PRIMARY KEY, p point)")
            conn.exec_driver_sql("INSERT INTO geo VALUES (1, '(1.5,2)')")
        with Database.connect(db_url) as db, db.snapshot() as snap:
            schema = snap.reflect()[0]
            assert schema.column("p") == Column("p", "text", True, None, "point")
            assert [list(r) for batch in snap.scan(schema, ["id"]) for r in batch] == [[1, "(1.5,2)"]]
        return
    if kind == "mariadb":  # spatial types: the server's own bytes (SRID, then WKB), given back as they are
        with db_engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE geo (id integer PRIMARY KEY, p POINT)")
            conn.exec_driver_sql("INSERT INTO geo VALUES (1, ST_GeomFromText('POINT(1.5 2)', 4326))")
            raw = conn.exec_driver_sql("SELECT CONCAT(UNHEX('E6100000'), ST_AsWKB(p)) FROM geo").scalar()
        with Database.connect(db_url) as db, db.snapshot() as snap:
            schema = snap.reflect()[0]
            assert schema.column("p") == Column("p", "bytes", True, None, "point")
            assert [list(r) for batch in snap.scan(schema, ["id"]) for r in batch] == [[1, bytes(raw)]]
        return
    ddl, native = _UNSUPPORTED[kind]  # no type of the test servers is left here (MySQL's vector is)
    with db_engine.begin() as conn:
        conn.exec_driver_sql(ddl)
        conn.exec_driver_sql("CREATE TABLE fine (id integer PRIMARY KEY)")
    with Database.connect(db_url) as db, db.snapshot() as snap:
        with pytest.raises(UnsupportedTypeError) as info:
            snap.reflect()
        assert str(info.value) == f"column geo.p has type {native}, which snapgit cannot store"
        assert (info.value.table, info.value.column, info.value.native) == ("geo", "p", native)
        assert isinstance(info.value, DatabaseError) and info.value.hint
        assert [s.name for s in snap.reflect(["fine"])] == ["fine"]


def test_database_properties(db_url: str) -> None:
    with Database.connect(db_url) as db:
        assert db.dialect == {"sqlite": "sqlite", "postgresql": "postgresql", "mariadb": "mysql"}[kind_of(db_url)]
        assert db.url_redacted == normalize_url(db_url)  # the test servers need no password


def test_key_bounds(db_url: str, db_engine: sa.Engine) -> None:
    with db_engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE kb (id INTEGER PRIMARY KEY, v INTEGER)")
        conn.exec_driver_sql("INSERT INTO kb VALUES (7, 1), (-3, 2), (12, 3)")
        conn.exec_driver_sql("CREATE TABLE kb_empty (id INTEGER PRIMARY KEY)")
    with Database.connect(db_url) as db, db.snapshot() as snap:
        assert snap.key_bounds("kb", "id") == (-3, 12)
        assert snap.key_bounds("kb_empty", "id") == (None, None)


def test_sqlite_key_bounds_come_from_the_index(make_db_url: Callable[[str], str]) -> None:
    # min() and max() in one select make SQLite scan the table: on a big table that held up
    # every commit before its workers could start
    url = make_db_url("sqlite")
    path = sa.make_url(url).database
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE big (id INTEGER NOT NULL PRIMARY KEY, v INTEGER)")
        raw.executemany("INSERT INTO big VALUES (?, ?)", ((i, i) for i in range(1, 50_001)))
    raw.close()
    with Database.connect(url) as db, db.snapshot() as snap:
        steps = 0

        def count() -> int:
            nonlocal steps
            steps += 1
            return 0

        snap._raw.set_progress_handler(count, 100)
        assert snap.key_bounds("big", "id") == (1, 50_000)
        snap._raw.set_progress_handler(None, 0)
    assert steps < 10  # a scan of the table takes thousands of 100-instruction steps
