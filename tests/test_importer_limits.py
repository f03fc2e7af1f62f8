"""Limits of `snap import`: it reads whatever `snap export` writes, and refuses what is too big
early, in bounded memory, with one true message."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard

from test_cli import SNAP, make_shop, no_traceback, snap


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


def _zero_bomb(path: Path, size: int) -> None:
    """A zstd file that expands to ``size`` zero bytes, without one newline."""
    zeros = b"\0" * (1 << 20)
    with open(path, "wb") as f, zstandard.ZstdCompressor(level=3).stream_writer(f) as w:
        for _ in range(size >> 20):
            w.write(zeros)


def test_json_zst_bomb_without_newline_is_refused_early_in_bounded_memory(tmp_path: Path) -> None:
    make_shop(tmp_path / "shop.db")
    snap(tmp_path, "init", "--db", "shop.db")
    _zero_bomb(tmp_path / "bomb.json.zst", 1 << 30)
    assert (tmp_path / "bomb.json.zst").stat().st_size < 1 << 20
    # The CLI runs under a small parent of its own, so that the peak memory measured is the
    # CLI's alone and not that of another child of this test process.
    env = {k: v for k, v in os.environ.items() if k not in ("SNAP_DATABASE_URL", "DATABASE_URL")}
    code = (
        "import resource, subprocess, sys, time\n"
        "t = time.monotonic()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "print(p.returncode, time.monotonic() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.stderr.write(p.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *SNAP, "import", "bomb.json.zst"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    rc, seconds, peak_kib = proc.stdout.split()
    assert int(rc) == 1, proc.stderr
    no_traceback(proc)
    assert "1 problem" in proc.stderr
    assert "longer than" in proc.stderr
    # Before the fix: about 2 GiB held (the whole line, twice) and several seconds. A line is
    # refused once it passes MAX_LINE (256 MiB), read into one buffer.
    assert int(peak_kib) < 700 * 1024, f"peak {int(peak_kib) >> 10} MiB"
    assert float(seconds) < 30
    assert snap(tmp_path, "log", check=False).returncode != 0 or "import" not in snap(tmp_path, "log").stdout


def _exported_zst(tmp_path: Path) -> Path:
    make_shop(tmp_path / "shop.db")
    snap(tmp_path, "init", "--db", "shop.db")
    snap(tmp_path, "commit", "-m", "first")
    snap(tmp_path, "export", "HEAD", "-o", "good.json.zst")
    return tmp_path / "good.json.zst"


@pytest.mark.parametrize("keep", [20, 0.5])
def test_truncated_json_zst_is_reported_as_truncated(tmp_path: Path, keep: float) -> None:
    path = _exported_zst(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: int(keep if keep >= 1 else len(data) * keep)])
    proc = snap(tmp_path, "import", path.name, check=False)
    assert proc.returncode == 1
    no_traceback(proc)
    assert "1 problem" in proc.stderr
    assert "truncated" in proc.stderr
    assert "empty" not in proc.stderr


def test_json_zst_that_is_not_zstd_gets_one_true_message(tmp_path: Path) -> None:
    path = _exported_zst(tmp_path)
    plain = zstandard.ZstdDecompressor().stream_reader(path.read_bytes()).read()
    path.write_bytes(plain)
    proc = snap(tmp_path, "import", path.name, check=False)
    assert proc.returncode == 1
    no_traceback(proc)
    assert "1 problem" in proc.stderr
    assert "not zstd" in proc.stderr
    assert "empty" not in proc.stderr
