"""Errors of the database access layer.

Every message is one line, names the table, column or database it is about, and never contains a
password: URLs in messages are always redacted first, and driver messages are squeezed onto one
line and scrubbed of the password before they are quoted.
"""

from __future__ import annotations

from ..errors import SnapError

__all__ = ["DatabaseError", "UnsupportedTypeError"]


class DatabaseError(SnapError):
    """A database that cannot be reached or read: a bad URL, a server that does not answer, a
    SQLite file that does not exist, a table that is not there, a driver error while reading."""


class UnsupportedTypeError(DatabaseError):
    """A column whose type snapgit has no portable form for (raised when the table is reflected)."""

    def __init__(self, table: str, column: str, native: str, *, hint: str | None = None) -> None:
        super().__init__(
            f"column {table}.{column} has type {native}, which snapgit cannot store",
            hint=hint
            or "leave the column out (ignored columns in .snapstore/config.toml) or change its type",
        )
        self.table = table
        self.column = column
        self.native = native


def one_line(text: str) -> str:
    """A driver message squeezed onto one line (drivers like to add indented second lines)."""
    return " ".join(str(text).split())
