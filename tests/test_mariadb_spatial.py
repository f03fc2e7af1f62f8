"""MariaDB spatial types (POINT, GEOMETRY, ...) round-trip on MariaDB, checked by the server:
``SHOW CREATE TABLE``, ``ST_AsText``, ``ST_SRID`` and ``HEX(ST_AsWKB())`` of every value, between
the source and the restored database; on another engine they are the server's bytes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from snapgit import Repo

MakeUrl = Callable[[str], str]
MakeEngine = Callable[[str], sa.Engine]

_TABLE = """
CREATE TABLE shapes (
  id int PRIMARY KEY, p point, g geometry, l linestring NOT NULL, poly polygon,
  mp multipoint, mls multilinestring, mpoly multipolygon, gc geometrycollection,
  where_ point NOT NULL, SPATIAL INDEX (where_)
)
"""
_ROWS = [
    "INSERT INTO shapes VALUES (1, POINT(1.5, -2), ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))', 3857), "
    "ST_GeomFromText('LINESTRING(0 0, 1 1, 2 0.5)'), ST_GeomFromText('POLYGON((0 0,4 0,4 4,0 0),(1 1,2 1,2 2,1 1))'), "
    "ST_GeomFromText('MULTIPOINT(0 0, 1e300 -1e-300)'), ST_GeomFromText('MULTILINESTRING((0 0,1 1),(2 2,3 3))'), "
    "ST_GeomFromText('MULTIPOLYGON(((0 0,1 0,1 1,0 0)))'), "
    "ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 1), LINESTRING(0 0, 1 1))', 4326), ST_GeomFromText('POINT(3 4)', 4326))",
    "INSERT INTO shapes (id, l, where_) VALUES (2, ST_GeomFromText('LINESTRING(5 5, 6 6)'), POINT(0, 0))",
]
_COLUMNS = ["p", "g", "l", "poly", "mp", "mls", "mpoly", "gc", "where_"]


def shapes(engine: sa.Engine) -> list[tuple[Any, ...]]:
    """Every value as the server describes it: its text, its SRID and its WKB in hex."""
    parts = ", ".join(f"ST_AsText({c}), ST_SRID({c}), HEX(ST_AsWKB({c}))" for c in _COLUMNS)
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(f"SELECT id, {parts} FROM shapes ORDER BY id").all()]


def create_statement(engine: sa.Engine) -> str:
    """SHOW CREATE TABLE without the table's default character set and collation (which a
    table without text columns does not use, and a restore sets to its own)."""
    with engine.connect() as conn:
        text = str(conn.exec_driver_sql("SHOW CREATE TABLE shapes").one()[1])
    return text.rsplit(")", 1)[0]


def test_spatial_columns_round_trip_on_mariadb(make_db_url: MakeUrl, make_engine: MakeEngine, tmp_path: Path) -> None:
    src, dst = make_db_url("mariadb"), make_db_url("mariadb")
    source, target = make_engine(src), make_engine(dst)
    with source.begin() as conn:
        conn.exec_driver_sql(_TABLE)
        for sql in _ROWS:
            conn.exec_driver_sql(sql)
    want = shapes(source)
    assert want[0][1] == "POINT(1.5 -2)" and want[0][5] == 3857
    with Repo.init(tmp_path, src) as repo:
        c = repo.commit("shapes").commit_id
        repo.restore(c.hex(), into=dst)
        assert shapes(target) == want
        assert create_statement(target) == create_statement(source)
        # in place
        with source.begin() as conn:
            conn.exec_driver_sql("UPDATE shapes SET p = POINT(9, 9), g = NULL, where_ = POINT(7, 7)")
            conn.exec_driver_sql("DELETE FROM shapes WHERE id = 2")
        assert [t.name for t in repo.diff(c.hex(), None) if list(t.rows())] == ["shapes"]
        repo.restore(c.hex())
        assert shapes(source) == want
        assert all(not list(t.rows()) for t in repo.diff(c.hex(), None))


def test_spatial_values_are_the_servers_bytes_elsewhere(
    make_db_url: MakeUrl, make_engine: MakeEngine, tmp_path: Path
) -> None:
    """Another engine gets a blob of MariaDB's own form of the value: 4 bytes of SRID, then WKB."""
    src = make_db_url("mariadb")
    source = make_engine(src)
    with source.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE s (id int PRIMARY KEY, p point)")
        conn.exec_driver_sql("INSERT INTO s VALUES (1, ST_GeomFromText('POINT(3 4)', 4326)), (2, NULL)")
        want = conn.exec_driver_sql("SELECT id, CONCAT(UNHEX('E6100000'), ST_AsWKB(p)) FROM s ORDER BY id").all()
    (tmp_path / "store").mkdir()
    lite = tmp_path / "x.db"
    with Repo.init(tmp_path / "store", src) as repo:
        c = repo.commit("s").commit_id
        repo.restore(c.hex(), into=f"sqlite:///{lite}")
    with sqlite3.connect(lite) as conn:
        got = conn.execute("SELECT id, p FROM s ORDER BY id").fetchall()
    assert got == [(1, bytes(want[0][1])), (2, None)]
