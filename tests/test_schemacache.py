"""SQLite read without SQLAlchemy, and the schema cache that lets a commit skip reflection:
the plain connection reads what SQLAlchemy's does, the cache answers only for the very schema it
was made from, and a change of schema between two connections is caught."""

from __future__ import annotations

import os
import pathlib
import shutil
import sqlite3
import stat
import subprocess
import sys
import textwrap

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from snapgit.db import Database, DatabaseError, normalize_url, redact_url, schemacache
from snapgit.db.url import parse_url, sqlite_file

SCHEMA = "\n".join(
    [
        "CREATE TABLE parent (id INTEGER PRIMARY KEY, code VARCHAR(10) NOT NULL UNIQUE, note TEXT DEFAULT 'none');",
        "CREATE TABLE child (id BIGINT PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parent(id),"
        ' name VARCHAR(20), "Score" NUMERIC(8, 3), at TIMESTAMP, UNIQUE (parent_id, name));',
        "CREATE INDEX ix_child_name ON child(name);",
        'CREATE TABLE "Odd ""Name""" ("a b" VARCHAR(5) PRIMARY KEY, "ü" TEXT, "100%" INTEGER);',
        "CREATE TABLE keyless (a INTEGER, b TEXT);",
        "INSERT INTO parent VALUES (1, 'a', NULL), (2, 'b', 'x');",
        "INSERT INTO child VALUES (10, 1, 'n', 1.5, '2024-01-02 03:04:05'), (11, 2, NULL, NULL, NULL);",
        'INSERT INTO "Odd ""Name""" VALUES (\'k\', \'v\', 7);',
        "INSERT INTO keyless VALUES (1, 'x'), (1, 'x');",
    ]
)


def make_sqlite(path: pathlib.Path, script: str = SCHEMA) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.executescript(script)
    con.commit()
    con.close()
    return path


def read_everything(url: str, cache: pathlib.Path | None = None) -> tuple[list, dict]:
    with Database.connect(url) as db, db.snapshot() as snap:
        schemas = snap.reflect(cache=cache)
        rows = {s.name: [r for b in snap.scan(s, list(s.primary_key) or None) for r in b] for s in schemas}
    return schemas, rows


def test_plain_connection_reads_what_sqlalchemy_reads(tmp_path: pathlib.Path) -> None:
    plain = make_sqlite(tmp_path / "plain" / "db.sqlite")
    spaced = tmp_path / "with space" / "db.sqlite"  # not a plain path: read through SQLAlchemy
    spaced.parent.mkdir()
    shutil.copy(plain, spaced)
    assert sqlite_file(str(plain)) == str(plain) and sqlite_file(str(spaced)) is None
    assert read_everything(str(plain)) == read_everything(str(spaced))
    assert read_everything(str(plain), cache=tmp_path / "cache") == read_everything(str(spaced))


def test_cache_answers_for_the_same_schema_only(tmp_path: pathlib.Path) -> None:
    db = make_sqlite(tmp_path / "db.sqlite")
    cache = tmp_path / "cache"
    fresh = read_everything(str(db))
    assert read_everything(str(db), cache) == fresh  # a miss: reflected, then remembered
    assert stat.S_IMODE((cache / schemacache.CACHE_FILE).stat().st_mode) == 0o600
    assert read_everything(str(db), cache) == fresh  # a hit
    with Database.connect(str(db)) as d, d.snapshot() as snap:
        fp = schemacache.fingerprint(snap._raw, snap.table_names())
        assert schemacache.load(cache, fp) == fresh[0]
        assert schemacache.load(cache, bytes(32)) is None

    for ddl in (
        "ALTER TABLE keyless ADD COLUMN c REAL",
        "CREATE INDEX ix_keyless_b ON keyless(b)",
        "DROP INDEX ix_child_name",
        "CREATE TABLE more (id INTEGER PRIMARY KEY)",
        "DROP TABLE keyless",
    ):
        con = sqlite3.connect(db)
        con.execute(ddl)
        con.commit()
        con.close()
        assert read_everything(str(db), cache) == read_everything(str(db)), ddl


def test_cache_of_other_tables_is_a_miss(tmp_path: pathlib.Path) -> None:
    db = make_sqlite(tmp_path / "db.sqlite")
    cache = tmp_path / "cache"
    with Database.connect(str(db)) as d, d.snapshot() as snap:
        assert [s.name for s in snap.reflect(["parent"], cache=cache)] == ["parent"]
        assert [s.name for s in snap.reflect(["child", "parent"], cache=cache)] == ["child", "parent"]
        assert [s.name for s in snap.reflect(None, cache=cache)] == ['Odd "Name"', "child", "keyless", "parent"]


@pytest.mark.parametrize(
    "content", [b"", b"not msgpack \xff", b"\x93\x01\xc4\x01x\x90", b"\x93\x02\xc4\x20" + bytes(32) + b"\x90"]
)
def test_a_cache_that_does_not_read_is_a_miss(tmp_path: pathlib.Path, content: bytes) -> None:
    db = make_sqlite(tmp_path / "db.sqlite")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / schemacache.CACHE_FILE).write_bytes(content)
    assert read_everything(str(db), cache) == read_everything(str(db))
    with Database.connect(str(db)) as d, d.snapshot() as snap:  # rewritten: it reads now
        assert schemacache.load(cache, schemacache.fingerprint(snap._raw, snap.table_names())) is not None


def test_schema_changed_between_connections_is_an_error(tmp_path: pathlib.Path) -> None:
    # WAL mode: a writer commits while the snapshot is open, which the connection reflecting
    # for it then sees; the fingerprints differ, and reflecting says so rather than answer
    db = make_sqlite(tmp_path / "db.sqlite")
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.close()
    with Database.connect(str(db)) as d, d.snapshot() as snap:
        assert snap.table_names()
        writer = sqlite3.connect(db)
        writer.execute("ALTER TABLE parent ADD COLUMN extra TEXT")
        writer.commit()
        writer.close()
        with pytest.raises(DatabaseError, match="changed while snapgit read it"):
            snap.reflect(cache=tmp_path / "cache")
    assert not (tmp_path / "cache" / schemacache.CACHE_FILE).exists()


_COMMIT_AND_REPORT = textwrap.dedent(
    """
    import sys
    from snapgit.cli.app import main
    sys.argv = ["snap", "commit", "-m", sys.argv[1]]
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    print("sqlalchemy imported:", "sqlalchemy" in sys.modules)
    sys.exit(code)
    """
)


def test_a_commit_of_an_unchanged_schema_does_not_import_sqlalchemy(tmp_path: pathlib.Path) -> None:
    db = make_sqlite(tmp_path / "db.sqlite")
    snap = pathlib.Path(sys.executable).with_name("snap")
    env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}
    subprocess.run([snap, "init", "--db", str(db)], cwd=tmp_path, check=True, env=env, capture_output=True)

    def commit(msg: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", _COMMIT_AND_REPORT, msg], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "sqlalchemy imported: True" in commit("first")  # reflected
    con = sqlite3.connect(db)
    con.execute("UPDATE parent SET note = 'changed' WHERE id = 1")
    con.commit()
    con.close()
    assert "sqlalchemy imported: False" in commit("rows changed")
    con = sqlite3.connect(db)
    con.execute("ALTER TABLE parent ADD COLUMN extra TEXT")
    con.commit()
    con.close()
    assert "sqlalchemy imported: True" in commit("schema changed")
    shown = subprocess.run([snap, "show", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert '"extra"' in shown.stdout


_SAFE = st.text(alphabet="abcXYZ019._~+-", min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(_SAFE, min_size=1, max_size=4), absolute=st.booleans(), form=st.sampled_from(["path", "url"]))
def test_plain_sqlite_urls_are_what_sqlalchemy_makes_of_them(parts: list[str], absolute: bool, form: str) -> None:
    base = pathlib.Path("/base/dir")
    path = "/".join(parts)
    if absolute:
        path = "/" + path
    url = path if form == "path" else "sqlite:///" + path
    expected = parse_url(url, base).render_as_string(hide_password=False)
    assert normalize_url(url, base) == expected
    assert redact_url(expected) == sa.make_url(expected).render_as_string(hide_password=False) == expected
    fast = sqlite_file(url, base)
    assert fast is None or "sqlite:///" + fast == expected


def test_a_cache_that_cannot_be_written_is_left_alone(tmp_path: pathlib.Path) -> None:
    db = make_sqlite(tmp_path / "db.sqlite")
    cache = tmp_path / "cache"
    cache.write_bytes(b"a file where the directory should be")
    assert read_everything(str(db), cache) == read_everything(str(db))
    assert cache.read_bytes() == b"a file where the directory should be"
    assert not list(tmp_path.glob("cache*.tmp")) and not list(tmp_path.glob("schemas*"))
