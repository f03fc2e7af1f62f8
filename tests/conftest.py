"""Fixtures shared by the whole test suite.

Databases: ``db_url`` runs a test on a fresh, empty database of each kind (ids ``sqlite``,
``postgresql``, ``mariadb``): a SQLite file under ``tmp_path``, or a uniquely named database
(``snapgit_t_<hex>``) created on the PostgreSQL or MariaDB server and dropped after the test.
``db_engine`` is a SQLAlchemy engine on it for setting up tables and rows with SQLAlchemy Core;
its sessions are in UTC, like snapgit's. ``make_db_url(kind)`` makes more fresh databases (for
tests that compare kinds).

Servers: ``SNAP_TEST_PG_URL`` and ``SNAP_TEST_MYSQL_URL`` (server URLs without a database name)
override the defaults, PostgreSQL at 127.0.0.1:5432 as postgres and MariaDB at 127.0.0.1:3306 as
root. A server that does not answer skips its tests, with the reason, except under ``CI=true``,
where it fails them: CI must run every database.

Hypothesis: profile ``ci`` under ``CI=true``, else ``dev``; ``HYPOTHESIS_PROFILE`` picks one
explicitly. Both have no deadline and at least 100 examples (tests that need more, or can afford
fewer on the servers, say so with ``@settings``), and both explore: ``ci`` is not derandomized.
Instead every CI run draws from its own seed, ``HYPOTHESIS_SEED`` or else the run's start time,
printed in the header and again after a failure, so a failing run is replayed with
``HYPOTHESIS_SEED=<seed> CI=true scripts/test ...`` (``--hypothesis-seed`` works too). ``ci``
also prints the blob that reproduces a failing example. Profile ``mutation`` (scripts/mutation)
is derandomized with 10 examples; properties that scale with the profile state theirs as a
multiple of ``settings.default.max_examples``.
"""

from __future__ import annotations

import gc
import os
import pathlib
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from hypothesis import Phase, settings

from snapgit.db.url import parse_url

IN_CI = os.environ.get("CI") == "true"

# (Hypothesis loads a derandomized built-in "ci" profile when it sees CI=true; these replace it)
settings.register_profile(
    "ci",
    settings.get_profile("default"),
    derandomize=False,
    deadline=None,
    max_examples=100,
    print_blob=True,
    database=None,
)
settings.register_profile("dev", settings.get_profile("default"), derandomize=False, deadline=None, max_examples=100)
# scripts/mutation: the same few inputs for every mutant (a survivor must be one for good), fast;
# and no shrinking: a mutant is killed by the first failing input, and shrinking it took up to
# two minutes of a mutant's run
settings.register_profile(
    "mutation",
    settings.get_profile("default"),
    derandomize=True,
    deadline=None,
    max_examples=10,
    database=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
HYPOTHESIS_PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if IN_CI else "dev")
settings.load_profile(HYPOTHESIS_PROFILE)
# The seed of a CI run: new each run, and known, so that any failure can be replayed.
HYPOTHESIS_SEED = os.environ.get("HYPOTHESIS_SEED") or (str(int(time.time())) if HYPOTHESIS_PROFILE == "ci" else None)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # before Hypothesis's own plugin reads its option, which seeds every test
    if HYPOTHESIS_SEED is not None and config.getoption("hypothesis_seed", None) is None:
        config.option.hypothesis_seed = HYPOTHESIS_SEED


def _seed_line(config: pytest.Config) -> str:
    seed = config.getoption("hypothesis_seed", None)
    if seed is None:
        return f"hypothesis: profile {HYPOTHESIS_PROFILE}, random seeds (failures replay from .hypothesis/)"
    return f"hypothesis: profile {HYPOTHESIS_PROFILE}, seed {seed} (replay: HYPOTHESIS_SEED={seed})"


def pytest_report_header(config: pytest.Config) -> str:
    return _seed_line(config)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if exitstatus != 0:
        terminalreporter.write_line(_seed_line(config))


DB_KINDS = ("sqlite", "postgresql", "mariadb")

_SERVERS = {
    "postgresql": ("PostgreSQL", "SNAP_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432"),
    "mariadb": ("MariaDB", "SNAP_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306"),
}


class _Server:
    """One database server: reachable or not (checked once), and an admin engine on it."""

    def __init__(self, kind: str) -> None:
        label, env, default = _SERVERS[kind]
        self.kind = kind
        self.label = label
        self.url = parse_url(os.environ.get(env) or default)
        self._engine: sa.Engine | None = None
        self._error: str | None = None
        self._checked = False

    def admin(self) -> sa.Engine:
        if not self._checked:
            self._checked = True
            admin_db = "postgres" if self.kind == "postgresql" else None
            args = {"connect_timeout": 5}
            engine = sa.create_engine(
                self.url._replace(database=admin_db), isolation_level="AUTOCOMMIT", connect_args=args
            )
            try:
                with engine.connect() as conn:
                    conn.exec_driver_sql("SELECT 1")
                self._engine = engine
            except sa.exc.SQLAlchemyError as exc:
                engine.dispose()
                reason = " ".join(str(getattr(exc, "orig", exc)).split())
                self._error = f"{self.label} not reachable at {where_of(self.url)}: {reason}"
        if self._engine is None:
            assert self._error is not None
            if IN_CI:
                pytest.fail(self._error + " (CI=true: database tests must run)", pytrace=False)
            pytest.skip(self._error)
        return self._engine

    def create(self) -> str:
        name = f"snapgit_t_{uuid.uuid4().hex[:16]}"
        with self.admin().connect() as conn:
            if self.kind == "postgresql":
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            else:
                conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        return self.url.set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        name = sa.make_url(url).database
        with self.admin().connect() as conn:
            if self.kind == "postgresql":
                # FORCE ends the sessions a test left open
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                return
            # MariaDB's DROP waits for the metadata locks of sessions a test left open (engines and
            # snapshots it forgot): collect those, which closes them. Only then: a full collection
            # costs up to a second in a process that has run a thousand tests, once per database.
            sessions = "SELECT count(*) FROM information_schema.processlist WHERE db = %s"
            if conn.exec_driver_sql(sessions, (name,)).scalar():
                gc.collect()
            conn.exec_driver_sql("SET SESSION lock_wait_timeout = 20")
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")


def where_of(url: sa.URL) -> str:
    return f"{url.host or 'localhost'}:{url.port}" if url.port else f"{url.host or 'localhost'}"


@pytest.fixture(scope="session")
def _servers() -> Iterator[dict[str, _Server]]:
    servers = {kind: _Server(kind) for kind in _SERVERS}
    yield servers
    for s in servers.values():
        if s._engine is not None:
            s._engine.dispose()


@pytest.fixture
def make_db_url(_servers: dict[str, _Server], tmp_path: pathlib.Path) -> Iterator[Callable[[str], str]]:
    """``make_db_url(kind)``: the URL of a fresh, empty database of ``kind``, dropped after the
    test. Skips (fails under CI=true) when the server does not answer."""
    made: list[tuple[_Server, str]] = []

    def make(kind: str) -> str:
        if kind == "sqlite":
            path = tmp_path / f"db_{uuid.uuid4().hex[:8]}.sqlite"
            sqlite3.connect(path).close()  # an empty database: snapgit never creates one
            return sa.URL.create("sqlite", database=str(path)).render_as_string()
        server = _servers[kind]
        url = server.create()
        made.append((server, url))
        return url

    yield make
    for server, url in reversed(made):
        server.drop(url)


@pytest.fixture(params=DB_KINDS)
def db_kind(request: pytest.FixtureRequest) -> str:
    """ "sqlite", "postgresql" or "mariadb"."""
    return request.param


@pytest.fixture
def db_url(db_kind: str, make_db_url: Callable[[str], str]) -> str:
    """The URL of a fresh, empty database, once per kind of database (ids: sqlite, postgresql,
    mariadb)."""
    return make_db_url(db_kind)


def utc_engine(url: str) -> sa.Engine:
    """A SQLAlchemy engine whose sessions are in UTC (naive datetimes mean UTC on both sides)."""
    engine = sa.create_engine(url)
    backend = engine.dialect.name

    @sa.event.listens_for(engine, "connect")
    def _utc(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        if backend in ("postgresql", "mysql", "mariadb"):
            cur = dbapi_conn.cursor()
            cur.execute("SET TIME ZONE 'UTC'" if backend == "postgresql" else "SET time_zone = '+00:00'")
            cur.close()
            dbapi_conn.commit()

    return engine


@pytest.fixture
def make_engine() -> Iterator[Callable[[str], sa.Engine]]:
    """``make_engine(url)``: a UTC SQLAlchemy engine (see :func:`utc_engine`), disposed after the
    test."""
    engines: list[sa.Engine] = []

    def make(url: str) -> sa.Engine:
        engines.append(utc_engine(url))
        return engines[-1]

    yield make
    for engine in engines:
        engine.dispose()


@pytest.fixture
def db_engine(db_url: str) -> Iterator[sa.Engine]:
    """A SQLAlchemy engine on ``db_url``, for creating tables and rows with SQLAlchemy Core."""
    engine = utc_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def small_leaves(monkeypatch):
    """Small leaves and inner nodes (forked workers inherit them), so that a few hundred rows
    make many leaves: key ranges hold many leaves and seams, row-cache blocks straddle leaves."""
    from snapgit.tree import prolly as tree_mod

    monkeypatch.setattr(tree_mod, "LEAF_THRESHOLD", (1 << 32) // 8)
    monkeypatch.setattr(tree_mod, "LEAF_MAX", 12)
    monkeypatch.setattr(tree_mod, "INNER_THRESHOLD", (1 << 32) // 4)
    monkeypatch.setattr(tree_mod, "INNER_MAX", 6)


# --- remotes --------------------------------------------------------------------------------
# A real S3 server for the remote tests: moto's server mode in a thread of this process, on a
# free loopback port, started once per test module that asks for it (and stopped after it, so
# that no server thread runs while later modules fork). obstore speaks HTTP to it like to any
# S3 server; the AWS_* variables point obstore (and every `snap` subprocess a test starts) at it.
REMOTE_KINDS = ["dir", "s3"]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        why = f"moto[server] is not installed ({exc}): pip install -e '.[test]'"
        if IN_CI:
            pytest.fail(why + " (CI=true: the S3 tests must run)", pytrace=False)
        pytest.skip(why)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in _S3_ENV}
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="snaptest",
        AWS_SECRET_ACCESS_KEY="snaptest",
        AWS_REGION="us-east-1",
    )
    try:
        yield endpoint
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


_S3_ENV = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")


def make_bucket(endpoint: str) -> str:
    """A new, empty bucket on the test server; its name."""
    import urllib.request

    name = f"snap-{uuid.uuid4().hex[:12]}"
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{name}", method="PUT"), timeout=10).close()
    return name


@pytest.fixture
def make_remote_url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Callable[[str], str]:
    """``make(kind)``: the URL of a new, empty remote: a folder under tmp_path (``dir``) or a
    prefix in a new bucket of the session's moto server (``s3``)."""
    count = iter(range(1000))

    def make(kind: str) -> str:
        n = next(count)
        if kind == "dir":
            path = tmp_path / f"remote-{n}"
            path.mkdir()
            return str(path)
        endpoint = request.getfixturevalue("s3_endpoint")
        return f"s3://{make_bucket(endpoint)}/repo{n}"

    return make


@pytest.fixture(params=REMOTE_KINDS)
def remote_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def remote_url(remote_kind: str, make_remote_url: Callable[[str], str]) -> str:
    """A new, empty remote of each kind (ids ``dir``, ``s3``)."""
    return make_remote_url(remote_kind)
