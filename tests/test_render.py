"""`snap diff` of a long value that changed shows where it changed: the offset of the first
difference and a window around it on both sides, not two equal prefixes cut at the same place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from test_cli import snap

SIZE = 5_000_000


def _set(db: Path, body: str | bytes) -> None:
    con = sqlite3.connect(db)
    con.execute("UPDATE docs SET body = ? WHERE id = 1", (body,))
    con.commit()
    con.close()


def _store(tmp_path: Path, body: str | bytes) -> Path:
    db = tmp_path / "docs.db"
    con = sqlite3.connect(db)
    con.execute(
        "CREATE TABLE docs (id INTEGER PRIMARY KEY, body BLOB)"
        if isinstance(body, bytes)
        else "CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT)"
    )
    con.execute("INSERT INTO docs VALUES (1, ?)", (body,))
    con.commit()
    con.close()
    snap(tmp_path, "init", "--db", "docs.db")
    snap(tmp_path, "commit", "-m", "first")
    return db


def test_a_changed_long_text_shows_where_it_differs(tmp_path: Path) -> None:
    old = "".join(f"line {i:07d}\n" for i in range(SIZE // 13 + 1))[:SIZE]
    at = 3_141_592
    new = old[:at] + "XYZ" + old[at + 3 :]
    db = _store(tmp_path, old)
    _set(db, new)
    proc = snap(tmp_path, "diff")
    text = proc.stdout
    assert len(text) < 2_000, text[:2_000]
    assert f"{at:,}" in text, text
    # the window shows the differing characters on both sides, with some context before
    assert repr(old[at - 10 : at + 3])[1:-1] in text, text
    assert repr(new[at - 10 : at + 3])[1:-1] in text, text


def test_a_changed_long_blob_shows_where_it_differs(tmp_path: Path) -> None:
    old = bytes(range(256)) * (SIZE // 256)
    at = 4_000_000
    new = old[:at] + b"\xff\xfe" + old[at + 2 :] + b"tail"
    db = _store(tmp_path, old)
    _set(db, new)
    text = snap(tmp_path, "diff").stdout
    assert len(text) < 2_000, text[:2_000]
    assert f"{at:,}" in text, text
    assert old[at - 4 : at + 2].hex() in text, text
    assert new[at - 4 : at + 2].hex() in text, text
    assert f"{len(old):,}" in text and f"{len(new):,}" in text, text


def test_short_values_print_as_before(tmp_path: Path) -> None:
    db = _store(tmp_path, "short")
    _set(db, "other")
    text = snap(tmp_path, "diff").stdout
    assert "    body: 'short' -> 'other'" in text, text
