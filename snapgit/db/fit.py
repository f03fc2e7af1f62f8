"""Whether a value fits a column of another database: refuse what it would not hold exactly.

A restore writes values read from one database into columns of another (``restore --into``
across engines, or a commit restored into a live database whose columns differ from the ones it
was read from). Each engine refuses some values, or worse, takes them and keeps something else:
MariaDB has no NaN and no BC dates, its TIMESTAMP ends in 2038 and its DECIMAL at 65 digits, a
``utf8mb3`` column cannot hold a 4-byte character; PostgreSQL text cannot hold NUL and its
``varchar(n)`` checks its length where SQLite's does not; SQLite stores NaN as NULL. So before
rows are written, every value is checked against the column it goes into, as the target
database describes it (a schema reflected from it: portable type and native spelling), and the
first one that does not fit stops the restore with one line naming the table, the column, the
row's key, the value and why (:class:`ValueDoesNotFitError`), before anything is written.

What is checked, by the target column (the source column's portable type says what the value
is; a value of another Python type is one the source kept as its driver returned it):

* integers: the target's range (MariaDB by its native type, signed or unsigned);
* floats: NaN, infinities and -0.0 where the target has none (SQLite, MariaDB), and a MariaDB
  ``FLOAT`` takes only values a float4 holds;
* numerics: NaN and infinities, and the digits before and after the point that a ``numeric(p,s)``
  or ``DECIMAL(p,s)`` holds (a value that would be rounded is refused; trailing zeros are not
  digits that matter);
* text: the length of ``varchar(n)``/``char(n)`` and of MariaDB's text and blob types, trailing
  spaces in a ``char(n)`` (dropped when read), NUL in PostgreSQL text, and the character set of a
  MariaDB column (``utf8mb3``: no 4-byte characters; ``latin1``, ``ascii``);
* dates and times: a value the source kept as text (a BC date, ``infinity``, an interval with
  months) goes only into PostgreSQL, which parses it (and refuses what it cannot parse), or
  SQLite, which keeps it; MariaDB's ``DATETIME`` holds years 1000 to 9999, ``TIMESTAMP`` the
  times after 1970-01-01 00:00:00 up to 2038-01-19 03:14:07.999999 UTC, and both only the
  fractional digits they were declared with;
* an interval going into a ``bigint`` of microseconds: a timedelta within 64 bits;
* JSON: PostgreSQL's ``jsonb`` cannot hold ``\\u0000``, and no target's JSON holds NaN;
* a value the source kept as another type (text in a SQLite INTEGER column) goes only where the
  target keeps it too: SQLite, or a text column of any engine when it is text.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import math
import re
import struct
import uuid
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

from snapgit.db.errors import DatabaseError
from snapgit.encoding import Json, Spelled
from snapgit.jsonvalue import to_text
from snapgit.native import ints_fit
from snapgit.schema import Column, TableSchema

__all__ = ["ValueDoesNotFitError", "RowChecker", "PlainLimit", "checker", "fast_check", "plain_limit"]

Check = Callable[[Any], "str | None"]

_INT_RANGES = {"smallint": 16, "integer": 32, "bigint": 64}
_MY_INTS = {"tinyint": 8, "smallint": 16, "mediumint": 24, "int": 32, "integer": 32, "bigint": 64}
_MY_TEXT_BYTES = {"tinytext": 255, "text": 65535, "mediumtext": 16777215, "longtext": 4294967295}
_MY_BLOB_BYTES = {"tinyblob": 255, "blob": 65535, "mediumblob": 16777215, "longblob": 4294967295}
_TIMESTAMP_MIN = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)  # exclusive: 0 is MariaDB's zero date
_TIMESTAMP_MAX = _dt.datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=_dt.UTC)
_MY_TIME_MAX = _dt.timedelta(hours=838, minutes=59, seconds=59, microseconds=999999)
# date and time text MariaDB itself writes: what its driver returns for a zero date ('0000-00-00')
_MY_OWN_TEXT = re.compile(r"\d{4}-\d\d-\d\d(?: \d\d:\d\d:\d\d(?:\.\d{1,6})?)?")
_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MariaDB/MySQL"}


class ValueDoesNotFitError(DatabaseError):
    """A value the target column cannot hold exactly; raised before anything is written."""

    def __init__(self, table: str, column: str, key: str, value: Any, reason: str, target: str) -> None:
        super().__init__(
            f"table {table}, column {column}, {key}: the value {to_text(value, 40)} does not fit: {reason}",
            hint=f"nothing was written; change the value, or restore into a database that holds it ({target})",
        )
        self.table = table
        self.column = column
        self.key = key
        self.value = value
        self.reason = reason


def _args(spelled: str) -> list[int]:
    m = re.search(r"\((\d+)(?:\s*,\s*(-?\d+))?\)", spelled)
    return [int(g) for g in m.groups() if g is not None] if m else []


def _base(portable: str) -> str:
    return portable.split("(", 1)[0]


def _int_range(bits: int, unsigned: bool = False) -> tuple[int, int]:
    return (0, (1 << bits) - 1) if unsigned else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def _mysql_int_range(native: str) -> tuple[int, int]:
    """The values a MariaDB/MySQL integer column (its lower-case ``COLUMN_TYPE``) holds."""
    name = native.split("(", 1)[0].split(" ", 1)[0]
    if name == "bit":  # bit(n): n bits, unsigned
        return _int_range(_args(native)[0] if _args(native) else 1, True)
    return _int_range(_MY_INTS.get(name, 64), " unsigned" in native)


def _check_int(lo: int, hi: int, what: str) -> Check:
    def check(v: Any) -> str | None:
        if type(v) is bool:
            return None
        if not isinstance(v, int):
            return f"{what} holds integers, and this is {_kind(v)}"
        return None if lo <= v <= hi else f"{what} holds {lo} to {hi}"

    return check


def _kind(v: Any) -> str:
    names = {str: "text", bytes: "bytes", float: "a float", int: "an integer", decimal.Decimal: "a decimal"}
    return names.get(type(v), type(v).__name__)


def _digits(v: decimal.Decimal) -> tuple[int, int]:
    """(digits before the point, significant digits after it) of a finite decimal."""
    sign, digits, exp = v.normalize().as_tuple()
    assert isinstance(exp, int)
    if digits == (0,):
        return 0, 0
    return max(0, len(digits) + exp), max(0, -exp)


def _sqlite_holds(d: decimal.Decimal) -> bool:
    """Whether SQLite's NUMERIC affinity keeps ``d``: as an integer, or as the float that reads
    back as the same number (what :mod:`snapgit.db.params` writes)."""
    if d == d.to_integral_value() and -(1 << 63) <= int(d) < 1 << 63:
        return True
    try:
        return decimal.Decimal(repr(float(d))) == d
    except (OverflowError, decimal.InvalidOperation):
        return False


def _check_numeric(precision: int | None, scale: int | None, dialect: str, what: str) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, (int, decimal.Decimal)):
            if isinstance(v, float) and dialect == "sqlite":
                return None
            return f"{what} holds numbers, and this is {_kind(v)}"
        d = decimal.Decimal(v)
        if not d.is_finite():
            return None if dialect != "mysql" else f"{_NAMES[dialect]} has no {d} number"
        if dialect == "sqlite" and not _sqlite_holds(d):
            return "SQLite's NUMERIC keeps an integer of 64 bits or 15 to 17 significant digits"
        if precision is None:
            return None
        s = scale or 0
        before, after = _digits(d)
        if after > s:
            return f"{what} keeps {s} digits after the point: it would be rounded"
        if before > precision - s:
            return f"{what} holds {precision - s} digits before the point"
        return None

    return check


def _check_float(dialect: str, float4: bool, what: str) -> Check:
    def check(v: Any) -> str | None:
        if type(v) is not float:
            if isinstance(v, int) and not isinstance(v, bool) and (dialect == "sqlite" or abs(v) < 1 << 53):
                return None
            return None if dialect == "sqlite" else f"{what} holds floats, and this is {_kind(v)}"
        if math.isnan(v) and dialect != "postgresql":
            return f"{_NAMES[dialect]} has no NaN" + (" (it would store NULL)" if dialect == "sqlite" else "")
        if math.isinf(v) and dialect == "mysql":
            return "MariaDB/MySQL has no infinities"
        if v == 0 and math.copysign(1, v) < 0 and dialect != "postgresql":
            return f"{_NAMES[dialect]} stores -0.0 as 0.0"
        if float4 and math.isfinite(v):
            try:
                exact = struct.unpack("f", struct.pack("f", v))[0] == v
            except OverflowError:
                exact = False
            if not exact:
                return f"{what} is a 4-byte float, which does not hold this value exactly"
        return None

    return check


def _charset_check(charset: str | None) -> Callable[[str], str | None]:
    if charset in ("utf8mb3", "utf8"):
        return lambda s: (
            "its character set utf8mb3 has no 4-byte characters" if any(ord(c) > 0xFFFF for c in s) else None
        )
    if charset in ("latin1", "ascii"):
        codec = "cp1252" if charset == "latin1" else "ascii"

        def check(s: str) -> str | None:
            try:
                s.encode(codec)
            except UnicodeEncodeError as exc:
                return f"its character set {charset} has no {s[exc.start]!r}"
            return None

        return check
    return lambda s: None


def _check_text(dialect: str, target: Column, source_base: str, what: str) -> Check:
    base = _base(target.type)
    native = (target.native or "").lower()
    length = _args(target.type)[0] if base in ("varchar", "char") and _args(target.type) else None
    charset_m = re.search(r" character set (\w+)", native)
    charset = charset_m.group(1) if charset_m else None
    in_charset = _charset_check(charset)
    byte_limit = _MY_TEXT_BYTES.get(native.split(" ", 1)[0].split("(", 1)[0]) if dialect == "mysql" else None
    padded = base == "char" and dialect != "sqlite"

    def check(v: Any) -> str | None:
        if isinstance(v, _dt.time) and source_base == "timetz":
            v = v.isoformat()  # the form a timetz is kept in where there is no such type
        if type(v) is not str:
            return None if dialect == "sqlite" else f"{what} holds text, and this is {_kind(v)}"
        if dialect == "postgresql" and "\x00" in v:
            return "PostgreSQL text cannot hold the NUL character"
        if length is not None and len(v) > length:
            return f"{what} holds {length} characters, and this has {len(v)}"
        if padded and v.endswith(" "):
            return f"{what} drops trailing spaces"
        if dialect == "mysql":
            bad = in_charset(v)
            if bad:
                return bad
            if byte_limit is not None and len(v.encode("utf-8")) > byte_limit:
                return f"{what} holds {byte_limit} bytes"
        return None

    return check


def _check_bytes(dialect: str, target: Column, what: str) -> Check:
    native = (target.native or "").lower()
    name = native.split("(", 1)[0].strip()
    limit = _MY_BLOB_BYTES.get(name) if dialect == "mysql" else None
    if dialect == "mysql" and name in ("varbinary", "binary") and _args(native):
        limit = _args(native)[0]
    fixed = dialect == "mysql" and name == "binary"

    def check(v: Any) -> str | None:
        if type(v) is not bytes:
            return None if dialect == "sqlite" else f"{what} holds bytes, and this is {_kind(v)}"
        if limit is not None and len(v) > limit:
            return f"{what} holds {limit} bytes, and this has {len(v)}"
        if fixed and len(v) < (limit or 0):
            return f"{what} pads shorter values with zero bytes"
        return None

    return check


def _fraction_digits(native: str) -> int:
    m = re.search(r"(?:datetime|timestamp|time)\((\d)\)", native)
    return int(m.group(1)) if m else 0


def _check_temporal(dialect: str, target: Column, source_base: str, what: str) -> Check:
    base = _base(target.type)
    python = {
        "date": (_dt.date,),
        "time": (_dt.time,),
        "timetz": (_dt.time,),
        "timestamp": (_dt.datetime,),
        "timestamptz": (_dt.datetime,),
    }[base]
    native = (target.native or "").lower()
    fraction = _fraction_digits(native) if dialect == "mysql" else 6
    step = 10 ** (6 - fraction)
    mysql_timestamp = dialect == "mysql" and native.startswith("timestamp")

    def check(v: Any) -> str | None:
        if dialect == "mysql" and base == "time" and type(v) is _dt.timedelta:
            # a MariaDB TIME is a duration: snapgit reads one outside a day as a timedelta
            return None if -_MY_TIME_MAX <= v <= _MY_TIME_MAX else f"{what} holds -838:59:59 to 838:59:59"
        if not isinstance(v, python) or (base == "date" and isinstance(v, _dt.datetime)):
            if dialect == "sqlite" or (dialect == "postgresql" and type(v) is str):
                return None  # PostgreSQL parses the text forms it wrote itself (BC, infinity, ...)
            if dialect == "mysql" and type(v) is str and _MY_OWN_TEXT.fullmatch(v):
                return None  # MariaDB's own forms Python has no value for: zero dates
            if type(v) is str:
                return f"{what} does not take the value the source kept as text"
            return f"{what} holds a {base}, and this is {_kind(v)}"
        if dialect != "mysql":
            return None
        micro = getattr(v, "microsecond", 0)
        if micro % step:
            return f"{what} keeps {fraction} fractional digits of a second: it would be rounded"
        if isinstance(v, _dt.datetime):
            if mysql_timestamp:
                aware = v if v.tzinfo is not None else v.replace(tzinfo=_dt.UTC)
                if not _TIMESTAMP_MIN < aware <= _TIMESTAMP_MAX:
                    return f"{what} holds the times after 1970-01-01 00:00:00 to 2038-01-19 03:14:07.999999 UTC"
            elif v.year < 1000:
                return f"{what} holds the years 1000 to 9999"
        elif isinstance(v, _dt.date) and v.year < 1000:
            return f"{what} holds the years 1000 to 9999"
        return None

    return check


def _json_has(value: Any, bad: Callable[[Any], bool]) -> bool:
    todo = [value]
    while todo:
        v = todo.pop()
        if bad(v):
            return True
        if isinstance(v, dict):
            todo.extend(v.keys())
            todo.extend(v.values())
        elif isinstance(v, list):
            todo.extend(v)
    return False


def _nul(v: Any) -> bool:
    return isinstance(v, str) and "\x00" in v


def _not_finite(v: Any) -> bool:
    return (isinstance(v, float) and not math.isfinite(v)) or (isinstance(v, decimal.Decimal) and not v.is_finite())


def _check_json(dialect: str, target: Column, source: Column, what: str) -> Check:
    jsonb = dialect == "postgresql" and (target.native or "").startswith("jsonb")
    array = source.type.startswith("array<")

    def check(v: Any) -> str | None:
        if array and isinstance(v, list):
            doc: Any = v
        elif type(v) is Json:
            doc = v.value
        else:
            return None if dialect == "sqlite" else f"{what} holds JSON, and this is {_kind(v)}"
        if _json_has(doc, _not_finite):
            return "JSON has no NaN or infinities"
        if jsonb and _json_has(doc, _nul):
            return "PostgreSQL's jsonb cannot hold \\u0000"
        return None

    return check


def _check_interval_micros(lo: int, hi: int, what: str) -> Check:
    def check(v: Any) -> str | None:
        if type(v) is not _dt.timedelta:
            return f"{what} holds an interval as microseconds, which this value (kept as text) has no fixed number of"
        micros = v // _dt.timedelta(microseconds=1)
        return None if lo <= micros <= hi else f"{what} holds {lo} to {hi} microseconds"

    return check


def _check_uuid(dialect: str, what: str) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, uuid.UUID) or dialect == "sqlite":
            return None
        return f"{what} holds UUIDs, and this is {_kind(v)}"

    return check


def checker(dialect: str, source: Column, target: Column) -> Check | None:
    """The check of values of ``source`` (a column of the schema the rows were read with) going
    into ``target`` (the column as the target database has it), or None when any value fits."""
    tbase = _base(target.type)
    sbase = _base(source.type)
    spelled = target.native or target.type
    what = f"{_NAMES[dialect]} {spelled.split(' CHARACTER SET ', 1)[0]}"
    if sbase == "interval" and tbase in _INT_RANGES and dialect != "postgresql":
        return _check_interval_micros(*_int_range(64), what)
    if target.type.startswith("array<"):
        return None  # PostgreSQL arrays take any list the source held (its own, or another's)
    if tbase in _INT_RANGES:
        if dialect == "mysql":
            return _check_int(*_mysql_int_range((target.native or "").lower()), what)
        if dialect == "sqlite":
            return _check_int(*_int_range(64), what) if sbase in _INT_RANGES else None
        return _check_int(*_int_range(_INT_RANGES[tbase]), what)
    if tbase == "boolean":
        if dialect == "sqlite":
            return None
        if dialect == "mysql" and (target.native or "").lower().startswith("tinyint"):
            # tinyint(1): MariaDB's BOOLEAN holds any tinyint, and snapgit reads others as ints
            return _check_int(*_int_range(8, " unsigned" in (target.native or "").lower()), what)
        return lambda v: None if isinstance(v, bool) else f"{what} holds true and false, and this is {_kind(v)}"
    if tbase in ("real", "double"):
        return _check_float(dialect, tbase == "real" and dialect != "sqlite", what)
    if tbase == "numeric":
        args = _args(target.type)
        return _check_numeric(args[0] if args else None, args[1] if len(args) > 1 else None, dialect, what)
    if tbase in ("text", "varchar", "char"):
        if sbase == "json" or source.type.startswith("array<"):
            return None  # a document kept as its text
        return _check_text(dialect, target, sbase, what)
    if tbase == "bytes":
        return _check_bytes(dialect, target, what)
    if tbase in ("date", "time", "timetz", "timestamp", "timestamptz"):
        return _check_temporal(dialect, target, sbase, what)
    if tbase == "json":
        return _check_json(dialect, target, source, what)
    if tbase == "uuid":
        return _check_uuid(dialect, what)
    return None


_NONE = type(None)
Fast = Callable[[Sequence[Any]], bool]


def _only(types: set[type], vals: Sequence[Any]) -> bool:
    return set(map(type, vals)) <= types


class IntRange:
    """The fast check of an integer column: whether every value is None, a bool or an int
    within ``lo`` .. ``hi``. (:class:`RowChecker` checks all of a table's such columns in one
    pass with the C extension, ``native.ints_fit``; this is its reference.)"""

    __slots__ = ("lo", "hi")

    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi

    def __call__(self, vals: Sequence[Any]) -> bool:
        types = set(map(type, vals))
        if not types <= {int, bool, _NONE}:
            return False
        got = [v for v in vals if v is not None] if _NONE in types else vals
        return not got or (self.lo <= min(got) and max(got) <= self.hi)


_INT64 = (-(1 << 63), (1 << 63) - 1)


def fast_check(dialect: str, source: Column, target: Column) -> Fast | None:
    """A check of a whole column of a batch at C speed, for the common cases: True when every
    value surely fits, False when one may not (then :func:`checker` looks at each). None: no
    fast form, every value is looked at."""
    tbase = _base(target.type)
    sbase = _base(source.type)
    native = (target.native or "").lower()
    if tbase in _INT_RANGES and sbase in _INT_RANGES:
        if dialect == "mysql":
            lo, hi = _mysql_int_range(native)
        else:
            lo, hi = _int_range(64 if dialect == "sqlite" else _INT_RANGES[tbase])

        return IntRange(lo, hi)
    if tbase in ("real", "double") and sbase in ("real", "double") and not (tbase == "real" and dialect != "sqlite"):
        if dialect == "postgresql":
            return lambda vals: _only({float, _NONE}, vals)

        def floats(vals: Sequence[Any]) -> bool:
            types = set(map(type, vals))
            if not types <= {float, _NONE}:
                return False
            got = [v for v in vals if v is not None] if _NONE in types else vals
            if not got:
                return True
            # NaN and infinities make the sum non-finite (so may huge finite values: then slowly);
            # fsum raises rather than return inf when finite values overflow on the way
            try:
                finite = math.isfinite(math.fsum(map(abs, got)))
            except OverflowError:
                return False
            return finite and not any(math.copysign(1, v) < 0 for v in got if v == 0)

        return floats
    if tbase in ("text", "varchar", "char") and sbase in ("text", "varchar", "char"):
        if dialect == "sqlite":
            return lambda vals: True
        length = _args(target.type)[0] if tbase in ("varchar", "char") and _args(target.type) else None
        any_character = dialect == "postgresql" or " character set utf8mb4" in native or " character set" not in native
        limit = _MY_TEXT_BYTES.get(native.split(" ", 1)[0].split("(", 1)[0]) if dialect == "mysql" else None

        def texts(vals: Sequence[Any]) -> bool:
            got = [v for v in vals if v is not None]
            if not got:
                return True
            if not _only({str}, got):
                return False
            if length is not None and max(map(len, got)) > length:
                return False
            if tbase == "char" and any(v[-1:] == " " for v in got):
                return False
            if dialect == "postgresql" and "\x00" in "".join(got):
                return False
            if limit is not None and max(map(len, got)) * 4 > limit:
                return False
            return any_character

        return texts
    if tbase == sbase and tbase in ("date", "time", "timestamp", "timestamptz", "uuid", "boolean", "bytes"):
        python: type = {
            "date": _dt.date,
            "time": _dt.time,
            "timestamp": _dt.datetime,
            "timestamptz": _dt.datetime,
            "uuid": uuid.UUID,
            "boolean": bool,
            "bytes": bytes,
        }[tbase]
        if dialect == "sqlite" or (dialect == "postgresql" and tbase != "bytes"):
            return lambda vals: _only({python, _NONE}, vals)
        return None
    return None


# What the fast check of a PostgreSQL column asks, in terms a reader of the stored bytes can
# check without making the values (snapgit.native.pg_copy_rows): ("int", low, high): an int
# within; ("text", -1 or the most characters, 0): a str, no NUL; ("float", 0, 0) and
# ("type", 0, 0): the value's type only, as the column's canonical values have it.
PlainLimit = tuple[str, int, int]


def plain_limit(dialect: str, source: Column, target: Column) -> PlainLimit | None:
    """All that :func:`fast_check` asks of a value of ``source`` written to ``target``, when a
    value meeting it surely passes (PostgreSQL only); None: no such plain form. A reader that
    accepts only such values (and no bool for an int) never lets through one the check stops."""
    if dialect != "postgresql":
        return None
    tbase = _base(target.type)
    sbase = _base(source.type)
    if tbase in _INT_RANGES and sbase in _INT_RANGES:
        lo, hi = _int_range(_INT_RANGES[tbase])
        return ("int", lo, hi)
    if tbase == "double" and sbase in ("real", "double"):
        return ("float", 0, 0)
    if tbase in ("text", "varchar") and sbase in ("text", "varchar", "char"):
        args = _args(target.type)
        return ("text", args[0] if tbase == "varchar" and args else -1, 0)
    if tbase == sbase and tbase in ("date", "time", "timestamp", "timestamptz", "uuid", "boolean"):
        return ("type", 0, 0)
    return None


class RowChecker:
    """Checks rows of ``source`` (values in its ``sorted_names`` order) against the columns of
    ``target``, the same table as the target database has it."""

    def __init__(self, dialect: str, source: TableSchema, target: TableSchema) -> None:
        self.dialect = dialect
        self.table = source.name
        names = source.sorted_names
        by_name = {c.name: c for c in source.columns}
        there = {c.name: c for c in target.columns}
        self._checks = [
            (i, name, check, fast_check(dialect, by_name[name], there[name]))
            for i, name in enumerate(names)
            if name in there and (check := checker(dialect, by_name[name], there[name])) is not None
        ]
        limits = {i: plain_limit(dialect, by_name[name], there[name]) for i, name, _c, _f in self._checks}
        # by position in the rows, each checked column's plain limit; None when one has none
        self.plain_limits: dict[int, PlainLimit] | None = (
            None if None in limits.values() else {i: lim for i, lim in limits.items() if lim is not None}
        )
        key = list(source.primary_key) or names
        self._key = [(names.index(k), k) for k in key if k in names]
        # the integer columns whose range fits in 64 bits: checked in one pass, in C
        self._ints = [
            (i, fast.lo, fast.hi)
            for i, _n, _c, fast in self._checks
            if isinstance(fast, IntRange) and _INT64[0] <= fast.lo and fast.hi <= _INT64[1]
        ]

    def check(self, rows: Sequence[Sequence[Any]]) -> None:
        """Raise :class:`ValueDoesNotFitError` for the first value that does not fit."""
        if not rows or not self._checks:
            return
        fit: set[int] = set()
        if self._ints and type(rows) is list:
            got = ints_fit(rows, self._ints)
            if got is not None:
                fit = {i for (i, _lo, _hi), ok in zip(self._ints, got, strict=True) if ok}
        for i, name, check, fast in self._checks:
            if i in fit:
                continue
            column = list(map(itemgetter(i), rows))
            if fast is not None and fast(column):
                continue
            for row, value in zip(rows, column, strict=True):
                v = value
                if type(v) is Spelled:
                    if v.dialect == self.dialect:
                        continue  # written as this engine held it (and as the column still holds)
                    v = v.value  # another engine gets the canonical value
                if v is None:
                    continue
                reason = check(v)
                if reason is not None:
                    key = ", ".join(f"{k}={to_text(row[j], 40)}" for j, k in self._key)
                    raise ValueDoesNotFitError(self.table, name, f"key ({key})", v, reason, _NAMES[self.dialect])
