"""An in-memory remote: the twin of the others for fast tests, held to the same contract."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator

from snapgit.remote.base import RemoteConflict, RemoteExists, RemoteMissing

__all__ = ["MemoryRemote"]


def _etag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class MemoryRemote:
    """Keys in a dict, behind a lock so that threads racing on one key see one winner.

    ``ignores_conditions`` makes it behave like a server that ignores ``If-None-Match`` and
    ``If-Match`` (as some S3 look-alikes do): only for testing that such a server is refused.
    """

    def __init__(self, url: str = "memory://", *, ignores_conditions: bool = False) -> None:
        self.url = url
        self.ignores_conditions = ignores_conditions
        self._data: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes:
        try:
            return self._data[key]
        except KeyError:
            raise RemoteMissing(f"{self.url}: no {key}") from None

    def get_range(self, key: str, start: int, end: int) -> bytes:
        return self.get(key)[start:end]

    def head(self, key: str) -> tuple[int, str] | None:
        data = self._data.get(key)
        return None if data is None else (len(data), _etag(data))

    def put(self, key: str, data: bytes) -> None:
        self._data[key] = bytes(data)

    def put_new(self, key: str, data: bytes) -> str:
        with self._lock:
            if key in self._data and not self.ignores_conditions:
                raise RemoteExists(f"{self.url}: {key} exists")
            self._data[key] = bytes(data)
        return _etag(data)

    def put_if(self, key: str, data: bytes, etag: str) -> str:
        with self._lock:
            old = self._data.get(key)
            if (old is None or _etag(old) != etag) and not self.ignores_conditions:
                raise RemoteConflict(f"{self.url}: {key} changed since it was read")
            self._data[key] = bytes(data)
        return _etag(data)

    def list(self, prefix: str) -> Iterator[str]:
        return iter([k for k in list(self._data) if k.startswith(prefix)])

    def delete(self, key: str) -> None:
        self._data.pop(key, None)
