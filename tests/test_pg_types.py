"""PostgreSQL intervals of mixed sign and user-defined types (enum, domain, composite), checked
through PostgreSQL's own eyes: ``::text`` of every value, ``format_type`` of every column and
the catalog's description of every type, between the source and the restored database.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapgit import Repo
from snapgit.db import DatabaseError

MakeUrl = Callable[[str], str]
MakeEngine = Callable[[str], sa.Engine]


def texts(engine: sa.Engine, table: str) -> list[tuple[str | None, ...]]:
    """Every row of ``table`` as the ``::text`` of each column, in key order."""
    with engine.connect() as conn:
        names = [
            r[0]
            for r in conn.exec_driver_sql(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%(t)s) AND attnum > 0 "
                "AND NOT attisdropped ORDER BY attnum",
                {"t": table},
            )
        ]
        select = ", ".join(f'"{n}"::text' for n in names)
        return [tuple(r) for r in conn.exec_driver_sql(f'SELECT {select} FROM "{table}" ORDER BY "{names[0]}"').all()]


# --- intervals of mixed sign -------------------------------------------------------------------

_INTERVALS = [
    "1 day -00:00:01",
    "-1 days +00:00:01",
    "-1 mons +2 days",
    "1 year -1 day",
    "1 year -1 day +01:00:00",
    "49:00:00",
    "-49:00:00.5",
    "1 day",
    "-00:00:01",
    "00:00:00",
]


def _interval_table(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE iv (id integer PRIMARY KEY, v interval, a interval[])")
        for i, text in enumerate(_INTERVALS):
            conn.exec_driver_sql(
                "INSERT INTO iv VALUES (%s, %s::interval, ARRAY[%s::interval, '2 days'])", (i, text, text)
            )
        conn.exec_driver_sql("INSERT INTO iv VALUES (100, NULL, NULL)")


def test_mixed_sign_intervals_restore_in_place_and_into(
    make_db_url: MakeUrl, make_engine: MakeEngine, tmp_path
) -> None:
    src, dst = make_db_url("postgresql"), make_db_url("postgresql")
    source, target = make_engine(src), make_engine(dst)
    _interval_table(source)
    want = texts(source, "iv")
    assert want[0][1] == "1 day -00:00:01"  # the server keeps days and time apart
    repo = Repo.init(tmp_path, src)
    c = repo.commit("intervals").commit_id
    repo.restore(c.hex(), into=dst)
    assert texts(target, "iv") == want
    with source.begin() as conn:
        conn.exec_driver_sql("UPDATE iv SET v = '0', a = '{}'")
    assert [t.name for t in repo.diff(c.hex(), None) if list(t.rows())] == ["iv"]
    repo.restore(c.hex())
    assert texts(source, "iv") == want
    assert all(not list(t.rows()) for t in repo.diff(c.hex(), None))
    repo.close()


def test_a_mixed_sign_interval_means_its_length_elsewhere(
    make_db_url: MakeUrl, make_engine: MakeEngine, tmp_path
) -> None:
    """Another engine gets the interval's length (SQLite: microseconds), not PostgreSQL's text,
    and comparing the PostgreSQL source with that database finds no difference."""
    src = make_db_url("postgresql")
    source = make_engine(src)
    with source.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE iv (id integer PRIMARY KEY, v interval)")
        conn.exec_driver_sql("INSERT INTO iv VALUES (1, '1 day -00:00:01'), (2, '-1 days +02:00:00'), (3, '1 day')")
    (tmp_path / "store").mkdir()
    repo = Repo.init(tmp_path / "store", src)
    c = repo.commit("intervals").commit_id
    lite = tmp_path / "x.db"
    repo.restore(c.hex(), into=f"sqlite:///{lite}")
    with sqlite3.connect(lite) as conn:
        got = conn.execute("SELECT id, v FROM iv ORDER BY id").fetchall()
    second = 1_000_000
    assert got == [(1, (86_400 - 1) * second), (2, -(86_400 - 7_200) * second), (3, 86_400 * second)]
    repo.close()


def test_property_interval_text_survives_restore_into(
    make_db_url: MakeUrl, make_engine: MakeEngine, tmp_path_factory
) -> None:
    """Any interval of months, days and microseconds, whatever their signs, gives back its
    ``::text`` after restore --into PostgreSQL. One pair of databases for all examples."""
    src, dst = make_db_url("postgresql"), make_db_url("postgresql")
    source, target = make_engine(src), make_engine(dst)
    part = st.tuples(st.integers(-30, 30), st.integers(-50_000, 50_000), st.integers(-(10**12), 10**12))

    @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(part, min_size=1, max_size=8))
    def check(parts: list[tuple[int, int, int]]) -> None:
        for engine in (source, target):
            with engine.begin() as conn:
                conn.exec_driver_sql("DROP TABLE IF EXISTS iv")
        with source.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE iv (id integer PRIMARY KEY, v interval)")
            for i, (months, days, micros) in enumerate(parts):
                conn.exec_driver_sql(
                    "INSERT INTO iv VALUES (%s, make_interval(months => %s, days => %s) "
                    "+ %s * interval '1 microsecond')",
                    (i, months, days, micros),
                )
        repo = Repo.init(tmp_path_factory.mktemp("store"), src)
        try:
            c = repo.commit("intervals").commit_id
            repo.restore(c.hex(), into=dst)
        finally:
            repo.close()
        assert texts(target, "iv") == texts(source, "iv")

    check()


# --- enum, domain and composite types ----------------------------------------------------------

_TYPES = [
    "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'it''s \"fine\"')",
    "ALTER TYPE mood ADD VALUE 'meh' BEFORE 'ok'",  # sort order differs from creation order
    "CREATE DOMAIN posint AS integer DEFAULT 1 NOT NULL CONSTRAINT positive CHECK (VALUE > 0)",
    "CREATE DOMAIN glad AS mood CONSTRAINT not_sad CHECK (VALUE <> 'sad') CHECK (VALUE <> 'meh')",
    """CREATE DOMAIN code AS varchar(5) COLLATE "C" CHECK (VALUE ~ '^[A-Z]+$')""",
    'CREATE TYPE "Pair" AS (a posint, "b c" text COLLATE "POSIX", m mood[], n numeric(6,2))',
    'CREATE TYPE nest AS (p "Pair", g glad)',
]
_TABLE = """
CREATE TABLE t (
  id integer PRIMARY KEY, m mood, ms mood[], d posint, g glad, c code, p "Pair", ps "Pair"[], n nest
)
"""
_ROWS = [
    "INSERT INTO t VALUES (1, 'meh', '{happy,sad}', 7, 'happy', 'ABC', "
    '\'(3,"x y","{ok,sad}",1.50)\', ARRAY[\'(1,a,{},2)\'::"Pair", NULL], \'("(2,b,{happy},)",ok)\')',
    "INSERT INTO t VALUES (2, NULL, NULL, 1, NULL, NULL, NULL, NULL, NULL)",
    "INSERT INTO t (id) VALUES (3)",
    "CREATE TABLE plain (id integer PRIMARY KEY, x text)",
    "INSERT INTO plain VALUES (1, 'a')",
]

_DESCRIBE = """
SELECT t.typtype, format_type(t.typbasetype, t.typtypmod), t.typnotnull, t.typdefault,
  (SELECT collname FROM pg_collation WHERE oid = t.typcollation),
  (SELECT array_agg(attname || ' ' || coalesce(c.collname, '-') ORDER BY attnum)::text
     FROM pg_attribute LEFT JOIN pg_collation c ON c.oid = attcollation
     WHERE attrelid = t.typrelid AND attnum > 0 AND NOT attisdropped),
  (SELECT array_agg(enumlabel ORDER BY enumsortorder)::text FROM pg_enum WHERE enumtypid = t.oid),
  (SELECT array_agg(conname || ' ' || pg_get_constraintdef(oid) ORDER BY conname)::text
     FROM pg_constraint WHERE contypid = t.oid),
  (SELECT array_agg(attname || ' ' || format_type(atttypid, atttypmod) ORDER BY attnum)::text
     FROM pg_attribute WHERE attrelid = t.typrelid AND attnum > 0 AND NOT attisdropped)
FROM pg_type t WHERE t.oid = to_regtype(%(name)s)
"""
_NAMES = ["mood", "posint", "glad", "code", '"Pair"', "nest"]


def describe(engine: sa.Engine, names: list[str]) -> dict[str, tuple[object, ...] | None]:
    """Each type as the catalog describes it (None: no such type)."""
    with engine.connect() as conn:
        out: dict[str, tuple[object, ...] | None] = {}
        for n in names:
            row = conn.exec_driver_sql(_DESCRIBE, {"name": n}).first()
            out[n] = None if row is None else tuple(row)
        return out


def column_types(engine: sa.Engine, table: str) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [
            tuple(r)  # type: ignore[misc]
            for r in conn.exec_driver_sql(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = to_regclass(%(t)s) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                {"t": table},
            )
        ]


def _typed_source(engine: sa.Engine) -> None:
    # an enum label added in a transaction cannot be used in it
    for batch in (_TYPES[:2], [*_TYPES[2:], _TABLE, *_ROWS]):
        with engine.begin() as conn:
            for sql in batch:
                conn.exec_driver_sql(sql)


def test_restore_into_creates_enum_domain_and_composite_types(
    make_db_url: MakeUrl, make_engine: MakeEngine, tmp_path
) -> None:
    src, dst = make_db_url("postgresql"), make_db_url("postgresql")
    source, target = make_engine(src), make_engine(dst)
    _typed_source(source)
    repo = Repo.init(tmp_path, src)
    c = repo.commit("types").commit_id
    repo.restore(c.hex(), into=dst)
    assert describe(target, _NAMES) == describe(source, _NAMES)
    assert None not in describe(target, _NAMES).values()
    assert column_types(target, "t") == column_types(source, "t")
    assert texts(target, "t") == texts(source, "t")
    assert texts(target, "plain") == texts(source, "plain")
    # the restored database holds the snapshot exactly: no difference, row or schema
    assert all(not list(t.rows()) for t in repo.diff(c.hex(), None, db_url=dst))
    # a second restore into a database holding the same definitions uses them as they are
    again = make_db_url("postgresql")
    _typed_source(make_engine(again))
    with make_engine(again).begin() as conn:
        conn.exec_driver_sql("DROP TABLE t, plain")
    repo.restore(c.hex(), into=again)
    assert texts(make_engine(again), "t") == texts(source, "t")
    repo.close()


def test_restore_into_refuses_a_type_defined_otherwise(make_db_url: MakeUrl, make_engine: MakeEngine, tmp_path) -> None:
    """A type of the same name with other labels (or another base, other attributes) is not
    the snapshot's: one line naming it, and nothing is created, not even the other types."""
    src, dst = make_db_url("postgresql"), make_db_url("postgresql")
    source, target = make_engine(src), make_engine(dst)
    _typed_source(source)
    repo = Repo.init(tmp_path, src)
    c = repo.commit("types").commit_id
    with target.begin() as conn:
        conn.exec_driver_sql("CREATE DOMAIN posint AS integer CHECK (VALUE >= 0)")
    with pytest.raises(DatabaseError) as info:
        repo.restore(c.hex(), into=dst)
    message = str(info.value)
    assert "\n" not in message and "posint" in message and "another definition" in message
    assert describe(target, ["mood", "glad", '"Pair"'])["mood"] is None
    with target.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM pg_class WHERE relname IN ('t', 'plain')").scalar() == 0
    repo.close()


def test_types_survive_export_import_restore_into(make_db_url: MakeUrl, make_engine: MakeEngine, tmp_path) -> None:
    """The definitions travel in an export's schema: import it into another store, restore it
    --into a fresh database, and the types, columns and values are the source's."""
    src, dst, other = make_db_url("postgresql"), make_db_url("postgresql"), make_db_url("postgresql")
    source, target = make_engine(src), make_engine(dst)
    _typed_source(source)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with Repo.init(tmp_path / "a", src) as repo:
        repo.commit("types")
        repo.export("HEAD", tmp_path / "out.json", fmt="json")
    with Repo.init(tmp_path / "b", other) as copy:
        got = copy.import_file(tmp_path / "out.json", branch="imported")
        copy.restore(got["commit"].hex(), into=dst)
    assert describe(target, _NAMES) == describe(source, _NAMES)
    assert column_types(target, "t") == column_types(source, "t")
    assert texts(target, "t") == texts(source, "t")


def test_schema_object_holds_pg_types_only_when_present() -> None:
    """Schemas without user-defined types keep the bytes (and ids) they had; those with them
    decode to equal definitions, in their order."""
    from snapgit.objects import decode_schema, encode_schema
    from snapgit.schema import Column, PgTypeDef, TableSchema

    plain = TableSchema("t", (Column("id", "integer", native="integer"),), ("id",))
    assert "pg_types" not in plain.to_obj()
    defs = (
        PgTypeDef("mood", "enum", labels=("sad", "ok")),
        PgTypeDef(
            "glad", "domain", base="mood", default="'ok'::mood", checks=(("c", "CHECK ((VALUE <> 'sad'::mood))"),)
        ),
        PgTypeDef('"Pair"', "composite", attributes=(("a", "integer"), ("m", "glad[]"))),
    )
    typed = TableSchema("t", plain.columns, ("id",), pg_types=defs)
    assert decode_schema(encode_schema(typed)) == typed
    assert decode_schema(encode_schema(plain)) == plain
    assert encode_schema(typed) != encode_schema(plain)
    assert encode_schema(plain)[0] == 0x86 and encode_schema(typed)[0] == 0x87  # map of 6, of 7 entries
    assert typed.portable() == plain.portable()


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_mixed_sign_intervals_survive_export_import(
    make_db_url: MakeUrl, make_engine: MakeEngine, tmp_path, fmt: str
) -> None:
    src, dst, other = make_db_url("postgresql"), make_db_url("postgresql"), make_db_url("postgresql")
    source, target = make_engine(src), make_engine(dst)
    _interval_table(source)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with Repo.init(tmp_path / "a", src) as repo:
        repo.commit("intervals")
        repo.export("HEAD", tmp_path / f"out.{fmt}", fmt=fmt)
    with Repo.init(tmp_path / "b", other) as copy:
        got = copy.import_file(tmp_path / f"out.{fmt}", branch="imported")
        copy.restore(got["commit"].hex(), into=dst)
    assert texts(target, "iv") == texts(source, "iv")
