"""snapgit.db.fit against the databases themselves: a value is refused exactly when the column,
written by the driver in the server's strict mode, would refuse it or give back another value.

One table per engine holds a column of each checked kind; hypothesis draws a column and a value,
the value is inserted with the driver's own parameters and read back, and the check's verdict
must agree with what the server did (an error, or a value read back that differs)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapgit.db import Database
from snapgit.db.fit import checker
from snapgit.schema import Column

texts = st.text(alphabet=st.sampled_from("ab \u00e9\u20ac\u0101\U0001f36e"), max_size=7)
floats = st.one_of(st.floats(width=64), st.sampled_from([0.0, -0.0, 0.1, 0.5, float("nan"), float("inf")]))
_any_time = st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2100, 1, 1))
datetimes = st.one_of(_any_time, _any_time.map(lambda d: d.replace(microsecond=d.microsecond // 10000 * 10000)))

# engine -> column name -> (native type, SELECT expression, source portable type, values)
COLUMNS: dict[str, dict[str, tuple[str, str, str, st.SearchStrategy[Any]]]] = {
    "mariadb": {
        "d": ("decimal(8,3)", "d", "numeric", st.decimals(min_value=-(10**6), max_value=10**6, places=4)),
        "v3": ("varchar(5) CHARACTER SET utf8mb3", "v3", "text", texts),
        "v4": ("varchar(5) CHARACTER SET utf8mb4", "v4", "text", texts),
        "l1": ("varchar(5) CHARACTER SET latin1", "l1", "text", texts),
        "c": ("char(3) CHARACTER SET utf8mb4", "c", "text", texts),
        "f": ("double", "f", "double", floats),
        "r": ("float", "CAST(r AS DOUBLE)", "double", floats),
        "ts": ("timestamp(6) NULL", "ts", "timestamp", datetimes),
        "dt2": ("datetime(2)", "dt2", "timestamp", datetimes),
        "si": ("smallint", "si", "integer", st.integers(-40000, 40000)),
        "tu": ("tinyint unsigned", "tu", "integer", st.integers(-300, 300)),
        "b1": ("tinyint(1)", "b1", "boolean", st.one_of(st.booleans(), st.integers(-200, 200))),
        "bt": ("bit(8)", "CAST(bt AS UNSIGNED)", "bigint", st.integers(-5, 300)),
        "tm": (
            "time(6)",
            "tm",
            "time",
            st.timedeltas(min_value=-dt.timedelta(hours=900), max_value=dt.timedelta(hours=900)),
        ),
    },
    "postgresql": {
        "d": ("numeric(8,3)", "d", "numeric", st.decimals(min_value=-(10**6), max_value=10**6, places=4)),
        "v": ("varchar(5)", "v", "text", st.text(alphabet=st.sampled_from("ab \x00\u00e9"), max_size=7)),
        "c": ("char(3)", "c::text", "text", texts),
        "si": ("smallint", "si", "integer", st.integers(-40000, 40000)),
    },
}


def same(got: Any, want: Any) -> bool:
    if isinstance(want, float):
        return isinstance(got, float) and (got == want and math.copysign(1, got) == math.copysign(1, want))
    if isinstance(want, dt.datetime) and isinstance(got, dt.datetime):
        return got.replace(tzinfo=None) == want
    return bool(got == want)


@pytest.mark.parametrize("kind", list(COLUMNS))
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fit_refuses_exactly_what_the_server_would_refuse_or_change(
    kind: str, data: st.DataObject, make_db_url: Callable[[str], str], make_engine: Callable[[str], sa.Engine]
) -> None:
    url = prepared(kind, make_db_url, make_engine)
    name = data.draw(st.sampled_from(sorted(COLUMNS[kind])))
    native, select, source, values = COLUMNS[kind][name]
    value = data.draw(values)
    dialect, target = TARGETS[url][name]
    check = checker(dialect, Column(name, source), target)
    refused = check(value) if check is not None else None
    engine = ENGINES[url]
    q = (lambda n: f"`{n}`") if kind == "mariadb" else (lambda n: f'"{n}"')
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM fits")
            conn.exec_driver_sql(f"INSERT INTO fits (id, {q(name)}) VALUES (1, %(v)s)", {"v": value})
            got = conn.exec_driver_sql(f"SELECT {select} FROM fits").scalar()
        server = None if same(got, value) else f"read back {got!r}"
    except sa.exc.DBAPIError as exc:
        server = f"refused: {exc.orig}"
    except (ValueError, TypeError) as exc:  # the driver could not even send it (PyMySQL and NaN)
        server = f"not sent: {exc}"
    assert (refused is None) == (server is None), (name, value, refused, server)


TARGETS: dict[str, dict[str, tuple[str, Column]]] = {}
ENGINES: dict[str, sa.Engine] = {}
_MADE: dict[str, str] = {}


def prepared(kind: str, make_db_url: Callable[[str], str], make_engine: Callable[[str], sa.Engine]) -> str:
    """One table per test run and engine (hypothesis calls the test many times with the same
    fixtures; MariaDB's default sql_mode is strict), and its columns as snapgit reflects them."""
    url = _MADE.get(kind)
    if url is not None and url in ENGINES:
        return url
    url = make_db_url(kind)
    engine = make_engine(url)
    q = (lambda n: f"`{n}`") if kind == "mariadb" else (lambda n: f'"{n}"')
    cols = ", ".join(f"{q(n)} {spec[0]}" for n, spec in COLUMNS[kind].items())
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE fits (id integer primary key, {cols})")
    with Database.connect(url) as db, db.snapshot() as snap:
        (schema,) = snap.reflect(["fits"])
        dialect = "mysql" if kind == "mariadb" else kind
        TARGETS[url] = {c.name: (dialect, c) for c in schema.columns}
    ENGINES[url] = engine
    _MADE[kind] = url
    return url
