"""A remote in a plain directory: a mounted disk, a network share, a folder for tests.

A key is a path under the directory (``refs/heads/main`` is ``<dir>/refs/heads/main``). Every
write goes to a temporary file in ``<dir>/.tmp/``, is flushed to disk and then made visible in
one step, so a reader sees a whole value or none:

* ``put`` renames the temporary file over the key;
* ``put_new`` hard-links it to the key, which fails if the key exists (the atomic form of
  ``O_CREAT|O_EXCL``: an exclusively created file would be visible while half written);
* ``put_if`` takes ``<key>.lock`` (created whole, holding its owner's host and pid, by the same
  hard link), compares the key's etag (the SHA-256 of its bytes) with the expected one, renames
  the new value over the key and removes the lock. A lock left by a killed process of this host
  is removed by the next writer; one of another host after :data:`STALE_LOCK_SECONDS`. (Two
  writers that find the same stale lock at the same instant could both go on: a crash and a
  race at once; the directory remote is for one machine or a trusted share.)
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from snapgit.remote.base import (
    RemoteConflict,
    RemoteError,
    RemoteExists,
    RemoteMissing,
    RemoteNoBucket,
    RemoteUrlError,
)
from snapgit.store.lock import pid_alive
from snapgit.store.pack import fsync_dir

__all__ = ["DirRemote", "STALE_LOCK_SECONDS"]

STALE_LOCK_SECONDS = 600.0
_TMP = ".tmp"
_LOCK = ".lock"


def _etag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class DirRemote:
    def __init__(self, root: Path, url: str | None = None, *, ignores_conditions: bool = False) -> None:
        self.root = root
        self.url = url or str(root)
        # only for the test that a server ignoring conditional writes is refused
        self.ignores_conditions = ignores_conditions

    # -- paths

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") or p.startswith(".") or p.endswith(_LOCK) for p in parts):
            raise RemoteUrlError(f"{self.url}: invalid key {key!r}")
        return self.root.joinpath(*parts)

    def _check_root(self) -> None:
        if not self.root.is_dir():
            raise RemoteNoBucket(
                f"remote directory {self.root} does not exist",
                hint="create it, or check the path (snap remote list)",
            )

    def _os_error(self, exc: OSError, key: str) -> RemoteError:
        return RemoteError(f"{self.url}: cannot write {key}: {exc.strerror or exc}")

    def _temp(self, data: bytes) -> Path:
        self._check_root()
        tmp_dir = self.root / _TMP
        tmp_dir.mkdir(exist_ok=True)
        tmp = tmp_dir / f"{secrets.token_hex(8)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        return tmp

    # -- reading

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            self._check_root()
            raise RemoteMissing(f"{self.url}: no {key}") from None
        except IsADirectoryError:
            raise RemoteMissing(f"{self.url}: no {key}") from None

    def get_range(self, key: str, start: int, end: int) -> bytes:
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            self._check_root()
            raise RemoteMissing(f"{self.url}: no {key}") from None
        try:
            return os.pread(fd, max(0, end - start), start)
        finally:
            os.close(fd)

    def head(self, key: str) -> tuple[int, str] | None:
        try:
            data = self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            self._check_root()
            return None
        return len(data), _etag(data)

    def list(self, prefix: str) -> Iterator[str]:
        self._check_root()
        # walk only the folder the prefix reaches into, not the whole remote
        folder, _, _ = prefix.rpartition("/")
        start = self.root.joinpath(*folder.split("/")) if folder else self.root
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for f in filenames:
                if f.startswith(".") or f.endswith(_LOCK):
                    continue
                key = f if rel == "." else f"{rel}/{f}"
                if key.startswith(prefix):
                    yield key

    # -- writing

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        tmp = self._temp(data)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise self._os_error(exc, key) from exc
        fsync_dir(path.parent)

    def put_new(self, key: str, data: bytes) -> str:
        path = self._path(key)
        tmp = self._temp(data)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if self.ignores_conditions:
                os.replace(tmp, path)
            else:
                os.link(tmp, path)
        except FileExistsError:
            raise RemoteExists(f"{self.url}: {key} exists") from None
        except OSError as exc:
            raise self._os_error(exc, key) from exc
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(path.parent)
        return _etag(data)

    def put_if(self, key: str, data: bytes, etag: str) -> str:
        path = self._path(key)
        self._check_root()
        lock = path.with_name(path.name + _LOCK)
        self._take_lock(lock, key)
        try:
            try:
                old = path.read_bytes()
            except FileNotFoundError:
                old = None
            if (old is None or _etag(old) != etag) and not self.ignores_conditions:
                raise RemoteConflict(f"{self.url}: {key} changed since it was read")
            tmp = self._temp(data)
            try:
                os.replace(tmp, path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            fsync_dir(path.parent)
        finally:
            # the lock names its owner until the end: one left by a kill is judged by that
            lock.unlink(missing_ok=True)
        return _etag(data)

    def _take_lock(self, lock: Path, key: str) -> None:
        """Create ``lock`` holding this process's host and pid, whole (linked from a temporary
        file), or :class:`RemoteConflict` while another live writer holds it."""
        lock.parent.mkdir(parents=True, exist_ok=True)
        owner = self._temp(f"{socket.gethostname()} {os.getpid()}\n".encode())
        try:
            for _ in range(2):
                try:
                    os.link(owner, lock)
                    return
                except FileExistsError:
                    if self._stale(lock):
                        lock.unlink(missing_ok=True)
                        continue
                    raise RemoteConflict(f"{self.url}: {key} is being changed by another writer") from None
                except OSError as exc:
                    raise self._os_error(exc, key) from exc
            raise RemoteConflict(f"{self.url}: {key} is being changed by another writer")
        finally:
            owner.unlink(missing_ok=True)

    @staticmethod
    def _stale(lock: Path) -> bool:
        """A lock left by a dead process of this host, or an old one of any host."""
        try:
            text = lock.read_text("utf-8", "replace")
            age = time.time() - lock.stat().st_mtime
        except FileNotFoundError:
            return True
        host, _, pid = text.strip().partition(" ")
        if host == socket.gethostname() and pid.isdigit():
            return not pid_alive(int(pid))
        return age > STALE_LOCK_SECONDS

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._os_error(exc, key) from exc
