"""Database URLs: normalisation and password redaction (no database needed)."""

from __future__ import annotations

import pathlib

import pytest

from snapgit.db import DatabaseError, normalize_url, redact_url

BASE = pathlib.Path("/base/dir")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("app.db", "sqlite:////base/dir/app.db"),
        ("./x.sqlite", "sqlite:////base/dir/x.sqlite"),
        ("../up/x.db", "sqlite:////base/up/x.db"),
        ("/abs/app.db", "sqlite:////abs/app.db"),
        ("sqlite:///rel.db", "sqlite:////base/dir/rel.db"),
        ("sqlite:////abs/a.db", "sqlite:////abs/a.db"),
        ("sqlite+pysqlite:///rel.db", "sqlite:////base/dir/rel.db"),
        ("sqlite://", "sqlite://"),
        ("sqlite:///:memory:", "sqlite://"),
        ("postgres://u:pw@h/db", "postgresql+psycopg://u:pw@h/db"),
        ("postgresql://u@h:5433/db", "postgresql+psycopg://u@h:5433/db"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg://u@h/db"),
        ("mysql://root@127.0.0.1/test", "mysql+pymysql://root@127.0.0.1/test"),
        ("mariadb://root:x@h:3307/test", "mysql+pymysql://root:x@h:3307/test"),
        ("mysql+mysqldb://root@h/test", "mysql+pymysql://root@h/test"),
    ],
)
def test_normalize_url(url: str, expected: str) -> None:
    assert normalize_url(url, BASE) == expected
    assert normalize_url(expected, pathlib.Path("/elsewhere")) == expected  # idempotent


def test_normalize_url_defaults_to_cwd(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert normalize_url("app.db") == f"sqlite:///{tmp_path.resolve()}/app.db"


def test_normalize_url_keeps_odd_paths() -> None:
    url = normalize_url("we?ird #name%.db", BASE)
    assert normalize_url(url, BASE) == url
    assert "%3F" in url and "%23" in url  # escaped, not taken for a query or a fragment


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+psycopg://u:secret@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql://u:s%40cret@h:5/db?sslmode=require", "postgresql://u@h:5/db?sslmode=require"),
        ("postgresql://u@h/db?password=secret&sslmode=require", "postgresql://u@h/db?sslmode=require"),
        ("mysql+pymysql://root@h/test", "mysql+pymysql://root@h/test"),
        ("sqlite:////abs/a.db", "sqlite:////abs/a.db"),
        ("app.db", "app.db"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_url_of_unparseable_url_still_drops_the_password() -> None:
    assert "secret" not in redact_url("post gres://u:secret@h/db")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("", "it is empty"),
        ("oracle://u:secret@h/db", "unsupported database 'oracle'"),
        ("post gres://u:secret@h/db", "Could not parse"),
        ("postgresql://u:secret@h:port/db", "the port 'port' is not a number"),
        ("sqlite://host/x.db", "has no host or user"),
    ],
)
def test_bad_url_is_a_database_error(url: str, why: str) -> None:
    with pytest.raises(DatabaseError) as info:
        normalize_url(url)
    message = str(info.value)
    assert message.startswith("invalid database URL")
    assert why in message
    assert "secret" not in message
    assert "\n" not in message
    assert info.value.hint
