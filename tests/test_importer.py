"""Import validation (snapgit.exchange.importer): a value changed under its row's checksum.

An export row is ``{"checksum": <record id>, "values": [...]}``; the record id is the SHA-256 of
the encoded values, so the importer recomputes it from the values it decoded and compares. The
catalogue in test_import_errors.py breaks a checksum's *form* (65 digits); here a *value* is
changed and the checksum left exactly as exported (valid, 64 hex digits, just not the values'):
only the recomputation can notice. Every column type the engines store differently is tried,
on every engine, through the API and through `snap import`.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from snapgit import Repo
from snapgit.exchange.importer import ImportValidationError

ROWS = [
    {
        "id": i,
        "qty": i * 10,
        "label": f"item {i}",
        "price": decimal.Decimal(f"{i}.25"),
        "at": dt.datetime(2024, 1, i, 12, 30, 0),
        "flag": i % 2 == 0,
    }
    for i in range(1, 6)
]


def make_items(engine: sa.Engine) -> None:
    meta = sa.MetaData()
    items = sa.Table(
        "items",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("qty", sa.Integer),
        sa.Column("label", sa.String(20)),
        sa.Column("price", sa.Numeric(10, 2)),
        sa.Column("at", sa.DateTime),
        sa.Column("flag", sa.Boolean),
    )
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(items.insert(), ROWS)


def rows_of(engine: sa.Engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text("SELECT * FROM items ORDER BY id"))]


def data_line(lines: list[str], n: int) -> int:
    """Index of the n-th row (1-based) of the only table."""
    return lines.index('"data":[') + n


def tamper(path: Path, n: int, column: str) -> str:
    """Change one value of row ``n`` in place, the checksum untouched; returns the new line."""
    lines = path.read_text(encoding="utf-8").split("\n")
    header = json.loads(next(line for line in lines if line.startswith('{"name":"items"'))[: -len(",")] + "}")
    i = data_line(lines, n)
    row = json.loads(lines[i].rstrip(","))
    assert re.fullmatch(r"[0-9a-f]{64}", row["checksum"])
    j = header["columns"].index(column)
    old = row["values"][j]
    text = lambda v: v[:-1] + ("9" if v[-1] != "9" else "8")  # noqa: E731
    # a value kept with its spelling (SQLAlchemy's '2024-01-01 12:30:00.000000'): its spelling
    spelled = lambda v: {**v, "value": [*v["value"][:2], {"type": "text", "value": text(v["value"][2]["value"])}]}  # noqa: E731
    new = {int: lambda v: v + 1, str: text, bool: lambda v: not v, dict: spelled}[type(old)](old)
    row["values"][j] = new
    text = json.dumps(row, separators=(",", ":"), ensure_ascii=False)
    lines[i] = text + ("," if lines[i].endswith(",") else "")
    path.write_text("\n".join(lines), encoding="utf-8")
    return text


@pytest.mark.parametrize("column", ["qty", "label", "price", "at", "flag", "id"])
def test_a_value_changed_under_a_valid_checksum_is_refused(db_url, db_engine, tmp_path, column) -> None:
    make_items(db_engine)
    (tmp_path / "p").mkdir()
    repo = Repo.init(tmp_path / "p", db_url)
    repo.commit("one")
    good = tmp_path / "good.json"
    repo.export("HEAD", good)
    repo.import_file(good)  # the untouched file imports: the tests below break only the value
    refs_before = dict(repo.refs.list("refs/"))
    db_before = rows_of(db_engine)
    bad = tmp_path / "bad.json"
    bad.write_bytes(good.read_bytes())
    tamper(bad, 5 if column == "id" else 3, column)  # (the last id can grow and stay in key order)
    with pytest.raises(ImportValidationError, match="does not match the values") as caught:
        repo.import_file(bad, merge_strategy="backup_wins")
    assert len(caught.value.problems) == 1 and caught.value.problems[0].row == (5 if column == "id" else 3)
    assert dict(repo.refs.list("refs/")) == refs_before
    assert rows_of(db_engine) == db_before
    repo.close()


def test_snap_import_of_a_changed_value_exits_1_and_changes_nothing(db_url, db_engine, tmp_path) -> None:
    make_items(db_engine)
    project = tmp_path / "p"
    project.mkdir()
    with Repo.init(project, db_url) as repo:
        repo.commit("one")
        repo.export("HEAD", tmp_path / "bad.json")
    tamper(tmp_path / "bad.json", 2, "label")
    before = rows_of(db_engine)
    env = {k: v for k, v in os.environ.items() if k not in ("SNAP_DATABASE_URL", "DATABASE_URL")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snapgit.cli",
            "import",
            str(tmp_path / "bad.json"),
            "--merge",
            "--strategy",
            "backup_wins",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    first, *problems = proc.stderr.splitlines()
    assert first.startswith("error: ") and "nothing imported" in first, proc.stderr
    assert len(problems) == 1 and "row 2" in problems[0] and "does not match the values" in problems[0], proc.stderr
    assert rows_of(db_engine) == before
    with Repo.open(project) as repo:
        assert not repo.refs.list("refs/imports") and [c.message for _i, c in repo.log()] == ["one"]
