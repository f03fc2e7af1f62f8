"""Export files read back with the standard library, against the database's own view of the same
values: an oracle that does not come from snapgit's encoders (snapgit/exchange/typedvalue.py).

Random rows of every portable type go into a real database and are committed and exported as
JSON and as CSV. The files are then read with ``json`` and ``csv`` only, each value taken by the
forms docs/format.md (section 19) documents, and compared with what the database itself says the
value is: PostgreSQL's text output of each column (``::text`` and a few functions of it), and
SQLite's ``typeof()`` and the value its own driver returns, for the values SQLite lets a column
hold whatever its declared type (written tagged).
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import json
import math
import sqlite3
import tempfile
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from snapgit.repo import Repo

_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
_offsets = st.integers(-14 * 3600, 14 * 3600).map(lambda s: dt.timezone(dt.timedelta(seconds=s)))
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False) | _text,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(_text, kids, max_size=3),
    max_leaves=6,
)

# PostgreSQL: column -> (its type, the oracle's kind, values it holds exactly, the SQL that
# shows a value as PostgreSQL itself writes it)
PG: dict[str, tuple[str, str, st.SearchStrategy, str]] = {
    "si": ("smallint", "int", st.integers(-(2**15), 2**15 - 1), "si::text"),
    "i": ("integer", "int", st.integers(-(2**31), 2**31 - 1), "i::text"),
    "b": ("bigint", "int", st.integers(-(2**63), 2**63 - 1), "b::text"),
    "flag": ("boolean", "bool", st.booleans(), "flag::text"),
    "r": ("real", "float", st.floats(width=32), "r::float8::text"),  # its exact value, widened
    "d": ("double precision", "float", st.floats(), "d::text"),
    "n": ("numeric", "decimal", st.decimals(-(10**20), 10**20, allow_nan=False), "n::text"),
    "n4": ("numeric(12,4)", "decimal", st.decimals(-(10**7), 10**7, places=4), "n4::text"),
    "t": ("text", "text", _text, "t"),
    "vc": ("varchar(20)", "text", _text, "vc"),
    "c": ("char(5)", "text", _text.map(lambda s: s[:5]), "c::text"),  # both drop the padding (docs/types.md)
    "by": ("bytea", "bytes", st.binary(max_size=16), "by::text"),
    "day": ("date", "date", st.dates(dt.date(1, 1, 1)), "day::text"),
    "tm": ("time", "time", st.times(), "tm::text"),
    "tz": ("timetz", "time", st.times(timezones=_offsets), "tz::text"),
    "ts": ("timestamp", "datetime", st.datetimes(), "ts::text"),
    "tstz": (
        "timestamptz",
        "datetime",
        st.datetimes(dt.datetime(2, 1, 1), dt.datetime(9998, 1, 1), timezones=_offsets),
        "tstz::text",
    ),
    "iv": (
        "interval",
        "micros",
        st.timedeltas(-dt.timedelta(days=10**6), dt.timedelta(days=10**6)),
        "(extract(epoch from iv) * 1000000)::text",
    ),
    "u": ("uuid", "uuid", st.uuids(), "u::text"),
    "j": ("jsonb", "json", _json, "j::text"),
    "ai": (
        "integer[]",
        "array",
        st.lists(st.none() | st.integers(-(2**31), 2**31 - 1), max_size=3),
        "array_to_json(ai)::text",
    ),
    "at": ("text[]", "array", st.lists(st.none() | _text, max_size=3), "array_to_json(at)::text"),
}

# the kinds whose compact form is a JSON string, so a CSV cell holds it as it is (format.md 19.3)
STRINGY = {"decimal", "text", "bytes", "date", "time", "datetime", "uuid", "json"}
FORMULA = tuple("=+-@\t\r'\\")


# --- the documented forms, read with the standard library -----------------------------------------


def from_form(kind: str, j: Any) -> Any:
    """A compact JSON form (format.md 19.1) as a comparable Python value."""
    if j is None:
        return None
    if type(j) is dict:  # only a value kept with its engine's spelling is tagged here (7.7)
        assert j["type"] == "spelled" and j["value"][0] == "postgresql", f"a {kind} value written tagged: {j!r}"
        value = j["value"][1]
        return from_form(kind, value["value"])
    if kind == "int" or kind == "micros":
        assert type(j) is int, j
        return j
    if kind == "bool":
        assert type(j) is bool, j
        return j
    if kind == "float":
        assert type(j) is float or j in ("NaN", "Infinity", "-Infinity"), j
        return repr(float(j))  # repr: -0.0 and NaN compare
    if kind == "decimal":
        assert type(j) is str, j
        return _decimal(j)
    if kind == "bytes":
        return base64.b64decode(j, validate=True)
    if kind == "date":
        return dt.date.fromisoformat(j)
    if kind in ("time", "datetime"):
        v = (dt.time if kind == "time" else dt.datetime).fromisoformat(j)
        return v, v.utcoffset()
    if kind == "uuid":
        return uuid.UUID(j)
    if kind == "json":
        return json.loads(j)
    if kind == "array":
        assert type(j) is list, j
        return j
    assert kind == "text" and type(j) is str, (kind, j)
    return j


def _decimal(text: str) -> tuple[Decimal, int]:
    """A decimal's value and its scale (``1.50`` keeps its two places)."""
    d = Decimal(text)
    return d, int(d.as_tuple().exponent)


def from_postgresql(kind: str, text: str | None) -> Any:
    """PostgreSQL's text of a value as the same comparable Python value."""
    if text is None:
        return None
    if kind == "decimal":
        return _decimal(text)
    if kind in ("int", "text"):
        return int(text) if kind == "int" else text
    if kind == "micros":
        return int(Decimal(text))
    if kind == "bool":
        return {"true": True, "false": False}[text]
    if kind == "float":
        return repr(float(text))
    if kind == "bytes":
        assert text.startswith("\\x"), text
        return bytes.fromhex(text[2:])
    if kind == "date":
        return dt.date.fromisoformat(text)
    if kind in ("time", "datetime"):
        v = (dt.time if kind == "time" else dt.datetime).fromisoformat(text)
        return v, v.utcoffset()
    if kind == "uuid":
        return uuid.UUID(text)
    assert kind in ("json", "array"), kind
    return json.loads(text)


def cell_form(kind: str, cell: str) -> Any:
    """A CSV cell (format.md 19.3) as the compact JSON form it holds."""
    if cell == "":
        return None
    if cell.startswith("\\spelled:"):
        return {"type": "spelled", "value": json.loads(cell.removeprefix("\\spelled:"))}
    assert not cell.startswith("\\"), f"a {kind} value written tagged: {cell!r}"
    if cell.startswith("'"):
        cell = cell[1:]
        assert cell == "" or cell.startswith(FORMULA), f"a needless formula escape: {cell!r}"
    else:
        assert cell and not cell.startswith(FORMULA), f"a cell a spreadsheet would run: {cell!r}"
    if kind in STRINGY or (kind == "float" and cell in ("NaN", "Infinity", "-Infinity")):
        return cell
    return json.loads(cell)


def read_json_export(path: Path) -> tuple[list[str], list[list[Any]]]:
    """The one table of a JSON export: its column names, and each row's values."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    (table,) = doc["tables"]
    return table["columns"], [row["values"] for row in table["data"]]


def read_csv_export(directory: Path) -> tuple[str, list[str], list[list[str]]]:
    """The one table of a CSV export: its name, its header, and each record's cells."""
    manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    (table,) = manifest["tables"]
    with open(directory / table["file"], newline="", encoding="utf-8") as f:
        header, *records = list(csv.reader(f))
    return table["name"], header, records


def exported(url: str, store: Path) -> tuple[tuple[list[str], list[list[Any]]], tuple[list[str], list[list[Any]]]]:
    """Commit the database and export the commit: (columns, rows of JSON forms) of the JSON
    file, and the same of the CSV files (each cell turned into its JSON form by the caller).
    Each file imported into an empty store gives the committed tree back: its decoder read every
    value as the database held it."""
    repo = Repo.init(store, url)
    commit = repo.commit("values")
    for name, fmt in (("out.json", "json"), ("out-csv", "csv")):
        repo.export("HEAD", store / name, fmt=fmt)
        other = store / f"import-{fmt}"
        other.mkdir()
        assert Repo.init(other).import_file(store / name)["tree"] == commit.tree_id, fmt
    _, header, records = read_csv_export(store / "out-csv")
    return read_json_export(store / "out.json"), (header, records)


# --- PostgreSQL: every portable type, compact -----------------------------------------------------

_pg_rows = st.lists(
    st.fixed_dictionaries({c: st.none() | strategy for c, (_, _, strategy, _) in PG.items()}), max_size=6
)


@pytest.fixture
def pg_url(make_db_url: Callable[[str], str]) -> str:
    return make_db_url("postgresql")


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(_pg_rows)
# an interval whose fields have other signs: kept with PostgreSQL's spelling, a tagged value
@example([dict.fromkeys(PG) | {"iv": dt.timedelta(days=-1, microseconds=1)}])
def test_postgresql_values_read_back_from_json_and_csv_are_what_postgresql_holds(pg_url: str, rows: list[dict]) -> None:
    engine = sa.create_engine(pg_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS v")
            conn.exec_driver_sql(
                f"CREATE TABLE v (id integer PRIMARY KEY, {', '.join(f'{c} {t}' for c, (t, *_) in PG.items())})"
            )
            for k, row in enumerate(rows):
                values = {c: (json.dumps(v) if c == "j" and v is not None else v) for c, v in row.items()}
                marks = ", ".join(f"%({c})s" + ("::jsonb" if c == "j" else "") for c in PG)
                conn.exec_driver_sql(f"INSERT INTO v VALUES ({k}, {marks})", values)
        with engine.connect() as conn:
            conn.exec_driver_sql("SET TIME ZONE 'UTC'; SET DateStyle = 'ISO'; SET bytea_output = 'hex'")
            sql = f"SELECT id, {', '.join(expr for *_, expr in PG.values())} FROM v"
            theirs = {r[0]: dict(zip(PG, r[1:], strict=True)) for r in conn.exec_driver_sql(sql)}
            # the plain text output too, in the session's default styles: a value kept with
            # PostgreSQL's spelling (7.7) must carry exactly this text
            conn.exec_driver_sql("RESET DateStyle; RESET IntervalStyle")
            sql = f"SELECT id, {', '.join(f'{c}::text' for c in PG)} FROM v"
            texts = {r[0]: dict(zip(PG, r[1:], strict=True)) for r in conn.exec_driver_sql(sql)}
    finally:
        engine.dispose()
    with tempfile.TemporaryDirectory() as tmp:
        (columns, values), (header, records) = exported(pg_url, Path(tmp))
    assert header == columns and len(values) == len(records) == len(rows)
    for forms, cells in zip(values, records, strict=True):
        row = dict(zip(columns, forms, strict=True))
        held = theirs[row["id"]]
        for c, (_, kind, _, _) in PG.items():
            want = from_postgresql(kind, held[c])
            assert from_form(kind, row[c]) == want, ("json", c, row[c], held[c])
            cell = cells[columns.index(c)]
            assert from_form(kind, cell_form(kind, cell)) == want, ("csv", c, cell, held[c])
            for form in (row[c], cell_form(kind, cell)):
                if type(form) is dict:
                    spelling = form["value"][2]
                    assert spelling == {"type": "text", "value": texts[row["id"]][c]}, (c, form)


# --- SQLite: any value in any column, tagged when its type is not the column's -------------------

# declared type -> SQLite's storage class of the values written compact in it
SQLITE_COLUMNS = {"i": ("INTEGER", "integer"), "r": ("REAL", "real"), "t": ("TEXT", "text"), "bl": ("BLOB", "blob")}
# SQLite's storage class -> the tag of a value of it (format.md 19.1) and the oracle's kind
TAGS = {"integer": ("bigint", "int"), "real": ("double", "float"), "text": ("text", "text"), "blob": ("bytes", "bytes")}

_sqlite_value = (
    st.none()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)  # SQLite stores NaN as NULL
    | st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
    | st.binary(max_size=12)
)


def from_sqlite(storage: str, v: Any) -> Any:
    if storage == "null":
        return None
    kind = TAGS[storage][1]
    return repr(v) if kind == "float" else v


def tagged_cell_form(cell: str) -> dict[str, Any]:
    """A tagged CSV cell ``\\T:V`` as its JSON form ``{"type": T, "value": V}``."""
    tag, _, text = cell[1:].partition(":")
    stringy = tag in ("text", "bytes")
    return {"type": tag, "value": text if stringy or text in ("NaN", "Infinity", "-Infinity") else json.loads(text)}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.fixed_dictionaries({c: _sqlite_value for c in SQLITE_COLUMNS}), max_size=8))
def test_sqlite_values_of_any_type_read_back_as_sqlite_holds_them(rows: list[dict]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "db.sqlite"
        con = sqlite3.connect(db)
        con.execute(
            f"CREATE TABLE v (id INTEGER PRIMARY KEY, {', '.join(f'{c} {t}' for c, (t, _) in SQLITE_COLUMNS.items())})"
        )
        con.executemany(
            f"INSERT INTO v VALUES (?, {', '.join('?' * len(SQLITE_COLUMNS))})",
            [(k, *row.values()) for k, row in enumerate(rows)],
        )
        con.commit()
        # the value SQLite keeps (its column's affinity may have converted it) and its storage class
        selected = ", ".join(f"{c}, typeof({c})" for c in SQLITE_COLUMNS)
        theirs = {r[0]: r[1:] for r in con.execute(f"SELECT id, {selected} FROM v")}
        con.close()
        store = Path(tmp) / "store"
        store.mkdir()
        (columns, values), (header, records) = exported(str(db), store)
    assert header == columns and len(values) == len(records) == len(rows)
    for forms, cells in zip(values, records, strict=True):
        row = dict(zip(columns, forms, strict=True))
        held = theirs[row["id"]]
        for n, (c, (_, own)) in enumerate(SQLITE_COLUMNS.items()):
            value, storage = held[2 * n], held[2 * n + 1]
            want = from_sqlite(storage, value)
            j, cell = row[c], cells[columns.index(c)]
            if storage in ("null", own):  # the column's own type: compact
                kind = TAGS[own][1]
                assert from_form(kind, j) == want, ("json", c, j, value)
                assert from_form(kind, cell_form(kind, cell)) == want, ("csv", c, cell, value)
                continue
            tag, kind = TAGS[storage]
            for where, form in (("json", j), ("csv", tagged_cell_form(cell) if cell.startswith("\\") else cell)):
                assert type(form) is dict and form["type"] == tag, (where, c, form, value)
                assert from_form(kind, form["value"]) == want, (where, c, form, value)


def test_the_oracle_reads_the_documented_examples() -> None:
    """The oracle's readers, on the examples format.md gives (so that a wrong oracle cannot
    agree with a wrong encoder by accident)."""
    assert from_form("float", "-Infinity") == repr(-math.inf) and from_form("float", -0.0) == "-0.0"
    assert from_form("decimal", "1.50") == from_postgresql("decimal", "1.50") != from_postgresql("decimal", "1.5")
    assert from_form("datetime", "2024-02-29T08:30:00+00:00") == from_postgresql("datetime", "2024-02-29 08:30:00+00")
    assert from_form("time", "10:30:00+01:00:30") == from_postgresql("time", "10:30:00+01:00:30")
    assert from_form("bytes", "AQI=") == b"\x01\x02" == from_postgresql("bytes", "\\x0102")
    assert from_form("micros", 90061000005) == from_postgresql("micros", "90061000005.000000")
    assert cell_form("int", "'-5") == -5 and cell_form("text", "'") == "" and cell_form("text", "''x") == "'x"
    assert tagged_cell_form("\\bigint:12") == {"type": "bigint", "value": 12}
