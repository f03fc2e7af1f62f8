"""Converters from what a driver returns to snapgit's canonical Python values.

A converter takes one value of one column and returns the canonical value (the types
:mod:`snapgit.encoding` encodes). Every converter follows two rules:

* **Never lose data.** A value that is not in the form the column's type promises (text in a
  SQLite INTEGER column, a MariaDB zero date, a JSON column holding text that is not JSON) is
  returned unchanged rather than guessed at or dropped.
* **Touch only what needs it.** Columns whose driver values are canonical already get no
  converter at all; :mod:`snapgit.db.rows` then copies them without a Python call.

Which converter a column gets is decided in :mod:`snapgit.db.types`.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import json
import uuid
from collections.abc import Callable
from typing import Any

from snapgit.encoding import Json, Spelled

__all__ = [
    "Converter",
    "int_to_bool",
    "bits_to_bool",
    "to_decimal",
    "text_to_date",
    "text_to_time",
    "text_to_timetz",
    "text_to_datetime",
    "text_to_datetime_utc",
    "to_json",
    "text_to_json",
    "to_uuid",
    "attach_utc",
    "duration_to_time",
    "array_of",
    "PG_TEXT_FALLBACK_TYPES",
    "register_pg_text_fallback",
    "pg_jsonb_text",
]

Converter = Callable[[Any], Any]

_UTC = _dt.UTC
_BOOLS = {0: False, 1: True}
_DECIMAL_CONTEXT = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
_ONE = decimal.Decimal(1)
_DAY = _dt.timedelta(days=1)
_ZERO = _dt.timedelta(0)
_MIDNIGHT = _dt.datetime(2000, 1, 1)
_HEX = frozenset("0123456789abcdef")
_fromiso_dt = _dt.datetime.fromisoformat
_fromiso_date = _dt.date.fromisoformat
_fromiso_time = _dt.time.fromisoformat


def int_to_bool(v: Any) -> Any:
    """0/1 -> False/True (SQLite BOOLEAN, MariaDB tinyint(1)); any other value unchanged."""
    return _BOOLS.get(v, v) if type(v) is int else v


def bits_to_bool(v: Any) -> Any:
    """MariaDB BIT(1): b'\\x00'/b'\\x01' -> False/True."""
    if type(v) is bytes and len(v) == 1 and v[0] <= 1:
        return v == b"\x01"
    return v


def to_decimal(scale: int | None) -> Converter:
    """SQLite NUMERIC: integers, reals and numeric text -> Decimal, with ``scale`` when exact.

    A real becomes the Decimal of its shortest repr (what the user wrote before SQLite stored it
    as a double); exponent notation of integral values is expanded as PostgreSQL and MariaDB
    print them. Text becomes a Decimal only when it is already in Decimal's canonical form.
    """
    exp = decimal.Decimal(1).scaleb(-scale) if scale is not None else None
    D = decimal.Decimal
    ctx = _DECIMAL_CONTEXT

    def convert(v: Any) -> Any:
        t = type(v)
        if t is int:
            d = D(v)
        elif t is float:
            if v != v:
                return v
            d = D(repr(v))
            exponent = d.as_tuple().exponent  # "F" for an infinity, else an int
            if isinstance(exponent, int) and exponent > 0:
                d = d.quantize(_ONE, context=ctx)
        elif t is str:
            try:
                d = D(v)
            except decimal.InvalidOperation:
                return v
            if str(d) != v:
                return v
        else:
            return v
        if not d and d.is_signed():
            d = -d  # PostgreSQL and MariaDB numerics have no negative zero
        if exp is not None and d.is_finite():
            try:
                q = d.quantize(exp, context=ctx)
            except decimal.InvalidOperation:
                return d
            if q == d:
                return q
        return d

    return convert


def _iso_date_shape(v: str) -> bool:
    return len(v) >= 10 and v[4] == "-" and v[7] == "-"


def text_to_date(v: Any) -> Any:
    """'YYYY-MM-DD' -> date."""
    if type(v) is str and len(v) == 10 and v[4] == "-" and v[7] == "-":
        try:
            return _fromiso_date(v)
        except ValueError:
            return v
    return v


def _time_shape(v: str) -> bool:
    return len(v) >= 5 and v[2] == ":"


def text_to_time(v: Any) -> Any:
    """'HH:MM[:SS[.ffffff]]' -> naive time."""
    if type(v) is str and _time_shape(v):
        try:
            t = _fromiso_time(v)
        except ValueError:
            return v
        return t if t.tzinfo is None else v
    return v


def text_to_timetz(v: Any) -> Any:
    """'HH:MM:SS[.ffffff]+HH:MM' -> time with its UTC offset."""
    if type(v) is str and _time_shape(v):
        try:
            t = _fromiso_time(v)
        except ValueError:
            return v
        return t if t.tzinfo is not None else v
    return v


def text_to_datetime(v: Any) -> Any:
    """'YYYY-MM-DD HH:MM[:SS[.f]]' (or with 'T') -> naive datetime; text with an offset stays text."""
    if type(v) is str:
        try:
            d = _fromiso_dt(v)
        except ValueError:
            return v
        if d.tzinfo is None and len(v) >= 16 and v[4] == "-" and (v[10] == " " or v[10] == "T"):
            return d
    return v


def text_to_datetime_utc(v: Any) -> Any:
    """Text with a UTC offset -> aware datetime in UTC; text without one stays text."""
    if type(v) is str:
        try:
            d = _fromiso_dt(v)
        except ValueError:
            return v
        if d.tzinfo is not None and _iso_date_shape(v):
            return d.astimezone(_UTC)
    return v


def text_to_json(v: Any) -> Any:
    """JSON text (PostgreSQL json::text, MariaDB JSON) -> Json; text that is not JSON stays text."""
    if type(v) is str:
        try:
            return Json(json.loads(v))
        except ValueError:
            return v
    return v


def to_json(v: Any) -> Any:
    """SQLite JSON: text is parsed; a bare number is what SQLite's NUMERIC affinity made of JSON
    number text, so it is the JSON number."""
    t = type(v)
    if t is str:
        try:
            return Json(json.loads(v))
        except ValueError:
            return v
    if t is int or t is float:
        return Json(v)
    return v


def to_uuid(v: Any) -> Any:
    """Lower-case hex (32 digits, with or without the four dashes) or 16 bytes -> UUID."""
    t = type(v)
    if t is str:
        n = len(v)
        if (n == 32 and _HEX.issuperset(v)) or (
            n == 36 and v[8] == v[13] == v[18] == v[23] == "-" and _HEX.issuperset(v.replace("-", ""))
        ):
            return uuid.UUID(v)
        return v
    if t is bytes and len(v) == 16:
        return uuid.UUID(bytes=v)
    return v


def attach_utc(v: Any) -> Any:
    """MariaDB TIMESTAMP, read in a '+00:00' session: naive UTC wall time -> aware UTC."""
    return v.replace(tzinfo=_UTC) if type(v) is _dt.datetime else v


def duration_to_time(v: Any) -> Any:
    """MariaDB TIME comes back as a timedelta; one within a day is a time of day."""
    if type(v) is _dt.timedelta and _ZERO <= v < _DAY:
        return (_MIDNIGHT + v).time()
    return v


def array_of(element: Converter) -> Converter:
    """Apply ``element`` to every element of an array, at any depth."""

    def convert(v: Any) -> Any:
        if type(v) is list:
            return [convert(x) for x in v]
        return v if v is None else element(v)

    return convert


# PostgreSQL's date and time types whose values can lie outside Python's: BC dates, 'infinity',
# '24:00:00', intervals beyond 999,999,999 days
PG_TEXT_FALLBACK_TYPES = ("date", "time", "timetz", "timestamp", "timestamptz", "interval")


def register_pg_text_fallback(conn: Any) -> None:
    """Make a psycopg connection read a date, time, timestamp or interval value that Python's
    types cannot hold as its text (``'infinity'``, ``'0044-03-15 BC'``, ``'24:00:00'``) instead of
    failing the whole read. Value by value: the values that fit keep their typed form (what diff
    and merge compare), so a column gains text only where it holds such a value, and a restore
    writes the text back for the server to parse. Arrays of these types get it too: psycopg's
    array loader asks the connection for its element loader. An array of any type whose lower
    bounds are not 1 (``'[0:2]={7,8,9}'``) is read as its text too, as a list would lose them."""
    # psycopg is imported here: only a PostgreSQL connection (made by snapgit.db) calls this
    import psycopg
    from psycopg.adapt import Loader
    from psycopg.pq import Format

    for name in PG_TEXT_FALLBACK_TYPES:
        info = conn.adapters.types.get(name)
        if info is None:
            continue
        typed = conn.adapters.get_loader(info.oid, Format.TEXT)
        if typed is not None and not getattr(typed, "snapgit_text_fallback", False):
            fits = _interval_exact if name == "interval" else None
            spell = _interval_spelling if name == "interval" else None
            loader = _text_fallback_loader(typed, Loader, psycopg.DataError, fits, spell)
            conn.adapters.register_loader(info.oid, loader)
    # arrays whose lower bounds are not 1 ('[0:2]={7,8,9}'): a list cannot say so
    for oid in sorted({info.array_oid for info in conn.adapters.types if info.array_oid}):
        typed = conn.adapters.get_loader(oid, Format.TEXT)
        if typed is not None and not getattr(typed, "snapgit_text_fallback", False):
            conn.adapters.register_loader(oid, _text_fallback_loader(typed, Loader, psycopg.DataError, _default_bounds))


# an interval is stored as 64 bits of microseconds (snapgit.encoding), less than a timedelta holds
_MAX_INTERVAL = _dt.timedelta(microseconds=2**63 - 1)
_MIN_INTERVAL = -_dt.timedelta(microseconds=2**63)


def pg_interval_text(v: _dt.timedelta) -> str:
    """The text PostgreSQL prints (IntervalStyle 'postgres') for the interval of the length of
    ``v`` in days and time: ``'2 days 04:05:06.5'``, ``'-1 days -00:00:01'``, ``'00:00:00'``."""
    total = v // _dt.timedelta(microseconds=1)
    sign = "-" if total < 0 else ""
    days, rest = divmod(abs(total), 86_400_000_000)
    seconds, micros = divmod(rest, 1_000_000)
    parts = []
    if days:
        parts.append(f"{sign}{days} day{'' if days == 1 and not sign else 's'}")
    if rest or not days:
        clock = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if micros:
            clock += f".{micros:06d}".rstrip("0")
        parts.append(f"{sign if rest else ''}{clock}")
    return " ".join(parts)


def _interval_exact(v: Any, text: bytes) -> bool:
    """Whether the timedelta ``v`` means the interval ``text``: within the 64 bits of
    microseconds the store holds, and without months or years, which psycopg counts as 30 and
    365 days while PostgreSQL's own comparison counts a year as 360. (Days and time of opposite
    signs, or hours past a day, are evened out by a timedelta: '1 day -00:00:01' reads as
    23:59:59, which PostgreSQL's = agrees with; :func:`_interval_spelling` keeps the text.)"""
    return _MIN_INTERVAL <= v <= _MAX_INTERVAL and b"mon" not in text and b"year" not in text


def _interval_spelling(v: Any, text: bytes) -> Any:
    """The timedelta ``v``, or, when writing it back would print otherwise than ``text`` (days
    and time of opposite signs, ``'1 day -00:00:01'``; hours past a day, ``'49:00:00'``), the
    timedelta with that text as its spelling: the same length for diff, merge and other
    engines, the same ``::text`` for PostgreSQL."""
    spelled = text.decode()
    return v if pg_interval_text(v) == spelled else Spelled(v, spelled, "postgresql")


def _default_bounds(_value: Any, text: bytes) -> bool:
    """Whether an array's text has the default lower bounds (1): only then does it start with '{'."""
    return not text.startswith(b"[")


def _text_fallback_loader(
    typed: Any,
    loader: Any,
    data_error: type[Exception],
    fits: Callable[[Any, bytes], bool] | None,
    spell: Callable[[Any, bytes], Any] | None = None,
) -> Any:
    """A psycopg loader class: ``typed``'s value, or the text when ``typed`` refuses it or
    ``fits(value, text)`` says the value is not the text exactly; ``spell(value, text)``, when
    given, has the last word on a value that fits (it may keep the text as a spelling)."""

    class TextFallbackLoader(loader):
        snapgit_text_fallback = True

        def __init__(self, oid: int, context: Any = None) -> None:
            super().__init__(oid, context)
            self._typed = typed(oid, context)

        def load(self, data: Any) -> Any:
            try:
                value = self._typed.load(data)
            except data_error:
                return bytes(data).decode()
            if fits is not None:
                text = bytes(data)
                if not fits(value, text):
                    return text.decode()
                if spell is not None:
                    return spell(value, text)
            return value

    return TextFallbackLoader


# --- PostgreSQL jsonb's text --------------------------------------------------------------------

_JSONB_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _jsonb_string(v: str) -> str:
    out = []
    for ch in v:
        esc = _JSONB_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ch < " ":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def pg_jsonb_text(v: Any) -> str:
    """The text PostgreSQL prints for the ``jsonb`` of the canonical JSON text of ``v`` (a value
    of :class:`snapgit.encoding.Json`): keys in jsonb's order (shorter first, then by their
    bytes; the last of duplicates), ``", "`` and ``": "`` between items, numbers as ``numeric``
    prints them (never in exponent form, digits after the point kept). A reader compares it with
    the text it read to know whether writing the value back gives that text."""
    t = type(v)
    if v is None:
        return "null"
    if t is bool:
        return "true" if v else "false"
    if t is int:
        return str(v)
    if t is float:
        # the canonical text of the float (json.dumps) is what the server parses as a numeric
        d = decimal.Decimal(json.dumps(v))
        return format(-d if d.is_zero() and d.is_signed() else d, "f")  # numeric has no -0
    if t is str:
        return _jsonb_string(v)
    if t is list:
        return "[" + ", ".join(pg_jsonb_text(x) for x in v) + "]"
    if t is dict:
        keys = sorted(v, key=lambda k: (len(k.encode("utf-8")), k.encode("utf-8")))
        return "{" + ", ".join(f"{_jsonb_string(k)}: {pg_jsonb_text(v[k])}" for k in keys) + "}"
    raise TypeError(f"not a JSON value: {v!r}")
