"""Canonical value, row and key encoding (snapgit/encoding.py).

Properties:

* ``decode_row(encode_row(row))`` is ``canonical_value(row)``, value for value and type for type
  (NaN compared as NaN, -0.0 kept apart from 0.0, a Decimal's scale and exponent kept, aware
  datetimes back in UTC at the same instant);
* encoding is a function: the same row gives the same bytes, and re-encoding a decoded row gives
  the bytes it was decoded from;
* key bytes sort like key tuples (see :func:`logical` for the order asserted);
* whatever cannot be encoded raises :class:`EncodingError`, never another exception.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapgit.encoding import (
    EncodingError,
    Json,
    canonical_value,
    decode_row,
    decode_rows,
    encode_key,
    encode_row,
    encode_value,
    key_encoder,
    keys_encoder,
    packable,
    record_id,
)
from snapgit.errors import CorruptError, SnapError

PROPS = settings(deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow])

UTC = dt.UTC

# --- strategies -----------------------------------------------------------------------------

# Whole-minute offsets, as databases keep them (a sub-second offset cannot be stored).
offsets = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
# Years 2..9998: an aware datetime must still exist once moved to UTC.
naive_datetimes = st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59, 999999))
aware_datetimes = st.datetimes(
    min_value=dt.datetime(2, 1, 1), max_value=dt.datetime(9998, 12, 31), timezones=st.one_of(st.just(UTC), offsets)
)
naive_times = st.times()
aware_times = st.times(timezones=offsets)
# microseconds must fit in an int64
timedeltas = st.timedeltas(min_value=dt.timedelta(days=-100_000_000), max_value=dt.timedelta(days=100_000_000))


@st.composite
def decimals(draw, allow_special: bool = True) -> Decimal:
    """Decimals of any scale and exponent form: 1.50, 15E-1, 1.5E+3, -0, 0E-7 ..."""
    if allow_special and draw(st.integers(0, 9)) == 0:
        return Decimal(draw(st.sampled_from(["NaN", "-NaN", "sNaN", "Infinity", "-Infinity"])))
    sign = draw(st.integers(0, 1))
    digits = draw(st.lists(st.integers(0, 9), min_size=1, max_size=30))
    exp = draw(st.integers(-40, 40))
    return Decimal((sign, tuple(digits), exp))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=10,
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1]),
    st.floats(),
    st.sampled_from([math.nan, -math.nan, -0.0, 0.0, math.inf, -math.inf]),
    st.text(),
    st.binary(),
    decimals(),
    st.dates(),
    naive_times,
    aware_times,
    naive_datetimes,
    aware_datetimes,
    timedeltas,
    st.uuids(),
    json_values.map(Json),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner), max_leaves=8)
rows = st.lists(values, max_size=8)


def same(a, b) -> bool:
    """Equality that a round trip must keep: types, NaN, the sign of zero, Decimal scale, tz."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=False))
    if isinstance(a, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, Decimal):
        return a.as_tuple() == b.as_tuple()
    if isinstance(a, (dt.datetime, dt.time)):
        return a == b and a.utcoffset() == b.utcoffset() and a.replace(tzinfo=None) == b.replace(tzinfo=None)
    return a == b


# --- values and rows ------------------------------------------------------------------------


@PROPS
@given(rows)
def test_row_round_trip_gives_the_canonical_value(row):
    data = encode_row(row)
    back = decode_row(data)
    assert same(back, canonical_value(row)), (back, canonical_value(row))


@PROPS
@given(rows)
def test_encoding_is_a_function_and_decoding_is_its_inverse(row):
    data = encode_row(row)
    assert encode_row(row) == data
    assert encode_row(list(row)) == data
    # canonical bytes: what was decoded encodes to the very same bytes
    assert encode_row(decode_row(data)) == data
    canon = canonical_value(row)
    assert encode_row(canon) == encode_row(canonical_value(canon))


@PROPS
@given(st.lists(rows, max_size=40))
def test_decode_rows_equals_decode_row_one_by_one(batch):
    datas = [encode_row(r) for r in batch]
    got = decode_rows(datas)
    assert len(got) == len(batch)
    assert all(same(g, decode_row(d)) for g, d in zip(got, datas, strict=False))


def test_decode_rows_does_not_merge_or_split_records():
    # two values in one record would shift every row after it: the batch falls back to
    # decoding one by one, which gives what decode_row gives for each record
    datas = [encode_row([i, "x"]) for i in range(20)]
    datas[5] = encode_row([1]) + encode_row([2])
    with pytest.raises(CorruptError, match="ExtraData"):  # msgpack's, made a clear error
        decode_row(datas[5])
    with pytest.raises(CorruptError):
        decode_rows(datas)
    datas[5] = encode_value(7)  # a record that is not a row
    assert decode_rows(datas)[5] == 7 and decode_rows(datas)[6] == [6, "x"]


@PROPS
@given(values)
def test_encode_value_round_trips(value):
    assert same(decode_row(encode_value(value)), canonical_value(value))


def test_aware_datetimes_come_back_in_utc_at_the_same_instant():
    tz = dt.timezone(dt.timedelta(hours=5, minutes=30))
    v = dt.datetime(2024, 2, 29, 23, 15, 1, 123456, tzinfo=tz)
    (back,) = decode_row(encode_row([v]))
    assert back.tzinfo is UTC or back.utcoffset() == dt.timedelta(0)
    assert back == v
    assert back == dt.datetime(2024, 2, 29, 17, 45, 1, 123456, tzinfo=UTC)
    # the same instant written in two zones is one value
    assert encode_row([v]) == encode_row([v.astimezone(UTC)])


@pytest.mark.parametrize(
    "text", ["1.5", "1.50", "1.500E+3", "15E-1", "1E+2", "100", "-0", "0E-7", "0.000", "NaN", "-Infinity", "sNaN"]
)
def test_decimal_keeps_scale_and_exponent_form(text):
    d = Decimal(text)
    (back,) = decode_row(encode_row([d]))
    assert str(back) == str(d)


def test_equal_decimals_of_different_scale_are_different_values_but_the_same_key():
    assert encode_row([Decimal("1.5")]) != encode_row([Decimal("1.50")])
    assert encode_key([Decimal("1.5")]) == encode_key([Decimal("1.50")]) == encode_key([Decimal("15E-1")])


def test_json_is_canonical_text():
    a = Json({"b": [1, 2.5, None], "a": {"y": True, "x": "é"}})
    b = Json({"a": {"x": "é", "y": True}, "b": [1, 2.5, None]})
    assert encode_row([a]) == encode_row([b])
    assert decode_row(encode_row([a])) == [b]
    assert encode_row([Json("1")]) != encode_row(["1"]) != encode_row([Json(1)])


def test_bytes_like_values_encode_as_bytes():
    assert encode_row([bytearray(b"ab"), memoryview(b"cd")]) == encode_row([b"ab", b"cd"])
    assert decode_row(encode_row([bytearray(b"ab")])) == [b"ab"]


def test_record_id_is_sha256_of_type_byte_and_data():
    import hashlib

    data = encode_row([1, "a"])
    assert record_id(data) == hashlib.sha256(b"\x01" + data).digest()


class Unsupported:
    pass


@pytest.mark.parametrize("value", [Unsupported(), {1, 2}, object(), complex(1, 2), range(3)])
def test_unsupported_value_raises_encoding_error(value):
    with pytest.raises(EncodingError):
        encode_row([1, value])
    with pytest.raises(EncodingError):
        encode_value(value)
    with pytest.raises(EncodingError):
        encode_key([value])
    with pytest.raises(EncodingError):
        key_encoder([0])([value])
    with pytest.raises(EncodingError):
        key_encoder([0, 1])([1, value])


@pytest.mark.parametrize(
    "value",
    [
        dt.timedelta(days=200_000_000),  # microseconds beyond int64
        dt.timedelta(days=-200_000_000),
        # aware datetimes whose instant is not a datetime in UTC: they would encode into bytes
        # that no longer decode
        dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
        dt.datetime(1, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5))),
    ],
)
def test_value_out_of_range_raises_encoding_error(value):
    """A value of a supported type that the format cannot hold is an EncodingError (scan.py
    turns that into a message naming the table and column), not a stray struct.error; so is it
    from packable, which a scan's converters call."""
    with pytest.raises(EncodingError):
        encode_row([value])
    with pytest.raises(EncodingError):
        encode_value(value)
    with pytest.raises(EncodingError):
        packable(value)


@pytest.mark.parametrize(
    "value",
    [
        dt.timedelta(days=200_000_000),
        dt.timedelta(days=-200_000_000),
        pytest.param(2**2048, id="2**2048"),  # magnitude longer than the one length byte can say
        pytest.param(-(2**2048), id="-2**2048"),
        dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5))),  # before 0001-01-01 UTC
    ],
)
def test_key_out_of_range_raises_encoding_error(value):
    with pytest.raises(EncodingError):
        encode_key([value])
    with pytest.raises(EncodingError):
        key_encoder([0])([value])
    with pytest.raises(EncodingError):
        key_encoder([1, 0])([value, 1])


def test_encoding_error_is_a_snap_error():
    assert issubclass(EncodingError, SnapError)


# --- keys -------------------------------------------------------------------------------------
#
# The logical order asserted (the order of the key tuples):
#
# * tuples compare element by element, a proper prefix first;
# * None sorts before every value of its column;
# * numbers by value, except that -0.0 sorts just before 0.0 (the key keeps the float's bits,
#   so the two zeros are distinct keys) -- floats are drawn without NaN;
# * Decimals by value, and equal Decimals of different scale (1.5, 1.50, 15E-1) are EQUAL keys,
#   as SQL compares them -- drawn without NaN;
# * text by code point (UTF-8 byte order), bytes lexicographically, False < True;
# * dates, naive datetimes, aware datetimes (by instant), intervals, UUIDs (by their 128-bit
#   number) in their natural order; aware times by UTC instant, then by offset (the key keeps
#   the offset, so the same instant at two offsets is two keys).

KEY_TYPES = {
    "int": st.integers(),
    "bigint": st.integers(min_value=-(2**2000), max_value=2**2000),
    "int_edges": st.sampled_from([0, -1, 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, -(2**64), 2**64 - 1]),
    "float": st.floats(allow_nan=False),
    "zeros": st.sampled_from([-0.0, 0.0, -math.inf, math.inf, 5e-324, -5e-324]),
    "decimal": decimals(allow_special=False),
    "decimal_special": decimals(allow_special=True).filter(lambda d: not d.is_nan()),
    "text": st.text(),
    "text_nul": st.text(alphabet="\x00\x01a\xff", max_size=4),
    "bytes": st.binary(),
    "bytes_nul": st.binary(max_size=4).map(lambda b: bytes(x % 3 for x in b) + b"\xff" * (len(b) % 2)),
    "bool": st.booleans(),
    "date": st.dates(),
    "datetime": naive_datetimes,
    "datetime_tz": aware_datetimes,
    "time": naive_times,
    "time_tz": aware_times,
    "interval": timedeltas,
    "uuid": st.uuids(),
}


def logical(type_name: str, v):
    """The sort key of one element under the order above."""
    if v is None:
        return (0,)
    if type_name in ("float", "zeros"):
        return (1, v, math.copysign(1.0, v))
    if type_name == "time_tz":
        off = v.utcoffset()
        naive = dt.datetime.combine(dt.date(2000, 1, 1), v.replace(tzinfo=None))
        return (1, naive - off, off)
    return (1, v)


def logical_key(types, key):
    return tuple(logical(t, v) for t, v in zip(types, key, strict=False))


@st.composite
def keys_of_one_shape(draw):
    """Several key tuples of one shape (a column type per position, each value maybe None);
    some tuples are prefixes or duplicates of others."""
    types = draw(st.lists(st.sampled_from(sorted(KEY_TYPES)), min_size=1, max_size=3))
    element = [st.none() | KEY_TYPES[t] for t in types]
    keys = draw(st.lists(st.tuples(*element), min_size=1, max_size=6))
    # near neighbours: shared first elements, and the same key twice
    keys.append(keys[0])
    if len(types) > 1:
        keys.append(keys[0][:-1] + (draw(element[-1]),))
        keys.append(keys[0][:-1])
    return types, keys


@PROPS
@given(keys_of_one_shape())
def test_key_bytes_sort_like_key_tuples(shape):
    types, keys = shape
    for a in keys:
        for b in keys:
            ea, eb = encode_key(a), encode_key(b)
            la, lb = logical_key(types, a), logical_key(types, b)
            assert (ea < eb) == (la < lb), (a, b)
            assert (ea == eb) == (la == lb), (a, b)


@PROPS
@given(
    st.sampled_from(sorted(KEY_TYPES)).flatmap(
        lambda t: st.lists(KEY_TYPES[t], min_size=2, max_size=20).map(lambda vs: (t, vs))
    )
)
def test_sorting_by_key_bytes_is_sorting_by_value(case):
    t, vs = case
    by_bytes = sorted(vs, key=lambda v: encode_key([v]))
    assert [logical(t, v) for v in by_bytes] == sorted(logical(t, v) for v in vs)


def test_key_order_examples():
    ordered = [
        [None],
        [-(2**70)],
        [-(2**64)],
        [-(2**63) - 1],
        [-(2**63)],
        [-1],
        [0],
        [2**63 - 1],
        [2**63],
        [2**64],
        [2**70],
    ]
    assert sorted(ordered, key=encode_key) == ordered
    texts = [[""], ["\x00"], ["\x00\x00"], ["\x00a"], ["a"], ["a\x00"], ["ab"], ["é"], ["\uffff"], ["\U0001f600"]]
    assert sorted(texts, key=encode_key) == texts
    decs = [
        Decimal(x)
        for x in [
            "-Infinity",
            "-1E+3",
            "-10.5",
            "-10",
            "-1.05",
            "-0.1",
            "-1E-9",
            "0",
            "1E-9",
            "0.1",
            "1.05",
            "10",
            "10.5",
            "1E+3",
            "Infinity",
        ]
    ]
    assert sorted(decs, key=lambda d: encode_key([d])) == decs
    floats = [-math.inf, -1e308, -1.0, -5e-324, -0.0, 0.0, 5e-324, 1.0, 1e308, math.inf]
    assert sorted(reversed(floats), key=lambda f: encode_key([f])) == floats


def test_key_nan_is_one_key():
    nan2 = -math.nan
    assert encode_key([math.nan]) == encode_key([nan2])
    assert encode_key([math.inf]) < encode_key([math.nan])


def test_null_sorts_first_in_every_position():
    assert encode_key([None, 5]) < encode_key([-(2**80), None])
    assert encode_key([1, None]) < encode_key([1, -(2**80)])
    assert encode_key([1, None]) < encode_key([1, b""])
    assert encode_key(["a", None]) < encode_key(["a", ""]) < encode_key(["a\x00"])


def test_key_encoding_is_prefix_free_for_variable_length_types():
    # (x, y) never collides with (x', y') for different splits of the same bytes
    assert encode_key(["ab", "c"]) != encode_key(["a", "bc"])
    assert encode_key([b"a\x00", b""]) != encode_key([b"a", b"\x00"])


@PROPS
@given(st.one_of(*KEY_TYPES.values(), st.none()), st.integers(0, 3))
def test_key_encoder_single_position_matches_encode_key(v, pos):
    row = ["pad"] * pos + [v] + ["tail"]
    assert key_encoder([pos])(row) == encode_key([v])


@PROPS
@given(st.lists(st.one_of(st.integers(), st.text(), st.none(), decimals(False)), min_size=1, max_size=5), st.data())
def test_key_encoder_many_positions_matches_encode_key(row, data):
    positions = data.draw(st.lists(st.integers(0, len(row) - 1), min_size=1, max_size=4))
    assert key_encoder(positions)(row) == encode_key([row[i] for i in positions])


@pytest.mark.parametrize("v", [0, -1, 1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, True, False, 2**100])
def test_key_encoder_fast_path_edges(v):
    assert key_encoder([0])([v]) == encode_key([v])


key_values = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.none(),
    st.text(max_size=4),
    st.floats(allow_nan=False),
)


@PROPS
@given(rows=st.lists(st.tuples(key_values, key_values), max_size=30), positions=st.sampled_from([[0], [1], [1, 0]]))
def test_keys_encoder_is_key_encoder_on_each_row(rows, positions):
    """The batch fast path (plain 64-bit integers) gives the bytes of the per-row encoder."""
    one = key_encoder(positions)
    assert keys_encoder(positions)(rows) == [one(r) for r in rows]
