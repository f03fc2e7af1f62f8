"""Batch converters: apply per-column converters to a batch of rows at C speed where possible.

A scan fetches rows as tuples in sorted-column-name order. Most columns need no conversion; a
per-value Python call on each of them would cost more than the fetch itself. So for each scan one
function is generated, once, that unpacks each row and calls converters only on the columns that
have one::

    def convert(rows):
        return [(v0, v1, c2(v2), v3) for (v0, v1, v2, v3) in rows]

and when no column needs converting, batches are passed through untouched.

With ``memo``, a converted column first looks its value up in a dict of the text values it
converted before, a C call (``(g2(v2) or c2(v2))``): timestamp and date columns stored as text
repeat values (hours, days, a default), and parsing each again costs a Python call and more.
Only text inputs are remembered (an int and a float can be equal keys and convert differently),
only immutable results, and the dict is emptied when it fills.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from msgpack import ExtType

from snapgit.db.values import Converter
from snapgit.encoding import Spelled

__all__ = ["batch_converter"]

# rows in: whatever unpacks into one value per column (the driver's tuples, the caller's lists)
BatchConverter = Callable[[Iterable[Sequence[Any]]], list[tuple[Any, ...]]]

MEMO_MAX = 1 << 16

# results that may be shared by every row holding the same text
_IMMUTABLE = frozenset(
    {
        str,
        bytes,
        int,
        float,
        bool,
        type(None),
        ExtType,
        _dt.datetime,
        _dt.date,
        _dt.time,
        _dt.timedelta,
        decimal.Decimal,
        uuid.UUID,
    }
)


def _memoized(conv: Converter, memo: dict[str, Any]) -> Converter:
    def miss(v: Any) -> Any:
        out = conv(v)
        t = type(out)
        if type(v) is str and (t in _IMMUTABLE or (t is Spelled and type(out.value) in _IMMUTABLE)):
            if len(memo) >= MEMO_MAX:
                memo.clear()
            memo[v] = out
        return out

    return miss


def batch_converter(converters: Sequence[Converter | None], *, memo: bool = False) -> BatchConverter | None:
    """A function converting a batch of rows, or None when no column has a converter.
    ``memo``: remember the conversions of text values (only for drivers whose values are all
    hashable, as SQLite's are)."""
    if not any(c is not None for c in converters):
        return None
    names = [f"v{i}" for i in range(len(converters))]
    target = ", ".join(names) + ","
    namespace: dict[str, Any] = {}
    parts = []
    for i, (name, conv) in enumerate(zip(names, converters, strict=False)):
        if conv is None:
            parts.append(name)
        elif memo:
            cache: dict[str, Any] = {}
            namespace[f"g{i}"] = cache.get
            namespace[f"c{i}"] = _memoized(conv, cache)
            # a remembered result that is falsy (an empty text) is converted again: still right
            parts.append(f"(g{i}({name}) or c{i}({name}))")
        else:
            namespace[f"c{i}"] = conv
            parts.append(f"c{i}({name})")
    source = f"def convert(rows):\n    return [({', '.join(parts)},) for ({target}) in rows]\n"
    exec(compile(source, "<snapgit.db.rows>", "exec"), namespace)
    return namespace["convert"]
