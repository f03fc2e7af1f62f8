"""Exact restores on MariaDB, and foreign-key column types across engines.

A ``restore --into`` a new MariaDB database from a MariaDB snapshot must give back every column
with its own type (``information_schema.COLUMNS``: COLUMN_TYPE, CHARACTER_SET_NAME,
COLLATION_NAME, IS_NULLABLE) and every value with its own bytes (``HEX()``), as the database
itself reports them, not as snapgit reads them. And a foreign-key column is created with the
type of the key it refers to, so the constraint is accepted whatever the source database was
(Django's SQLite schemas refer to an ``integer`` primary key from a ``bigint`` column).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from snapgit import Repo

# --- helpers: the database's own view ----------------------------------------------------------


def columns_of(engine: sa.Engine, table: str) -> list[tuple[Any, ...]]:
    """Each column as information_schema describes it, in column order."""
    with engine.connect() as conn:
        return conn.exec_driver_sql(
            "SELECT COLUMN_NAME, COLUMN_TYPE, CHARACTER_SET_NAME, COLLATION_NAME, IS_NULLABLE "
            "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s "
            "ORDER BY ORDINAL_POSITION",
            (table,),
        ).all()


def table_collation(engine: sa.Engine, table: str) -> str:
    with engine.connect() as conn:
        return conn.exec_driver_sql(
            "SELECT TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            (table,),
        ).scalar_one()


def hex_rows(engine: sa.Engine, table: str, key: str = "id") -> list[tuple[Any, ...]]:
    """Every value as the server stores it, by key: each column as HEX() (its bytes; of a number,
    its integer part) and as CAST(... AS CHAR) (a number's digits), with its name so that a
    difference says where it is. NULL is None."""
    names = [c[0] for c in columns_of(engine, table)]
    cols = ", ".join(f"HEX(`{n}`), CAST(`{n}` AS CHAR)" for n in names)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(f"SELECT {cols} FROM `{table}` ORDER BY `{key}`").all()
    return [tuple((n, r[2 * i], r[2 * i + 1]) for i, n in enumerate(names)) for r in rows]


def restore_copy(tmp_path: Path, source: str, target: str, name: str = "store") -> None:
    """Commit ``source`` and restore that commit into ``target``."""
    (tmp_path / name).mkdir()
    with Repo.init(tmp_path / name, db_url=source) as repo:
        cid = repo.commit("snapshot").commit_id
        assert cid is not None
        repo.restore(cid.hex(), into=target)


# --- 1. every MariaDB type comes back as it was ------------------------------------------------

MANY_TYPES = """
CREATE TABLE many (
  id int(11) NOT NULL AUTO_INCREMENT,
  t_tiny tinyint(4) DEFAULT NULL,
  t_tiny_u tinyint(3) unsigned DEFAULT NULL,
  t_bool tinyint(1) DEFAULT NULL,
  t_small_u smallint(5) unsigned DEFAULT NULL,
  t_medium mediumint(9) DEFAULT NULL,
  t_medium_u mediumint(8) unsigned DEFAULT NULL,
  t_int_u int(10) unsigned DEFAULT NULL,
  t_big bigint(20) DEFAULT NULL,
  t_big_u bigint(20) unsigned DEFAULT NULL,
  t_bit1 bit(1) DEFAULT NULL,
  t_bit8 bit(8) DEFAULT NULL,
  t_bit64 bit(64) DEFAULT NULL,
  t_float float DEFAULT NULL,
  t_double double DEFAULT NULL,
  t_dec decimal(12,4) DEFAULT NULL,
  t_year year(4) DEFAULT NULL,
  t_date date DEFAULT NULL,
  t_dt datetime DEFAULT NULL,
  t_dt3 datetime(3) DEFAULT NULL,
  t_ts timestamp NULL DEFAULT NULL,
  t_time time DEFAULT NULL,
  t_char char(5) DEFAULT NULL,
  t_varchar varchar(20) CHARACTER SET latin1 COLLATE latin1_swedish_ci DEFAULT NULL,
  t_ci varchar(30) COLLATE utf8mb4_unicode_ci DEFAULT NULL,
  t_tinytext tinytext DEFAULT NULL,
  t_text text DEFAULT NULL,
  t_mediumtext mediumtext DEFAULT NULL,
  t_binary binary(4) DEFAULT NULL,
  t_varbinary varbinary(10) DEFAULT NULL,
  t_blob blob DEFAULT NULL,
  t_enum enum('small','medium','large') DEFAULT NULL,
  t_set set('a','b','c') DEFAULT NULL,
  t_inet4 inet4 DEFAULT NULL,
  t_inet6 inet6 DEFAULT NULL,
  t_uuid uuid DEFAULT NULL,
  t_json longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL CHECK (json_valid(t_json)),
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci
"""

MANY_ROWS = [
    "INSERT INTO many (id) VALUES (1)",  # every other column NULL
    "INSERT INTO many VALUES (2, -128, 255, 1, 65535, -8388608, 16777215, 4294967295, "
    "-9223372036854775808, 18446744073709551615, b'1', b'11111111', b'1111111111111111111111111111111111111111111111111111111111111111', "
    "1.5, 0.1, 12345678.1234, 0, '1000-01-01', '2024-02-29 23:59:59', '2024-02-29 23:59:59.123', "
    "'2038-01-19 03:14:07', '-838:59:59', 'ab', 'caf\xe9', 'MiXeD', 'tiny', 'text', 'medium', "
    "x'0102', x'00ff', x'deadbeef', 'large', 'a,c', '255.255.255.255', '::1', "
    "'123e4567-e89b-12d3-a456-426614174000', '{\"a\":[1,2.5]}')",
    "INSERT INTO many VALUES (3, 127, 0, 0, 0, 8388607, 0, 0, 9223372036854775807, 9223372036854775808, "
    "b'0', b'00000001', b'1000000000000000000000000000000000000000000000000000000000000000', "
    "-0.1, -1e308, -99999999.9999, 2155, '9999-12-31', '1000-01-01 00:00:00', '9999-12-31 23:59:59.999', "
    "'1970-01-01 00:00:01', '838:59:59', '', '', '', '', '', '', x'', x'', x'', 'small', '', "
    "'0.0.0.0', 'ffff::ffff', '00000000-0000-0000-0000-000000000000', '[]')",
    "INSERT INTO many (id, t_year, t_tiny) VALUES (4, 1901, 5)",
]


@pytest.fixture
def mariadb_pair(make_db_url: Callable[[str], str], make_engine: Callable[[str], sa.Engine]):
    source, target = make_db_url("mariadb"), make_db_url("mariadb")
    return source, make_engine(source), target, make_engine(target)


def test_restore_into_mariadb_keeps_every_column_type_and_value(tmp_path: Path, mariadb_pair) -> None:
    source, src, target, dst = mariadb_pair
    with src.begin() as conn:
        conn.exec_driver_sql(MANY_TYPES)
        for stmt in MANY_ROWS:
            conn.exec_driver_sql(stmt.replace("%", "%%"))
    restore_copy(tmp_path, source, target)
    assert columns_of(dst, "many") == columns_of(src, "many")
    assert hex_rows(dst, "many") == hex_rows(src, "many")
    # the table's own default, which later columns of the application get
    assert table_collation(dst, "many") == table_collation(src, "many")


def test_restore_into_mariadb_keeps_keys_on_text_and_blob_columns(tmp_path: Path, mariadb_pair) -> None:
    """Text and blob columns in keys keep their type: an index on them gets a prefix, as the
    source's must have had."""
    source, src, target, dst = mariadb_pair
    with src.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE doc (name varchar(100) COLLATE utf8mb4_unicode_ci NOT NULL, body text, "
            "data blob, code char(3) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, "
            "PRIMARY KEY (name, code), KEY ix_body (body(20)), KEY ix_data (data(8))) "
            "DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
        )
        conn.exec_driver_sql("INSERT INTO doc VALUES ('Ä', 'x', x'00', 'abc'), ('b', NULL, NULL, 'ABC')")
    restore_copy(tmp_path, source, target)
    assert columns_of(dst, "doc") == columns_of(src, "doc")
    assert hex_rows(dst, "doc", "code") == hex_rows(src, "doc", "code")
    assert table_collation(dst, "doc") == "utf8mb4_unicode_ci"


def test_restore_into_mariadb_keeps_the_spelling_of_json(tmp_path: Path, mariadb_pair) -> None:
    source, src, target, dst = mariadb_pair
    with src.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE j (id int PRIMARY KEY, doc json)")
        conn.exec_driver_sql(
            """INSERT INTO j VALUES (1, '{"b": 1, "a": [2.50]}'), (2, '{"a":1}'), (3, ' [1, 1e2] '), """
            """(4, '{"a": 1, "a": 2}')"""
        )
    restore_copy(tmp_path, source, target)
    assert hex_rows(dst, "j") == hex_rows(src, "j")


# --- 2. a foreign-key column gets the type of the key it refers to -----------------------------

DJANGO_SHAPE = [
    # Django on SQLite: AutoField "integer" keys, and a BigAutoField model referring to one
    'CREATE TABLE "auth_user" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "username" varchar(150) NOT NULL)',
    'CREATE TABLE "blog_post" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "title" text NOT NULL, '
    '"author_id" bigint NOT NULL REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED)',
    'CREATE TABLE "blog_comment" ("id" bigint NOT NULL PRIMARY KEY, '
    '"post_id" bigint NULL REFERENCES "blog_post" ("id"), "reply_to_id" integer NULL REFERENCES "blog_comment" ("id"))',
    "INSERT INTO auth_user VALUES (1, 'ann'), (2, 'bob')",
    "INSERT INTO blog_post VALUES (1, 'hello', 2), (2, 'again', 1)",
    "INSERT INTO blog_comment VALUES (10, 1, NULL), (11, 1, 10), (12, NULL, 11)",
]


def column_types(engine: sa.Engine, table: str) -> dict[str, str]:
    """{column: type} as the target database names it."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            rows = conn.exec_driver_sql(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a "
                "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped",
                (table,),
            ).all()
        else:
            rows = [(c[0], c[1]) for c in columns_of(engine, table)]
    return dict(rows)


@pytest.mark.parametrize("kind", ["mariadb", "postgresql"])
def test_restore_into_gives_foreign_key_columns_the_type_of_their_key(
    tmp_path: Path, kind: str, make_db_url: Callable[[str], str], make_engine: Callable[[str], sa.Engine]
) -> None:
    source, target = make_db_url("sqlite"), make_db_url(kind)
    src = make_engine(source)
    with src.begin() as conn:
        for stmt in DJANGO_SHAPE:
            conn.exec_driver_sql(stmt)
    restore_copy(tmp_path, source, target)
    dst = make_engine(target)
    user, post, comment = (column_types(dst, t) for t in ("auth_user", "blog_post", "blog_comment"))
    assert post["author_id"] == user["id"]
    assert comment["post_id"] == post["id"]
    assert comment["reply_to_id"] == comment["id"]  # a self-reference, bigint this time
    assert post["title"] in ("longtext", "text")  # columns in no foreign key keep their mapping
    with dst.connect() as conn:
        got = conn.exec_driver_sql("SELECT id, post_id, reply_to_id FROM blog_comment ORDER BY id").all()
    assert [tuple(r) for r in got] == [(10, 1, None), (11, 1, 10), (12, None, 11)]
    # the constraints exist: a dangling reference is refused
    with pytest.raises(sa.exc.IntegrityError), dst.begin() as conn:
        conn.exec_driver_sql("INSERT INTO blog_post (id, title, author_id) VALUES (3, 'x', 99)")


# --- 3. property: any rows of many types come back byte for byte -------------------------------

# (column, type, strategy of the values inserted as parameters); every column may be NULL
_LATIN1 = st.characters(codec="latin-1", exclude_categories=("Cc",)).filter(lambda c: not 0x80 <= ord(c) <= 0x9F)
_UTF8 = st.characters(codec="utf-8", exclude_categories=("Cs",))


def _time_text(micros: int) -> str:
    sign, micros = ("-" if micros < 0 else ""), abs(micros)
    seconds, frac = divmod(micros, 1_000_000)
    return f"{sign}{seconds // 3600}:{seconds // 60 % 60:02}:{seconds % 60:02}.{frac:06}"


_MAX_TIME = (838 * 3600 + 59 * 60 + 59) * 1_000_000
PROPERTY_COLUMNS: list[tuple[str, str, st.SearchStrategy[Any]]] = [
    ("c_tiny", "tinyint", st.integers(-128, 127)),
    ("c_tiny_u", "tinyint unsigned", st.integers(0, 255)),
    ("c_bool", "tinyint(1)", st.integers(-128, 127)),
    ("c_small_u", "smallint unsigned", st.integers(0, 2**16 - 1)),
    ("c_medium", "mediumint", st.integers(-(2**23), 2**23 - 1)),
    ("c_medium_u", "mediumint unsigned", st.integers(0, 2**24 - 1)),
    ("c_int_u", "int unsigned", st.integers(0, 2**32 - 1)),
    ("c_big", "bigint", st.integers(-(2**63), 2**63 - 1)),
    ("c_big_u", "bigint unsigned", st.integers(0, 2**64 - 1)),
    ("c_bit1", "bit(1)", st.integers(0, 1)),
    ("c_bit8", "bit(8)", st.integers(0, 255)),
    ("c_bit64", "bit(64)", st.integers(0, 2**64 - 1)),
    ("c_float", "float", st.floats(width=32, allow_nan=False, allow_infinity=False)),
    ("c_double", "double", st.floats(allow_nan=False, allow_infinity=False)),
    ("c_dec", "decimal(12,4)", st.decimals(-(10**8) + 1, 10**8 - 1, places=4)),
    ("c_year", "year", st.sampled_from([0]) | st.integers(1901, 2155)),
    ("c_date", "date", st.dates(date(1000, 1, 1), date(9999, 12, 31))),
    (
        "c_dt",
        "datetime",
        st.datetimes(datetime(1000, 1, 1), datetime(9999, 12, 31)).map(lambda d: d.replace(microsecond=0)),
    ),
    ("c_dt6", "datetime(6)", st.datetimes(datetime(1000, 1, 1), datetime(9999, 12, 31))),
    (
        "c_ts3",
        "timestamp(3) NULL",
        st.datetimes(datetime(1970, 1, 2), datetime(2038, 1, 18)).map(
            lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
        ),
    ),
    ("c_time", "time", st.integers(-_MAX_TIME, _MAX_TIME).map(lambda us: _time_text(us // 1_000_000 * 1_000_000))),
    ("c_time6", "time(6)", st.integers(-_MAX_TIME, _MAX_TIME).map(_time_text)),
    ("c_char", "char(5) COLLATE utf8mb4_general_ci", st.text(_UTF8, max_size=5)),
    ("c_latin1", "varchar(20) CHARACTER SET latin1 COLLATE latin1_german2_ci", st.text(_LATIN1, max_size=20)),
    ("c_ascii", "varchar(8) CHARACTER SET ascii COLLATE ascii_bin", st.text(st.characters(codec="ascii"), max_size=8)),
    ("c_tinytext", "tinytext CHARACTER SET utf8mb4", st.text(_UTF8, max_size=40)),
    ("c_text", "text COLLATE utf8mb4_unicode_ci", st.text(_UTF8, max_size=200)),
    ("c_binary", "binary(4)", st.binary(max_size=4)),
    ("c_varbinary", "varbinary(10)", st.binary(max_size=10)),
    ("c_blob", "blob", st.binary(max_size=100)),
    ("c_enum", "enum('', 'x', 'Yes', 'a b')", st.sampled_from(["", "x", "Yes", "a b"])),
    ("c_set", "set('a', 'b', 'c d')", st.sets(st.sampled_from(["a", "b", "c d"])).map(",".join)),
    ("c_inet4", "inet4", st.ip_addresses(v=4).map(str)),
    ("c_inet6", "inet6", st.ip_addresses(v=6).map(str)),
    ("c_uuid", "uuid", st.uuids(version=4).map(str)),
]
_ROW = st.tuples(*(st.none() | strat for _n, _t, strat in PROPERTY_COLUMNS))


# each example makes two databases: few examples, and no shrinking (it would make hundreds)
@settings(
    max_examples=12, phases=[Phase.reuse, Phase.generate], suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(_ROW, max_size=6))
def test_restore_into_mariadb_keeps_any_rows_byte_for_byte(
    rows: list[tuple[Any, ...]], make_db_url: Callable[[str], str], make_engine: Callable[[str], sa.Engine]
) -> None:
    source, target = make_db_url("mariadb"), make_db_url("mariadb")
    src, dst = make_engine(source), make_engine(target)
    body = ", ".join(f"`{n}` {t}" for n, t, _s in PROPERTY_COLUMNS)
    names = ", ".join(f"`{n}`" for n, _t, _s in PROPERTY_COLUMNS)
    marks = ", ".join(["%s"] * len(PROPERTY_COLUMNS))
    with src.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE props (id int AUTO_INCREMENT PRIMARY KEY, {body}) DEFAULT CHARSET=latin1 COLLATE=latin1_bin"
        )
        if rows:
            conn.exec_driver_sql(f"INSERT INTO props ({names}) VALUES ({marks})", rows)
    with tempfile.TemporaryDirectory() as tmp:
        restore_copy(Path(tmp), source, target)
    assert columns_of(dst, "props") == columns_of(src, "props")
    assert hex_rows(dst, "props") == hex_rows(src, "props")
