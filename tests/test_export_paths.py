"""An export to a path that cannot be written names the user's path, never the temporary file
the export writes first, and leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from test_cli import make_shop, no_traceback, snap


@pytest.fixture
def committed(tmp_path: Path) -> Path:
    make_shop(tmp_path / "shop.db")
    snap(tmp_path, "init", "--db", "shop.db")
    snap(tmp_path, "commit", "-m", "first")
    return tmp_path


@pytest.mark.parametrize(
    "fmt,name",
    [("json", "x.json"), ("json", "x.json.zst"), ("sql", "x.sql"), ("csv", "x")],
)
def test_export_into_a_missing_folder_names_the_users_path(committed: Path, fmt: str, name: str) -> None:
    target = f"missing/dir/{name}"
    proc = snap(committed, "export", "HEAD", "--format", fmt, "-o", target, check=False)
    assert proc.returncode != 0
    no_traceback(proc)
    assert target in proc.stderr, proc.stderr
    assert "does not exist" in proc.stderr, proc.stderr
    assert ".tmp" not in proc.stderr, proc.stderr
    assert "hint: " in proc.stderr, proc.stderr
    assert not (committed / "missing").exists()


def test_export_under_a_file_names_the_users_path(committed: Path) -> None:
    proc = snap(committed, "export", "HEAD", "-o", "shop.db/x.json", check=False)
    assert proc.returncode != 0
    no_traceback(proc)
    assert "shop.db/x.json" in proc.stderr, proc.stderr
    assert "not a folder" in proc.stderr, proc.stderr
    assert ".tmp" not in proc.stderr, proc.stderr
