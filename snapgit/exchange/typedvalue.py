"""Values as typed JSON and CSV text, for export files: lossless, compact, checked on the way in.

An export file carries each table's schema, so a column's portable type (schema.py) already says
what its values are; a value is written in the **compact form** of its column's type, with no type
tag. The forms (docs/format.md, "Export files"):

==================================  ===========================================================
portable type                       compact JSON form
==================================  ===========================================================
smallint, integer, bigint           number (integer, any size)
boolean                             ``true`` / ``false``
real, double                        number (Python's shortest repr, ``-0.0`` kept); ``"NaN"``,
                                    ``"Infinity"``, ``"-Infinity"`` as strings
numeric, numeric(p,s)               string: the exact decimal text, scale kept (``"1.50"``)
text, varchar(n), char(n)           string
bytes                               string: base64 (RFC 4648, with padding)
date / time / timestamp             string: ISO 8601 (``2024-02-29``, ``10:30:00.000001``,
                                    ``2024-02-29T10:30:00``)
timetz                              string: ISO 8601 time with its offset (``10:30:00+02:00``)
timestamptz                         string: ISO 8601 in UTC (``2024-02-29T08:30:00+00:00``)
interval                            number: microseconds (signed integer)
uuid                                string: ``xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx``
json                                string: the canonical JSON text of the document
array<T>                            array of T's compact forms (``null`` elements allowed)
==================================  ===========================================================

SQL NULL is ``null``. A value whose Python type is not its column's (SQLite lets any column hold
anything: text in an INTEGER column) is written **tagged**, ``{"type": T, "value": V}``, where T
is the portable base type of the value and V its compact form (for ``array``: a list of values
each compact-or-tagged by their own type, ``null`` for NULL). No compact form is a JSON object, so
a tagged value is never ambiguous. A value kept with its engine's spelling
(:class:`snapgit.encoding.Spelled`) is tagged ``spelled``: V is ``[dialect, value, spelling]``,
the value and the spelling each tagged.

CSV cells are text: see :func:`to_cell` and :func:`from_cell` for the cell grammar (empty cell is
NULL; formula escaping with a leading ``'``; tagged values start with ``\\``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import json
import math
import uuid
from collections.abc import Callable
from typing import Any

from snapgit.encoding import Json, Spelled

__all__ = [
    "ValueFormError",
    "kind_of",
    "encoder",
    "decoder",
    "to_cell",
    "from_cell",
    "FORMULA_CHARS",
]


class ValueFormError(ValueError):
    """A JSON or CSV value that is not a valid form of its column's type; the message says what
    was expected."""


_INTS = ("smallint", "integer", "bigint")
_FLOATS = ("real", "double")
_TEXTS = ("text", "varchar", "char")
# kinds whose compact form is a JSON string (so a CSV cell holds it as it is)
_STRINGY = frozenset(
    ("numeric", *_TEXTS, "bytes", "date", "time", "timetz", "timestamp", "timestamptz", "uuid", "json")
)
_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
# A cell starting with one of these is prefixed with "'" so that spreadsheets show it as text
# (=, +, -, @ start formulas; tab and CR are OWASP's extra cases; ' and \ are the escapes).
FORMULA_CHARS = frozenset("=+-@\t\r'\\")


def kind_of(portable: str) -> str:
    """The base kind of a portable type: ``numeric(10,2)`` -> ``numeric``; ``array<T>`` stays
    whole. Kinds not listed in the module doc are ``any`` (every value tagged)."""
    if portable.startswith("array<") and portable.endswith(">"):
        return portable
    base = portable.split("(", 1)[0]
    if base in _INTS or base in _FLOATS or base in _STRINGY or base in ("boolean", "interval"):
        return base
    return "any"


def _element_kind(kind: str) -> str | None:
    return kind_of(kind[6:-1]) if kind.startswith("array<") else None


# --- the kind of a value (for tagging) ----------------------------------------------------------


def _value_kind(v: Any) -> str:
    t = type(v)
    if t is bool:
        return "boolean"
    if t is int:
        return "bigint"
    if t is float:
        return "double"
    if t is decimal.Decimal:
        return "numeric"
    if t is str:
        return "text"
    if t is bytes:
        return "bytes"
    if t is dt.date:
        return "date"
    if t is dt.time:
        return "time" if v.utcoffset() is None else "timetz"
    if t is dt.datetime:
        return "timestamp" if v.tzinfo is None else "timestamptz"
    if t is dt.timedelta:
        return "interval"
    if t is uuid.UUID:
        return "uuid"
    if t is Json:
        return "json"
    if t is list or t is tuple:
        return "array"
    if t is Spelled:
        return "spelled"
    raise ValueFormError(f"no export form for a value of type {t.__name__}")


def _matches(kind: str, v: Any) -> bool:
    """Whether ``v`` has the canonical Python type of ``kind`` (so it is written compact)."""
    if kind.startswith("array<"):
        return type(v) is list or type(v) is tuple
    vk = _value_kind(v)
    if kind in _INTS:
        return vk == "bigint"
    if kind in _FLOATS:
        return vk == "double"
    if kind in _TEXTS:
        return vk == "text"
    return vk == kind


# --- encoding -----------------------------------------------------------------------------------


def _compact(kind: str, v: Any) -> Any:
    """The compact form of ``v``, known to match ``kind``."""
    if kind in _INTS or kind == "boolean" or kind in _TEXTS or kind == "bigint":
        return v
    if kind in _FLOATS or kind == "double":
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return v
    if kind == "numeric":
        return str(v)
    if kind == "bytes":
        return base64.b64encode(v).decode("ascii")
    if kind in ("date", "time", "timetz", "timestamp"):
        return v.isoformat()
    if kind == "timestamptz":
        return v.astimezone(dt.UTC).isoformat()
    if kind == "interval":
        return v // dt.timedelta(microseconds=1)
    if kind == "uuid":
        return str(v)
    if kind == "json":
        return v.text
    if kind == "spelled":
        return [v.dialect, _tagged(v.value), _tagged(v.spelling)]
    elem = _element_kind(kind)
    if elem is not None:
        return [None if x is None else _typed(elem, x) for x in v]
    raise ValueFormError(f"no compact form for kind {kind}")


def _tagged(v: Any) -> dict[str, Any]:
    vk = _value_kind(v)
    if vk == "array":
        return {"type": "array", "value": [None if x is None else _tagged(x) for x in v]}
    return {"type": vk, "value": _compact(vk, v)}


def _typed(kind: str, v: Any) -> Any:
    if v is None:
        return None
    if kind != "any" and _matches(kind, v):
        return _compact(kind, v)
    return _tagged(v)


def _float_form(v: float) -> Any:
    return _compact("double", v)


def _timestamp_form(v: dt.datetime) -> Any:
    return v.isoformat() if v.tzinfo is None else _tagged(v)


def _timestamptz_form(v: dt.datetime) -> Any:
    return _compact("timestamptz", v) if v.tzinfo is not None else _tagged(v)


def _time_form(v: dt.time) -> Any:
    return v.isoformat() if v.utcoffset() is None else _tagged(v)


def _timetz_form(v: dt.time) -> Any:
    return v.isoformat() if v.utcoffset() is not None else _tagged(v)


def _same(v: Any) -> Any:
    return v


# kind -> (the one Python type of its values, their JSON form): what _typed does, decided once
# per column rather than per value (an export writes millions)
_FORMS: dict[str, tuple[type, Callable[[Any], Any]]] = {
    **{k: (int, _same) for k in _INTS},
    **{k: (float, _float_form) for k in _FLOATS},
    **{k: (str, _same) for k in _TEXTS},
    "boolean": (bool, _same),
    "numeric": (decimal.Decimal, str),
    "bytes": (bytes, lambda v: _compact("bytes", v)),
    "date": (dt.date, dt.date.isoformat),
    "time": (dt.time, _time_form),
    "timetz": (dt.time, _timetz_form),
    "timestamp": (dt.datetime, _timestamp_form),
    "timestamptz": (dt.datetime, _timestamptz_form),
    "interval": (dt.timedelta, lambda v: _compact("interval", v)),
    "uuid": (uuid.UUID, str),
    "json": (Json, lambda v: v.text),
}


def encoder(portable: str) -> Callable[[Any], Any]:
    """value -> its JSON form in a column of this portable type (compact, or tagged)."""
    kind = kind_of(portable)
    form = _FORMS.get(kind)
    if form is None:
        return lambda v: _typed(kind, v)
    python_type, compact = form

    def encode(v: Any) -> Any:
        if type(v) is python_type:
            return compact(v)
        return None if v is None else _tagged(v)

    return encode


# --- decoding -----------------------------------------------------------------------------------


def _expect(what: str, j: Any) -> ValueFormError:
    shown = json.dumps(j, ensure_ascii=False)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return ValueFormError(f"expected {what}, found {shown}")


def _iso(parse: Callable[[str], Any], what: str, j: Any, aware: bool | None) -> Any:
    if type(j) is not str:
        raise _expect(what, j)
    try:
        v = parse(j)
    except ValueError:
        raise _expect(what, j) from None
    if aware is not None and (v.utcoffset() is not None) != aware:
        raise _expect(what, j)
    return v


def _from_compact(kind: str, j: Any) -> Any:
    if kind in _INTS or kind == "bigint":
        if type(j) is not int:
            raise _expect("an integer", j)
        return j
    if kind == "boolean":
        if type(j) is not bool:
            raise _expect("true or false", j)
        return j
    if kind in _FLOATS or kind == "double":
        if type(j) is float:
            return j
        if type(j) is str and j in _NONFINITE:
            return _NONFINITE[j]
        raise _expect('a float (a number with a fraction or exponent, or "NaN", "Infinity", "-Infinity")', j)
    if kind in _TEXTS:
        if type(j) is not str:
            raise _expect("a string", j)
        return j
    if kind == "numeric":
        if type(j) is not str:
            raise _expect("a decimal as a string", j)
        try:
            d = decimal.Decimal(j)
        except decimal.InvalidOperation:
            raise _expect("a decimal as a string", j) from None
        if str(d) != j:  # one text per decimal, so that the record id is the one recomputed
            raise _expect(f"the decimal written as {str(d)!r}", j)
        return d
    if kind == "bytes":
        if type(j) is not str:
            raise _expect("base64 bytes", j)
        try:
            return base64.b64decode(j, validate=True)
        except (binascii.Error, ValueError):
            raise _expect("base64 bytes", j) from None
    if kind == "date":
        v = _iso(dt.date.fromisoformat, "an ISO 8601 date", j, None)
        return v
    if kind == "time":
        return _iso(dt.time.fromisoformat, "an ISO 8601 time without offset", j, False)
    if kind == "timetz":
        return _iso(dt.time.fromisoformat, "an ISO 8601 time with an offset", j, True)
    if kind == "timestamp":
        return _iso(dt.datetime.fromisoformat, "an ISO 8601 timestamp without offset", j, False)
    if kind == "timestamptz":
        v = _iso(dt.datetime.fromisoformat, "an ISO 8601 timestamp with an offset", j, True)
        try:
            return v.astimezone(dt.UTC)
        except OverflowError:  # 9999-12-31T23:00-02:00 is in year 10000 in UTC
            raise _expect("an ISO 8601 timestamp with an offset, within years 1 to 9999 in UTC", j) from None
    if kind == "interval":
        if type(j) is not int:
            raise _expect("an interval in microseconds (an integer)", j)
        try:
            return dt.timedelta(microseconds=j)
        except OverflowError:
            raise _expect("an interval within ±999999999 days", j) from None
    if kind == "uuid":
        if type(j) is not str:
            raise _expect("a UUID", j)
        try:
            return uuid.UUID(j)
        except ValueError:
            raise _expect("a UUID", j) from None
    if kind == "json":
        if type(j) is not str:
            raise _expect("a JSON document as a string", j)
        try:
            doc = Json.from_text(j)
            doc.text  # noqa: B018 - checks that it has a canonical text
        except ValueError:
            raise _expect("a JSON document as a string", j) from None
        return doc
    elem = _element_kind(kind)
    if elem is not None:
        if type(j) is not list:
            raise _expect("an array", j)
        return [_from_typed(elem, x) for x in j]
    raise _expect(f"a tagged value (column type {kind})", j)


_TAGS = frozenset((*_STRINGY, "bigint", "boolean", "double", "interval", "array", "spelled"))
_DIALECTS = frozenset(("sqlite", "postgresql", "mysql"))
_SPELLING_TYPES = (int, float, str, bytes)


def _from_spelled(j: Any) -> Spelled:
    what = "[dialect, tagged value, tagged spelling]"
    if type(j) is not list or len(j) != 3 or j[0] not in _DIALECTS or type(j[1]) is not dict or type(j[2]) is not dict:
        raise _expect(what, j)
    value, spelling = _from_tagged(j[1]), _from_tagged(j[2])
    if type(value) is Spelled or type(spelling) not in _SPELLING_TYPES:
        raise _expect(what + " (a spelling is text, bytes, an integer or a float)", j)
    return Spelled(value, spelling, j[0])


def _from_tagged(j: dict[str, Any]) -> Any:
    if set(j) != {"type", "value"} or j["type"] not in _TAGS:
        raise _expect('{"type": T, "value": V} with T a portable type', j)
    if j["type"] == "spelled":
        return _from_spelled(j["value"])
    if j["type"] == "array":
        if type(j["value"]) is not list:
            raise _expect("an array", j["value"])
        return [
            None if x is None else _from_tagged(x) if type(x) is dict else _raise(_expect("a tagged value", x))
            for x in j["value"]
        ]
    return _from_compact(j["type"], j["value"])


def _raise(exc: Exception) -> Any:
    raise exc


def _from_typed(kind: str, j: Any) -> Any:
    if j is None:
        return None
    if type(j) is dict:
        return _from_tagged(j)
    return _from_compact(kind, j)


# kinds whose compact form is the value itself, of one JSON type: taken as it is when it has
# that type, without _from_typed's dispatch (an import reads millions)
_AS_READ: dict[str, type] = {
    **{k: int for k in _INTS},
    **{k: float for k in _FLOATS},
    **{k: str for k in _TEXTS},
    "boolean": bool,
}


def decoder(portable: str) -> Callable[[Any], Any]:
    """JSON form -> value, for a column of this portable type; raises :class:`ValueFormError`."""
    kind = kind_of(portable)
    as_read = _AS_READ.get(kind)
    if as_read is None:
        return lambda j: _from_typed(kind, j)
    return lambda j: j if type(j) is as_read else _from_typed(kind, j)


# --- CSV cells ----------------------------------------------------------------------------------


def _dumps(j: Any) -> str:
    return json.dumps(j, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _json_text(j: Any) -> str:
    """``_dumps(j)``, without a JSON encoder for the forms most cells hold: text, integers and
    finite floats (a compact form writes NaN and the infinities as strings)."""
    t = type(j)
    if t is str:
        return j
    if t is int:
        return int.__repr__(j)
    if t is float and math.isfinite(j):
        return float.__repr__(j)
    return _dumps(j)


def to_cell(portable: str) -> Callable[[Any], str]:
    """value -> CSV cell text. Grammar: ``""`` is NULL; a tagged value is ``\\T:V`` (V the
    compact form of type T, as text); otherwise the compact form as text (strings as they are,
    other JSON forms as JSON text), prefixed with ``'`` when it is empty or starts with one of
    ``= + - @ TAB CR ' \\``."""
    to_json = encoder(portable)

    def cell(v: Any) -> str:
        if v is None:
            return ""
        j = to_json(v)
        if type(j) is dict:
            return "\\" + j["type"] + ":" + _json_text(j["value"])
        text = _json_text(j)
        if not text or text[0] in FORMULA_CHARS:
            return "'" + text
        return text

    return cell


def _parse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# one decoder for every cell: json.loads with an argument makes a new one per call, which took
# a third of reading a CSV export
_CELL_DECODER = json.JSONDecoder(parse_constant=_parse_constant)


def _cell_json(kind: str, text: str) -> Any:
    if kind in _STRINGY:
        return text
    if (kind in _FLOATS or kind == "double") and text in _NONFINITE:
        return text
    try:
        return _CELL_DECODER.decode(text)
    except ValueError:
        raise ValueFormError(
            f"expected {'an array' if kind.startswith('array<') else 'a ' + kind} as JSON text, found {text[:60]!r}"
        ) from None


def from_cell(portable: str) -> Callable[[str], Any]:
    """CSV cell text -> value (the reverse of :func:`to_cell`); raises :class:`ValueFormError`."""
    kind = kind_of(portable)

    def value(text: str) -> Any:
        if text == "":
            return None
        if text[0] == "'":
            return (
                _from_compact(kind, _cell_json(kind, text[1:]))
                if kind != "any"
                else _raise(ValueFormError("expected a tagged value"))
            )
        if text[0] == "\\":
            tag, sep, payload = text[1:].partition(":")
            if not sep or tag not in _TAGS:
                raise ValueFormError(f"expected a tagged value \\TYPE:VALUE, found {text[:60]!r}")
            inner = payload if tag in _STRINGY else _cell_json("array<any>" if tag == "array" else tag, payload)
            return _from_tagged({"type": tag, "value": inner})
        if kind == "any":
            raise ValueFormError(f"expected a tagged value \\TYPE:VALUE, found {text[:60]!r}")
        j = _cell_json(kind, text)
        if type(j) is str and kind not in _STRINGY and j not in _NONFINITE:
            raise ValueFormError(f"expected a {kind}, found {text[:60]!r}")
        return (
            _from_typed(kind, j)
            if type(j) is not dict
            else _raise(ValueFormError(f"expected a {kind}, found an object"))
        )

    return value
