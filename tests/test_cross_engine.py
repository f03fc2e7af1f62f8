"""``restore --into`` another engine: every portable type in all six directions, and the values
another engine cannot hold refused in one line, with nothing written (docs/types.md).

A table with a column of every portable type its engine has is filled with values every engine
can hold, committed, and restored into each other engine; what snapgit reads there must be what
it read from the source, converted as docs/types.md says for the types the target lacks. Then,
one value at a time, a value the target cannot hold: the real CLI must exit 1 with one line
naming the table, the column, the key and the value, and leave the target without tables.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from portablekit import as_stored, typed

KINDS = ("sqlite", "postgresql", "mariadb")
DIRECTIONS = [(s, t) for s in KINDS for t in KINDS if s != t]

# the columns of the table of every portable type, per engine: name -> native type
COMMON = {
    "s": {"sqlite": "SMALLINT", "postgresql": "smallint", "mariadb": "smallint"},
    "i": {"sqlite": "INTEGER", "postgresql": "integer", "mariadb": "int"},
    "b": {"sqlite": "BIGINT", "postgresql": "bigint", "mariadb": "bigint"},
    "flag": {"sqlite": "BOOLEAN", "postgresql": "boolean", "mariadb": "boolean"},
    "d": {"sqlite": "DOUBLE", "postgresql": "double precision", "mariadb": "double"},
    "n": {"sqlite": "NUMERIC(12,4)", "postgresql": "numeric(12,4)", "mariadb": "decimal(12,4)"},
    "t": {"sqlite": "TEXT", "postgresql": "text", "mariadb": "longtext"},
    "vc": {"sqlite": "VARCHAR(20)", "postgresql": "varchar(20)", "mariadb": "varchar(20)"},
    "c": {"sqlite": "CHAR(5)", "postgresql": "char(5)", "mariadb": "char(5)"},
    "by": {"sqlite": "BLOB", "postgresql": "bytea", "mariadb": "longblob"},
    "day": {"sqlite": "DATE", "postgresql": "date", "mariadb": "date"},
    "tm": {"sqlite": "TIME", "postgresql": "time", "mariadb": "time(6)"},
    "ts": {"sqlite": "DATETIME", "postgresql": "timestamp", "mariadb": "datetime(6)"},
    "tstz": {"sqlite": "TIMESTAMPTZ", "postgresql": "timestamptz", "mariadb": "timestamp(6) NULL"},
    "u": {"sqlite": "UUID", "postgresql": "uuid", "mariadb": "uuid"},
    "j": {"sqlite": "JSON", "postgresql": "jsonb", "mariadb": "json"},
}
ONLY = {  # portable types only some engines have
    "postgresql": {"r": "real", "tz": "timetz", "iv": "interval", "arr": "integer[]"},
    "mariadb": {"r": "float"},
    "sqlite": {},
}
UTC = dt.UTC


def rows(kind: str) -> list[dict[str, Any]]:
    """Values every engine holds exactly (docs/types.md)."""
    out = [
        {
            "id": 1,
            "s": -32768,
            "i": 2147483647,
            "b": -9223372036854775808,
            "flag": True,
            "d": 0.1,
            "n": Decimal("-99999999.9999"),
            "t": "Cr\u00e8me \U0001f36e \u65e5\u672c 'q' \"d\" \\ \n",
            "vc": "exactly twenty chars",
            "c": "abcde",
            "by": bytes(range(256)),
            "day": dt.date(1000, 1, 1),
            "tm": dt.time(23, 59, 59, 999999),
            "ts": dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
            "tstz": dt.datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=UTC),
            "u": uuid.UUID("a2345678-1234-5678-1234-56781234567f"),
            "j": {"a": [1, 2.5, None, "x"], "\u00fc": {"nested": True}},
        },
        {
            "id": 2,
            "s": 0,
            "i": -1,
            "b": 9223372036854775807,
            "flag": False,
            "d": 1e300,
            "n": Decimal("0.0001"),
            "t": "",
            "vc": "",
            "c": "a",
            "by": b"",
            "day": dt.date(2024, 2, 29),
            "tm": dt.time(0, 0),
            "ts": dt.datetime(1970, 1, 1),
            "tstz": dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
            "u": uuid.UUID("00000000-0000-0000-0000-00000000000a"),
            "j": [],
        },
        {"id": 3, **{c: None for c in COMMON}},
    ]
    extra = {
        "postgresql": [
            {
                "r": 0.5,
                "tz": dt.time(10, 30, 0, 5, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
                "iv": dt.timedelta(days=-3, seconds=5, microseconds=7),
                "arr": [1, None, -3],
            },
            {"r": -1.25, "tz": dt.time(0, 0, tzinfo=UTC), "iv": dt.timedelta(0), "arr": []},
        ],
        "mariadb": [{"r": 0.5}, {"r": -1.25}],
        "sqlite": [{}, {}],
    }[kind]
    for row, more in zip(out, extra, strict=False):
        row.update(more)
    for col in ONLY[kind]:
        out[2][col] = None
    return out


def create(engine: sa.Engine, kind: str, columns: dict[str, str], table: str = "t") -> None:
    q = (lambda n: f"`{n}`") if kind == "mariadb" else (lambda n: f'"{n}"')
    body = ", ".join([f"{q('id')} integer primary key", *(f"{q(c)} {t}" for c, t in columns.items())])
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {q(table)} ({body})")


def fill(engine: sa.Engine, kind: str, values: list[dict[str, Any]], table: str = "t") -> None:
    """Insert ``values`` as an application would, with the driver's own parameters."""
    q = (lambda n: f"`{n}`") if kind == "mariadb" else (lambda n: f'"{n}"')
    for row in values:
        out = {}
        for k, v in row.items():
            if v is None:
                pass
            elif k == "j":
                v = json.dumps(v)
            elif kind == "sqlite" and isinstance(v, (uuid.UUID, Decimal, dt.time, dt.datetime)):
                v = v.hex if isinstance(v, uuid.UUID) else v.isoformat(" ") if isinstance(v, dt.datetime) else str(v)
            elif kind == "mariadb" and isinstance(v, dt.datetime) and v.tzinfo is not None:
                v = v.replace(tzinfo=None)  # the session is in UTC
            out[k] = v
        names = list(out)
        marks = [f":{n}" if kind == "sqlite" else f"%({n})s" for n in names]
        sql = f"INSERT INTO {q(table)} ({', '.join(q(n) for n in names)}) VALUES ({', '.join(marks)})"
        with engine.begin() as conn:
            conn.exec_driver_sql(sql, out)


def snap(cwd: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "snapgit.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == code, f"snap {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def tables_in(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        return sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


@pytest.mark.parametrize(("source", "target"), DIRECTIONS, ids=[f"{s}-{t}" for s, t in DIRECTIONS])
def test_every_portable_type_restores_into_another_engine(
    source: str, target: str, make_db_url: Callable[[str], str], make_engine: Callable[[str], sa.Engine], tmp_path: Path
) -> None:
    url = make_db_url(source)
    engine = make_engine(url)
    create(engine, source, {c: t[source] for c, t in COMMON.items()} | ONLY[source])
    fill(engine, source, rows(source))
    snap(tmp_path, "init", "--db", url)
    snap(tmp_path, "commit", "-m", "every type")
    want_types, want = typed(url)["t"]
    assert len(want) == 3
    into = make_db_url(target)
    snap(tmp_path, "restore", "HEAD", "--into", into)
    got_types, got = typed(into)["t"]
    assert set(got_types) == set(want_types)
    for col, portable in want_types.items():
        kept = [as_stored(r[col], portable, got_types[col]) for r in want]
        assert [r[col] for r in got] == kept, (col, portable, got_types[col])
    # and back: the target's commit restores into the source's engine with the same values
    back_store = tmp_path / "back"
    back_store.mkdir()
    snap(back_store, "init", "--db", into)
    snap(back_store, "commit", "-m", "restored")
    again = make_db_url(source)
    snap(back_store, "restore", "HEAD", "--into", again)
    back_types, back = typed(again)["t"]
    for col, portable in got_types.items():
        kept = [as_stored(r[col], portable, back_types[col]) for r in got]
        assert [r[col] for r in back] == kept, ("back", col, portable, back_types[col])


# (source engine, column type there, a value that fits, the value that does not, target engine,
#  words the refusal must hold): each value as a SQL literal of the source engine
REFUSED = [
    ("postgresql", "timestamptz", "'2020-01-01 10:00:00+00'", "'0001-01-01 00:00:00+00 BC'", "mariadb", "BC"),
    ("postgresql", "timestamptz", "'2020-01-01 10:00:00+00'", "'2100-01-01 00:00:00+00'", "mariadb", "2038"),
    ("postgresql", "date", "'2020-01-01'", "'0044-03-15 BC'", "mariadb", "kept as text"),
    ("postgresql", "interval", "'1 day'", "'1 mon'", "mariadb", "microseconds"),
    ("postgresql", "interval", "'1 day'", "'1 year 2 mons'", "sqlite", "microseconds"),
    ("sqlite", "VARCHAR(5)", "'abcde'", "'abcdef'", "postgresql", "5 characters"),
    ("sqlite", "VARCHAR(5)", "'abcde'", "'abcdef'", "mariadb", "5 characters"),
    ("sqlite", "TEXT", "'fine'", "'a' || char(0) || 'b'", "postgresql", "NUL"),
    ("sqlite", "INTEGER", "7", "'seven'", "postgresql", "integers"),
    ("postgresql", "numeric", "1.5", "1" + "0" * 199, "mariadb", "digits before the point"),
    ("postgresql", "numeric", "1.5", "0." + "0" * 40 + "1", "mariadb", "rounded"),
    ("postgresql", "numeric", "1.5", "1" + "2" * 40, "sqlite", "significant digits"),
    ("postgresql", "double precision", "1.5", "'NaN'", "mariadb", "NaN"),
    ("postgresql", "double precision", "1.5", "'NaN'", "sqlite", "NaN"),
    ("postgresql", "double precision", "1.5", "'-Infinity'", "mariadb", "infinities"),
    ("mariadb", "bigint unsigned", "1", "18446744073709551615", "postgresql", "9223372036854775807"),
    ("mariadb", "bigint unsigned", "1", "18446744073709551615", "sqlite", "9223372036854775807"),
    ("sqlite", "JSON", "'[1]'", "'{not json'", "postgresql", "JSON"),
]


def refusal_id(case: tuple[Any, ...]) -> str:
    source, col, _ok, bad, target, _words = case
    return f"{source}-{col.split('(')[0].replace(' ', '_')}-{bad[:12].strip(chr(39))}-{target}"


@pytest.mark.parametrize("case", REFUSED, ids=[refusal_id(c) for c in REFUSED])
def test_a_value_the_target_cannot_hold_is_refused_with_nothing_written(
    case: tuple[Any, ...], make_db_url: Callable[[str], str], make_engine: Callable[[str], sa.Engine], tmp_path: Path
) -> None:
    source, col, ok, bad, target, words = case
    url = make_db_url(source)
    engine = make_engine(url)
    create(engine, source, {"v": col}, table="things")
    with engine.begin() as conn:
        conn.exec_driver_sql(f"INSERT INTO things VALUES (1, {ok}), (2, {bad})")
    snap(tmp_path, "init", "--db", url)
    snap(tmp_path, "commit", "-m", "one value too many")
    into = make_db_url(target)
    proc = snap(tmp_path, "restore", "HEAD", "--into", into, code=1)
    error, hint = proc.stderr.splitlines()
    assert error.startswith("error: table things, column v, key (id=2): the value "), proc.stderr
    assert "does not fit" in error and (words is None or words in error), error
    assert hint.startswith("hint: nothing was written")
    assert tables_in(into) == []


def test_jsonb_cannot_hold_nul_in_postgresql(
    make_db_url: Callable[[str], str], make_engine: Callable[[str], sa.Engine], tmp_path: Path
) -> None:
    url = make_db_url("sqlite")
    engine = make_engine(url)
    create(engine, "sqlite", {"v": "JSON"}, table="things")
    with engine.begin() as conn:
        conn.exec_driver_sql("""INSERT INTO things VALUES (1, '{"a": 1}'), (2, '{"a": "\\u0000"}')""")
    snap(tmp_path, "init", "--db", url)
    snap(tmp_path, "commit", "-m", "nul in json")
    into = make_db_url("postgresql")
    proc = snap(tmp_path, "restore", "HEAD", "--into", into, code=1)
    assert proc.stderr.startswith("error: table things, column v, key (id=2): "), proc.stderr
    assert "jsonb cannot hold \\u0000" in proc.stderr
    assert tables_in(into) == []


def test_a_four_byte_character_into_a_utf8mb3_column_is_refused_in_place(
    make_db_url: Callable[[str], str], make_engine: Callable[[str], sa.Engine], tmp_path: Path
) -> None:
    """A commit restored into a live MariaDB table whose column has become utf8mb3 since."""
    url = make_db_url("mariadb")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id int primary key, v varchar(20) CHARACTER SET utf8mb4)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1, 'plain'), (2, 'flan \U0001f36e')")
    snap(tmp_path, "init", "--db", url)
    snap(tmp_path, "commit", "-m", "with an emoji")
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM t WHERE id = 2")
        conn.exec_driver_sql("ALTER TABLE t MODIFY v varchar(20) CHARACTER SET utf8mb3")
        conn.exec_driver_sql("INSERT INTO t VALUES (3, 'added')")
    proc = snap(tmp_path, "restore", "HEAD", code=1)
    error = proc.stderr.splitlines()[0]
    assert error.startswith("error: table t, column v, key (id=2): the value 'flan \U0001f36e' does not fit"), error
    assert "utf8mb3 has no 4-byte characters" in error
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT id, v FROM t ORDER BY id").all() == [(1, "plain"), (3, "added")]


def test_a_refused_restore_into_a_new_sqlite_file_leaves_no_file(
    make_db_url: Callable[[str], str], make_engine: Callable[[str], sa.Engine], tmp_path: Path
) -> None:
    url = make_db_url("postgresql")
    engine = make_engine(url)
    create(engine, "postgresql", {"v": "double precision"}, table="things")
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO things VALUES (1, 1.5), (2, 'NaN')")
    snap(tmp_path, "init", "--db", url)
    snap(tmp_path, "commit", "-m", "a NaN")
    proc = snap(tmp_path, "restore", "HEAD", "--into", "new.sqlite", code=1)
    assert proc.stderr.startswith(
        "error: table things, column v, key (id=2): the value nan does not fit: SQLite has no NaN"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [".snapstore"]
