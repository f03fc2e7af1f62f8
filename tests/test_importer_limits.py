"""Limits of `snap import`: it reads whatever `snap export` writes, and refuses what is too big
early, in bounded memory, with one true message."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from test_cli import make_shop, no_traceback, snap


def _shop_with_big_note(tmp_path: Path, size: int) -> Path:
    make_shop(tmp_path / "shop.db")
    con = sqlite3.connect(tmp_path / "shop.db")
    con.execute("UPDATE orders SET note = ? WHERE id = 7", ("x" * size,))
    con.commit()
    con.close()
    snap(tmp_path, "init", "--db", "shop.db")
    snap(tmp_path, "commit", "-m", "big note")
    return tmp_path


def test_csv_import_reads_a_cell_larger_than_the_csv_modules_default_limit(tmp_path: Path) -> None:
    # Python's csv module refuses fields over 131072 characters unless told otherwise.
    work = _shop_with_big_note(tmp_path, 300_000)
    snap(work, "export", "HEAD", "-o", "out-csv", "--format", "csv")
    proc = snap(work, "import", "out-csv", "--branch", "back", check=False)
    assert proc.returncode == 0, proc.stderr
    assert "field larger" not in proc.stderr
    diff = snap(work, "diff", "HEAD", "back", check=False)
    assert diff.returncode == 0, diff.stderr
    assert "orders" not in diff.stdout


def test_csv_import_refuses_a_cell_over_max_size_without_traceback(tmp_path: Path) -> None:
    work = _shop_with_big_note(tmp_path, 300_000)
    snap(work, "export", "HEAD", "-o", "out-csv", "--format", "csv")
    proc = snap(work, "import", "out-csv", "--max-size", "200000", check=False)
    assert proc.returncode != 0
    no_traceback(proc)
    assert "--max-size" in proc.stderr
