"""Bulk inserts (snapgit.db.bulk): COPY into PostgreSQL, multi-row INSERTs into MariaDB, and
MariaDB's foreign keys added after a load.

The contract is the one of every write: what is written reads back, through the ordinary scan,
as the same canonical values, and what the database would refuse is refused. Here in particular:
COPY's binary form and its text form give the same rows (binary is taken only when every value
fits), an integer out of its column's range is refused rather than wrapped, and MariaDB's
statements spell every value exactly as PyMySQL's ``escape`` does.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Callable
from typing import Any

import pymysql
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapgit.db import Database, DatabaseError, ForeignKeyViolationError
from snapgit.db.bulk import mysql_insert, mysql_row_formatter
from snapgit.encoding import canonical_value, encode_row
from snapgit.schema import Column, ForeignKey, TableSchema

UTC = dt.UTC

_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
_text = st.text(_chars, max_size=12)
_aware = st.datetimes(min_value=dt.datetime(1001, 1, 1), max_value=dt.datetime(9998, 12, 31), timezones=st.just(UTC))

# the portable types COPY can send in binary form, with values of each
BINARY: list[tuple[str, st.SearchStrategy[Any]]] = [
    ("smallint", st.integers(-(2**15), 2**15 - 1)),
    ("integer", st.integers(-(2**31), 2**31 - 1)),
    ("bigint", st.integers(-(2**63), 2**63 - 1)),
    ("double", st.floats(allow_nan=True)),
    ("boolean", st.booleans()),
    ("text", _text),
    ("varchar(20)", _text),
    ("bytes", st.binary(max_size=12)),
    ("date", st.dates()),
    ("timestamp", st.datetimes(min_value=dt.datetime(1000, 1, 1))),
    ("timestamptz", _aware),
    ("uuid", st.uuids()),
]


def _name(portable: str) -> str:
    return "c_" + "".join(ch if ch.isalnum() else "_" for ch in portable)


def _scan(db: Database, schema: TableSchema) -> list[tuple[Any, ...]]:
    with db.snapshot() as snap:
        (live,) = snap.reflect([schema.name])
        return [r for batch in snap.scan(live, ["id"]) for r in batch]


def _create(db: Database, *schemas: TableSchema, later: bool = False) -> list[tuple[str, ForeignKey]]:
    with db.write() as tx:
        return tx.create_tables(list(schemas), foreign_keys_later=later)


# --- PostgreSQL ---------------------------------------------------------------------------------


def test_copy_in_binary_and_in_text_form_give_the_same_rows(make_db_url: Callable[[str], str]) -> None:
    """Two tables with the same columns, but the second has a numeric column too, which COPY
    sends only as text: every batch goes binary into the first and as text into the second,
    and both read back as written."""
    url = make_db_url("postgresql")
    columns = (Column("id", "integer", False), *(Column(_name(p), p) for p, _ in BINARY))
    binary = TableSchema("bin", columns, ("id",))
    text = TableSchema("txt", (*columns, Column("n", "numeric(10,2)")), ("id",))
    with Database.connect(url) as db:
        _create(db, binary, text)
        values = {_name(p): s for p, s in BINARY}

        @settings(max_examples=30, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(st.lists(st.fixed_dictionaries({n: st.none() | s for n, s in values.items()}), min_size=1, max_size=6))
        def check(dicts: list[dict[str, Any]]) -> None:
            rows = [{**d, "id": i} for i, d in enumerate(dicts)]
            with db.write() as tx:  # what an earlier (failed) example left
                for schema in (binary, text):
                    tx.delete_rows(schema, ["id"], _scan(db, schema))
            with db.write() as tx:
                for schema in (binary, text):
                    tx.insert_rows(schema, [tuple(r.get(n) for n in schema.sorted_names) for r in rows])
            got_binary, got_text = _scan(db, binary), _scan(db, text)
            want = [tuple(canonical_value(r.get(n)) for n in binary.sorted_names) for r in rows]
            assert [encode_row(r) for r in got_binary] == [encode_row(r) for r in want]
            n = text.sorted_names.index("n")
            assert [encode_row(r[:n] + r[n + 1 :]) for r in got_text] == [encode_row(r) for r in want]

        check()


@pytest.mark.parametrize(("portable", "value"), [("integer", 2**31), ("smallint", -(2**15) - 1), ("bigint", 2**63)])
def test_copy_refuses_an_integer_its_column_cannot_hold(
    make_db_url: Callable[[str], str], portable: str, value: int
) -> None:
    """psycopg's binary integer dumpers would wrap the value around; it must be refused, as an
    INSERT refuses it, and nothing written."""
    url = make_db_url("postgresql")
    schema = TableSchema("t", (Column("id", "integer", False), Column("v", portable)), ("id",))
    with Database.connect(url) as db:
        _create(db, schema)
        with pytest.raises(DatabaseError, match="table t"), db.write() as tx:
            tx.insert_rows(schema, [(1, 5), (2, value)])
        assert _scan(db, schema) == []


def test_copy_writes_an_aware_datetime_to_a_timestamp_column_as_its_utc_wall_time(
    make_db_url: Callable[[str], str],
) -> None:
    """As the INSERT it replaces did (a timestamptz parameter cast in the session's zone, UTC):
    the text form would drop the offset."""
    url = make_db_url("postgresql")
    schema = TableSchema("t", (Column("id", "integer", False), Column("at", "timestamp")), ("id",))
    plus2 = dt.timezone(dt.timedelta(hours=2))
    with Database.connect(url) as db:
        _create(db, schema)
        with db.write() as tx:
            tx.insert_rows(schema, [(dt.datetime(2024, 5, 1, 12, 0, tzinfo=plus2), 1), (dt.datetime(2024, 5, 1, 9), 2)])
        assert _scan(db, schema) == [(dt.datetime(2024, 5, 1, 10, 0), 1), (dt.datetime(2024, 5, 1, 9), 2)]


def test_copy_names_the_key_a_foreign_key_misses(make_db_url: Callable[[str], str]) -> None:
    url = make_db_url("postgresql")
    parent = TableSchema("p", (Column("id", "integer", False),), ("id",))
    child = TableSchema(
        "c",
        (Column("id", "integer", False), Column("pid", "integer")),
        ("id",),
        foreign_keys=(ForeignKey(("pid",), "p", ("id",), "fk_c_p"),),
    )
    with Database.connect(url) as db:
        _create(db, parent, child)
        with pytest.raises(ForeignKeyViolationError, match=r"\(pid\)=\(7\)"), db.write() as tx:
            tx.insert_rows(parent, [(1,), (2,)])
            tx.insert_rows(child, [(1, 1), (2, 7)])
        assert _scan(db, parent) == []


# --- PostgreSQL: stored records straight to COPY tuples ----------------------------------------

# values the records path must write as the rows path does (none it may refuse)
_PLAIN: dict[str, st.SearchStrategy[Any]] = {
    **dict(BINARY),
    "smallint": st.integers(-(2**15), 2**15 - 1) | st.sampled_from([-(2**15), 2**15 - 1, 0, -1]),
    "integer": st.integers(-(2**31), 2**31 - 1) | st.sampled_from([-(2**31), 2**31 - 1, 127, 128, -32, -33]),
    "bigint": st.integers(-(2**63), 2**63 - 1) | st.sampled_from([-(2**63), 2**63 - 1, 2**32, -(2**32)]),
    "double": st.floats() | st.sampled_from([-0.0, float("inf"), float("-inf"), 5e-324]),
    "varchar(20)": st.text(_chars, max_size=20),
    "date": st.dates() | st.sampled_from([dt.date.min, dt.date.max, dt.date(2000, 1, 1), dt.date(1999, 12, 31)]),
    "timestamp": st.datetimes() | st.sampled_from([dt.datetime.min, dt.datetime.max, dt.datetime(2000, 1, 1)]),
    "timestamptz": _aware | st.just(dt.datetime(2000, 1, 1, tzinfo=UTC)),
}
# values of another stored type, or beyond what the column or its check takes: the records path
# must leave them to the rows path (which converts them, or refuses them)
_ODD: dict[str, st.SearchStrategy[Any]] = {
    "smallint": st.booleans() | st.sampled_from([2**15, -(2**15) - 1, 2**63, 2**64, -(2**63) - 1]),
    "integer": st.booleans()
    | st.sampled_from([2**31, -(2**31) - 1, 2**70])
    | st.decimals(places=0, min_value=0, max_value=9),
    "bigint": st.booleans() | st.sampled_from([2**63, 2**64 - 1, -(2**63) - 1]),
    "double": st.integers(-5, 5),
    "boolean": st.integers(0, 1),
    "text": st.just("a\x00b") | st.binary(max_size=3) | st.integers(),
    "varchar(20)": st.just("\x00") | st.just("a\x00"),  # (its length is the checker's: below)
    "bytes": st.text(max_size=3),
    "date": st.datetimes() | st.text(max_size=3),
    "timestamp": _aware | st.dates(),
    "timestamptz": st.datetimes(min_value=dt.datetime(1000, 1, 1)) | st.dates(),
    "uuid": st.text(max_size=3) | st.binary(min_size=16, max_size=16),
}


def _pg_text(db: Database, table: str) -> list[str]:
    """The table's rows as PostgreSQL spells them (its own eyes, not snapgit's reader)."""
    with db.snapshot() as snap:
        return [r[0] for r in snap.query(f'SELECT t::text FROM "{table}" t ORDER BY id')]


def test_records_go_into_copy_as_the_rows_path_writes_them(make_db_url: Callable[[str], str]) -> None:
    """Stored records given to ``insert_records`` read back, through PostgreSQL's own text of
    each row, as the same rows given decoded to ``insert_rows``; a batch of plain values is
    always taken, and a batch with any other value is refused whole (nothing written), so that
    the rows path writes or refuses it."""
    from snapgit import native

    if not native.available():
        pytest.skip("the C extension is not built here")
    url = make_db_url("postgresql")
    columns = (Column("id", "integer", False), *(Column(_name(p), p) for p, _ in BINARY))
    stored = TableSchema("stored", columns, ("id",))
    rowwise = TableSchema("rowwise", columns, ("id",))
    with Database.connect(url) as db:
        _create(db, stored, rowwise)

        @settings(
            max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
        )
        @given(
            st.lists(
                st.fixed_dictionaries({_name(p): st.none() | v for p, v in _PLAIN.items()}), min_size=1, max_size=6
            ),
            st.none() | st.sampled_from(sorted(_ODD)),
            st.data(),
        )
        def check(dicts: list[dict[str, Any]], odd: str | None, data: st.DataObject) -> None:
            rows = [
                tuple(canonical_value({**d, "id": i}.get(n)) for n in stored.sorted_names) for i, d in enumerate(dicts)
            ]
            if odd is not None:
                portable = odd
                col = stored.sorted_names.index(_name(portable))
                at = data.draw(st.integers(0, len(rows) - 1))
                value = data.draw(_ODD[portable])
                rows[at] = (*rows[at][:col], value, *rows[at][col + 1 :])
            with db.write() as tx:
                for schema in (stored, rowwise):
                    tx.delete_rows(schema, ["id"], _scan(db, schema))
            joined = b"".join(encode_row(r) for r in rows)
            with db.write() as tx:
                took = tx.insert_records(stored, joined, len(rows), {})
            assert took == (odd is None)
            if took:
                with db.write() as tx:
                    tx.insert_rows(rowwise, rows)
                assert _pg_text(db, "stored") == _pg_text(db, "rowwise")
                assert len(_pg_text(db, "stored")) == len(rows)
            else:
                assert _pg_text(db, "stored") == []

        check()


def test_records_meet_the_checks_of_a_restore_from_another_engine(make_db_url: Callable[[str], str]) -> None:
    """Rows read from SQLite are checked against PostgreSQL's columns before they are written:
    with the checker's limits, an integer beyond the column, a text longer than its varchar
    (in characters, not bytes) is left to the rows path, which names it; a text at the limit
    in multi-byte characters is taken."""
    from snapgit import native
    from snapgit.db.fit import RowChecker

    if not native.available():
        pytest.skip("the C extension is not built here")
    url = make_db_url("postgresql")
    source = TableSchema("t", (Column("id", "bigint", False), Column("s", "varchar(3)")), ("id",))
    target = TableSchema("t", (Column("id", "integer", False), Column("s", "varchar(3)")), ("id",))
    with Database.connect(url) as db:
        _create(db, target)
        limits = RowChecker("postgresql", source, target).plain_limits
        assert limits == {0: ("int", -(2**31), 2**31 - 1), 1: ("text", 3, 0)}
        for rows, taken in (
            ([(1, "ééé"), (2, "日本語")], True),
            ([(1, "abcd")], False),
            ([(1, "a\x00")], False),  # (the rows path names it; PostgreSQL's error would not)
            ([(1, "éééé")], False),
            ([(2**31, "a")], False),
            ([(-(2**31) - 1, "a")], False),
        ):
            with db.write() as tx:
                got = tx.insert_records(target, b"".join(encode_row(r) for r in rows), len(rows), limits)
            assert got is taken, rows
            with db.write() as tx:
                tx.delete_rows(target, ["id"], _scan(db, target))
        # a check that is not plain (a char column's trailing spaces) keeps every row on the rows path
        char = TableSchema("t", (Column("id", "bigint", False), Column("s", "char(3)")), ("id",))
        assert RowChecker("postgresql", char, TableSchema("t", char.columns, ("id",))).plain_limits is None
        with db.write() as tx:
            assert tx.insert_records(target, encode_row((1, "a")), 1, None) is False


def test_records_go_in_as_text_of_the_client_encoding(make_db_url: Callable[[str], str]) -> None:
    """A binary COPY's text is read in the connection's encoding, which is the database's unless
    set: into a LATIN1 database the records (UTF-8) must take the rows path, which encodes each
    value for it. Found by reading back what a restore wrote: 'café' came back as 'cafÃ©'."""
    import psycopg

    url = sa.make_url(make_db_url("postgresql"))
    name = f"{url.database}_latin1"
    admin = url._replace(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE \"{name}\" ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
    try:
        schema = TableSchema("t", (Column("id", "integer", False), Column("s", "varchar(10)")), ("id",))
        with Database.connect(url._replace(database=name).render_as_string(hide_password=False)) as db:
            _create(db, schema)
            rows = [(1, "café"), (2, "naïve")]
            with db.write() as tx:
                assert tx.insert_records(schema, b"".join(encode_row(r) for r in rows), 2, {}) is False
                tx.insert_rows(schema, rows)
            with db.snapshot() as snap:
                assert snap.query("SELECT id, length(s), s = 'café' FROM t ORDER BY id") == [
                    (1, 4, True),
                    (2, 5, False),
                ]
            assert _scan(db, schema) == rows
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_pg_copy_rows_refuses_records_that_are_not_what_a_commit_writes() -> None:
    """Damaged or foreign bytes never become tuples: the rows path decodes them and says why."""
    from snapgit import native

    if not native.available():
        pytest.skip("the C extension is not built here")
    cols = ((native.PG_KINDS["int4"], -(2**31), 2**31 - 1), (native.PG_KINDS["text"], 0, -1))
    good = encode_row([1, "ab"])
    assert native.pg_copy_rows(good, 1, cols) == (
        b"\x00\x02" + b"\x00\x00\x00\x04\x00\x00\x00\x01" + b"\x00\x00\x00\x02ab"
    )
    assert native.pg_copy_rows(good * 2, 2, cols) is not None
    for data, n in (
        (good[:-1], 1),  # cut short
        (good + b"\xc0", 1),  # bytes after the last record
        (good, 2),  # fewer records than said
        (good * 2, 1),  # more
        (encode_row([1, "ab", None]), 1),  # a row of another width
        (encode_row({"a": 1}), 1),  # not a row
        (b"\x92\x01\xd9\x02\xff\xfe", 1),  # a str that is not UTF-8
        (b"\x92\xcf" + (2**63).to_bytes(8, "big") + b"\xa0", 1),  # beyond int64
        (b"\x92\x01\xc1", 1),  # a byte msgpack never writes
    ):
        assert native.pg_copy_rows(data, n, cols) is None, data
    assert native.pg_copy_rows(b"", 0, cols) == b""
    # a date or a datetime no Python value has (decoding it fails): the rows path names the damage
    date = ((native.PG_KINDS["date"], 0, 0),)
    stamp = ((native.PG_KINDS["timestamp"], 0, 0),)
    assert native.pg_copy_rows(encode_row([dt.date.max]), 1, date) is not None
    assert native.pg_copy_rows(b"\x91\xd6\x03" + (0).to_bytes(4, "big"), 1, date) is None
    assert native.pg_copy_rows(b"\x91\xd6\x03" + (3652060).to_bytes(4, "big"), 1, date) is None
    assert native.pg_copy_rows(encode_row([dt.datetime.max]), 1, stamp) is not None
    too_late = (dt.datetime.max - dt.datetime.min) // dt.timedelta(microseconds=1) + 1
    assert native.pg_copy_rows(b"\x91\xd7\x05" + too_late.to_bytes(8, "big"), 1, stamp) is None
    assert native.pg_copy_rows(b"\x91\xd7\x05" + (2**64 - 1).to_bytes(8, "big"), 1, stamp) is None


# --- SQLite: stored records straight to parameters ----------------------------------------------

# the portable types whose SQLite converter sqlite_params knows, with values it must take
_SQ_PLAIN: dict[str, st.SearchStrategy[Any]] = {
    "integer": st.integers(-(2**63), 2**63 - 1) | st.booleans(),
    "double": st.floats(allow_nan=False) | st.integers(-9, 9) | st.sampled_from([-0.0, float("inf")]),
    "text": st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
    "bytes": st.binary(max_size=12),
    "date": st.dates() | st.sampled_from([dt.date.min, dt.date.max, dt.date(2024, 2, 29)]) | st.text(max_size=4),
    "timestamp": st.datetimes() | st.sampled_from([dt.datetime.min, dt.datetime.max]) | st.integers(0, 9),
    "timestamptz": st.datetimes(timezones=st.just(UTC)) | st.just(dt.datetime(1, 1, 1, tzinfo=UTC)),
}
# values the rows path converts otherwise, or refuses: sqlite_params must leave them to it
_SQ_ODD: dict[str, st.SearchStrategy[Any]] = {
    "integer": st.sampled_from([2**63, 2**64 - 1, 2**70]) | st.decimals(places=1, allow_nan=False),
    "double": st.just(float("nan")),
    "text": st.times() | st.uuids() | st.timedeltas(-dt.timedelta(days=30), dt.timedelta(days=30)),
    "date": st.datetimes(),
    "timestamp": st.dates(),
    "timestamptz": st.dates(),
}


def _quoted(db: Database, table: str, names: list[str]) -> list[tuple[Any, ...]]:
    """Each value as SQLite itself quotes it (its storage class included)."""
    with db.snapshot() as snap:
        cols = ", ".join(f'quote("{n}")' for n in names)
        return snap.query(f'SELECT {cols} FROM "{table}" ORDER BY id')


def test_records_go_into_sqlite_as_the_rows_path_writes_them(make_db_url: Callable[[str], str]) -> None:
    """Stored records given to ``insert_records`` on SQLite read back, value by value as
    SQLite quotes them, as the decoded rows given to ``insert_rows``; a batch of plain values
    is always taken, one with any other value refused whole and nothing written."""
    from snapgit import native

    if not native.available():
        pytest.skip("the C extension is not built here")
    url = make_db_url("sqlite")
    columns = (Column("id", "integer", False), *(Column(_name(p), p) for p in _SQ_PLAIN))
    stored = TableSchema("stored", columns, ("id",))
    rowwise = TableSchema("rowwise", columns, ("id",))
    with Database.connect(url) as db:
        _create(db, stored, rowwise)

        @settings(
            max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
        )
        @given(
            st.lists(
                st.fixed_dictionaries({_name(p): st.none() | v for p, v in _SQ_PLAIN.items()}), min_size=1, max_size=6
            ),
            st.none() | st.sampled_from(sorted(_SQ_ODD)),
            st.data(),
        )
        def check(dicts: list[dict[str, Any]], odd: str | None, data: st.DataObject) -> None:
            rows = [
                tuple(canonical_value({**d, "id": i}.get(n)) for n in stored.sorted_names) for i, d in enumerate(dicts)
            ]
            if odd is not None:
                col = stored.sorted_names.index(_name(odd))
                at = data.draw(st.integers(0, len(rows) - 1))
                rows[at] = (*rows[at][:col], data.draw(_SQ_ODD[odd]), *rows[at][col + 1 :])
            with db.write() as tx:
                for schema in (stored, rowwise):
                    tx.delete_rows(schema, ["id"], _scan(db, schema))
            with db.write() as tx:
                took = tx.insert_records(stored, b"".join(encode_row(r) for r in rows), len(rows), {})
            assert took == (odd is None)
            if took:
                with db.write() as tx:
                    tx.insert_rows(rowwise, rows)
                names = list(stored.sorted_names)
                assert _quoted(db, "stored", names) == _quoted(db, "rowwise", names)
            else:
                assert _scan(db, stored) == []

        check()


def test_sqlite_params_leave_other_columns_and_damage_to_the_rows_path(make_db_url: Callable[[str], str]) -> None:
    """A table with a column whose converter sqlite_params does not know (numeric, a UUID, an
    array) is never taken; nor are records that are cut short or of another width."""
    from snapgit import native

    if not native.available():
        pytest.skip("the C extension is not built here")
    url = make_db_url("sqlite")
    with Database.connect(url) as db:
        for portable, value in (
            ("numeric(9,2)", decimal.Decimal("1.50")),
            ("uuid", uuid.UUID(int=5)),
            ("array<integer>", [1]),
        ):
            schema = TableSchema(
                "t_" + _name(portable), (Column("id", "integer", False), Column("v", portable)), ("id",)
            )
            _create(db, schema)
            with db.write() as tx:
                assert tx.insert_records(schema, encode_row([1, value]), 1, {}) is False
        kinds = bytes([native.SQ_ANY, native.SQ_DATETIME])
        good = encode_row([1, dt.datetime(2024, 1, 2, 3, 4, 5, 6)])
        assert native.sqlite_params(good, 1, kinds) == [(1, "2024-01-02 03:04:05.000006")]
        for data, n in (
            (good[:-1], 1),
            (good + b"\xc0", 1),
            (good, 2),
            (encode_row([1, 2, 3]), 1),
            (b"\x92\x01\xc1", 1),
        ):
            assert native.sqlite_params(data, n, kinds) is None, data
        too_late = (dt.datetime.max - dt.datetime.min) // dt.timedelta(microseconds=1) + 1
        assert native.sqlite_params(b"\x92\x01\xd7\x05" + too_late.to_bytes(8, "big"), 1, kinds) is None
        day = bytes([native.SQ_DATE])
        assert native.sqlite_params(b"\x91\xd6\x03" + (0).to_bytes(4, "big"), 1, day) is None
        assert native.sqlite_params(encode_row([dt.date.max]), 1, day) == [("9999-12-31",)]


# --- MariaDB ------------------------------------------------------------------------------------

_MY_VALUES = (
    st.none()
    | st.integers(-(2**64), 2**64)
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.binary(max_size=8)
    | st.decimals(allow_nan=False, allow_infinity=False, places=3)
    | st.dates()
    | st.datetimes()
    | st.times()
    | st.timedeltas(-dt.timedelta(days=30), dt.timedelta(days=30))
)
_MY_TYPES = [
    "integer",
    "bigint",
    "varchar(10)",
    "text",
    "char(3)",
    "date",
    "timestamp",
    "double",
    "json",
    "numeric(9,3)",
]


def _raw(url: str) -> pymysql.Connection:
    u = sa.make_url(url)
    return pymysql.connect(
        host=u.host, port=u.port or 3306, user=u.username, password=u.password or "", database=u.database,
        charset="utf8mb4",
    )  # fmt: skip


def test_mariadb_rows_are_spelled_as_pymysql_spells_them(make_db_url: Callable[[str], str]) -> None:
    """Whatever the value and the column, the inline formatting gives PyMySQL's own literal
    (which the old executemany sent), so the server reads the same value."""
    conn = _raw(make_db_url("mariadb"))
    try:
        from pymysql.converters import escape_string

        @settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
        @given(st.lists(st.tuples(st.sampled_from(_MY_TYPES), _MY_VALUES), min_size=1, max_size=8))
        def check(cells: list[tuple[str, Any]]) -> None:
            fmt = mysql_row_formatter([t for t, _ in cells], conn.escape, escape_string)
            row = tuple(v for _, v in cells)
            want = "(" + ",".join(conn.escape(v) for v in row) + ")"
            assert fmt([row, row]) == [want, want]
            # with the server's NO_BACKSLASH_ESCAPES (escape_text None), text goes through escape
            assert mysql_row_formatter([t for t, _ in cells], conn.escape, None)([row]) == [want]

        check()
    finally:
        conn.close()


def test_mariadb_inserts_are_cut_into_statements_that_fit(make_db_url: Callable[[str], str]) -> None:
    """Rows of about 1 KB with a budget of 16 KB a statement: many statements, every row in."""
    url = make_db_url("mariadb")
    conn = _raw(url)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE t (id INT PRIMARY KEY, s TEXT) ENGINE=InnoDB")
        rows = [(i, "é" * 500 + str(i)) for i in range(200)]
        fmt = mysql_row_formatter(["integer", "text"], conn.escape, None)
        conn.begin()
        assert mysql_insert(conn, "INSERT INTO t (id, s) VALUES ", fmt(rows), 16 * 1024) == 200
        conn.commit()
        with conn.cursor() as cur:
            cur.execute("SELECT id, s FROM t ORDER BY id")
            assert list(cur.fetchall()) == rows
    finally:
        conn.close()


def _family() -> tuple[TableSchema, TableSchema]:
    parent = TableSchema("p", (Column("id", "integer", False), Column("code", "varchar(8)", False)), ("id", "code"))
    child = TableSchema(
        "c",
        (Column("id", "integer", False), Column("pid", "integer"), Column("pcode", "varchar(8)")),
        ("id",),
        foreign_keys=(ForeignKey(("pid", "pcode"), "p", ("id", "code"), "fk_c_p"),),
    )
    return parent, child


def test_mariadb_foreign_keys_added_after_a_load_check_the_rows_first(make_db_url: Callable[[str], str]) -> None:
    url = make_db_url("mariadb")
    parent, child = _family()
    with Database.connect(url) as db:
        later = _create(db, parent, child, later=True)
        assert [(t, fk.name) for t, fk in later] == [("c", "fk_c_p")]
        with db.write() as tx:
            tx.insert_rows(parent, [("a", 1)])
            # a NULL in a key column is no reference (MATCH SIMPLE); (1, 'b') has no parent
            tx.insert_rows(child, [(1, "a", 1), (2, None, 1), (3, "b", 1)])
        with pytest.raises(ForeignKeyViolationError, match=r"\(pid, pcode\)=\(1, 'b'\)"), db.write() as tx:
            tx.add_foreign_keys(later)
        with db.snapshot() as snap:
            assert [s.foreign_keys for s in snap.reflect(["c"])] == [()]  # not added
        with db.write() as tx:
            tx.delete_rows(child, ["id"], [(3, "b", 1)])
        with db.write() as tx:
            tx.add_foreign_keys(later)
        with db.snapshot() as snap:
            assert [fk.name for s in snap.reflect(["c"]) for fk in s.foreign_keys] == ["fk_c_p"]
        # and it is enforced from now on
        with pytest.raises(ForeignKeyViolationError), db.write() as tx:
            tx.insert_rows(child, [(4, "z", 9)])


def test_mariadb_decimal_and_time_values_keep_their_spelling(make_db_url: Callable[[str], str]) -> None:
    """Values that go through PyMySQL's escape (not inline) read back as written."""
    url = make_db_url("mariadb")
    schema = TableSchema(
        "t",
        (Column("id", "integer", False), Column("d", "numeric(9,3)"), Column("t", "time"), Column("u", "uuid")),
        ("id",),
    )
    u = uuid.UUID(int=7, version=4)
    rows = [(decimal.Decimal("-12.500"), 1, dt.time(1, 2, 3, 4), u), (None, 2, None, None)]
    with Database.connect(url) as db:
        _create(db, schema)
        with db.write() as tx:
            tx.insert_rows(schema, rows)
        assert sorted(_scan(db, schema), key=lambda r: r[1]) == rows


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_background_inserts_fail_at_the_next_call_or_at_the_end(make_db_url: Callable[[str], str], kind: str) -> None:
    """An insert sent in the background (MariaDB: by a helper thread; PostgreSQL: into a COPY
    left open) that fails raises its own error, naming its table and key, at the next call on
    the transaction, or when the block ends; nothing is written."""
    url = make_db_url(kind)
    parent, child = _family()
    with Database.connect(url) as db:
        _create(db, parent, child)
        with pytest.raises(ForeignKeyViolationError, match=r"\(pid, pcode\)=\(2, '?a'?\)"), db.write() as tx:
            tx.insert_rows(parent, [("a", 1)], background=True)
            tx.insert_rows(child, [(1, "a", 1), (2, "a", 2)], background=True)  # no parent (2, 'a')
            tx.insert_rows(parent, [("b", 2)])  # too late: the child's batch failed before it
        with pytest.raises(DatabaseError, match="cannot insert rows into table p"), db.write() as tx:
            tx.insert_rows(parent, [("a", 1)], background=True)
            tx.insert_rows(parent, [("a", 1)], background=True)  # a duplicate key, found at the end
        with db.write() as tx:  # and a clean run writes everything
            for i in range(3):
                tx.insert_rows(parent, [("x", i)], background=True)
        assert sorted(_scan(db, parent)) == [("x", 0), ("x", 1), ("x", 2)]
        assert _scan(db, child) == []


def test_postgresql_updates_go_through_a_temporary_table_and_each_key_must_match_one_row(
    make_db_url: Callable[[str], str],
) -> None:
    """Keys without NULLs are updated by COPY into a temporary table and one UPDATE ... FROM:
    every key must still find exactly one row, or nothing changes and the key is named."""
    url = make_db_url("postgresql")
    schema = TableSchema(
        "t",
        (Column("name", "text", False), Column("n", "integer", False), Column("v", "json"), Column("w", "double")),
        ("name", "n"),
    )
    from snapgit.db import RowMatchError
    from snapgit.encoding import Json

    rows = [(f"k{i % 7}", i, Json({"i": i}), float(i)) for i in range(3000)]
    order = schema.sorted_names  # n, name, v, w
    as_sorted = [tuple(dict(zip(("name", "n", "v", "w"), r, strict=True))[c] for c in order) for r in rows]
    with Database.connect(url) as db:
        _create(db, schema)
        with db.write() as tx:
            tx.insert_rows(schema, as_sorted)
        changed = [(n, name, Json([n]), -w) for n, name, _v, w in as_sorted[::3]]
        missing = (5000, "k1", Json(None), 0.0)
        with pytest.raises(RowMatchError, match=r"\(name, n\)=\('k1', 5000\) is not there"), db.write() as tx:
            tx.update_rows(schema, ["name", "n"], [changed[0], missing, *changed[1:]])
        with db.snapshot() as snap:
            (live,) = snap.reflect(["t"])
            assert sorted(r for b in snap.scan(live, ["name", "n"]) for r in b) == sorted(as_sorted)
        with db.write() as tx:
            tx.update_rows(schema, ["name", "n"], changed)
        want = {r[:2]: r for r in as_sorted} | {r[:2]: r for r in changed}
        with db.snapshot() as snap:
            got = [r for b in snap.scan(live, ["name", "n"]) for r in b]
        assert sorted(encode_row(r) for r in got) == sorted(encode_row(r) for r in want.values())
