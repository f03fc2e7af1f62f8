"""The one error base of snapgit.

Everything the library raises on purpose subclasses :class:`SnapError`. The library never prints
and never exits; the CLI catches ``SnapError`` once, prints ``error: <message>`` and, when there is
one, ``hint: <hint>``, and exits with ``exit_code``. Specific errors live beside the code that
raises them; the few that several layers share live here.
"""

from __future__ import annotations

import errno

__all__ = [
    "SnapError",
    "NotFoundError",
    "CorruptError",
    "MissingObjectError",
    "LockedError",
    "DiskFullError",
    "ConflictError",
    "EXIT_ERROR",
    "EXIT_USAGE",
    "EXIT_CORRUPT",
    "EXIT_LOCKED",
]

EXIT_ERROR = 1  # the operation failed; nothing was changed
EXIT_USAGE = 2  # bad arguments (typer's own code for usage errors)
EXIT_CORRUPT = 3  # the store is damaged or of an unknown format
EXIT_LOCKED = 4  # another process holds a lock; try again later


class SnapError(Exception):
    """An error with a message for people and, optionally, a hint of what to do."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class NotFoundError(SnapError):
    """A revision, object, ref, table or store that does not exist."""


class CorruptError(SnapError):
    """Stored bytes that fail a checksum, do not parse, or are of an unknown format version."""

    exit_code = EXIT_CORRUPT


class MissingObjectError(NotFoundError, CorruptError):
    """An object the store should have and does not: something (a ref, a commit, a tree)
    names it, so its absence is damage (exit status 3), not a user's typo."""


class LockedError(SnapError):
    """A lock held by another process."""

    exit_code = EXIT_LOCKED


class ConflictError(SnapError):
    """A compare-and-swap that lost: the ref moved under us."""


class DiskFullError(SnapError):
    """A write failed for want of space (ENOSPC, EDQUOT) or over the file size limit (EFBIG).
    Whatever was half-written is removed or left as garbage; nothing visible changed."""

    _WHY = {
        errno.ENOSPC: "no space left on device",
        errno.EDQUOT: "disk quota exceeded",
        errno.EFBIG: "file size limit exceeded (ulimit -f)",
    }

    @classmethod
    def of(cls, exc: BaseException, what: str) -> DiskFullError | None:
        """The DiskFullError for an OSError that means "no room", else None."""
        if isinstance(exc, OSError) and exc.errno in cls._WHY:
            return cls(f"{cls._WHY[exc.errno]} while writing {what}; free space and retry")
        return None
