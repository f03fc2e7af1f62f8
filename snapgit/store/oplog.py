"""The audit log: ``.snapstore/oplog.jsonl``, one JSON object per operation, appended.

Each line: ``{"time": ISO-8601 UTC, "who": ..., "op": "commit", "args": {...},
"ok": true, "result": {...}}`` or ``"ok": false, "error": "..."``; an operation asked for over the web adds ``"client": {"via": "web",
"role": ..., "address": ...}``. Lines are appended with one
``write`` of less than a page under ``O_APPEND``, so concurrent writers do not interleave.
Passwords never reach it: callers pass redacted URLs only.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["append", "read"]


def append(
    path: Path,
    *,
    who: str,
    op: str,
    args: dict[str, Any],
    ok: bool,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    client: dict[str, Any] | None = None,
) -> None:
    entry: dict[str, Any] = {
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        "who": who,
        "op": op,
        "args": args,
        "ok": ok,
    }
    if result is not None:
        entry["result"] = result
    if error is not None:
        entry["error"] = error
    if client is not None:
        entry["client"] = client
    line = (json.dumps(entry, sort_keys=True, default=str) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read(path: Path) -> Iterator[dict[str, Any]]:
    try:
        f = open(path, encoding="utf-8")
    except FileNotFoundError:
        return
    with f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    yield {"op": "?", "ok": False, "error": "unreadable oplog line", "raw": line[:200]}
