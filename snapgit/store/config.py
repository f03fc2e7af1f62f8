"""``.snapstore/config.toml``: where the database is and how to read it.

Example::

    [database]
    url = "postgresql+psycopg://app@db.internal/shop"   # never holds a password
    # url_env = "SHOP_DATABASE_URL"    # or: read the whole URL from this variable
    # password_env = "SHOP_DB_PASSWORD"  # or: add the password from this variable

    [commit]
    tables = ["customers", "orders"]   # default: every table
    incremental_column = "updated_at"  # for `snap commit --incremental`, unless a table says otherwise
    incremental_lookback = 600         # seconds re-read before the last commit (default 600)

    [user]
    name = "Ada <ada@example.com>"

    [remote.origin]
    url = "s3://backups/shop"          # snap remote add; credentials come from the environment only

    [tables.orders]
    key = ["order_no", "company_id"]   # natural key: rows are matched by it
    ignore = ["updated_at"]            # columns left out when comparing rows
    incremental_column = "updated_at"

The database URL of a command comes from ``--db``, then ``SNAP_DATABASE_URL``, then
``DATABASE_URL``, then this file.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from snapgit.errors import CorruptError, SnapError
from snapgit.store.privatefile import write_private

__all__ = ["Config", "TableConfig", "load_config", "save_config", "ENV_URL_VARS"]

ENV_URL_VARS = ("SNAP_DATABASE_URL", "DATABASE_URL")
# Rows stamped up to this many seconds before the last commit's read are read again: a
# transaction that stamped its rows before that read but committed after it is still seen.
DEFAULT_LOOKBACK = 600.0


@dataclass
class TableConfig:
    key: list[str] | None = None
    ignore: list[str] = field(default_factory=list)
    incremental_column: str | None = None

    def to_obj(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.key:
            out["key"] = list(self.key)
        if self.ignore:
            out["ignore"] = list(self.ignore)
        if self.incremental_column:
            out["incremental_column"] = self.incremental_column
        return out


@dataclass
class Config:
    url: str | None = None
    url_env: str | None = None
    password_env: str | None = None
    tables: list[str] | None = None
    user_name: str | None = None
    table: dict[str, TableConfig] = field(default_factory=dict)
    incremental_column: str | None = None
    incremental_lookback: float = DEFAULT_LOOKBACK
    # remote name -> its settings: "url", and whatever a layer over the remote keeps (kept as read)
    remotes: dict[str, dict[str, Any]] = field(default_factory=dict)
    # ``[serve]`` as written: read by snap serve (snapgit.web.settings), kept here only so that
    # saving the config does not drop it
    serve: dict[str, Any] = field(default_factory=dict)

    def change_column(self, table: str) -> str | None:
        """The column an incremental commit reads ``table``'s changes by, if any."""
        return self.table_config(table).incremental_column or self.incremental_column

    def table_config(self, name: str) -> TableConfig:
        return self.table.get(name) or TableConfig()

    def database_url(self, override: str | None = None) -> str | None:
        """The URL to connect with, by precedence; the password is added from the environment."""
        if override:
            return override
        for var in ENV_URL_VARS:
            if os.environ.get(var):
                return os.environ[var]
        if self.url_env and os.environ.get(self.url_env):
            return os.environ[self.url_env]
        if self.url and self.password_env and os.environ.get(self.password_env):
            return _with_password(self.url, os.environ[self.password_env])
        return self.url

    def to_obj(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        db: dict[str, Any] = {}
        if self.url:
            db["url"] = self.url
        if self.url_env:
            db["url_env"] = self.url_env
        if self.password_env:
            db["password_env"] = self.password_env
        out["database"] = db
        commit: dict[str, Any] = {}
        if self.tables:
            commit["tables"] = list(self.tables)
        if self.incremental_column:
            commit["incremental_column"] = self.incremental_column
        if self.incremental_lookback != DEFAULT_LOOKBACK:
            commit["incremental_lookback"] = self.incremental_lookback
        if commit:
            out["commit"] = commit
        if self.user_name:
            out["user"] = {"name": self.user_name}
        tables = {n: t.to_obj() for n, t in sorted(self.table.items()) if t.to_obj()}
        if tables:
            out["tables"] = tables
        if self.remotes:
            out["remote"] = {n: dict(r) for n, r in sorted(self.remotes.items())}
        if self.serve:
            out["serve"] = self.serve
        return out


def _with_password(url: str, password: str) -> str:
    from urllib.parse import quote

    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    userinfo, at, hostpart = rest.partition("@")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:{quote(password, safe='')}@{hostpart}"


class ConfigError(SnapError):
    pass


def load_config(path: Path) -> Config:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CorruptError(f"{path} is missing", hint="the store is damaged; restore config.toml") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}", hint="fix the file by hand") from exc
    try:
        db = raw.get("database", {})
        tables = {}
        for name, t in raw.get("tables", {}).items():
            tables[name] = TableConfig(
                key=list(t["key"]) if t.get("key") else None,
                ignore=list(t.get("ignore", [])),
                incremental_column=t.get("incremental_column"),
            )
        commit = raw.get("commit", {})
        lookback = commit.get("incremental_lookback", DEFAULT_LOOKBACK)
        if isinstance(lookback, bool) or not isinstance(lookback, (int, float)) or lookback < 0:
            raise ConfigError(
                f"{path}: [commit] incremental_lookback must be a number of seconds, not {lookback!r}",
                hint="e.g. incremental_lookback = 600",
            )
        remotes = {}
        for name, r in raw.get("remote", {}).items():
            if not isinstance(r, dict) or not isinstance(r.get("url"), str):
                raise ConfigError(f"{path}: [remote.{name}] needs a url", hint='e.g. url = "s3://bucket/prefix"')
            remotes[name] = dict(r)
        return Config(
            remotes=remotes,
            url=db.get("url"),
            url_env=db.get("url_env"),
            password_env=db.get("password_env"),
            tables=list(commit["tables"]) if commit.get("tables") else None,
            user_name=raw.get("user", {}).get("name"),
            table=tables,
            incremental_column=commit.get("incremental_column"),
            incremental_lookback=float(lookback),
            serve=dict(raw.get("serve", {})),
        )
    except (AttributeError, TypeError, KeyError) as exc:
        raise ConfigError(f"{path} has an unexpected shape: {exc}", hint="compare it with docs/format.md") from exc


def save_config(path: Path, config: Config) -> None:
    write_private(path, tomli_w.dumps(config.to_obj()).encode("utf-8"))
