"""Errors of the database access layer.

Every message is one line, names the table, column or database it is about, and never contains a
password: URLs in messages are always redacted first, and driver messages are squeezed onto one
line and scrubbed of the password before they are quoted.
"""

from __future__ import annotations

from snapgit.errors import SnapError

__all__ = ["DatabaseError", "UnsupportedTypeError", "ForeignKeyViolationError", "RowMatchError"]


class DatabaseError(SnapError):
    """A database that cannot be reached or read: a bad URL, a server that does not answer, a
    SQLite file that does not exist, a table that is not there, a driver error while reading."""


class UnsupportedTypeError(DatabaseError):
    """A column whose type snapgit has no portable form for (raised when the table is reflected)."""

    def __init__(self, table: str, column: str, native: str, *, hint: str | None = None) -> None:
        super().__init__(
            f"column {table}.{column} has type {native}, which snapgit cannot store",
            hint=hint or "leave the column out (ignored columns in .snapstore/config.toml) or change its type",
        )
        self.table = table
        self.column = column
        self.native = native


class ForeignKeyViolationError(DatabaseError):
    """A write that would leave a row pointing at a row that does not exist: a child row whose
    parent is missing, or a parent row deleted while children still refer to it. ``table`` is the
    child table, ``ref_table`` the parent table, ``constraint`` the foreign key's name when the
    database has one, ``key`` the offending values as text, e.g. ``(parent_id)=(99)``; ``more``
    how many other rows break it too, when the database says; ``reason`` the database's own
    message, for when it names no key."""

    def __init__(
        self,
        table: str,
        ref_table: str | None,
        key: str | None,
        *,
        constraint: str | None = None,
        deleted: bool = False,
        more: int = 0,
        reason: str | None = None,
        hint: str | None = None,
    ) -> None:
        parent = ref_table or "its parent table"
        if key is None and reason:  # all the database told: its own words
            what = reason
        elif deleted:  # a parent row went away: ``key`` is the parent's key
            what = f"rows still refer to {key or 'a row'} of table {parent}, which is being deleted"
        else:
            what = f"{key or 'a key'} is not present in table {parent}"
        name = f" (constraint {constraint})" if constraint else ""
        others = f" (and {more} more {'row' if more == 1 else 'rows'})" if more else ""
        super().__init__(
            f"foreign key violation in table {table}: {what}{name}{others}",
            hint=hint or "the change would leave rows pointing at rows that do not exist; nothing was written",
        )
        self.table = table
        self.ref_table = ref_table
        self.key = key
        self.constraint = constraint


class RowMatchError(DatabaseError):
    """An update or delete that did not find exactly the rows it was given: the database changed
    since it was read (a row was deleted or changed meanwhile), or a key that is not unique."""


def one_line(text: str) -> str:
    """A driver message squeezed onto one line (drivers like to add indented second lines)."""
    return " ".join(str(text).split())


def driver_reason(exc: BaseException, password: str | None) -> str:
    """The driver's own message, on one line, without the password."""
    orig = getattr(exc, "orig", None) or exc
    args: tuple[object, ...] = getattr(orig, "args", ())
    if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):  # PyMySQL
        text = f"{args[1]} ({args[0]})"
    else:
        text = str(orig) or type(orig).__name__
    text = one_line(text)
    if password:  # drivers do not quote passwords; this is a second line of defence
        text = text.replace(password, "***")
    return text
