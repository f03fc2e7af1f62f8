"""Refs: names for commits (branches, tags, HEAD), moved only by compare-and-swap.

A ref is a file under the store holding a 64-digit hex id and a newline; ``HEAD`` holds either
``ref: refs/heads/<branch>`` or an id (detached). Every move goes through a lock file, as git
does: create ``<ref>.lock`` exclusively, write the new id, fsync, check that the ref still holds
the expected old id, append a reflog line, rename the lock over the ref, fsync the directory.
Two writers racing for the same ref cannot both win: one holds the lock, and the other either
waits for it or finds that the ref moved and gets :class:`ConflictError`.

Reflog lines (``logs/<ref>``) are ``<old> <new> <unix seconds> <+hhmm> <who>\\t<message>``,
with 64 zeros for "no value".
"""

from __future__ import annotations

import builtins
import errno
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from snapgit.errors import ConflictError, CorruptError, DiskFullError, LockedError, NotFoundError, SnapError
from snapgit.store.pack import fsync_dir
from snapgit.store.privatefile import make_private_dirs

__all__ = [
    "ZERO",
    "Refs",
    "DiskRefs",
    "MemoryRefs",
    "ReflogEntry",
    "check_ref_name",
    "BadRefNameError",
]

ZERO = "0" * 64
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_BAD_NAME = re.compile(r"(^|/)\.|\.\.|[\x00-\x20~^:?*\[\\\x7f]|\.lock($|/)|//|/$|^/|@\{|\.$")
LOCK_WAIT_SECONDS = 5.0


def _lock_wait() -> float:
    """Seconds to wait for a ref lock: SNAP_LOCK_TIMEOUT, else LOCK_WAIT_SECONDS."""
    try:
        return float(os.environ["SNAP_LOCK_TIMEOUT"])
    except (KeyError, ValueError):
        return LOCK_WAIT_SECONDS


class BadRefNameError(SnapError):
    pass


def check_ref_name(name: str, what: str = "ref") -> str:
    if not name or _BAD_NAME.search(name) or name in ("HEAD", "@"):
        raise BadRefNameError(f"invalid {what} name {name!r}", hint="use letters, digits, '-', '_', '.' and '/'")
    return name


@dataclass(frozen=True)
class ReflogEntry:
    old: str
    new: str
    time: int
    tz: str
    who: str
    message: str


class Refs(Protocol):
    def read(self, name: str) -> str | None: ...

    def read_symbolic(self, name: str) -> str | None: ...

    def set_symbolic(self, name: str, target: str) -> None: ...

    def set_if_equals(self, name: str, old: str | None, new: str, *, who: str, message: str) -> None: ...

    def delete_if_equals(self, name: str, old: str | None, *, who: str, message: str) -> None: ...

    def list(self, prefix: str) -> dict[str, str]: ...

    # builtins.list: in the body of a class with a method named list, the name means the method
    def reflog(self, name: str) -> builtins.list[ReflogEntry]: ...


def _tz_string(t: float) -> str:
    off = time.localtime(t).tm_gmtoff // 60
    sign = "+" if off >= 0 else "-"
    off = abs(off)
    return f"{sign}{off // 60:02d}{off % 60:02d}"


def _reflog_line(old: str | None, new: str | None, who: str, message: str) -> str:
    now = time.time()
    # Any whitespace, line separators included, becomes one space: a line is a whole entry.
    who = " ".join(who.split())
    message = " ".join(message.split()[:60])
    return f"{old or ZERO} {new or ZERO} {int(now)} {_tz_string(now)} {who}\t{message}\n"


_TZ = re.compile(r"^[+-][0-9]{4}$")


def _parse_reflog(text: str, name: str) -> list[ReflogEntry]:
    out = []
    lines = text.split("\n")
    for n, line in enumerate(lines, 1):
        if not line:
            continue
        try:
            if n == len(lines):
                raise ValueError("no newline at its end (cut short?)")
            head, message = line.split("\t", 1)
            old, new, ts, tz, who = head.split(" ", 4)
            if not (_HEX64.match(old) and _HEX64.match(new)):
                raise ValueError("bad id")
            if not ts.isdigit() or not _TZ.match(tz):
                raise ValueError("bad time")
            if "\t" in message:  # writers never write one: two lines run together
                raise ValueError("two entries on one line")
            out.append(ReflogEntry(old, new, int(ts), tz, who, message))
        except ValueError as exc:
            raise CorruptError(f"reflog of {name}, line {n}, is malformed: {exc}") from exc
    return out


class RefLockOwners(Protocol):
    """Who holds ref locks (lock.StoreLocks): so a lock left by a killed process can be judged."""

    def took_ref_lock(self, path: Path) -> None: ...

    def released_ref_lock(self, path: Path) -> None: ...

    def reclaim_ref_lock(self, path: Path) -> bool: ...


class DiskRefs:
    def __init__(self, root: Path, owners: RefLockOwners | None = None) -> None:
        self.root = root
        self.owners = owners

    def _path(self, name: str) -> Path:
        return self.root / name

    def _read_raw(self, name: str) -> str | None:
        try:
            text = self._path(name).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            return None
        except OSError as exc:
            raise CorruptError(f"ref {name} cannot be read: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise CorruptError(f"ref {name} is damaged: it is not text ({exc.reason} at byte {exc.start})") from exc
        return text.strip()

    def read_symbolic(self, name: str) -> str | None:
        raw = self._read_raw(name)
        if raw is not None and raw.startswith("ref: "):
            return raw[5:].strip()
        return None

    def read(self, name: str) -> str | None:
        """The id a ref holds, following a symbolic ref; None when it does not exist."""
        for _ in range(5):
            raw = self._read_raw(name)
            if raw is None:
                return None
            if raw.startswith("ref: "):
                target = raw[5:].strip()
                if not target.startswith("refs/") or _BAD_NAME.search(target):
                    raise CorruptError(f"ref {name} is damaged: it names {target[:80]!r}, not a valid ref")
                name = target
                continue
            if not _HEX64.match(raw):
                raise CorruptError(f"ref {name} holds {raw[:80]!r}, not a commit id")
            return raw
        raise CorruptError(f"ref {name}: symbolic refs nest too deeply")

    def _acquire(self, name: str) -> int:
        path = self._path(name)
        make_private_dirs(path.parent)
        lock = path.with_name(path.name + ".lock")
        deadline = time.monotonic() + _lock_wait()
        delay = 0.005
        while True:
            try:
                fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                if self.owners is not None:
                    try:
                        self.owners.took_ref_lock(lock)
                    except BaseException:  # (a full disk) the lock must not outlive the failure
                        os.close(fd)
                        os.unlink(lock)
                        raise
                return fd
            except FileExistsError:
                if self.owners is not None and self.owners.reclaim_ref_lock(lock):
                    continue  # its owner was killed: the lock was removed
                if time.monotonic() >= deadline:
                    raise LockedError(
                        f"ref {name} is locked by another process ({lock.name} exists)",
                        hint="wait for the other snap command to finish; if none is running, "
                        f"remove {lock} (or run `snap unlock`)",
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)

    def _locked_write(self, name: str, old: str | None, content: str | None, who: str, message: str) -> None:
        path = self._path(name)
        lock = path.with_name(path.name + ".lock")
        fd = self._acquire(name)
        try:
            if content is not None:
                os.write(fd, content.encode("utf-8"))
                os.fsync(fd)
            os.close(fd)
            fd = -1
            current = self.read(name)
            if current != old:
                raise ConflictError(
                    f"ref {name} moved: expected {(old or 'nothing')[:12]}, found {(current or 'nothing')[:12]}",
                    hint="another snap command updated it at the same time; run the command again",
                )
            if content is None and current is None:
                raise NotFoundError(f"ref {name} not found")
            new = content.strip() if content is not None else None
            self._append_reflog(name, old, new, who, message)
            if content is None:
                os.unlink(path)
                os.unlink(lock)
            else:
                os.replace(lock, path)
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except BaseException as exc:
            if fd >= 0:
                os.close(fd)
            try:
                os.unlink(lock)
            except FileNotFoundError:
                pass
            full = DiskFullError.of(exc, f"ref {name}")
            if full is not None:
                raise full from exc
            raise
        finally:
            if self.owners is not None:
                self.owners.released_ref_lock(lock)

    def _append_reflog(self, name: str, old: str | None, new: str | None, who: str, message: str) -> None:
        log = self.root / "logs" / name
        make_private_dirs(log.parent)
        line = _reflog_line(old, new, who, message).encode("utf-8")
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            size = os.fstat(fd).st_size
            try:
                if os.write(fd, line) != len(line):
                    raise OSError(errno.ENOSPC, "short write")
                os.fsync(fd)
            except BaseException:
                os.ftruncate(fd, size)  # no half line: the next entry must start on a line of its own
                raise
        finally:
            os.close(fd)

    def set_if_equals(self, name: str, old: str | None, new: str, *, who: str, message: str) -> None:
        if not _HEX64.match(new):
            raise ValueError(f"not an object id: {new!r}")
        self._locked_write(name, old, new + "\n", who, message)

    def delete_if_equals(self, name: str, old: str | None, *, who: str, message: str) -> None:
        self._locked_write(name, old, None, who, message)

    def set_symbolic(self, name: str, target: str) -> None:
        path = self._path(name)
        fd = self._acquire(name)
        lock = path.with_name(path.name + ".lock")
        try:
            os.write(fd, f"ref: {target}\n".encode())
            os.fsync(fd)
            os.close(fd)
            os.replace(lock, path)
        except BaseException:
            try:
                os.unlink(lock)
            except FileNotFoundError:
                pass
            raise
        finally:
            if self.owners is not None:
                self.owners.released_ref_lock(lock)

    def list(self, prefix: str) -> dict[str, str]:
        base = self.root / prefix
        out: dict[str, str] = {}
        if not base.is_dir():
            return out
        for p in sorted(base.rglob("*")):
            if p.is_file() and not p.name.endswith(".lock"):
                name = p.relative_to(self.root).as_posix()
                value = self.read(name)
                if value is not None:
                    out[name] = value
        return out

    def expire_reflog(self, name: str, before: float) -> int:
        """Drop the entries of a reflog older than ``before`` (unix seconds), keeping the newest
        one while the ref exists (it records the ref's value); a reflog left empty is removed.
        Rewritten whole (temporary file, fsync, rename). Returns how many entries went.
        Only under the gc lock: a writer appending meanwhile would lose its line."""
        path = self.root / "logs" / name
        entries = self.reflog(name)
        if not entries:
            return 0
        lines = [ln for ln in path.read_text(encoding="utf-8").split("\n") if ln]
        keep = [ln for ln, e in zip(lines, entries, strict=False) if e.time >= before]
        if not keep and self.read(name) is not None:
            keep = lines[-1:]
        dropped = len(lines) - len(keep)
        if not dropped:
            return 0
        if not keep:
            path.unlink()
            fsync_dir(path.parent)
            return dropped
        tmp = path.with_name(path.name + ".expire")
        try:
            with open(tmp, "w", encoding="utf-8", newline="\n") as f:
                f.write("\n".join(keep) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            full = DiskFullError.of(exc, f"the reflog of {name}")
            if full is None:
                raise
            raise full from exc
        fsync_dir(path.parent)
        return dropped

    def reflog(self, name: str) -> builtins.list[ReflogEntry]:
        try:
            text = (self.root / "logs" / name).read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except UnicodeDecodeError as exc:
            raise CorruptError(
                f"reflog of {name} is damaged: it is not text ({exc.reason} at byte {exc.start})"
            ) from exc
        return _parse_reflog(text, name)

    def locks(self) -> Iterator[Path]:
        yield from (p for p in (self.root / "refs").rglob("*.lock"))
        head = self.root / "HEAD.lock"
        if head.exists():
            yield head


class MemoryRefs:
    """The in-memory twin of :class:`DiskRefs`."""

    def __init__(self) -> None:
        self._refs: dict[str, str] = {}
        self._logs: dict[str, list[ReflogEntry]] = {}

    def read_symbolic(self, name: str) -> str | None:
        raw = self._refs.get(name)
        return raw[5:] if raw is not None and raw.startswith("ref: ") else None

    def read(self, name: str) -> str | None:
        for _ in range(5):
            raw = self._refs.get(name)
            if raw is None:
                return None
            if raw.startswith("ref: "):
                name = raw[5:]
                continue
            return raw
        raise CorruptError(f"ref {name}: symbolic refs nest too deeply")

    def _log(self, name: str, old: str | None, new: str | None, who: str, message: str) -> None:
        line = _reflog_line(old, new, who, message)
        self._logs.setdefault(name, []).extend(_parse_reflog(line, name))

    def set_if_equals(self, name: str, old: str | None, new: str, *, who: str, message: str) -> None:
        if not _HEX64.match(new):
            raise ValueError(f"not an object id: {new!r}")
        current = self._refs.get(name)
        if current != old:
            raise ConflictError(
                f"ref {name} moved: expected {(old or 'nothing')[:12]}, found {(current or 'nothing')[:12]}"
            )
        self._log(name, old, new, who, message)
        self._refs[name] = new

    def delete_if_equals(self, name: str, old: str | None, *, who: str, message: str) -> None:
        current = self._refs.get(name)
        if current != old:
            raise ConflictError(f"ref {name} moved")
        if current is None:
            raise NotFoundError(f"ref {name} not found")
        self._log(name, old, None, who, message)
        del self._refs[name]

    def set_symbolic(self, name: str, target: str) -> None:
        self._refs[name] = f"ref: {target}"

    def list(self, prefix: str) -> dict[str, str]:
        return {
            n: v
            for n, v in sorted(self._refs.items())
            if n.startswith(prefix.rstrip("/") + "/") and not v.startswith("ref: ")
        }

    def reflog(self, name: str) -> builtins.list[ReflogEntry]:
        return list(self._logs.get(name, []))
