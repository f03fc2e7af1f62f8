"""Database URLs: what users write, what SQLAlchemy gets, and what may be stored or printed.

Users write a SQLite path (``app.db``), a SQLite URL (``sqlite:///app.db``), or a server URL with
any of the usual schemes (``postgres://``, ``postgresql://``, ``mysql://``, ``mariadb://``).
:func:`normalize_url` turns each into one canonical SQLAlchemy URL with the driver snapgit ships
(psycopg 3, PyMySQL, the standard library's sqlite3) and SQLite paths made absolute, so that a
stored URL means the same thing from any working directory:

    app.db                       -> sqlite:////abs/dir/app.db
    sqlite:///rel/app.db         -> sqlite:////abs/dir/rel/app.db
    postgres://u:pw@h/db         -> postgresql+psycopg://u:pw@h/db
    mariadb://u@h/db             -> mysql+pymysql://u@h/db

:func:`redact_url` removes the password (it is not masked: ``***`` in a stored URL would be
mistaken for a password); the redacted URL is the only form that goes into the store, the oplog,
messages and output.

SQLite files named by a path, or by ``sqlite:///`` and a path, whose characters every form of
the URL keeps as they are (:func:`sqlite_file`), are handled without SQLAlchemy: importing it is a
fifth of a small commit's time, and such a commit needs nothing else of it (see
:class:`snapgit.db.Database`).
"""

from __future__ import annotations

import os
import pathlib
import re
from typing import TYPE_CHECKING

from snapgit.db.errors import DatabaseError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

__all__ = ["normalize_url", "redact_url", "parse_url", "dialect_of", "password_of", "sqlite_file"]

# scheme family (the part before "+") -> (canonical drivername, dialect)
_FAMILIES = {
    "sqlite": ("sqlite", "sqlite"),
    "postgresql": ("postgresql+psycopg", "postgresql"),
    "postgres": ("postgresql+psycopg", "postgresql"),
    "mysql": ("mysql+pymysql", "mysql"),
    "mariadb": ("mysql+pymysql", "mysql"),
}
_PASSWORD_PARAMS = ("password", "passwd")
_URL_HINT = "write a SQLite path (app.db), sqlite:///path, postgresql://user@host/db or mysql://user@host/db"


def _scrub(url: str) -> str:
    """Best-effort password removal for strings that do not parse as URLs."""
    url = re.sub(r"^([^:/?#]*://[^:/@?#]*):[^@/]*@", r"\1@", url)
    return re.sub(r"([?&](?:password|passwd)=)[^&]*", r"\1", url)


def _is_path(url: str) -> bool:
    return "://" not in url


# characters SQLAlchemy neither quotes in a URL's database part nor unquotes from it: a path of
# only these is the same text in the URL
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/._~+-]+")
_PLAIN_SQLITE_URL = re.compile(r"sqlite:///[A-Za-z0-9/._~+-]+")


def sqlite_file(url: str, base_dir: pathlib.Path | None = None) -> str | None:
    """The absolute path of the SQLite file ``url`` names, when it names one plainly: a path, or
    ``sqlite:///`` and a path, either resolving to a path of characters that URLs keep as they
    are (``[A-Za-z0-9/._~+-]``); else None (the URL goes through :func:`parse_url`). The
    canonical URL is then ``"sqlite:///" + path``."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    if _is_path(url):
        name = url
    elif _PLAIN_SQLITE_URL.fullmatch(url):
        name = url[len("sqlite:///") :]
    else:
        return None
    if not name:
        return None
    base = pathlib.Path(base_dir) if base_dir is not None else pathlib.Path.cwd()
    path = str((base / pathlib.Path(os.path.expanduser(name))).resolve())
    return path if _PLAIN_PATH.fullmatch(path) else None


def _malformed(url: str, exc: Exception) -> str:
    """Why SQLAlchemy refused ``url``, in the URL's terms: for a bad host or port its message is
    Python's ("invalid literal for int() with base 10"), which names neither."""
    netloc = url.partition("://")[2].partition("/")[0].partition("?")[0]
    hostport = netloc.rpartition("@")[2]  # never the user and password
    if hostport.startswith("[") and "]" not in hostport:
        return "the IPv6 address after '[' has no closing ']'"
    port = hostport.rpartition("]")[2] if hostport.startswith("[") else hostport
    if ":" in port:
        port = port.rpartition(":")[2]
        if not port.isdigit():
            return f"the port {port!r} is not a number" if port else "the port after ':' is missing"
    if isinstance(exc, ValueError):
        return "it is not of the form dialect://user@host:port/database"
    return str(exc)


def parse_url(url: str, base_dir: pathlib.Path | None = None) -> URL:
    """The canonical SQLAlchemy URL object for ``url`` (see the module docstring)."""
    from sqlalchemy.engine import URL, make_url
    from sqlalchemy.exc import ArgumentError

    if not isinstance(url, str) or not url.strip():
        raise DatabaseError("invalid database URL '': it is empty", hint=_URL_HINT)
    url = url.strip()
    base = pathlib.Path(base_dir) if base_dir is not None else pathlib.Path.cwd()
    if _is_path(url):
        path = pathlib.Path(os.path.expanduser(url))
        return URL.create("sqlite", database=str((base / path).resolve()))
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise DatabaseError(f"invalid database URL {_scrub(url)!r}: {_malformed(url, exc)}", hint=_URL_HINT) from None
    family = parsed.drivername.split("+", 1)[0].lower()
    if family not in _FAMILIES:
        raise DatabaseError(
            f"invalid database URL {redact_url(url)!r}: unsupported database {family!r}",
            hint="snapgit works with SQLite, PostgreSQL and MySQL/MariaDB; " + _URL_HINT,
        )
    drivername, dialect = _FAMILIES[family]
    parsed = parsed.set(drivername=drivername)
    if dialect == "sqlite":
        if parsed.host or parsed.username or parsed.password or parsed.port:
            raise DatabaseError(
                f"invalid database URL {redact_url(url)!r}: a SQLite URL has no host or user",
                hint="write sqlite:///relative/path.db or sqlite:////absolute/path.db",
            )
        db = parsed.database
        if db == ":memory:":
            parsed = parsed._replace(database=None)  # URL.set() takes None for "unchanged"
        elif db and not db.startswith("file:"):
            path = pathlib.Path(os.path.expanduser(db))
            parsed = parsed.set(database=str((base / path).resolve()))
    return parsed


def normalize_url(url: str, base_dir: pathlib.Path | None = None) -> str:
    """The canonical URL string for ``url``; relative SQLite paths resolve against ``base_dir``
    (default: the working directory). Raises :class:`DatabaseError` for a URL that is not one."""
    path = sqlite_file(url, base_dir)
    if path is not None:
        return "sqlite:///" + path
    return parse_url(url, base_dir).render_as_string(hide_password=False)


def redact_url(url: str) -> str:
    """``url`` with its password removed (not masked), safe to store and print."""
    if not isinstance(url, str) or _is_path(url) or _PLAIN_SQLITE_URL.fullmatch(url):
        return url  # no password: a path, or a SQLite URL of a path
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return _scrub(url)
    parsed = parsed._replace(password=None)  # URL.set() takes None for "unchanged"
    if any(p in parsed.query for p in _PASSWORD_PARAMS):
        parsed = parsed.difference_update_query(_PASSWORD_PARAMS)
    return parsed.render_as_string(hide_password=False)


def dialect_of(url: URL) -> str:
    """ "sqlite", "postgresql" or "mysql" for a URL from :func:`parse_url`."""
    return _FAMILIES[url.drivername.split("+", 1)[0]][1]


def password_of(url: URL) -> str | None:
    """Every spelling of the URL's password, to scrub it from driver messages."""
    pw = url.password
    if pw is None:
        for p in _PASSWORD_PARAMS:
            v = url.query.get(p)
            if isinstance(v, str):
                return v
    return pw if pw else None
