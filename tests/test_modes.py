"""What snapgit writes is its owner's alone: directories 0700, files 0600 (0400 once immutable),
in the store and in export files, whatever the umask; and a temporary file left by a killed
writer does not stay forever."""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from pathlib import Path

from test_cli import make_shop, snap


def _modes(root: Path) -> dict[str, int]:
    out = {root.name: stat.S_IMODE(root.stat().st_mode)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            out[p.relative_to(root.parent).as_posix()] = stat.S_IMODE(p.stat().st_mode)
    return out


def _assert_private(root: Path) -> None:
    wrong = {}
    for rel, mode in _modes(root).items():
        p = root.parent / rel
        ok = mode == 0o700 if p.is_dir() else mode in (0o600, 0o400)
        if not ok:
            wrong[rel] = oct(mode)
    assert not wrong, wrong


def _name(db: Path, value: str) -> None:
    con = sqlite3.connect(db)
    con.execute("UPDATE customers SET name = ? WHERE id = 1", (value,))
    con.commit()
    con.close()


def test_everything_written_is_private(tmp_path: Path) -> None:
    make_shop(tmp_path / "shop.db")
    snap(tmp_path, "init", "--db", "shop.db")
    snap(tmp_path, "commit", "-m", "base")
    snap(tmp_path, "branch", "team/feature")  # nested folders under refs/ and logs/refs/
    _name(tmp_path / "shop.db", "ours")
    snap(tmp_path, "commit", "-m", "ours")
    snap(tmp_path, "checkout", "team/feature")
    _name(tmp_path / "shop.db", "theirs")
    snap(tmp_path, "commit", "-m", "theirs")
    snap(tmp_path, "checkout", "main")
    assert snap(tmp_path, "merge", "team/feature", "--strategy", "manual", check=False).returncode == 1
    store = tmp_path / ".snapstore"
    assert (store / "MERGE_HEAD").is_file()
    _assert_private(store)
    snap(tmp_path, "merge", "--abort")
    snap(tmp_path, "restore", "HEAD~1")
    assert (store / "RESTORED").is_file()
    _assert_private(store)
    snap(tmp_path, "export", "HEAD", "-o", "x.json")
    snap(tmp_path, "export", "HEAD", "-o", "x.json.zst")
    snap(tmp_path, "export", "HEAD", "-o", "x.sql", "--format", "sql")
    snap(tmp_path, "export", "HEAD", "-o", "x-csv", "--format", "csv")
    for name in ("x.json", "x.json.zst", "x.sql"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    _assert_private(tmp_path / "x-csv")


def test_gc_removes_a_leftover_temporary_merge_head(tmp_path: Path) -> None:
    make_shop(tmp_path / "shop.db")
    snap(tmp_path, "init", "--db", "shop.db")
    snap(tmp_path, "commit", "-m", "base")
    store = tmp_path / ".snapstore"
    left = store / "MERGE_HEAD.tmp"
    left.write_text('{"ours": ')  # a writer killed mid-write
    old = time.time() - 7200
    os.utime(left, (old, old))
    young = store / "RESTORED.tmp"
    young.write_text("")  # a writer at work right now: spared by the grace period
    snap(tmp_path, "gc")
    assert not left.exists()
    assert young.exists()
