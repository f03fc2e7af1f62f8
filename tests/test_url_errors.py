"""A malformed database URL is refused in the URL's own terms, and its password never printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from test_cli import make_shop, no_traceback, snap


@pytest.mark.parametrize(
    "url,why",
    [
        ("postgresql://u:s3cretpw@[::1", "no closing ']'"),
        ("postgresql://u:s3cretpw@db.example:abc/app", "the port 'abc' is not a number"),
        ("mysql://u:s3cretpw@[::1]:x/app", "the port 'x' is not a number"),
    ],
)
def test_malformed_url_says_why_without_the_password(tmp_path: Path, url: str, why: str) -> None:
    make_shop(tmp_path / "shop.db")
    snap(tmp_path, "init", "--db", "shop.db")
    proc = snap(tmp_path, "status", "--db", url, check=False)
    assert proc.returncode != 0
    no_traceback(proc)
    assert "invalid database URL" in proc.stderr
    assert why in proc.stderr
    assert "invalid literal" not in proc.stderr
    assert "s3cretpw" not in proc.stderr + proc.stdout
