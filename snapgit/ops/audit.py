"""The audit log entry of one operation, written in one place.

Every operation a user asks for (commit, merge, restore, gc, ...) leaves one line in
``.snapstore/oplog.jsonl`` (see :mod:`snapgit.store.oplog`): who, what, with which arguments,
and either its result or its error. :func:`audited` wraps the operation::

    with audited(store, who, "merge", {"rev": rev}) as entry:
        result = ...
        entry.result = result.summary()

A :class:`SnapError` leaving the block is logged as a failure and raised on; a normal exit is
logged with ``entry.ok`` and ``entry.result``. An operation asked for over the web is run inside
:func:`on_behalf_of`, which adds to its line the ``client`` it came from (the role it was granted
and its address), so the log says who could do it and from where, not only the server's user. The log is a record, never a reason to fail: a
line that cannot be written (a full disk, a read-only store) is skipped, so a finished
operation never turns into a failed one.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from snapgit.errors import SnapError
from snapgit.snapshot.record import default_author
from snapgit.store import oplog
from snapgit.store.layout import Store

__all__ = ["AuditEntry", "actor", "audited", "on_behalf_of", "read_log"]

# a context variable, not an argument: the operations deep under Repo need not pass it along
_client: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("snapgit_audit_client", default=None)


@dataclass
class AuditEntry:
    """What the operation reports for its line: ``ok`` (a verify may finish and still fail),
    ``result`` (a small JSON-able dict), or ``logged = False`` for an outcome not worth a line."""

    ok: bool = True
    result: dict[str, Any] | None = None
    logged: bool = True


def actor(store: Store, author: str | None = None) -> str:
    """Who an operation is by: ``author``, else config.toml's ``user.name``, else user@host."""
    return default_author(author or store.config.user_name)


def _append(store: Store, who: str, op: str, args: dict[str, Any], *, ok: bool, result=None, error=None) -> None:
    try:
        oplog.append(
            store.root / "oplog.jsonl",
            who=who,
            op=op,
            args=args,
            ok=ok,
            result=result,
            error=error,
            client=_client.get(),
        )
    except OSError:
        pass  # the audit log must never turn a finished operation into a failure


@contextlib.contextmanager
def audited(store: Store, who: str, op: str, args: dict[str, Any], *, first_line: bool = False) -> Iterator[AuditEntry]:
    """Log the operation run in the block, once, when it ends.

    ``first_line``: log only the first line of an error's message (an import's refusal lists
    every problem found, one a line; a log line stays within one atomic write)."""
    entry = AuditEntry()
    try:
        yield entry
    except SnapError as exc:
        error = str(exc).splitlines()[0] if first_line else str(exc)
        _append(store, who, op, args, ok=False, error=error)
        raise
    if entry.logged:
        _append(store, who, op, args, ok=entry.ok, result=entry.result)


@contextlib.contextmanager
def on_behalf_of(client: dict[str, Any]) -> Iterator[None]:
    """Operations logged in the block (in this thread or task) record ``client``: who asked
    for them from outside the process, such as ``{"via": "web", "role": ..., "address": ...}``."""
    token = _client.set(client)
    try:
        yield
    finally:
        _client.reset(token)


def read_log(store: Store) -> Iterator[dict[str, Any]]:
    """The entries of the audit log, oldest first."""
    return oplog.read(store.root / "oplog.jsonl")
