"""`snap init` never stores a password, and says so at once with where to give it instead
(rather than leaving the next commit to fail with "Access denied")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from test_cli import snap

SERVER = os.environ.get("SNAP_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432")


def test_init_says_the_password_was_not_stored(tmp_path: Path) -> None:
    url = SERVER.replace("://postgres@", "://postgres:s3cretpw@", 1) + "/postgres"
    proc = snap(tmp_path, "init", "--db", url, check=False)
    if proc.returncode != 0 and "cannot connect" in proc.stderr:
        pytest.skip(f"PostgreSQL does not answer: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    assert "password" in proc.stderr and "not stored" in proc.stderr
    assert "password_env" in proc.stderr and "SNAP_DATABASE_URL" in proc.stderr
    assert "s3cretpw" not in proc.stdout + proc.stderr
    assert "s3cretpw" not in (tmp_path / ".snapstore" / "config.toml").read_text()
