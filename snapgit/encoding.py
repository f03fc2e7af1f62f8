"""Canonical bytes for values, rows and keys.

Two encodings live here, and both are part of the store format (docs/format.md):

**Values and rows** are msgpack. A row is a msgpack array of its values in the order of the
column names sorted by their UTF-8 bytes, so the physical column order of a table never changes a
row's identity. Scalars msgpack knows natively (nil, bool, int within 64 bits, float64, UTF-8 str,
bin) are written natively; everything else is an ext type whose code is listed in ``Ext`` below.
An SQL array is a msgpack array. Encoding the same value twice gives the same bytes, and decoding
gives back an equal value (aware datetimes come back in UTC, the instant unchanged).

**Keys** use an order-preserving encoding in the style of FoundationDB's tuple layer: the byte
order of two encoded keys is the logical order of the key tuples, so a table's tree order never
depends on a database's collation. Each element starts with a type code (``K`` below); values of
one type sort logically, values of different types sort by type code.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import enum
import hashlib
import json
import struct
import uuid
from collections.abc import Callable, Sequence
from itertools import repeat
from operator import add, itemgetter
from typing import Any

import msgpack

from snapgit.errors import CorruptError, SnapError

__all__ = [
    "Ext",
    "Json",
    "Spelled",
    "EncodingError",
    "encode_value",
    "encode_row",
    "packable",
    "decode_row",
    "decode_rows",
    "decode_joined",
    "decode_value",
    "canonical_value",
    "canonical_json",
    "encode_key",
    "key_encoder",
    "record_id",
    "RECORD_TYPE",
]


class EncodingError(SnapError):
    """A value that snapgit cannot encode."""


class Ext(enum.IntEnum):
    """msgpack ext type codes. Part of the format: never renumber."""

    BIGINT = 1  # int outside [-2**63, 2**64): ASCII decimal text
    DECIMAL = 2  # decimal.Decimal: ASCII text of str(d); scale kept ("1.50" != "1.5")
    DATE = 3  # int32 BE: date.toordinal()
    TIME = 4  # int64 BE: microseconds since midnight
    DATETIME = 5  # int64 BE: microseconds since 0001-01-01T00:00:00 (naive)
    DATETIME_TZ = 6  # int64 BE: microseconds since 0001-01-01T00:00:00 UTC (aware)
    INTERVAL = 7  # int64 BE: microseconds (datetime.timedelta)
    UUID = 8  # 16 bytes
    JSON = 9  # UTF-8 canonical JSON text: sorted keys, no spaces
    TIME_TZ = 10  # int64 BE microseconds since midnight + int32 BE UTC offset in seconds
    SPELLED = 11  # msgpack [dialect, canonical value, the engine's spelling] (Spelled)


RECORD_TYPE = 1  # object type byte of a record; objects.py owns the rest

_Q = struct.Struct(">q")
_I = struct.Struct(">i")
_QI = struct.Struct(">qi")
_DT_ZERO = _dt.datetime(1, 1, 1)
_DT_ZERO_UTC = _dt.datetime(1, 1, 1, tzinfo=_dt.UTC)
_US = _dt.timedelta(microseconds=1)
_NAN = float("nan")
_INT64_MIN = -(2**63)
_UINT64_MAX = 2**64 - 1
_MAX_MICROS = (_dt.datetime.max - _DT_ZERO) // _US


class Json:
    """A JSON document held in a JSON column: kept apart from text, arrays and numbers.

    Equality is by canonical text, so ``Json({"a": 1, "b": 2}) == Json({"b": 2, "a": 1})``.
    """

    __slots__ = ("value", "_text")

    def __init__(self, value: Any) -> None:
        self.value = value
        self._text: str | None = None

    @classmethod
    def from_text(cls, text: str) -> Json:
        return cls(json.loads(text))

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = canonical_json(self.value)
        return self._text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Json) and self.text == other.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"Json({self.text})"


class Spelled:
    """A value together with the exact form its database held it in, kept where that form is
    not the one the value alone would be written back as: the SQLite text
    ``'2024-01-05T10:00'`` of the datetime 2024-01-05 10:00 (which would be written
    ``'2024-01-05 10:00:00'``), the PostgreSQL ``json`` text ``'{"b": 1, "a": 2}'`` of a
    document whose canonical text is ``{"a":2,"b":1}``, a UUID a SQLite column held as a blob.

    ``value`` is the canonical value (what diff and merge mean, and what another engine gets),
    ``spelling`` what ``dialect``'s driver gave (a str, or for SQLite any of its storage
    classes' values: int, float, str, bytes), which a write into that engine gives back as it
    was. A reader makes one only when the spelling differs, so databases whose values are
    spelled canonically keep the record bytes they had before spellings were kept."""

    __slots__ = ("dialect", "value", "spelling")

    def __init__(self, value: Any, spelling: Any, dialect: str) -> None:
        self.value = value
        self.spelling = spelling
        self.dialect = dialect

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Spelled)
            and self.dialect == other.dialect
            and type(self.spelling) is type(other.spelling)
            and self.spelling == other.spelling
            and self.value == other.value
        )

    def __hash__(self) -> int:
        return hash((self.dialect, self.spelling))

    def __repr__(self) -> str:
        return f"Spelled({self.value!r}, {self.spelling!r}, {self.dialect!r})"


def canonical_json(value: Any) -> str:
    """JSON text with sorted keys and no insignificant spaces."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise EncodingError(f"value is not JSON: {exc}") from exc


_dt_cache: dict[_dt.datetime, msgpack.ExtType] = {}
_DT_CACHE_MAX = 1 << 16


def _default(v: Any) -> msgpack.ExtType:
    """msgpack calls this for every value it has no native form for."""
    t = type(v)
    if t is _dt.datetime:
        # Columns of timestamps repeat values (hours, days): building an ExtType costs more than
        # a dict probe, so encoded datetimes are cached. Equal datetimes encode equally: naive and
        # aware ones never compare equal. Only naive and fixed-offset datetimes are cached: with
        # a zoneinfo zone, two datetimes that differ only in `fold` compare equal but are
        # different instants.
        tz = v.tzinfo
        cacheable = tz is None or type(tz) is _dt.timezone
        ext = _dt_cache.get(v) if cacheable else None
        if ext is None:
            if tz is None:
                ext = msgpack.ExtType(Ext.DATETIME, _Q.pack((v - _DT_ZERO) // _US))
            else:
                micros = (v - _DT_ZERO_UTC) // _US
                if not 0 <= micros <= _MAX_MICROS:  # it would not decode: no such datetime in UTC
                    raise EncodingError(f"datetime {v.isoformat()} is out of range once moved to UTC")
                ext = msgpack.ExtType(Ext.DATETIME_TZ, _Q.pack(micros))
            if cacheable:
                if len(_dt_cache) >= _DT_CACHE_MAX:
                    _dt_cache.clear()
                _dt_cache[v] = ext
        return ext
    if t is decimal.Decimal:
        return msgpack.ExtType(Ext.DECIMAL, str(v).encode("ascii"))
    if t is _dt.date:
        return msgpack.ExtType(Ext.DATE, _I.pack(v.toordinal()))
    if t is int or isinstance(v, int):
        return msgpack.ExtType(Ext.BIGINT, str(int(v)).encode("ascii"))
    if t is _dt.time:
        micros = ((v.hour * 60 + v.minute) * 60 + v.second) * 1_000_000 + v.microsecond
        if v.tzinfo is None:
            return msgpack.ExtType(Ext.TIME, _Q.pack(micros))
        offset = v.utcoffset()
        if offset is None:
            return msgpack.ExtType(Ext.TIME, _Q.pack(micros))
        return msgpack.ExtType(Ext.TIME_TZ, _QI.pack(micros, int(offset.total_seconds())))
    if t is _dt.timedelta:
        micros = v // _US
        if not _INT64_MIN <= micros < _SIGN:  # beyond 292,000 years (PostgreSQL allows them)
            raise EncodingError(f"interval {v} does not fit in 64 bits of microseconds")
        return msgpack.ExtType(Ext.INTERVAL, _Q.pack(micros))
    if t is uuid.UUID:
        return msgpack.ExtType(Ext.UUID, v.bytes)
    if t is Json:
        return msgpack.ExtType(Ext.JSON, v.text.encode("utf-8"))
    if t is Spelled:
        return _spelled_ext(v)
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, _dt.datetime):  # subclasses, e.g. pendulum
        return _default(_dt.datetime.fromisoformat(v.isoformat()))
    if isinstance(v, _dt.date):
        return _default(_dt.date(v.year, v.month, v.day))
    raise EncodingError(f"cannot encode a value of type {t.__name__}: {v!r}")


_packer = msgpack.Packer(default=_default, use_bin_type=True, datetime=False)
_pack = _packer.pack
# a Spelled's payload is packed while _packer is in the middle of a row: msgpack's packer is not
# reentrant, so the payload has a packer of its own
_inner_pack = msgpack.Packer(default=_default, use_bin_type=True, datetime=False).pack
_SPELLING_TYPES = frozenset({str, bytes, int, float})


def _spelled_ext(v: Spelled) -> msgpack.ExtType:
    if type(v.value) is Spelled or type(v.spelling) not in _SPELLING_TYPES or type(v.dialect) is not str:
        raise EncodingError(f"cannot encode {v!r}: a spelling is a str, bytes, int or float of a plain value")
    return msgpack.ExtType(Ext.SPELLED, _inner_pack([v.dialect, v.value, v.spelling]))


def encode_row(values: Sequence[Any]) -> bytes:
    """The canonical bytes of a row whose values are already in sorted-column-name order."""
    try:
        return _pack(values)
    except (TypeError, ValueError, OverflowError, struct.error) as exc:
        raise EncodingError(f"cannot encode row: {exc}") from exc


_EXT_TYPES = frozenset({_dt.datetime, _dt.date, _dt.time, _dt.timedelta, decimal.Decimal, uuid.UUID, Json, Spelled})


def packable(value: Any) -> Any:
    """The form of ``value`` that msgpack packs, with no call back into Python, into the very
    bytes :func:`encode_row` gives ``value``: its ExtType for the types stored as one, the value
    itself otherwise. A reader that hands rows straight to the encoder converts values to this
    once, in a converter it calls anyway, instead of msgpack calling back per value."""
    return _default(value) if type(value) in _EXT_TYPES else value


def encode_value(value: Any) -> bytes:
    """The canonical bytes of one value."""
    try:
        return _pack(value)
    except (TypeError, ValueError, OverflowError, struct.error) as exc:
        raise EncodingError(f"cannot encode value {value!r}: {exc}") from exc


# Decoded datetimes, by their ext bytes: timestamp columns repeat values (hours, days, a default)
# and a dict probe costs a fraction of building a datetime. Datetimes are immutable.
_dt_decoded: dict[tuple[int, bytes], _dt.datetime] = {}


def _ext_hook(code: int, data: bytes) -> Any:
    if code == Ext.DATETIME or code == Ext.DATETIME_TZ:
        v = _dt_decoded.get((code, data))
        if v is None:
            zero = _DT_ZERO if code == Ext.DATETIME else _DT_ZERO_UTC
            v = zero + _dt.timedelta(microseconds=_Q.unpack(data)[0])
            if len(_dt_decoded) >= _DT_CACHE_MAX:
                _dt_decoded.clear()
            _dt_decoded[(code, data)] = v
        return v
    if code == Ext.DECIMAL:
        return decimal.Decimal(data.decode("ascii"))
    if code == Ext.DATE:
        return _dt.date.fromordinal(_I.unpack(data)[0])
    if code == Ext.BIGINT:
        return int(data.decode("ascii"))
    if code == Ext.TIME:
        return _time_from_micros(_Q.unpack(data)[0], None)
    if code == Ext.TIME_TZ:
        micros, offset = _QI.unpack(data)
        return _time_from_micros(micros, _dt.timezone(_dt.timedelta(seconds=offset)))
    if code == Ext.INTERVAL:
        return _dt.timedelta(microseconds=_Q.unpack(data)[0])
    if code == Ext.UUID:
        return uuid.UUID(bytes=data)
    if code == Ext.JSON:
        return Json.from_text(data.decode("utf-8"))
    if code == Ext.SPELLED:
        return _spelled_from(data)
    raise EncodingError(f"unknown ext type {code} in stored value")


def _spelled_from(data: bytes) -> Spelled:
    parts = msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False, use_list=True)
    if (
        type(parts) is not list
        or len(parts) != 3
        or type(parts[0]) is not str
        or type(parts[1]) is Spelled
        or type(parts[2]) not in _SPELLING_TYPES
    ):
        raise EncodingError("a stored spelled value is not [dialect, value, spelling]")
    return Spelled(parts[1], parts[2], parts[0])


def _time_from_micros(micros: int, tz: _dt.tzinfo | None) -> _dt.time:
    secs, us = divmod(micros, 1_000_000)
    mins, s = divmod(secs, 60)
    h, m = divmod(mins, 60)
    return _dt.time(h, m, s, us, tzinfo=tz)


_DAMAGED = "the store is damaged: `snap verify --read-data` lists what is affected"


def decode_value(data: bytes) -> Any:
    """What :func:`encode_value` encoded. Bytes that are no such value (a damaged record) raise
    CorruptError: msgpack's own errors would reach the user as an internal error."""
    try:
        return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False, use_list=True)
    except (ValueError, msgpack.exceptions.UnpackException) as exc:
        why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise CorruptError(f"a stored row does not decode ({why})", hint=_DAMAGED) from exc


def decode_row(data: bytes) -> list[Any]:
    """Values of a row, in sorted-column-name order (CorruptError for bytes that are not what
    :func:`encode_row` or :func:`encode_value` wrote)."""
    return decode_value(data)


def decode_joined(data: bytes, n: int) -> list[list[Any]]:
    """The ``n`` rows of records joined end to end (as :mod:`snapgit.readahead` sends them)."""
    unpacker = msgpack.Unpacker(ext_hook=_ext_hook, raw=False, strict_map_key=False, use_list=True, max_buffer_size=0)
    unpacker.feed(data)
    try:
        rows = list(unpacker)
    except Exception as exc:
        raise EncodingError(f"stored rows do not decode: {exc}") from exc
    if len(rows) != n or not all(type(r) is list for r in rows):
        raise EncodingError(f"{n} stored rows decode to {len(rows)} values, not {n} rows")
    return rows


def decode_rows(datas: Sequence[bytes]) -> list[list[Any]]:
    """``[decode_row(d) for d in datas]``, about twice as fast: one streaming unpacker over the
    joined records instead of one call per record."""
    if len(datas) < 8:
        return [decode_row(d) for d in datas]
    unpacker = msgpack.Unpacker(ext_hook=_ext_hook, raw=False, strict_map_key=False, use_list=True, max_buffer_size=0)
    unpacker.feed(b"".join(datas))
    try:
        rows = list(unpacker)
    except Exception:  # noqa: BLE001 - the slow way raises the error decode_row gives
        rows = []
    if len(rows) != len(datas) or not all(type(r) is list for r in rows):
        return [decode_row(d) for d in datas]  # not one row per record: find the bad one the slow way
    return rows


def canonical_value(v: Any) -> Any:
    """The value as it comes back from a round trip: one NaN, aware datetimes in UTC.

    Used where values do not come from a database reader that already canonicalises them
    (tests, imports), so that equal values always get equal bytes.
    """
    t = type(v)
    if t is float:
        return _NAN if v != v else v
    if t is _dt.datetime and v.tzinfo is not None:
        return v.astimezone(_dt.UTC)
    if t is list or t is tuple:
        return [canonical_value(x) for x in v]
    if t is bytearray or t is memoryview:
        return bytes(v)
    return v


# --- keys ---------------------------------------------------------------------------------------


class K(enum.IntEnum):
    """Type codes of the order-preserving key encoding. Part of the format: never renumber."""

    NULL = 0x00
    BYTES = 0x01
    TEXT = 0x02
    ARRAY = 0x05  # elements, each encoded, NULL inside as 00 FF, terminated by 00
    JSON = 0x06  # canonical text, escaped like TEXT
    NEG_BIGINT = 0x0B  # 255 - len(magnitude), then the magnitude's bytes inverted
    INT = 0x14  # 8 bytes BE of v + 2**63
    POS_BIGINT = 0x1D  # len(v), then v's bytes BE
    FLOAT = 0x20  # IEEE double BE; sign bit flipped if positive, all bits if negative
    DECIMAL = 0x21  # see _encode_decimal_key
    FALSE = 0x26
    TRUE = 0x27
    DATE = 0x30  # 4 bytes BE of toordinal()
    TIME = 0x31  # 8 bytes BE of microseconds since midnight
    TIME_TZ = 0x32  # 8 bytes BE of UTC-normalised micros + 2**63, then 4 bytes offset + 2**31
    DATETIME = 0x33  # 8 bytes BE of microseconds since 0001-01-01
    DATETIME_TZ = 0x34  # same, UTC
    INTERVAL = 0x35  # 8 bytes BE of microseconds + 2**63
    UUID = 0x36  # 16 bytes
    SPELLED = 0x40  # follows the key of a Spelled's value: then the key of its spelling


_BQ = struct.Struct(">BQ")
_BI = struct.Struct(">BI")
_D = struct.Struct(">d")
_Qs = struct.Struct(">Q")
_SIGN = 1 << 63
_MASK64 = (1 << 64) - 1


def _escape(b: bytes) -> bytes:
    return b.replace(b"\x00", b"\x00\xff") + b"\x00"


def _encode_decimal_key(v: decimal.Decimal) -> bytes:
    """Order-preserving Decimal: sign class, then exponent and digits (inverted if negative).

    Classes: 00 -inf, 01 negative, 02 zero, 03 positive, 04 +inf, 05 NaN. A finite non-zero value
    is 0.d1d2...dn x 10**e with d1 != 0 and dn != 0: e as 8 bytes BE of e + 2**63, then the
    digits as ASCII, then 00. Negative values invert every byte after the class and end with FF.
    Equal numbers of different scale (1.5, 1.50) get the same key, as they compare equal in SQL.
    """
    if v.is_nan():
        return bytes((K.DECIMAL, 0x05))
    if v.is_infinite():
        return bytes((K.DECIMAL, 0x00 if v < 0 else 0x04))
    if v == 0:
        return bytes((K.DECIMAL, 0x02))
    sign, digits, exp = v.as_tuple()
    ds = "".join(map(str, digits)).lstrip("0")
    stripped = ds.rstrip("0")
    e = exp + len(ds)  # type: ignore[operator]
    body = _Qs.pack((e + _SIGN) & _MASK64) + stripped.encode("ascii")
    if sign:
        return bytes((K.DECIMAL, 0x01)) + bytes(255 - b for b in body) + b"\xff"
    return bytes((K.DECIMAL, 0x03)) + body + b"\x00"


def _encode_float_key(v: float) -> bytes:
    if v != v:
        v = _NAN
    (bits,) = _Qs.unpack(_D.pack(v))
    bits = (bits ^ _MASK64) if bits & _SIGN else (bits | _SIGN)
    return bytes((K.FLOAT,)) + _Qs.pack(bits)


def _encode_key_element(v: Any) -> bytes:
    t = type(v)
    if v is None:
        return b"\x00"
    if t is int:
        if _INT64_MIN <= v < _SIGN:
            return _BQ.pack(K.INT, v + _SIGN)
        if v > 0:
            mag = v.to_bytes((v.bit_length() + 7) // 8, "big")
            return bytes((K.POS_BIGINT, len(mag))) + mag
        mag = (-v).to_bytes(((-v).bit_length() + 7) // 8, "big")
        return bytes((K.NEG_BIGINT, 255 - len(mag))) + bytes(255 - b for b in mag)
    if t is str:
        return b"\x02" + _escape(v.encode("utf-8"))
    if t is bool:
        return bytes((K.TRUE if v else K.FALSE,))
    if t is bytes or t is bytearray or t is memoryview:
        return b"\x01" + _escape(bytes(v))
    if t is float:
        return _encode_float_key(v)
    if t is decimal.Decimal:
        return _encode_decimal_key(v)
    if t is _dt.datetime:
        if v.tzinfo is None:
            return _BQ.pack(K.DATETIME, (v - _DT_ZERO) // _US)
        return _BQ.pack(K.DATETIME_TZ, (v - _DT_ZERO_UTC) // _US)
    if t is _dt.date:
        return _BI.pack(K.DATE, v.toordinal())
    if t is _dt.time:
        micros = ((v.hour * 60 + v.minute) * 60 + v.second) * 1_000_000 + v.microsecond
        offset = v.utcoffset() if v.tzinfo is not None else None
        if offset is None:
            return _BQ.pack(K.TIME, micros)
        secs = int(offset.total_seconds())
        return _BQ.pack(K.TIME_TZ, micros - secs * 1_000_000 + _SIGN) + struct.pack(">I", secs + 2**31)
    if t is _dt.timedelta:
        return _BQ.pack(K.INTERVAL, (v // _US) + _SIGN)
    if t is uuid.UUID:
        return bytes((K.UUID,)) + v.bytes
    if t is Json:
        return bytes((K.JSON,)) + _escape(v.text.encode("utf-8"))
    if t is Spelled:
        # the value's key first, so that keys sort by meaning; the spelling keeps two texts of
        # one value (two spellings of one instant in a SQLite key column) apart
        return _encode_key_element(v.value) + bytes((K.SPELLED,)) + _encode_key_element(v.spelling)
    if t is list or t is tuple:
        parts = [b"\x00\xff" if x is None else _encode_key_element(x) for x in v]
        return bytes((K.ARRAY,)) + b"".join(parts) + b"\x00"
    if isinstance(v, bool):
        return bytes((K.TRUE if v else K.FALSE,))
    if isinstance(v, int):
        return _encode_key_element(int(v))
    if isinstance(v, str):
        return _encode_key_element(str(v))
    raise EncodingError(f"cannot encode a key value of type {t.__name__}: {v!r}")


# a value of a supported type out of the format's range (int64 micros, 255-byte bigint, ...)
_KEY_RANGE_ERRORS = (struct.error, ValueError, OverflowError)


def _key_range_error(values: Any, exc: Exception) -> EncodingError:
    return EncodingError(f"cannot encode key {values!r}: value out of range ({exc})")


def encode_key(values: Sequence[Any]) -> bytes:
    """The order-preserving bytes of a key tuple."""
    try:
        return b"".join([_encode_key_element(v) for v in values])
    except _KEY_RANGE_ERRORS as exc:
        raise _key_range_error(values, exc) from exc


def key_encoder(positions: Sequence[int]) -> Callable[[Sequence[Any]], bytes]:
    """A function from a row (a sequence of values) to the key bytes of the values at positions.

    The common case, one integer column, takes a fast path that packs in one C call.
    """
    if len(positions) == 1:
        (p,) = positions
        pack = _BQ.pack
        enc = _encode_key_element
        int_ = int
        lo, hi = _INT64_MIN, _SIGN

        def one(row: Sequence[Any]) -> bytes:
            v = row[p]
            if type(v) is int_ and lo <= v < hi:
                return pack(0x14, v + hi)
            try:
                return enc(v)
            except _KEY_RANGE_ERRORS as exc:
                raise _key_range_error([v], exc) from exc

        return one
    pos = tuple(positions)
    enc = _encode_key_element

    def many(row: Sequence[Any]) -> bytes:
        try:
            return b"".join([enc(row[i]) for i in pos])
        except _KEY_RANGE_ERRORS as exc:
            raise _key_range_error([row[i] for i in pos], exc) from exc

    return many


def keys_encoder(positions: Sequence[int]) -> Callable[[Sequence[Sequence[Any]]], list[bytes]]:
    """A function from a batch of rows to their key bytes: :func:`key_encoder` for each row,
    except that a batch keyed by one column of plain 64-bit integers (the common case) is
    encoded with no Python call per row."""
    one = key_encoder(positions)
    if len(positions) != 1:
        return lambda rows: list(map(one, rows))
    get = itemgetter(positions[0])
    pack = _BQ.pack
    lo, hi = _INT64_MIN, _SIGN
    tag = repeat(0x14)
    shift = repeat(hi)

    def batch(rows: Sequence[Sequence[Any]]) -> list[bytes]:
        values = list(map(get, rows))
        if values and set(map(type, values)) == {int} and lo <= min(values) and max(values) < hi:
            return list(map(pack, tag, map(add, values, shift)))
        return list(map(one, rows))

    return batch


def record_id(data: bytes) -> bytes:
    """The 32-byte id of a record with canonical bytes ``data``: SHA-256 of the type byte + data."""
    return hashlib.sha256(b"\x01" + data).digest()
