"""Canonical values -> statement parameters: how each column is written.

The reverse of :mod:`snapgit.db.values`. A merge or a restore writes rows of canonical Python
values (what a scan yields); each column gets one converter, chosen here once per call from the
dialect and the column's portable type, that turns a value into what the driver takes so that
**reading the row back gives the same values** (the same :func:`snapgit.encoding.encode_row`
bytes). That round trip is the contract, and the tests hold every portable type to it on every
database.

Mapping (canonical Python value -> parameter)
---------------------------------------------

============== ============================ ======================= ===========================
value          SQLite                       PostgreSQL              MariaDB / MySQL
============== ============================ ======================= ===========================
bool           0 / 1 (sqlite3 does it)      bool                    1 / 0 (PyMySQL does it)
int            int (beyond 64 bits: error)  int                     int (unsigned 64 bits too)
float          float; NaN refused (SQLite   float                   float; NaN and infinities
               would store NULL)                                    refused (MariaDB has none)
Decimal        int when integral, else the  Decimal                 Decimal
               float whose repr is the same
               number (NaN, Infinity: text)
date           'YYYY-MM-DD'                 date                    date
time           'HH:MM:SS[.ffffff]'          time                    time
aware time     'HH:MM:SS[.ffffff]+HH:MM'    time (timetz)           the same ISO text
naive datetime 'YYYY-MM-DD HH:MM:SS[.f]'    datetime                datetime
aware datetime the same in UTC, '+00:00'    datetime (timestamptz)  naive UTC wall time (the
                                                                    session is in UTC)
timedelta      microseconds (an int)        timedelta (interval)    microseconds for an
                                                                    interval; TIME for a time
text in a      as it is                     as it is (the server    as it is
date/time                                   parses it); an array
column                                      holding some: all
                                            its elements as text
UUID           32 lower-case hex digits     UUID                    'xxxxxxxx-xxxx-...' text
Json           canonical JSON text          canonical text, typed   canonical JSON text
                                            json/jsonb by a cast
Spelled        its spelling when read from  the same                the same
               this engine, else its value
               as above
list (array)   canonical JSON text of       list (a cast to the     canonical JSON text of
               the elements (jsonvalue)     column's array type)    the elements
============== ============================ ======================= ===========================

Two rules, as for reading:

* **Convert only what has the canonical type.** A value of another type is what a reader kept
  as the driver returned it (text in a SQLite DATETIME column that is no date, say); it is
  written back as it is, so it reads back as it was.
* **Write what the application wrote.** A value the reader kept with its spelling
  (:class:`snapgit.encoding.Spelled`: SQLite date, time, JSON and UUID text in a form of the
  application's choosing, a UUID held as a blob, PostgreSQL ``json`` and MariaDB JSON text) is
  written as that spelling into the engine it was read from, and as its canonical value into
  another. A canonical value is written in one fixed form per type, the one the reader takes
  for canonical (:data:`SQLITE_CANONICAL`): SQLite dates ``YYYY-MM-DD``, times and datetimes as
  Python's ``isoformat`` (``' '`` between date and time, fractional digits only when not zero;
  what SQLite's own ``datetime()``, Python's sqlite3 and Django write), UUIDs as 32 hex digits.

What SQLite's types cannot hold: a NUMERIC column (NUMERIC affinity) turns text that looks like a
number into a REAL, keeping 15 significant digits. A Decimal is therefore written as an integer
when it is one, and otherwise as the float that reads back as the same number; a Decimal that no
float reads back as (more than 15-17 significant digits) is refused rather than rounded. A
``numeric`` column without a scale loses trailing zeros (``1.50`` reads back as ``1.5``). The JSON
documents ``1.0`` or ``1e16`` (a float with an integral value, on its own) come back as integers
for the same reason. -0.0 is stored as 0.0.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from snapgit.db.values import Converter, pg_interval_text
from snapgit.encoding import Json, Spelled, canonical_json
from snapgit.jsonvalue import to_json
from snapgit.native import SQ_ANY, SQ_DATE, SQ_DATETIME, SQ_FLOAT

__all__ = [
    "SqliteStyle",
    "SQLITE_CANONICAL",
    "column_write",
    "canonical_write",
    "sqlite_param_kind",
    "WriteValueError",
    "SPELLABLE",
]

_UTC = _dt.UTC
_US = _dt.timedelta(microseconds=1)
_D = decimal.Decimal
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


class WriteValueError(ValueError):
    """A canonical value that the target column cannot hold without losing data."""


def _base(portable: str) -> str:
    return portable.split("(", 1)[0]


# --- SQLite -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SqliteStyle:
    """The text form of one SQLite column's values: UUIDs as ``hex`` (32 digits), ``dashed``
    (36) or ``blob`` (16 bytes); datetimes with ``sep`` between date and time; times with six
    fractional digits always (``micros``) or only when not zero (Python's ``isoformat()``)."""

    uuid: str = "hex"
    sep: str = " "
    micros: bool = False


# The forms canonical values are written in, and so the spellings the reader keeps no Spelled
# for (snapgit.db.types): a store's record bytes depend on them, so they are part of the format
SQLITE_CANONICAL = SqliteStyle()
DEFAULT_STYLE = SQLITE_CANONICAL


def _sqlite_decimal(v: Any) -> Any:
    if type(v) is not _D:
        return v
    if not v.is_finite():
        return str(v)  # 'NaN', 'Infinity': text, which SQLite keeps and the reader parses
    if v == v.to_integral_value():
        i = int(v)
        if _INT64_MIN <= i <= _INT64_MAX:
            return i
    f = float(v)
    if _D(repr(f)) == v:  # exactly what the reader does with a REAL
        return f
    raise WriteValueError(f"SQLite cannot store the number {v} exactly: its NUMERIC columns keep 15 significant digits")


def _sqlite_float(v: Any) -> Any:
    if type(v) is float and v != v:
        raise WriteValueError("SQLite cannot store NaN: it would store NULL")
    return v


def _sqlite_date(v: Any) -> Any:
    return v.isoformat() if type(v) is _dt.date else v


def _sqlite_time(style: SqliteStyle) -> Converter:
    spec = "microseconds" if style.micros else "auto"

    def convert(v: Any) -> Any:
        return v.isoformat(spec) if type(v) is _dt.time else v

    return convert


def _sqlite_datetime(style: SqliteStyle) -> Converter:
    sep = style.sep
    spec = "microseconds" if style.micros else "auto"
    # timestamp columns repeat values: format each once (naive and UTC ones only, which is
    # what decoded rows hold; equal datetimes of other zones could be different instants)
    texts: dict[_dt.datetime, str] = {}

    def convert(v: Any) -> Any:
        if type(v) is _dt.datetime:
            text = texts.get(v)
            if text is None:
                tz = v.tzinfo
                text = (v if tz is None else v.astimezone(_UTC)).isoformat(sep, spec)
                if tz is None or tz is _UTC:
                    if len(texts) >= 65536:
                        texts.clear()
                    texts[v] = text
            return text
        return v

    return convert


def _sqlite_uuid(style: SqliteStyle) -> Converter:
    if style.uuid == "blob":
        return lambda v: v.bytes if type(v) is uuid.UUID else v
    if style.uuid == "dashed":
        return lambda v: str(v) if type(v) is uuid.UUID else v

    def hex_form(v: Any) -> Any:
        if type(v) is uuid.UUID:
            h = v.hex
            # all digits: a column declared UUID has NUMERIC affinity and would store a number
            return str(v) if h.isdigit() else h
        return v

    return hex_form


# --- shared -------------------------------------------------------------------------------------


def _json_text(v: Any) -> Any:
    return v.text if type(v) is Json else v


def _micros(v: Any) -> Any:
    return v // _US if type(v) is _dt.timedelta else v


def _array_as_json(v: Any) -> Any:
    return canonical_json(to_json(v)) if type(v) is list or type(v) is tuple else v


def _aware_time_text(v: Any) -> Any:
    return v.isoformat("microseconds") if type(v) is _dt.time and v.tzinfo is not None else v


def _uuid_text(v: Any) -> Any:
    return str(v) if type(v) is uuid.UUID else v


def _pg_json_elements(v: Any) -> Any:
    if type(v) is list or type(v) is tuple:
        return [_pg_json_elements(x) for x in v]
    return v.text if type(v) is Json else v


# element types whose arrays may mix typed values and the text of values Python cannot hold
# (snapgit.db.values.register_pg_text_fallback)
_PG_TEXT_FALLBACK_ELEMENTS = frozenset({"date", "time", "timetz", "timestamp", "timestamptz", "interval"})


def _pg_element_text(v: Any) -> Any:
    """The text PostgreSQL parses back as the value ``v`` (a date, time, datetime, timedelta)."""
    if type(v) is _dt.timedelta:
        return pg_interval_text(v)
    if isinstance(v, _dt.date | _dt.time):
        return v.isoformat()
    return v


def _pg_text_elements(v: Any) -> Any:
    if type(v) is list or type(v) is tuple:
        return [_pg_text_elements(x) for x in v]
    return None if v is None else str(_pg_element_text(v))


def _has_text(v: Any) -> bool:
    if type(v) is list or type(v) is tuple:
        return any(_has_text(x) for x in v)
    return type(v) is str


def _pg_mixed_array(v: Any) -> Any:
    """An array of dates, times or intervals holding text anywhere is written as text, every
    element (psycopg cannot send an array of mixed types; the column's cast parses them)."""
    if (type(v) is list or type(v) is tuple) and _has_text(v):
        return _pg_text_elements(v)
    return v


def _pg_interval(v: Any) -> Any:
    """A timedelta as the text PostgreSQL prints for it: psycopg sends Python's normalised days
    and seconds (-1 second as -1 days +86399 seconds), which the server keeps apart and prints
    as '-1 days +23:59:59', not the '-00:00:01' a reader takes for canonical."""
    return pg_interval_text(v) if type(v) is _dt.timedelta else v


def _pg_interval_array(v: Any) -> Any:
    """An array of intervals, every element as its text (see :func:`_pg_interval`)."""
    return _pg_text_elements(v) if type(v) is list or type(v) is tuple else v


def _mysql_float(v: Any) -> Any:
    if type(v) is float and (v != v or v in (float("inf"), float("-inf"))):
        raise WriteValueError(f"MariaDB/MySQL cannot store the float {v!r}")
    return v


def _mysql_aware(v: Any) -> Any:
    if type(v) is _dt.datetime and v.tzinfo is not None:
        return v.astimezone(_UTC).replace(tzinfo=None)
    return v


def _element(portable: str) -> str | None:
    if portable.startswith("array<") and portable.endswith(">"):
        return portable[6:-1]
    return None


# portable types whose values a reader may keep with their spelling (snapgit.db.types)
SPELLABLE = frozenset({"numeric", "date", "time", "timetz", "timestamp", "timestamptz", "interval", "uuid", "json"})


def _spelled_aware(dialect: str, conv: Converter | None) -> Converter:
    """``conv`` (None: the value as it is) for canonical values; a Spelled value's spelling when
    it was read from ``dialect``, else its canonical value converted."""
    if conv is None:

        def plain(v: Any) -> Any:
            if type(v) is Spelled:
                return v.spelling if v.dialect == dialect else v.value
            return v

        return plain

    def convert(v: Any) -> Any:
        if type(v) is Spelled:
            return v.spelling if v.dialect == dialect else conv(v.value)
        return conv(v)

    return convert


def column_write(dialect: str, portable: str, style: SqliteStyle | None = None) -> Converter | None:
    """The converter for values written to a column of ``portable`` type, or None when the
    driver takes the canonical values as they are. ``style``: SQLite only, the forms of
    canonical dates, times and UUIDs (default and canonical: :data:`SQLITE_CANONICAL`)."""
    conv = canonical_write(dialect, portable, style)
    if _base(portable) in SPELLABLE:
        return _spelled_aware(dialect, conv)
    return conv


def sqlite_param_kind(portable: str) -> int | None:
    """What :func:`canonical_write` does to a SQLite column's values (the default style), as a
    kind of :func:`snapgit.native.sqlite_params`; None: something it does not do."""
    base = _base(portable)
    if _element(portable) is not None:
        return None
    if base in ("real", "double"):
        return SQ_FLOAT
    if base == "date":
        return SQ_DATE
    if base in ("timestamp", "timestamptz"):
        return SQ_DATETIME
    return SQ_ANY if canonical_write("sqlite", portable) is None else None


def canonical_write(dialect: str, portable: str, style: SqliteStyle | None = None) -> Converter | None:
    """:func:`column_write` for canonical values only (no :class:`Spelled`): what a reader
    compares a driver's value with to know whether the value alone gives it back."""
    base = _base(portable)
    elem = _element(portable)
    if dialect == "sqlite":
        style = style or DEFAULT_STYLE
        if elem is not None:
            return _array_as_json
        table: dict[str, Callable[[], Converter | None]] = {
            "numeric": lambda: _sqlite_decimal,
            "real": lambda: _sqlite_float,
            "double": lambda: _sqlite_float,
            "date": lambda: _sqlite_date,
            "time": lambda: _sqlite_time(style),
            "timetz": lambda: _sqlite_time(style),
            "timestamp": lambda: _sqlite_datetime(style),
            "timestamptz": lambda: _sqlite_datetime(style),
            "interval": lambda: _micros,
            "uuid": lambda: _sqlite_uuid(style),
            "json": lambda: _json_text,
        }
        make = table.get(base)
        return make() if make else None
    if dialect == "postgresql":
        if elem is not None:
            if _base(elem) == "interval":
                return _pg_interval_array
            if _base(elem) in _PG_TEXT_FALLBACK_ELEMENTS:
                return _pg_mixed_array
            return _pg_json_elements if _base(elem) == "json" else None
        return {"json": _json_text, "interval": _pg_interval}.get(base)
    if dialect == "mysql":
        if elem is not None:
            return _array_as_json
        return {
            "real": _mysql_float,
            "double": _mysql_float,
            "timestamptz": _mysql_aware,
            "timetz": _aware_time_text,
            "interval": _micros,
            "uuid": _uuid_text,
            "json": _json_text,
        }.get(base)
    raise ValueError(f"unknown dialect {dialect!r}")
