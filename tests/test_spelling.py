"""Values come back as the database spelled them (store format 2, ``Spelled``, ext type 11).

A restore into the engine a value was read from writes back the same stored bytes: SQLite's
storage class and text (``typeof()`` and ``quote()``), PostgreSQL ``json`` text (``::text``) and
MariaDB JSON text (``HEX()``), however the application spelled them. Every check here reads the
database itself, not through snapgit. Values already in their canonical spelling keep the record
bytes format 1 gave them (a store written before this format is in ``tests/data/v1_store``).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from snapgit import Repo
from snapgit.encoding import Json, Spelled, decode_row, encode_key, encode_row, encode_value
from snapgit.exchange.typedvalue import decoder, encoder, from_cell, to_cell
from snapgit.jsonvalue import to_json, to_text

DATA = Path(__file__).parent / "data"

# --- the value and its bytes -------------------------------------------------------------------


def test_spelled_value_bytes_are_an_ext_11_of_dialect_value_and_spelling() -> None:
    """docs/format.md 7.3: ext8 (c7), length, type 0b, then [dialect, value, spelling]."""
    v = Spelled(dt.datetime(2024, 1, 5, 10, 0), "2024-01-05T10:00", "sqlite")
    want = (
        "c7 23 0b 93"  # ext8 of 35 bytes, type 11; an array of 3
        " a6 73 71 6c 69 74 65"  # "sqlite"
        " d7 05 00 e2 ce 2e e8 6e c8 00"  # DATETIME: microseconds since 0001-01-01
        " b0 32 30 32 34 2d 30 31 2d 30 35 54 31 30 3a 30 30"  # "2024-01-05T10:00"
    )
    assert encode_value(v) == bytes.fromhex(want)
    assert decode_row(encode_row([v, 1])) == [v, 1]


@pytest.mark.parametrize(
    "v",
    [
        Spelled(Json({"a": 1}), '{"a": 1}', "postgresql"),
        Spelled(uuid.UUID(int=5), uuid.UUID(int=5).bytes, "sqlite"),
        Spelled(decimal.Decimal("Infinity"), float("inf"), "sqlite"),
        Spelled(Json(3), 3, "sqlite"),
        Spelled(dt.time(10), "10:00", "sqlite"),
    ],
)
def test_spelled_values_round_trip_and_differ_from_their_value(v: Spelled) -> None:
    assert decode_row(encode_row([v])) == [v]
    assert encode_value(v) != encode_value(v.value)
    assert encode_value(v) != encode_value(Spelled(v.value, v.spelling, "mysql"))


def test_a_spelled_key_sorts_by_its_value_and_keeps_two_spellings_apart() -> None:
    a = dt.datetime(2024, 1, 5, 10, 0)
    plain, spelled = encode_key([a]), encode_key([Spelled(a, "2024-01-05T10:00", "sqlite")])
    later = encode_key([dt.datetime(2024, 1, 5, 10, 1)])
    assert plain < spelled < later
    assert spelled != encode_key([Spelled(a, "2024-01-05 10:00", "sqlite")])
    assert encode_key([Spelled(a, "x", "sqlite"), 1]) != encode_key([Spelled(a, "x", "sqlite"), 2])


def test_display_and_export_forms_show_the_spelling() -> None:
    v = Spelled(Json({"a": 1}), '{"a":  1}', "mysql")
    assert to_text(v) == repr('{"a":  1}')
    assert to_json(v) == '{"a":  1}'
    assert to_text(Spelled(uuid.UUID(int=1), b"\x00" * 15 + b"\x01", "sqlite")) == "\\x" + "00" * 15 + "01"
    for portable in ("json", "text", "timestamp"):
        form = encoder(portable)(v)
        assert form == {
            "type": "spelled",
            "value": ["mysql", {"type": "json", "value": '{"a":1}'}, {"type": "text", "value": '{"a":  1}'}],
        }
        assert decoder(portable)(json.loads(json.dumps(form))) == v
        assert from_cell(portable)(to_cell(portable)(v)) == v


@pytest.mark.parametrize(
    "form",
    [
        ["oracle", {"type": "text", "value": "a"}, {"type": "text", "value": "b"}],
        ["sqlite", {"type": "text", "value": "a"}],
        ["sqlite", {"type": "text", "value": "a"}, {"type": "boolean", "value": True}],
        ["sqlite", {"type": "text", "value": "a"}, "b"],
    ],
)
def test_an_import_refuses_a_malformed_spelled_value(form: Any) -> None:
    from snapgit.exchange.typedvalue import ValueFormError

    with pytest.raises(ValueFormError, match="spelling"):
        decoder("text")({"type": "spelled", "value": form})


# --- SQLite: any value in any declared type ----------------------------------------------------

DECLARED = [
    "DATETIME",
    "TIMESTAMP",
    "TIMESTAMPTZ",
    "DATE",
    "TIME",
    "TIMETZ",
    "JSON",
    "UUID",
    "NUMERIC(10,2)",
    "NUMERIC",
    "BOOLEAN",
    "ANY",
    "",
    "TEXT",
    "INTEGER",
    "REAL",
    "BLOB",
    "VARCHAR(5)",
]


@st.composite
def _datetime_text(draw: st.DrawFn) -> str:
    d = draw(st.datetimes(dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31)))
    sep = draw(st.sampled_from([" ", "T"]))
    clock = draw(st.sampled_from(["%H:%M", "%H:%M:%S"]))
    text = d.strftime("%Y-%m-%d").zfill(10) + sep + d.strftime(clock)
    if clock.endswith("S"):
        digits = draw(st.integers(0, 6))
        if digits:
            text += "." + f"{d.microsecond:06d}"[:digits]
    return text + draw(st.sampled_from(["", "", "Z", "+00:00", "+02:00", "-05:30"]))


@st.composite
def _time_text(draw: st.DrawFn) -> str:
    t = draw(st.times())
    text = t.strftime(draw(st.sampled_from(["%H:%M", "%H:%M:%S", "%H:%M:%S.%f"])))
    return text + draw(st.sampled_from(["", "", "+00:00", "+01:00"]))


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def _json_text(draw: st.DrawFn) -> str:
    doc = draw(_JSON_VALUES)
    spaced = draw(st.booleans())
    text = json.dumps(doc, separators=(", ", ": ") if spaced else (",", ":"), ensure_ascii=draw(st.booleans()))
    return draw(st.sampled_from([text, " " + text + "\n", '{"a": 1, "a": 2}', "[2.50, 1e2, -0.0]", '{"b":1,"a":2}']))


def _uuid_form(u: uuid.UUID) -> Any:
    return [u.hex, str(u), u.hex.upper(), u.bytes, "{" + str(u) + "}"]


# anything SQLite holds, in any spelling an application may have used
ANY_VALUE = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.binary(max_size=8),
    _datetime_text(),
    st.dates().map(lambda d: d.isoformat()),
    st.dates().map(lambda d: f"{d.year}-{d.month}-{d.day}"),
    _time_text(),
    _json_text(),
    st.uuids().flatmap(lambda u: st.sampled_from(_uuid_form(u))),
    st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str),
    st.sampled_from(["12", " 12", "1e5", "3.0", "0x10", "NaN", "Infinity", "true", "null", ""]),
)


def sqlite_cells(path: str, table: str, where: str = "") -> list[tuple[Any, ...]]:
    """Every cell as SQLite itself stores it: (typeof, quote) per column, rows sorted."""
    con = sqlite3.connect(path)
    try:
        cols = [r[1] for r in con.execute(f'PRAGMA table_info("{table}")')]
        sel = ", ".join(f'typeof("{c}"), quote("{c}")' for c in cols)
        return sorted(con.execute(f'SELECT {sel} FROM "{table}" {where}').fetchall())
    finally:
        con.close()


def _create_hostile(path: str, rows: list[tuple[Any, ...]]) -> None:
    con = sqlite3.connect(path)
    cols = ", ".join(f"c{i} {decl}" for i, decl in enumerate(DECLARED))
    con.execute(f"CREATE TABLE h (id INTEGER PRIMARY KEY, {cols})")
    marks = ", ".join("?" * (len(DECLARED) + 1))
    con.executemany(f"INSERT INTO h VALUES ({marks})", [(i + 1, *r) for i, r in enumerate(rows)])
    con.commit()
    con.close()


_ROWS = st.lists(st.tuples(*([ANY_VALUE] * len(DECLARED))), min_size=1, max_size=5)
_FEW = settings(
    max_examples=15,
    deadline=None,
    phases=[Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_FEW
@given(rows=_ROWS, other=_ROWS)
def test_sqlite_merge_backup_wins_restore_and_restore_into_keep_every_spelling(
    rows: list[tuple[Any, ...]], other: list[tuple[Any, ...]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = str(work / "app.db")
        sqlite3.connect(db).close()
        repo = Repo.init(work, db)
        try:
            con = sqlite3.connect(db)
            cols = ", ".join(f"c{i} {decl}" for i, decl in enumerate(DECLARED))
            con.execute(f"CREATE TABLE h (id INTEGER PRIMARY KEY, {cols})")
            con.commit()
            repo.commit("base: the empty table")
            repo.create_branch("backup")
            repo.refs.set_symbolic("HEAD", "refs/heads/backup")
            marks = ", ".join("?" * (len(DECLARED) + 1))
            con.executemany(f"INSERT INTO h VALUES ({marks})", [(i + 1, *r) for i, r in enumerate(rows)])
            con.commit()
            backup = sqlite_cells(db, "h")
            theirs = repo.commit("the hostile rows").commit_id
            assert theirs is not None
            # ours: the same keys (every second one) with other values, and keys of its own
            repo.refs.set_symbolic("HEAD", "refs/heads/main")
            con.execute("DELETE FROM h")
            ours = [(2 * i + 2, *r) for i, r in enumerate(other)]
            con.executemany(f"INSERT INTO h VALUES ({marks})", ours)
            con.commit()
            con.close()
            repo.merge("backup", strategy="backup_wins")
            # every key of theirs holds theirs' cells, byte for byte; ours' other keys are kept
            mine = {r[0] for r in ours} - set(range(1, len(rows) + 1))
            assert sqlite_cells(db, "h", f"WHERE id <= {len(rows)}") == backup
            assert len(sqlite_cells(db, "h")) == len(rows) + len(mine)
            # in place
            repo.restore(theirs.hex())
            assert sqlite_cells(db, "h") == backup
            # into a new database
            into = str(work / "into.db")
            sqlite3.connect(into).close()
            repo.restore(theirs.hex(), into=f"sqlite:///{into}")
            assert sqlite_cells(into, "h") == backup
        finally:
            repo.close()


@_FEW
@given(rows=_ROWS)
def test_sqlite_export_import_restore_into_keeps_every_spelling(rows: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = str(work / "app.db")
        _create_hostile(db, rows)
        backup = sqlite_cells(db, "h")
        (work / "a").mkdir()
        with Repo.init(work / "a", db) as repo:
            cid = repo.commit("hostile").commit_id
            assert cid is not None
            for fmt, name in (("json", "x.json"), ("csv", "x-csv"), ("sql", "x.sql")):
                repo.export(cid.hex(), work / name, fmt=fmt)
        # SQL: loaded by SQLite itself
        loaded = str(work / "sql.db")
        con = sqlite3.connect(loaded)
        con.executescript((work / "x.sql").read_bytes().decode("utf-8"))  # no newline translation
        con.close()
        assert sqlite_cells(loaded, "h") == backup
        for name in ("x.json", "x-csv"):
            empty = str(work / f"{name}.db")
            sqlite3.connect(empty).close()
            (work / f"s-{name}").mkdir()
            with Repo.init(work / f"s-{name}", empty) as repo:
                repo.import_file(work / name, branch="imported")
                into = str(work / f"{name}-into.db")
                sqlite3.connect(into).close()
                repo.restore("imported", into=f"sqlite:///{into}")
            assert sqlite_cells(into, "h") == backup, name


def test_a_spelling_only_change_is_a_change_and_diff_shows_the_spelling(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, at DATETIME, doc JSON)")
    con.execute("INSERT INTO t VALUES (1, '2024-01-05 10:00:00', '{\"a\":1}')")
    con.commit()
    snap = [sys.executable, "-m", "snapgit.cli", "-C", str(tmp_path)]
    run = lambda *a: subprocess.run([*snap, *a], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})  # noqa: E731
    assert run("init", "--db", str(db)).returncode == 0
    assert run("commit", "-m", "canonical").returncode == 0
    con.execute("UPDATE t SET at = '2024-01-05T10:00', doc = '{\"a\": 1}'")
    con.commit()
    con.close()
    status = run("status", "--json")
    assert status.returncode == 0, status.stderr
    diff = run("diff")
    assert diff.returncode == 0, diff.stderr
    assert "'2024-01-05T10:00'" in diff.stdout and "'{\"a\": 1}'" in diff.stdout, diff.stdout
    lines = [json.loads(line) for line in run("diff", "--json").stdout.splitlines() if line.strip()]
    changed = [line for line in lines if line.get("op") == "changed"]
    assert len(changed) == 1, lines
    assert "2024-01-05T10:00" in json.dumps(changed[0])
    assert run("diff", "--exit-code").returncode == 1
    assert run("commit", "-m", "respelled").returncode == 0
    assert run("restore", "HEAD~1").returncode == 0
    assert sqlite_cells(str(db), "t") == [("integer", "1", "text", "'2024-01-05 10:00:00'", "text", "'{\"a\":1}'")]


def test_a_key_column_of_spelled_values_merges_and_restores_by_its_spellings(tmp_path: Path) -> None:
    """Two spellings of one instant are two keys, as SQLite holds them; a merge matches rows by
    their exact key."""
    db = str(tmp_path / "app.db")
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE ev (at DATETIME PRIMARY KEY, what TEXT)")
    con.commit()
    repo = Repo.init(tmp_path, db)
    repo.commit("base")
    repo.create_branch("backup")
    repo.refs.set_symbolic("HEAD", "refs/heads/backup")
    theirs = [
        ("2024-01-05T10:00", "t"),
        ("2024-01-05 10:00:00", "canonical"),
        ("2024-01-05 10:00", "short"),
        ("2024-01-05 10:00:00.000000", "six"),
        ("2024-01-04 10:00:00+02:00", "offset"),
    ]
    con.executemany("INSERT INTO ev VALUES (?, ?)", theirs)
    con.commit()
    want = sqlite_cells(db, "ev")
    repo.commit("four spellings of one instant")
    repo.refs.set_symbolic("HEAD", "refs/heads/main")
    con.execute("DELETE FROM ev")
    con.executemany("INSERT INTO ev VALUES (?, ?)", [("2024-01-05T10:00", "ours"), ("2024-01-05 10:00:00.0", "x")])
    con.commit()
    con.close()
    repo.merge("backup", strategy="backup_wins")
    assert sqlite_cells(db, "ev") == sorted([*want, ("text", "'2024-01-05 10:00:00.0'", "text", "'x'")])
    repo.restore("backup")
    assert sqlite_cells(db, "ev") == want
    repo.close()


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_another_engine_gets_the_values_not_the_spellings(
    kind: str, tmp_path: Path, make_db_url: Callable[[str], str], make_engine: Callable[[str], sa.Engine]
) -> None:
    db = str(tmp_path / "app.db")
    con = sqlite3.connect(db)
    con.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, at DATETIME, d DATE, tm TIME, doc JSON, u UUID, n NUMERIC(10,2))"
    )
    u = uuid.UUID(int=7)
    con.execute(
        "INSERT INTO t VALUES (1, '2024-01-05T10:00', '2024-01-05', '10:00', '{\"b\": 1, \"a\": [2.50]}', ?, 2.5)",
        (u.bytes,),
    )
    con.commit()
    con.close()
    target = make_db_url(kind)
    with Repo.init(tmp_path, db) as repo:
        cid = repo.commit("spelled").commit_id
        assert cid is not None
        repo.restore(cid.hex(), into=target)
    with make_engine(target).connect() as conn:
        got = conn.exec_driver_sql("SELECT at, tm, doc, u, n FROM t").one()
    assert got[0] == dt.datetime(2024, 1, 5, 10, 0)
    assert got[1] in (dt.time(10, 0), dt.timedelta(hours=10))  # MariaDB's TIME is a duration
    assert (json.loads(got[2]) if isinstance(got[2], str) else got[2]) == {"a": [2.5], "b": 1}
    assert uuid.UUID(str(got[3])) == u
    assert got[4] == decimal.Decimal("2.50")


# --- PostgreSQL json and MariaDB JSON ----------------------------------------------------------

_DOCS = st.lists(_json_text(), min_size=1, max_size=5)


def _refuse(constant: str) -> Any:
    raise ValueError(constant)


def _finite(doc: str) -> bool:
    try:
        json.loads(doc, parse_constant=_refuse)
    except ValueError:
        return False
    return True


def _texts(engine: sa.Engine, kind: str) -> list[tuple[Any, ...]]:
    expr = "HEX(doc)" if kind == "mariadb" else "doc::text"
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(f"SELECT id, {expr} FROM j ORDER BY id")]


@pytest.mark.parametrize(("kind", "json_type"), [("postgresql", "json"), ("postgresql", "jsonb"), ("mariadb", "JSON")])
@settings(
    max_examples=6,
    deadline=None,
    phases=[Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(docs=_DOCS)
def test_json_text_comes_back_as_written_after_merge_and_restore(
    kind: str,
    json_type: str,
    docs: list[str],
    make_db_url: Callable[[str], str],
    make_engine: Callable[[str], sa.Engine],
) -> None:
    # PostgreSQL's json takes no NUL, and no server takes Python's NaN and Infinity
    docs = [d.replace("\\u0000", "") for d in docs if _finite(d)]
    assume(docs)
    source, target = make_db_url(kind), make_db_url(kind)
    src, dst = make_engine(source), make_engine(target)
    with src.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE j (id int PRIMARY KEY, doc {json_type})")
    with tempfile.TemporaryDirectory() as tmp:
        repo = Repo.init(Path(tmp), source)
        try:
            repo.commit("base")
            repo.create_branch("backup")
            repo.refs.set_symbolic("HEAD", "refs/heads/backup")
            with src.begin() as conn:
                for i, d in enumerate(docs):
                    conn.exec_driver_sql("INSERT INTO j VALUES (%s, %s)", (i + 1, d))
            backup = _texts(src, kind)
            theirs = repo.commit("documents").commit_id
            assert theirs is not None
            repo.refs.set_symbolic("HEAD", "refs/heads/main")
            with src.begin() as conn:
                conn.exec_driver_sql("DELETE FROM j")
                for i in range(0, len(docs), 2):
                    conn.exec_driver_sql("INSERT INTO j VALUES (%s, %s)", (i + 1, '{"other": true}'))
            repo.merge("backup", strategy="backup_wins")
            assert _texts(src, kind) == backup
            repo.restore(theirs.hex(), into=target)
            assert _texts(dst, kind) == backup
        finally:
            repo.close()


# --- a store of format 1 -----------------------------------------------------------------------


@pytest.fixture
def v1_store(tmp_path: Path) -> Path:
    """A copy of tests/data/v1_store (git keeps no empty folders: the store's are made again)."""
    work = tmp_path / "v1"
    shutil.copytree(DATA / "v1_store", work)
    for sub in ("tmp", "locks", "refs/tags"):
        (work / ".snapstore" / sub).mkdir(parents=True, exist_ok=True)
    for p in [work / ".snapstore", *(work / ".snapstore").rglob("*")]:
        p.chmod(0o700 if p.is_dir() else 0o600)
    return work


V1_COMMIT = "43524b60e01b280eb5c35b2a958110ec3c4e6acee163d8018ba1471e91eebd9f"


def _tables(repo: Repo, commit: str) -> dict[str, bytes]:
    return {t.name: t.table_id for t in repo.tables(commit)}


def test_a_store_of_format_1_is_read_upgraded_and_canonical_values_keep_their_ids(v1_store: Path) -> None:
    db = f"sqlite:///{v1_store / 'app.db'}"
    with Repo.open(v1_store) as repo:
        assert (v1_store / ".snapstore" / "VERSION").read_text() == "snapgit store 3\n"
        assert [cid.hex() for cid, _commit in repo.log()] == [V1_COMMIT]
        assert repo.verify(read_data=True).ok
        old = _tables(repo, V1_COMMIT)
        # the same database committed by this snapgit: canonical spellings give the same bytes
        new = repo.commit("format 2", db_url=db, allow_empty=True).commit_id
        assert new is not None
        now = _tables(repo, new.hex())
        assert now["canon"] == old["canon"]
        assert now["hostile"] != old["hostile"] and now["events"] != old["events"]
        # format 1 kept hostile values as their canonical values: a restore of its commit
        # writes those as this snapgit writes canonical values
        into = v1_store / "into.db"
        sqlite3.connect(into).close()
        repo.restore(V1_COMMIT, into=f"sqlite:///{into}")
        assert sqlite_cells(str(into), "canon") == sqlite_cells(str(v1_store / "app.db"), "canon")
        assert sqlite_cells(str(into), "hostile")[0][8:10] == ("text", "'2024-01-05 10:00:00'")
        # and the commit of this snapgit gives every spelling back
        into2 = v1_store / "into2.db"
        sqlite3.connect(into2).close()
        repo.restore(new.hex(), into=f"sqlite:///{into2}")
        for table in ("canon", "hostile", "events"):
            assert sqlite_cells(str(into2), table) == sqlite_cells(str(v1_store / "app.db"), table)


def test_a_store_of_format_1_that_cannot_be_written_is_still_read(v1_store: Path) -> None:
    """A backup store on read-only media, or one this user may only read, opens without its
    upgrade. (The tests run as root, whom permissions do not stop: the store's folder is made
    immutable instead, so that the VERSION file cannot be replaced in it.)"""
    store = v1_store / ".snapstore"
    if subprocess.run(["chattr", "+i", str(store)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available on this file system")
    try:
        with Repo.open(v1_store) as repo:
            assert [cid.hex() for cid, _commit in repo.log()] == [V1_COMMIT]
        assert (store / "VERSION").read_text() == "snapgit store 1\n"
    finally:
        subprocess.run(["chattr", "-i", str(store)], check=True)


@pytest.mark.parametrize("declared", ["JSON", "DATE", "NUMERIC", "DECIMAL(10,3)"])
def test_a_real_that_sqlite_reads_back_otherwise_keeps_its_storage_class_through_sql(
    tmp_path: Path, declared: str
) -> None:
    """SQLite turns the text ``-3.818524346993651e-306`` into a double one unit in the last
    place off the float Python makes of it: a REAL in a NUMERIC-affinity column whose canonical
    value would be written as that text must keep its spelling (found by the export property
    test above)."""
    v = -3.818524346993651e-306
    db = tmp_path / "a.db"
    con = sqlite3.connect(db)
    con.execute(f"CREATE TABLE h (id INTEGER PRIMARY KEY, x {declared})")
    con.execute("INSERT INTO h VALUES (1, ?)", (v,))
    con.commit()
    con.close()
    before = sqlite_cells(str(db), "h")
    (tmp_path / "s").mkdir()
    with Repo.init(tmp_path / "s", f"sqlite:///{db}") as repo:
        cid = repo.commit("one real").commit_id
        assert cid is not None
        repo.export(cid.hex(), tmp_path / "x.sql", fmt="sql")
    loaded = tmp_path / "b.db"
    con = sqlite3.connect(loaded)
    con.executescript((tmp_path / "x.sql").read_text(encoding="utf-8"))
    con.close()
    assert sqlite_cells(str(loaded), "h") == before
