"""snapgit.db.fit: the column-at-once fast checks never pass a value the value-by-value check
refuses, and the value-by-value checks say why in words (the refusals themselves are tested on
real databases in tests/test_cross_engine.py)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapgit.db.fit import RowChecker, ValueDoesNotFitError, checker, fast_check
from snapgit.schema import Column, TableSchema

# (dialect, target column): portable type and the native spelling the target reports
TARGETS = [
    ("postgresql", Column("v", "smallint", native="smallint")),
    ("postgresql", Column("v", "bigint", native="bigint")),
    ("postgresql", Column("v", "double", native="double precision")),
    ("postgresql", Column("v", "varchar(5)", native="character varying(5)")),
    ("postgresql", Column("v", "char(3)", native="character(3)")),
    ("postgresql", Column("v", "text", native="text")),
    ("postgresql", Column("v", "date", native="date")),
    ("postgresql", Column("v", "uuid", native="uuid")),
    ("mysql", Column("v", "smallint", native="tinyint(4)")),
    ("mysql", Column("v", "bigint", native="bigint(20) unsigned")),
    ("mysql", Column("v", "double", native="double")),
    ("mysql", Column("v", "varchar(5)", native="varchar(5) CHARACTER SET utf8mb3 COLLATE utf8mb3_general_ci")),
    ("mysql", Column("v", "text", native="tinytext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")),
    ("mysql", Column("v", "text", native="longtext CHARACTER SET latin1 COLLATE latin1_swedish_ci")),
    ("mysql", Column("v", "timestamp", native="datetime(6)")),
    ("mysql", Column("v", "timestamptz", native="timestamp(6)")),
    ("sqlite", Column("v", "integer", native="INTEGER")),
    ("sqlite", Column("v", "double", native="REAL")),
    ("sqlite", Column("v", "text", native="TEXT")),
]
SOURCES = ["smallint", "bigint", "double", "text", "varchar(5)", "char(3)", "date", "timestamp", "timestamptz", "uuid"]

KINDS_OF_VALUES = [
    st.integers(min_value=-(1 << 65), max_value=1 << 65),
    st.integers(min_value=-40000, max_value=40000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.5, float("nan"), float("inf")]),
    st.text(alphabet=st.sampled_from("ab \x00\u00e9\u20ac\U0001f36e"), max_size=8),
    st.text(alphabet=st.sampled_from("ab\u00e9"), min_size=60, max_size=300),
    st.binary(max_size=8),
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)),
    st.datetimes(timezones=st.just(dt.UTC)),
    st.dates(),
    st.uuids(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.booleans(),
]
# a column: values of one kind (and NULLs), or of any kinds mixed
columns = st.one_of(
    st.sampled_from(KINDS_OF_VALUES).flatmap(lambda kind: st.lists(st.one_of(st.none(), kind), max_size=20)),
    st.lists(st.one_of(st.none(), *KINDS_OF_VALUES), max_size=20),
)


@settings(max_examples=10 * settings.default.max_examples)
@given(target=st.sampled_from(TARGETS), data=st.data(), column=columns)
def test_the_fast_check_passes_only_columns_whose_every_value_fits(
    target: tuple[str, Column], data: st.DataObject, column: list[object]
) -> None:
    dialect, col = target
    source = data.draw(st.sampled_from([col.type, *SOURCES]))
    src = Column("v", source)
    one = checker(dialect, src, col)
    fast = fast_check(dialect, src, col)
    if one is None or fast is None:
        return
    if fast(column):
        refused = [(v, one(v)) for v in column if v is not None and one(v) is not None]
        assert not refused


@pytest.mark.parametrize(
    ("dialect", "target", "source", "value", "words"),
    [
        ("mysql", Column("v", "double", native="double"), "double", float("nan"), "has no NaN"),
        ("sqlite", Column("v", "double", native="REAL"), "double", float("nan"), "would store NULL"),
        ("sqlite", Column("v", "double", native="REAL"), "double", -0.0, "-0.0"),
        ("mysql", Column("v", "real", native="float"), "double", 0.1, "4-byte float"),
        ("mysql", Column("v", "numeric(65,30)", native="decimal(65,30)"), "numeric", Decimal("1e40"), "35 digits"),
        ("postgresql", Column("v", "numeric(5,2)", native="numeric(5,2)"), "numeric", Decimal("1.005"), "rounded"),
        ("postgresql", Column("v", "numeric(5,2)", native="numeric(5,2)"), "numeric", Decimal("1.5000"), None),
        ("sqlite", Column("v", "numeric", native="NUMERIC"), "numeric", Decimal("1.2345678901234567891"), "15 to 17"),
        ("sqlite", Column("v", "numeric", native="NUMERIC"), "numeric", Decimal("12345678901234567891"), "64 bits"),
        ("sqlite", Column("v", "numeric", native="NUMERIC"), "numeric", Decimal("0.1"), None),
        ("sqlite", Column("v", "numeric", native="NUMERIC"), "numeric", Decimal("NaN"), None),
        ("postgresql", Column("v", "char(3)", native="character(3)"), "text", "ab ", "trailing spaces"),
        ("mysql", Column("v", "bytes", native="varbinary(2)"), "bytes", b"abc", "2 bytes"),
        ("mysql", Column("v", "bytes", native="binary(4)"), "bytes", b"ab", "pads"),
        (
            "mysql",
            Column("v", "timestamp", native="datetime"),
            "timestamp",
            dt.datetime(2020, 1, 1, 0, 0, 0, 5),
            "rounded",
        ),
        ("mysql", Column("v", "date", native="date"), "date", dt.date(999, 1, 1), "1000 to 9999"),
        ("mysql", Column("v", "bigint", native="bigint"), "interval", dt.timedelta(days=999999999), "microseconds"),
        (
            "mysql",
            Column("v", "text", native="longtext CHARACTER SET latin1 COLLATE latin1_swedish_ci"),
            "text",
            "\u20ac\u0101",
            "latin1 has no '\u0101'",
        ),
        ("postgresql", Column("v", "uuid", native="uuid"), "uuid", "not-a-uuid", "holds UUIDs"),
        ("postgresql", Column("v", "uuid", native="uuid"), "uuid", uuid.UUID(int=5), None),
        # what MariaDB itself holds and snapgit reads in another form fits MariaDB again
        ("mysql", Column("v", "boolean", native="tinyint(1)"), "boolean", 2, None),
        ("mysql", Column("v", "boolean", native="tinyint(1)"), "boolean", 300, "-128 to 127"),
        ("postgresql", Column("v", "boolean", native="boolean"), "boolean", 2, "true and false"),
        ("mysql", Column("v", "bigint", native="bit(64)"), "bigint", 2**64 - 1, None),
        ("mysql", Column("v", "bigint", native="bit(8)"), "bigint", 256, "0 to 255"),
        ("mysql", Column("v", "time", native="time(6)"), "time", dt.timedelta(hours=-838), None),
        ("mysql", Column("v", "time", native="time(6)"), "time", dt.timedelta(hours=839), "838:59:59"),
        ("mysql", Column("v", "date", native="date"), "date", "0000-00-00", None),
        ("mysql", Column("v", "timestamp", native="datetime"), "timestamp", "0000-00-00 00:00:00", None),
        ("mysql", Column("v", "date", native="date"), "date", "0044-03-15 BC", "kept as text"),
    ],
)
def test_each_check_says_why(dialect: str, target: Column, source: str, value: object, words: str | None) -> None:
    src = TableSchema("t", (Column("id", "integer"), Column("v", source)), ("id",))
    tgt = TableSchema("t", (Column("id", "integer"), target), ("id",))
    check = RowChecker(dialect, src, tgt)
    if words is None:
        check.check([(7, value)])
        return
    with pytest.raises(ValueDoesNotFitError) as caught:
        check.check([(7, value)])
    message = str(caught.value)
    assert message.startswith("table t, column v, key (id=7): the value "), message
    assert words in message, message
    assert "\n" not in message


@pytest.mark.parametrize(("dialect", "target"), [t for t in TARGETS if "(" in t[1].type and "char" in t[1].type])
def test_text_one_character_too_long_is_looked_at(dialect: str, target: Column) -> None:
    n = int(target.type.split("(")[1].rstrip(")"))
    src = Column("v", "text")
    fast = fast_check(dialect, src, target)
    one = checker(dialect, src, target)
    assert one is not None and one("a" * n) is None and one("a" * (n + 1)) is not None
    assert fast is not None and fast(["a" * n]) is (dialect == "postgresql") and fast(["a" * (n + 1)]) is False


@pytest.mark.parametrize("dialect", ["sqlite", "mysql"])
def test_huge_finite_floats_go_to_the_value_by_value_check(dialect: str) -> None:
    """Their sum overflows (math.fsum raises rather than return inf): the fast check declines,
    and the values, which fit, pass one by one."""
    src = Column("x", "double", native="DOUBLE")
    fast = fast_check(dialect, src, src)
    assert fast is not None
    assert fast([1.7e308, 1.7e308]) is False
    schema = TableSchema("t", (Column("id", "integer", nullable=False), src), ("id",))
    RowChecker(dialect, schema, schema).check([[1, 1.7e308], [2, 1.7e308]])
