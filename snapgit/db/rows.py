"""Batch converters: apply per-column converters to a batch of rows at C speed where possible.

A scan fetches rows as tuples in sorted-column-name order. Most columns need no conversion; a
per-value Python call on each of them would cost more than the fetch itself. So for each scan one
function is generated, once, that unpacks each row and calls converters only on the columns that
have one::

    def convert(rows):
        return [(v0, v1, c2(v2), v3) for (v0, v1, v2, v3) in rows]

and when no column needs converting, batches are passed through untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .values import Converter

__all__ = ["batch_converter"]

BatchConverter = Callable[[list[tuple[Any, ...]]], list[tuple[Any, ...]]]


def batch_converter(converters: Sequence[Converter | None]) -> BatchConverter | None:
    """A function converting a batch of rows, or None when no column has a converter."""
    if not any(c is not None for c in converters):
        return None
    names = [f"v{i}" for i in range(len(converters))]
    target = ", ".join(names) + ","
    out = ", ".join(
        name if conv is None else f"c{i}({name})" for i, (name, conv) in enumerate(zip(names, converters))
    )
    source = f"def convert(rows):\n    return [({out},) for ({target}) in rows]\n"
    namespace: dict[str, Any] = {f"c{i}": c for i, c in enumerate(converters) if c is not None}
    exec(compile(source, "<snapgit.db.rows>", "exec"), namespace)
    return namespace["convert"]
