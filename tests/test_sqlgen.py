"""SQL literals (snapgit.exchange.sqlgen), read back by the database's own parser."""

from __future__ import annotations

import math
import random
import sqlite3
import struct
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from snapgit import Repo
from snapgit.exchange.export import ExportError
from snapgit.exchange.sqlgen import literal

# Each of these reads back one unit in the last place off from its repr() in SQLite 3.40.
SQLITE_MISREADS = [13.715808, 0.74281026, 108859.176109, 3.901200454347719e-299]


def read_back(text: str) -> tuple[object, str]:
    con = sqlite3.connect(":memory:")
    try:
        value, kind = con.execute(f"SELECT {text}, typeof({text})").fetchone()
    finally:
        con.close()
    return value, kind


@given(st.floats(allow_nan=False, allow_infinity=False))
@example(SQLITE_MISREADS[0])
@example(SQLITE_MISREADS[1])
@example(SQLITE_MISREADS[2])
@example(SQLITE_MISREADS[3])
@example(5e-324)
@example(-1.7976931348623157e308)
@example(2.0**60 + 2**8)
def test_a_sqlite_float_literal_reads_back_exactly(v: float) -> None:
    value, kind = read_back(literal(v, "sqlite"))
    assert kind == "real"
    assert value == v  # (the sign of a zero is another matter: SQLite keeps none)


def test_random_bit_patterns_read_back_exactly() -> None:
    """Many values at once: the ones SQLite misreads are rare, so thousands are drawn."""
    rng = random.Random(1)
    values = SQLITE_MISREADS[:]
    while len(values) < 20_000:
        v = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        if math.isfinite(v):
            values.append(v)
    con = sqlite3.connect(":memory:")
    for i in range(0, len(values), 500):
        chunk = values[i : i + 500]
        got = con.execute("SELECT " + ", ".join(literal(v, "sqlite") for v in chunk)).fetchone()
        assert got == tuple(chunk)
    con.close()


def test_sqlite_infinities_read_back() -> None:
    """restore --into SQLite stores them, so an SQL export must write them too."""
    assert read_back(literal(math.inf, "sqlite")) == (math.inf, "real")
    assert read_back(literal(-math.inf, "sqlite")) == (-math.inf, "real")


def test_infinities_round_trip_through_a_sqlite_sql_export(tmp_path: Path) -> None:
    """An SQL export for SQLite loads into a fresh database with its infinities (found by the
    export property once CI's Hypothesis profile drew new inputs); MariaDB refuses them."""
    con = sqlite3.connect(tmp_path / "src.db")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, x REAL)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(1, float("inf")), (2, float("-inf")), (3, 1.5), (4, None)])
    con.commit()
    con.close()
    with Repo.init(tmp_path, str(tmp_path / "src.db")) as src:
        cid = src.commit("source").commit_id
        src.export(cid.hex(), tmp_path / "dump.sql", fmt="sql")
        (tmp_path / "copy").mkdir()
        copy = sqlite3.connect(tmp_path / "copy" / "copy.db")
        copy.executescript((tmp_path / "dump.sql").read_bytes().decode())
        assert copy.execute("SELECT id, x FROM t ORDER BY id").fetchall() == [
            (1, float("inf")),
            (2, float("-inf")),
            (3, 1.5),
            (4, None),
        ]
        copy.close()
        with Repo.init(tmp_path / "copy", str(tmp_path / "copy" / "copy.db")) as again:
            assert [t.rows for t in again.commit("copy").tables] == [4]
        with pytest.raises(ExportError, match="MariaDB/MySQL cannot store the float inf"):  # MariaDB cannot
            src.export(cid.hex(), tmp_path / "dump-mysql.sql", fmt="sql", dialect="mysql")


def test_sqlite_text_with_nul_is_written_as_its_bytes() -> None:
    """SQLite's parser ends a statement at a NUL: such a text is cast from its UTF-8 bytes."""
    con = sqlite3.connect(":memory:")
    for text in ("a\x00b", "\x00", "é\x00'"):
        lit = literal(text, "sqlite")
        assert "\x00" not in lit
        assert con.execute(f"SELECT {lit}, typeof({lit})").fetchone() == (text, "text")
    con.close()
