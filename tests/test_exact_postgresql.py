"""Exact restores on PostgreSQL, checked through the database's own eyes.

A restore into PostgreSQL of a snapshot read from PostgreSQL gives back every column's type as
``format_type`` spells it (with its collation) and every value as its ``::text``. Values that
Python's types cannot hold (BC dates, ``infinity``, ``24:00:00``, huge intervals) and types
snapgit has no typed form for (ranges, geometric types, hstore, ...) must not fail a commit.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapgit import Repo
from snapgit.db import DatabaseError
from snapgit.store.config import TableConfig

MakeUrl = Callable[[str], str]
MakeEngine = Callable[[str], sa.Engine]

_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), co.collname
FROM pg_catalog.pg_attribute a
LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
WHERE a.attrelid = to_regclass(%(t)s) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


def columns(engine: sa.Engine, table: str) -> list[tuple[str, str, str | None]]:
    """(name, format_type, collation) of every column, as PostgreSQL describes them."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(_COLUMNS, {"t": table}).all()]  # type: ignore[misc]


def texts(engine: sa.Engine, table: str, exprs: dict[str, str] | None = None) -> list[tuple[str | None, ...]]:
    """Every row as the ``::text`` of each value (or of ``exprs[column]``, ``{c}`` the column),
    sorted."""
    names = [c[0] for c in columns(engine, table)]
    select = ", ".join((exprs or {}).get(n, "{c}").format(c=f'"{n}"') + "::text" for n in names)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.exec_driver_sql(f'SELECT {select} FROM "{table}"').all()]
    return sorted(rows, key=repr)


# types that need a definition in the database before a table can use them
_DEFINITIONS = [
    "CREATE EXTENSION IF NOT EXISTS hstore",
    "CREATE EXTENSION IF NOT EXISTS citext",
    "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')",
    "CREATE DOMAIN posint AS integer CHECK (VALUE > 0)",
    "CREATE TYPE pair AS (a integer, b text)",
]

_WIDE = """
CREATE TABLE wide (
  id integer PRIMARY KEY,
  ip inet, net cidr, mac macaddr, mac8 macaddr8, m mood, ms mood[], b bit(3), vb bit varying(8),
  x xml, ts tsvector, tq tsquery, ci citext, money_ money, r int4range, tr tstzrange,
  mr int4multirange, p point, bx box, ci_ circle, h hstore, pr pair, d posint,
  v varchar(7) COLLATE "C", c char(4), n numeric(9,3), n2 numeric, f4 real, ia integer[],
  ta text[], da date[], j json, jb jsonb, bits bit(3)[], u uuid, iv interval, tt timetz,
  ts2 timestamp(3), tz timestamptz(0), iv2 interval
)
"""

_WIDE_ROWS = [
    "INSERT INTO wide VALUES (1, '10.1.2.3/8', '10.0.0.0/8', '08:00:2b:01:02:03', "
    "'08:00:2b:01:02:03:04:05', 'happy', '{sad,happy}', B'101', B'11', '<a>x</a>', "
    "'a fat cat', 'fat & rat', 'MiXeD', '$1,234.56', '[1,5)', '[2020-01-01 00:00+00,)', "
    "'{[1,3),[7,9)}', '(1.5,2)', '(1,1),(0,0)', '<(0,0),2>', 'a=>1, b=>NULL', '(7,\"q\")', 3, "
    "'abc', 'ab', 1.5, 1.50, 0.1, '[0:2]={7,8,9}', '{a,NULL,\"b c\"}', '{2020-01-02,infinity}', "
    '\'{"b": 1,  "a": [1, 2]}\', \'{"b": 1, "a": 2}\', \'{101,010}\', '
    "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '1 year 2 mons 3 days 04:05:06.5', '24:00:00+05', "
    "'2020-01-01 10:00:00.123', '2020-01-01 10:00:00+02', '1 day -00:00:01')",
    "INSERT INTO wide (id) VALUES (2)",
]


def _define(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for sql in _DEFINITIONS:
            conn.exec_driver_sql(sql)


def test_every_type_round_trips_through_restore_into(make_db_url: MakeUrl, make_engine: MakeEngine, tmp_path) -> None:
    """Types snapgit has no typed form for are read as their text and restored with their own
    type; every column keeps its format_type and collation, every value its ::text."""
    src, dst = make_db_url("postgresql"), make_db_url("postgresql")
    source, target = make_engine(src), make_engine(dst)
    _define(source)
    with source.begin() as conn:
        conn.exec_driver_sql(_WIDE)
        for sql in _WIDE_ROWS:
            conn.exec_driver_sql(sql)
    repo = Repo.init(tmp_path, src)
    c = repo.commit("wide").commit_id
    _define(target)
    repo.restore(c.hex(), into=dst)
    assert columns(target, "wide") == columns(source, "wide")
    names = [c[0] for c in columns(source, "wide")]
    got, want = texts(target, "wide"), texts(source, "wide")
    differ = {
        names[i]: (w, g)
        for gr, wr in zip(got, want, strict=True)
        for i, (g, w) in enumerate(zip(gr, wr, strict=True))
        if g != w
    }
    # an interval's days and time of opposite signs keep their text beside the timedelta
    assert differ == {}
    assert all(not list(t.rows()) for t in repo.diff(c.hex(), None, db_url=dst))
    repo.close()


def test_restore_into_refuses_a_type_the_target_lacks(make_db_url: MakeUrl, make_engine: MakeEngine, tmp_path) -> None:
    src, dst = make_db_url("postgresql"), make_db_url("postgresql")
    source, target = make_engine(src), make_engine(dst)
    with source.begin() as conn:
        conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS citext")  # an extension's type is not recorded
        conn.exec_driver_sql("CREATE TABLE a (id integer PRIMARY KEY)")
        conn.exec_driver_sql("CREATE TABLE b (id integer PRIMARY KEY, m citext)")
        conn.exec_driver_sql("INSERT INTO b VALUES (1, 'happy')")
    repo = Repo.init(tmp_path, src)
    c = repo.commit("enum").commit_id
    with pytest.raises(DatabaseError) as info:
        repo.restore(c.hex(), into=dst)
    message = str(info.value)
    assert "\n" not in message and "b.m" in message and "citext" in message
    assert "CREATE TYPE" in (info.value.hint or "")
    with target.connect() as conn:  # nothing half-created
        assert conn.exec_driver_sql("SELECT count(*) FROM pg_class WHERE relname IN ('a', 'b')").scalar() == 0
    repo.close()


_EDGES = """
CREATE TABLE edges (
  id integer PRIMARY KEY, d date, t time, tz timetz, ts timestamp, tstz timestamptz, iv interval,
  da date[]
)
"""
_EDGE_ROWS = [
    "(1, 'infinity', '24:00:00', '24:00:00+05', 'infinity', '-infinity', '100000000 years', '{infinity,-infinity}')",
    "(2, '0044-03-15 BC', '00:00:00', '00:00:00+00', '0044-03-15 12:00 BC', '0044-03-15 12:00+00 BC', "
    "'-178000000 years', '{0044-03-15 BC}')",
    "(3, '2020-02-29', '12:34:56.789', '12:34:56+02', '2020-02-29 01:02:03', '2020-02-29 01:02:03+00', '1 day', "
    "'{2020-02-29}')",
    "(4, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
]


def test_values_python_cannot_hold_commit_and_restore(make_db_url: MakeUrl, make_engine: MakeEngine, tmp_path) -> None:
    """Such values are read as their text, value by value: the commit succeeds, the other
    values keep their typed form, and restores give every value back."""
    src, dst = make_db_url("postgresql"), make_db_url("postgresql")
    source, target = make_engine(src), make_engine(dst)
    with source.begin() as conn:
        conn.exec_driver_sql(_EDGES)
        conn.exec_driver_sql("INSERT INTO edges VALUES " + ", ".join(_EDGE_ROWS))
    repo = Repo.init(tmp_path, src)
    c = repo.commit("edges").commit_id
    repo.restore(c.hex(), into=dst)
    assert columns(target, "edges") == columns(source, "edges")
    assert texts(target, "edges") == texts(source, "edges")
    # in place: change every edge value, restore, and get them back
    want = texts(source, "edges")
    with source.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE edges SET d = '2000-01-01', t = '01:00', tz = '01:00+00', ts = now(), "
            "tstz = now(), iv = '2 days', da = '{}'"
        )
    changed = [t for t in repo.diff(c.hex(), None) if list(t.rows())]
    assert [t.name for t in changed] == ["edges"]
    repo.restore(c.hex())
    assert texts(source, "edges") == want
    assert all(not list(t.rows()) for t in repo.diff(c.hex(), None))
    repo.close()


def test_ignored_column_of_a_storable_type_is_restored(make_db_url: MakeUrl, make_engine: MakeEngine, tmp_path) -> None:
    """A column ignored in config.toml whose type snapgit can store (MariaDB's POINT, once
    refused, now the server's bytes) stays in the schema: merges leave it out, restores keep it."""
    url = make_db_url("mariadb")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE m (id integer PRIMARY KEY, g POINT, n integer)")
        conn.exec_driver_sql("INSERT INTO m VALUES (1, POINT(1, 2), 5)")
    repo = Repo.init(tmp_path, url)
    repo.config.table["m"] = TableConfig(ignore=["g"])
    repo.store.save_config()
    repo = Repo.open(tmp_path)
    c = repo.commit("with g").commit_id
    assert [c.name for c in repo.tables()[0].schema.columns] == ["id", "g", "n"]
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE m SET g = POINT(3, 4)")
    repo.restore(c.hex())
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT ST_AsText(g) FROM m").scalar() == "POINT(1 2)"
    repo.close()


# --- property: many types, edge values -----------------------------------------------------

_PROPERTY_COLUMNS: dict[str, tuple[str, st.SearchStrategy[str]]] = {
    "i2": ("smallint", st.integers(-(2**15), 2**15 - 1).map(str)),
    "i8": ("bigint", st.integers(-(2**63), 2**63 - 1).map(str)),
    "n": ("numeric(12,4)", st.decimals(min_value=-(10**7), max_value=10**7, places=4, allow_nan=False).map(str)),
    "nn": ("numeric", st.sampled_from(["NaN", "0.000", "1e-20", "-12345678901234567890.5", "3"])),
    "f4": ("real", st.sampled_from(["0.1", "-0", "NaN", "Infinity", "3.4e38", "1e-45"])),
    "f8": (
        "double precision",
        st.floats(allow_nan=True)
        .map(repr)
        .map(lambda s: {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}.get(s, s)),
    ),
    "t": ("text", st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8)),
    "v": ('varchar(5) COLLATE "C"', st.text("ab ", max_size=5)),
    "c": ("char(3)", st.text("xy", max_size=3)),
    "d": (
        "date",
        st.sampled_from(
            ["infinity", "-infinity", "4713-01-01 BC", "0001-01-01", "9999-12-31", "2024-02-29", "12345-01-01"]
        ),
    ),
    "tm": ("time(2)", st.sampled_from(["24:00:00", "00:00:00", "23:59:59.99", "12:00:00.5"])),
    "ttz": ("timetz", st.sampled_from(["24:00:00-15:59", "00:00:00+15:59", "12:00:00+05:30"])),
    "ts": (
        "timestamp",
        st.sampled_from(
            ["infinity", "-infinity", "0001-01-01 00:00 BC", "2020-01-01 00:00:00.000001", "294276-12-31 23:59:59"]
        ),
    ),
    "tz": ("timestamptz", st.sampled_from(["infinity", "2020-06-01 12:00+02", "0099-01-01 00:00+00 BC"])),
    "iv": (
        "interval",
        st.sampled_from(
            [
                "178000000 years",
                "-178000000 years",
                "00:00:00.000001",
                "P1Y2M3DT4H5M6S",
                "-1 day",
                "1 mon -2 days",
                "3 days 04:00:00",
            ]
        ),
    ),
    "ip": ("inet", st.sampled_from(["::1", "192.168.0.1/24", "10.0.0.0/8", "2001:db8::/32"])),
    "bt": ("bit varying(6)", st.text("01", max_size=6)),
    "rg": ("numrange", st.sampled_from(["empty", "[1.5,2)", "(,)", "[-1,)"])),
    "pt": ("point", st.sampled_from(["(0,0)", "(-1.5,1e+300)", "(NaN,1)"])),
    "ia": (
        "integer[]",
        st.lists(st.integers(-5, 5).map(str), max_size=3).map(lambda xs: "{" + ",".join(xs) + "}")
        | st.sampled_from(["[0:2]={7,8,9}", "[-3:-3]={1}", "[2:3][1:1]={{1},{2}}"]),
    ),
    "ta": (
        "text[]",
        st.lists(st.sampled_from(["a", "NULL", '"NULL"', '"b,c"', '""']), max_size=3).map(
            lambda xs: "{" + ",".join(xs) + "}"
        ),
    ),
    "by": ("bytea", st.binary(max_size=6).map(lambda b: "\\x" + b.hex())),
    "u": ("uuid", st.uuids().map(str)),
    "jb": ("jsonb", st.sampled_from(['{"a": [1, 2.5]}', '"x"', "null", "[]", '{"b": 1e+3}'])),
}


def test_property_restore_into_is_exact(make_db_url: MakeUrl, make_engine: MakeEngine, tmp_path_factory) -> None:
    """Commit a table of many types holding edge values, restore it --into a new database, and
    compare every column's format_type and every value's ::text with the source. One pair of
    databases for all examples (the server is shared: no connection per example)."""
    src, dst = make_db_url("postgresql"), make_db_url("postgresql")
    source, target = make_engine(src), make_engine(dst)
    names = list(_PROPERTY_COLUMNS)
    body = ", ".join(f"{n} {_PROPERTY_COLUMNS[n][0]}" for n in names)
    params = ", ".join(f"%({n})s::{_PROPERTY_COLUMNS[n][0].split(' COLLATE')[0]}" for n in names)
    row = st.fixed_dictionaries({k: st.one_of(st.none(), s) for k, (_t, s) in _PROPERTY_COLUMNS.items()})

    @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(row, min_size=1, max_size=4))
    def check(rows: list[dict[str, str | None]]) -> None:
        for engine in (source, target):
            with engine.begin() as conn:
                conn.exec_driver_sql("DROP TABLE IF EXISTS p")
        with source.begin() as conn:
            conn.exec_driver_sql(f"CREATE TABLE p (id integer PRIMARY KEY, {body})")
            for i, r in enumerate(rows):
                conn.exec_driver_sql(f"INSERT INTO p VALUES ({i}, {params})", r)
        repo = Repo.init(tmp_path_factory.mktemp("store"), src)
        try:
            c = repo.commit("p").commit_id
            repo.restore(c.hex(), into=dst)
        finally:
            repo.close()
        assert columns(target, "p") == columns(source, "p")
        assert texts(target, "p") == texts(source, "p")

    check()


def _export_import_restore(
    make_db_url: MakeUrl, make_engine: MakeEngine, tmp_path, fmt: str
) -> tuple[sa.Engine, sa.Engine]:
    src, dst, other = make_db_url("postgresql"), make_db_url("postgresql"), make_db_url("postgresql")
    source, target = make_engine(src), make_engine(dst)
    with source.begin() as conn:
        conn.exec_driver_sql(_EDGES)
        conn.exec_driver_sql("INSERT INTO edges VALUES " + ", ".join(_EDGE_ROWS))
        conn.exec_driver_sql("CREATE TABLE more (id integer PRIMARY KEY, r int4range, ia integer[], iv interval)")
        conn.exec_driver_sql("INSERT INTO more VALUES (1, '[1,5)', '[0:1]={1,2}', '1 mon'), (2, NULL, '{3}', '1 day')")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    repo = Repo.init(tmp_path / "a", src)
    repo.commit("edges")
    path = tmp_path / f"out.{fmt}"
    repo.export("HEAD", path, fmt=fmt)
    repo.close()
    copy = Repo.init(tmp_path / "b", other)
    got = copy.import_file(path, branch="imported")
    copy.restore(got["commit"].hex(), into=dst)
    copy.close()
    return source, target


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_export_import_restore_values(make_db_url: MakeUrl, make_engine: MakeEngine, tmp_path, fmt: str) -> None:
    """Values read as text (a range, infinity, a BC date, an array with bounds, an interval of
    months) survive an export, an import into another store and a restore --into PostgreSQL."""
    source, target = _export_import_restore(make_db_url, make_engine, tmp_path, fmt)
    for table in ("edges", "more"):
        assert texts(target, table) == texts(source, table)


def test_export_import_restore_types(make_db_url: MakeUrl, make_engine: MakeEngine, tmp_path) -> None:
    source, target = _export_import_restore(make_db_url, make_engine, tmp_path, "json")
    assert columns(target, "more") == columns(source, "more")
