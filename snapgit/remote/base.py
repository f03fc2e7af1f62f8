"""The remote protocol: a flat key-value store with create-only and compare-and-swap writes.

Everything snapgit keeps on a remote (packs, indexes, refs) goes through :class:`RemoteStore`, eight
methods that S3 (and everything that speaks its protocol), a directory and memory all offer with
the same meaning. A back end promises:

* ``put_new`` creates a key only if it does not exist (S3: ``If-None-Match: *``); of two racing
  writers exactly one succeeds, the other gets :class:`RemoteExists`.
* ``put_if`` replaces a key only if its etag is still the one given (S3: ``If-Match``); of two
  racing writers exactly one succeeds, the other gets :class:`RemoteConflict`.
* a key is read whole or not at all: a reader never sees half of a write.
* an etag names a value: a changed value gets another etag. (S3's is an MD5 for simple puts;
  the directory's and memory's a SHA-256 of the bytes.)

These two conditional writes are all snapgit needs to share a remote without a lock: packs are
uploaded create-only under their content's name, then a ref is moved by ``put_if`` from the value
the writer read, so a reader never sees a ref to an object that is not there yet.
``tests/test_remote_contract.py`` holds every back end to these promises.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from snapgit.errors import EXIT_CORRUPT, ConflictError, NotFoundError, SnapError

__all__ = [
    "RemoteStore",
    "RemoteError",
    "RemoteMissing",
    "RemoteExists",
    "RemoteConflict",
    "RemoteUnreachable",
    "RemoteAccessDenied",
    "RemoteNoBucket",
    "RemoteUnsupported",
    "RemoteCorrupt",
    "RemoteUrlError",
]


@runtime_checkable
class RemoteStore(Protocol):
    """A remote's keys and values (see the module docstring for what each back end promises)."""

    url: str  # for messages: never holds a secret

    def get(self, key: str) -> bytes:
        """The whole value; :class:`RemoteMissing` when there is no such key."""
        ...

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """The bytes ``[start, end)`` of the value; :class:`RemoteMissing` when there is no such key."""
        ...

    def head(self, key: str) -> tuple[int, str] | None:
        """(size, etag) of the value, or None when there is no such key."""
        ...

    def put(self, key: str, data: bytes) -> None:
        """Write, replacing any value: for content-named keys only, whose value never changes."""
        ...

    def put_new(self, key: str, data: bytes) -> str:
        """Create the key; :class:`RemoteExists` if it exists. Returns the new etag."""
        ...

    def put_if(self, key: str, data: bytes, etag: str) -> str:
        """Replace the value if its etag is still ``etag``; :class:`RemoteConflict` if it is not
        (or the key is gone). Returns the new etag."""
        ...

    def list(self, prefix: str) -> Iterator[str]:
        """The keys that start with ``prefix``, in no particular order."""
        ...

    def delete(self, key: str) -> None:
        """Remove the key; no error when it is already gone."""
        ...


class RemoteError(SnapError):
    """Something about a remote: what went wrong names the remote's URL."""


class RemoteMissing(RemoteError, NotFoundError):
    """A key the remote does not have."""


class RemoteExists(RemoteError):
    """A create-only write of a key that exists."""


class RemoteConflict(RemoteError, ConflictError):
    """A compare-and-swap write that lost: the key changed since it was read."""


class RemoteUnreachable(RemoteError):
    """The remote does not answer (no such host, connection refused, timeout)."""


class RemoteAccessDenied(RemoteError):
    """The remote refused the credentials."""


class RemoteNoBucket(RemoteError):
    """The bucket or directory the URL names does not exist."""


class RemoteUnsupported(RemoteError):
    """The server ignores conditional writes: sharing it would lose pushes."""


class RemoteCorrupt(RemoteError):
    """Bytes on the remote that fail their checksum, are cut short or do not parse."""

    exit_code = EXIT_CORRUPT


class RemoteUrlError(RemoteError):
    """A remote URL snapgit cannot use."""
