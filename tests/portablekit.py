"""Helpers of the tests that restore into another engine (test_cross_engine.py, test_django_app.py):
every table as snapgit reads it, and what a value of one portable type becomes in a column of
another, as docs/types.md says."""

from __future__ import annotations

import datetime as dt
from decimal import Context, Decimal
from typing import Any

from snapgit.encoding import Json, Spelled


def typed(url: str) -> dict[str, tuple[dict[str, str], list[dict[str, Any]]]]:
    """Every table as snapgit reads it: portable column types, and rows of canonical values."""
    from snapgit.db import Database

    out = {}
    with Database.connect(url) as db, db.snapshot() as snapshot:
        for schema in snapshot.reflect():
            names = schema.sorted_names
            rows = [dict(zip(names, r, strict=True)) for b in snapshot.scan(schema, schema.primary_key) for r in b]
            out[schema.name] = ({c.name: c.type for c in schema.columns}, rows)
    return out


def as_stored(value: Any, portable: str, target: str) -> Any:
    """A value of ``portable`` type as a column of ``target`` type holds it (docs/types.md). The
    engines differ: a value kept with its source engine's spelling arrives as its canonical value."""
    if isinstance(value, Spelled):
        value = value.value
    if value is None or portable == target:
        return value
    if {portable, target} <= {"smallint", "integer", "bigint"}:
        return value  # a foreign-key column takes its key's type (the values are the key's)
    if portable == "interval" and target == "bigint":
        return value // dt.timedelta(microseconds=1)
    if portable == "timetz" and target in ("text", "varchar(32)"):
        return value.isoformat(timespec="microseconds")
    if portable.startswith("array<") and target == "json":
        return Json(value)
    if portable == "real" and target == "double":
        return value
    if portable == "numeric" and target.startswith("numeric("):  # MariaDB's DECIMAL(65,30)
        return value.quantize(Decimal(1).scaleb(-int(target[:-1].split(",")[1])), context=Context(prec=100))
    raise AssertionError(f"no mapping from {portable} to {target}")
