"""Values in JSON-safe form, for ``--json`` output and human display.

JSON has no Decimal, date, bytes or NaN, so each gets a text form that loses nothing: Decimal as
its exact text (scale kept), dates and times in ISO 8601, intervals as ISO 8601 durations in
seconds (``PT90.5S``), bytes as base64, UUID as text, NaN and infinities as the strings
``"NaN"``, ``"Infinity"``, ``"-Infinity"``; JSON documents as themselves; arrays as lists.
A value kept with its engine's spelling (:class:`~snapgit.encoding.Spelled`) is shown as that
spelling: it is what the database holds, and two spellings of one value must look different.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import math
import uuid
from typing import Any

from snapgit.encoding import Json, Spelled

__all__ = ["to_json", "to_text"]


def _interval(v: dt.timedelta) -> str:
    micros = v // dt.timedelta(microseconds=1)
    sign = "-" if micros < 0 else ""
    secs, us = divmod(abs(micros), 1_000_000)
    return f"{sign}PT{secs}.{us:06d}S" if us else f"{sign}PT{secs}S"


def to_json(v: Any) -> Any:
    t = type(v)
    if v is None or t is bool or t is int or t is str:
        return v
    if t is float:
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return v
    if t is decimal.Decimal:
        return str(v)
    if t is dt.datetime or t is dt.date or t is dt.time:
        return v.isoformat()
    if t is dt.timedelta:
        return _interval(v)
    if t is bytes:
        return base64.b64encode(v).decode("ascii")
    if t is uuid.UUID:
        return str(v)
    if t is Json:
        return v.value
    if t is list or t is tuple:
        return [to_json(x) for x in v]
    if t is Spelled:
        return to_json(v.spelling)
    if isinstance(v, int):
        return int(v)
    return str(v)


def to_text(v: Any, width: int = 60) -> str:
    """A short human form: NULL for None, bytes as hex, long text cut with an ellipsis."""
    if v is None:
        return "NULL"
    t = type(v)
    if t is Spelled:
        v = v.spelling
        t = type(v)
    if t is bytes:
        text = "\\x" + v.hex()
    elif t is str:
        text = repr(v)
    elif t is Json:
        text = v.text
    elif t is float:
        text = repr(v)
    elif t is dt.datetime:
        text = v.isoformat(sep=" ")
    else:
        j = to_json(v)
        text = j if isinstance(j, str) else repr(j)
    if len(text) > width:
        text = text[: width - 1] + "…"
    return text
