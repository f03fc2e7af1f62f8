"""Native -> portable type mapping, value converters and batch conversion (no database needed)."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import pytest

from snapgit.db import values as V
from snapgit.db.rows import batch_converter
from snapgit.db.types import PgType, column_read, mysql_portable, postgresql_portable, sqlite_portable
from snapgit.encoding import Json

D = decimal.Decimal
UTC = dt.UTC


@pytest.mark.parametrize(
    ("declared", "portable"),
    [
        ("INTEGER", "integer"),
        ("int", "integer"),
        ("BIGINT", "bigint"),
        ("UNSIGNED BIG INT", "bigint"),
        ("SMALLINT", "smallint"),
        ("TINYINT", "smallint"),
        ("BOOLEAN", "boolean"),
        ("REAL", "double"),
        ("FLOAT", "double"),
        ("DOUBLE PRECISION", "double"),
        ("NUMERIC", "numeric"),
        ("NUMERIC(10, 2)", "numeric(10,2)"),
        ("DECIMAL(7)", "numeric(7,0)"),
        ("TEXT", "text"),
        ("VARCHAR(20)", "varchar(20)"),
        ("NVARCHAR(5)", "varchar(5)"),
        ("CHARACTER VARYING(9)", "varchar(9)"),
        ("CHAR(32)", "char(32)"),
        ("VARCHAR", "text"),
        ("BLOB", "bytes"),
        ("DATE", "date"),
        ("TIME", "time"),
        ("DATETIME", "timestamp"),
        ("timestamp", "timestamp"),
        ("TIMESTAMP WITH TIME ZONE", "timestamptz"),
        ("TIMESTAMPTZ", "timestamptz"),
        ("JSON", "json"),
        ("UUID", "uuid"),
        ("", "text"),
        # SQLite's affinity rules for names it does not know
        ("MEDIUM INTEGER THING", "integer"),
        ("LONG CHARS", "text"),
        ("MY BLOB", "bytes"),
        ("FLOATING", "double"),
        ("MONEY", "numeric"),
    ],
)
def test_sqlite_portable(declared: str, portable: str) -> None:
    assert sqlite_portable(declared) == portable


@pytest.mark.parametrize(
    ("t", "portable"),
    [
        (PgType("int4", "b"), "integer"),
        (PgType("int8", "b"), "bigint"),
        (PgType("numeric", "b", (10 << 16 | 2) + 4), "numeric(10,2)"),
        (PgType("numeric", "b"), "numeric"),
        (PgType("varchar", "b", 24), "varchar(20)"),
        (PgType("varchar", "b"), "text"),
        (PgType("bpchar", "b", 9), "char(5)"),
        (PgType("float4", "b"), "real"),
        (PgType("jsonb", "b"), "json"),
        (PgType("timestamptz", "b"), "timestamptz"),
        (PgType("mood", "e"), "text"),
        (PgType("inet", "b"), "text"),
        (PgType("_int4", "b", -1, PgType("int4", "b")), "array<integer>"),
        # every other type is read as its text (and restored with its native type)
        (PgType("point", "b"), "text"),
        (PgType("int4range", "r"), "text"),
        (PgType("_point", "b", -1, PgType("point", "b")), "array<text>"),
        (PgType("addr", "c"), "text"),
        (PgType("hstore", "b"), "text"),
    ],
)
def test_postgresql_portable(t: PgType, portable: str | None) -> None:
    assert postgresql_portable(t) == portable


@pytest.mark.parametrize(
    ("data_type", "column_type", "is_json", "portable"),
    [
        ("tinyint", "tinyint(1)", False, "boolean"),
        ("tinyint", "tinyint(4)", False, "smallint"),
        ("tinyint", "tinyint(3) unsigned", False, "smallint"),
        ("smallint", "smallint(5) unsigned", False, "integer"),
        ("int", "int(11)", False, "integer"),
        ("int", "int(10) unsigned", False, "bigint"),
        ("bigint", "bigint(20) unsigned", False, "bigint"),
        ("bit", "bit(1)", False, "boolean"),
        ("bit", "bit(12)", False, "bigint"),
        ("float", "float", False, "real"),
        ("double", "double", False, "double"),
        ("decimal", "decimal(10,2)", False, "numeric(10,2)"),
        ("varchar", "varchar(20)", False, "varchar(20)"),
        ("char", "char(3)", False, "char(3)"),
        ("longtext", "longtext", True, "json"),
        ("longtext", "longtext", False, "text"),
        ("enum", "enum('a','b')", False, "text"),
        ("datetime", "datetime(6)", False, "timestamp"),
        ("timestamp", "timestamp(6)", False, "timestamptz"),
        ("year", "year(4)", False, "smallint"),
        ("uuid", "uuid", False, "uuid"),
        ("point", "point", False, "bytes"),
        ("geometry", "geometry", False, "bytes"),
        ("vector", "vector(3)", False, None),
    ],
)
def test_mysql_portable(data_type: str, column_type: str, is_json: bool, portable: str | None) -> None:
    assert mysql_portable(data_type, column_type, is_json) == portable


def test_int_to_bool_keeps_what_is_not_0_or_1() -> None:
    assert [V.int_to_bool(v) for v in (0, 1, 2, -1, None, 1.0, "1")] == [False, True, 2, -1, None, 1.0, "1"]
    assert type(V.int_to_bool(1.0)) is float


def test_to_decimal_keeps_the_scale_when_exact() -> None:
    conv = V.to_decimal(2)
    assert str(conv(1)) == "1.00"
    assert str(conv(1.5)) == "1.50"
    assert str(conv(0.1)) == "0.10"
    assert str(conv(1.234)) == "1.234"  # not exact at scale 2: the digits are kept
    assert str(conv("12345678901234567890.5")) == "12345678901234567890.50"
    assert conv("1e5") == "1e5" and conv("abc") == "abc" and conv(b"x") == b"x"
    assert conv(None) is None
    assert str(conv(-0.0)) == "0.00"  # no negative zero in PostgreSQL or MariaDB numerics
    unscaled = V.to_decimal(None)
    assert str(unscaled(5)) == "5"
    assert str(unscaled(1e16)) == "10000000000000000"  # as PostgreSQL prints it
    assert str(unscaled(2.5)) == "2.5"


def test_text_to_date_time_datetime() -> None:
    assert V.text_to_date("2020-01-02") == dt.date(2020, 1, 2)
    assert V.text_to_date("2020-W01-1") == "2020-W01-1"  # ISO week dates stay text
    assert V.text_to_date("20200102") == "20200102"
    assert V.text_to_time("01:02:03.000004") == dt.time(1, 2, 3, 4)
    assert V.text_to_time("01:02:03+02:00") == "01:02:03+02:00"
    assert V.text_to_timetz("01:02:03+02:00") == dt.time(1, 2, 3, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert V.text_to_datetime("2020-01-02 03:04:05.123456") == dt.datetime(2020, 1, 2, 3, 4, 5, 123456)
    assert V.text_to_datetime("2020-01-02 03:04:05") == dt.datetime(2020, 1, 2, 3, 4, 5)
    assert V.text_to_datetime("2020-01-02T03:04") == dt.datetime(2020, 1, 2, 3, 4)
    for kept in ("2020-01-02", "2020-01-02 03:04:05+00:00", "yesterday", 1577934245, None):
        assert V.text_to_datetime(kept) == kept
    aware = V.text_to_datetime_utc("2020-01-02 03:04:05+02:00")
    assert aware == dt.datetime(2020, 1, 2, 1, 4, 5, tzinfo=UTC) and aware.tzinfo is UTC
    assert V.text_to_datetime_utc("2020-01-02 03:04:05") == "2020-01-02 03:04:05"


def test_json_and_uuid() -> None:
    assert V.to_json('{"b": 1, "a": [true, null]}') == Json({"a": [True, None], "b": 1})
    assert V.to_json("null") == Json(None)
    assert V.to_json(5) == Json(5) and V.to_json(2.5) == Json(2.5)
    assert V.to_json("not json") == "not json"
    assert V.text_to_json("5") == Json(5) and V.text_to_json(None) is None
    u = uuid.UUID("12345678-abcd-5678-1234-567812345678")
    assert V.to_uuid(u.hex) == u and V.to_uuid(str(u)) == u and V.to_uuid(u.bytes) == u
    assert V.to_uuid(u.hex.upper()) == u.hex.upper()  # not the canonical spelling: kept as text
    assert V.to_uuid("xyz") == "xyz"


def test_mysql_converters() -> None:
    assert V.duration_to_time(dt.timedelta(hours=1, microseconds=5)) == dt.time(1, 0, 0, 5)
    assert V.duration_to_time(dt.timedelta(hours=30)) == dt.timedelta(hours=30)
    assert V.duration_to_time(dt.timedelta(hours=-1)) == dt.timedelta(hours=-1)
    assert V.attach_utc(dt.datetime(2020, 1, 1)) == dt.datetime(2020, 1, 1, tzinfo=UTC)
    assert V.attach_utc("0000-00-00 00:00:00") == "0000-00-00 00:00:00"
    assert V.bits_to_bool(b"\x01") is True and V.bits_to_bool(b"\x00") is False
    assert V.array_of(V.text_to_json)([["1", None], "{}"]) == [[Json(1), None], Json({})]


def test_column_read_orders_text_by_code_point() -> None:
    assert column_read("postgresql", "varchar(5)", "character varying(5)").order == '{c} COLLATE "C"'
    assert column_read("postgresql", "text", "mood").order == '{c}::text COLLATE "C"'
    assert column_read("postgresql", "char(3)", "character(3)").select == "{c}::text"
    assert column_read("sqlite", "text", "TEXT").order == "{c} COLLATE BINARY"
    utf8 = "varchar(5) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
    assert column_read("mysql", "varchar(5)", utf8).order == "CAST({c} AS BINARY)"
    latin = "varchar(5) CHARACTER SET latin1 COLLATE latin1_swedish_ci"
    assert column_read("mysql", "varchar(5)", latin).order == "CAST(CONVERT({c} USING utf8mb4) AS BINARY)"
    nopad = "varchar(5) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin"
    assert column_read("mysql", "varchar(5)", nopad).order == "{c}"
    assert column_read("mysql", "uuid", "uuid").order == "CAST({c} AS BINARY)"
    assert column_read("mysql", "integer", "int(11)").convert is None


def test_batch_converter_touches_only_converted_columns() -> None:
    assert batch_converter([None, None]) is None
    seen = []

    def conv(v: object) -> object:
        seen.append(v)
        return ("c", v)

    f = batch_converter([None, conv, None])
    assert f is not None
    assert f([(1, 2, 3), (4, 5, 6)]) == [(1, ("c", 2), 3), (4, ("c", 5), 6)]
    assert seen == [2, 5]
    single = batch_converter([conv])
    assert single is not None and single([(1,)]) == [(("c", 1),)]
