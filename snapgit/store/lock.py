"""Store locks: shared writer leases and the exclusive gc lock, under ``.snapstore/locks/``.

gc deletes what no ref reaches. A commit in flight has objects that no ref reaches *yet*, and it
may skip writing an object because the store already has one (dedup) that is unreachable today.
So gc and writers must never overlap: every operation that writes objects or moves refs holds a
**writer lease** (many at once), and gc holds the **gc lock** (alone)::

    locks/writer-<owner>.json   one per writing process
    locks/gc.json               at most one

Each file is a JSON object ``{"kind", "pid", "host", "owner", "started", "refs"}``: the process
id and host name, a random owner id (16 hex digits) chosen once per process, the start time
(unix seconds), and for a lease, the ref lock files (``refs/heads/main.lock``) the owner holds
right now, so that a ref lock left by a killed process can be judged too.

Both sides announce first, then look at the other (like Dekker's algorithm): a writer creates its
lease and then checks for ``gc.json``; gc creates ``gc.json`` with ``O_EXCL`` and then lists the
leases. Whoever finds the other backs off (the writer removes its lease) and waits, then gives
up with :class:`LockedError`. At least one of two racing processes sees the other.

A lock whose owner is provably dead (same host, and the pid no longer runs, or runs a process that
started after the lock was taken: a reused pid) is removed with a note. A lock of another host is
never judged dead here, and a live one is never stolen: ``snap unlock`` is for the rest.
"""

from __future__ import annotations

import errno
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from snapgit.errors import DiskFullError, LockedError

__all__ = ["LockInfo", "StoreLocks", "OWNER", "pid_alive"]

# One owner id per process: a lease, the gc lock and the ref locks of one process share it.
OWNER = os.urandom(8).hex()


def _new_owner() -> None:
    # A forked child is another process, so another owner: two children of one parent must
    # not share a lease file (nor take each other's locks for their own).
    global OWNER
    OWNER = os.urandom(8).hex()


os.register_at_fork(after_in_child=_new_owner)
GC_LOCK = "gc.json"
_WAIT_SECONDS = 5.0


def _wait_seconds() -> float:
    try:
        return float(os.environ["SNAP_LOCK_TIMEOUT"])
    except (KeyError, ValueError):
        return _WAIT_SECONDS


def _proc_start(pid: int) -> float | None:
    """The start time of a process (unix seconds), from /proc; None where there is no /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        ticks = int(stat[stat.rindex(b")") + 2 :].split()[19])
        with open("/proc/stat", "rb") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith(b"btime"))
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    # A zombie (killed, not yet reaped by its parent) holds its pid but will never run again.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] != b"Z"
    except (OSError, ValueError):
        return True


@dataclass
class LockInfo:
    kind: str
    pid: int
    host: str
    owner: str
    started: float
    refs: list[str] = field(default_factory=list)
    path: Path | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "kind": self.kind,
                "pid": self.pid,
                "host": self.host,
                "owner": self.owner,
                "started": self.started,
                "refs": self.refs,
            },
            sort_keys=True,
        )

    @classmethod
    def read(cls, path: Path) -> LockInfo | None:
        """The lock in ``path``; None when it is gone or not (yet) readable."""
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                str(doc["kind"]),
                int(doc["pid"]),
                str(doc["host"]),
                str(doc["owner"]),
                float(doc["started"]),
                [str(r) for r in doc.get("refs", [])],
                path,
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def dead(self) -> bool:
        """True only when the owner provably no longer runs (see the module docstring)."""
        if self.host != os.uname().nodename:
            return False
        if self.owner == OWNER and self.pid == os.getpid():
            return False
        if not pid_alive(self.pid):
            return True
        start = _proc_start(self.pid)
        # a pid reused by a process that started after the lock was taken (1 s of clock slack)
        return start is not None and start > self.started + 1.0

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        return f"pid {self.pid} on {self.host}, since {since}"


def _write_whole(path: Path, text: str, *, exclusive: bool = False) -> bool:
    """Make ``path`` hold ``text``, never visible half-written (a reader would take a lock being
    written for no lock). ``exclusive``: only if it does not exist yet; False if it does."""
    tmp = path.with_name(f".{path.name}.{OWNER}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            if os.write(fd, text.encode("utf-8")) != len(text.encode("utf-8")):
                raise OSError(errno.ENOSPC, "short write")
        finally:
            os.close(fd)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        full = DiskFullError.of(exc, f"lock file {path.name}")
        if full is None:
            raise
        raise full from exc
    try:
        if not exclusive:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)  # link, unlike rename, refuses to replace an existing file
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


class StoreLocks:
    """The locks of one store, as seen by this process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / "locks"
        self.notes: list[str] = []  # locks of dead owners removed, for the user
        self._lease: LockInfo | None = None
        self._depth = 0

    def _new(self, kind: str) -> LockInfo:
        return LockInfo(kind, os.getpid(), os.uname().nodename, OWNER, time.time())

    def _mkdir(self) -> None:
        self.dir.mkdir(mode=0o700, exist_ok=True)

    def leases(self) -> list[LockInfo]:
        try:
            paths = sorted(self.dir.glob("writer-*.json"))
        except FileNotFoundError:
            return []
        out = []
        for p in paths:
            info = LockInfo.read(p)
            if info is None and p.exists():
                # unreadable: count it as a live writer of unknown origin (never judged dead)
                info = LockInfo("writer", -1, "?", "?", p.stat().st_mtime, [], p)
            if info is not None:
                out.append(info)
        return out

    def gc_holder(self) -> LockInfo | None:
        return LockInfo.read(self.dir / GC_LOCK)

    def _reclaim(self, info: LockInfo) -> list[str]:
        """Remove a dead owner's lock, and the ref locks its lease says it held."""
        removed = []
        assert info.path is not None
        for path in [self.root / r for r in info.refs] + [info.path]:
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            name = path.relative_to(self.root).as_posix()
            removed.append(name)
            self.notes.append(f"removed {name}, left by a killed process ({info.describe()})")
        return removed

    def reclaim_dead(self) -> list[str]:
        """Remove every lock of a dead owner; returns the files removed."""
        removed = []
        for info in self.leases() + [g for g in [self.gc_holder()] if g is not None]:
            if info.dead():
                removed += self._reclaim(info)
        return removed

    # -- writer leases --------------------------------------------------------------------------

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold a writer lease for the block (reentrant: nested operations share one lease)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._take_lease()
        self._depth = 1
        try:
            yield
        finally:
            self._depth = 0
            self._drop_lease()

    def _lease_path(self) -> Path:
        return self.dir / f"writer-{OWNER}.json"

    def _take_lease(self) -> None:
        self._mkdir()
        deadline = time.monotonic() + _wait_seconds()
        delay = 0.01
        while True:
            info = self._new("writer")
            path = self._lease_path()
            _write_whole(path, info.to_json())
            if not (self.dir / GC_LOCK).exists():
                info.path = path
                self._lease = info
                return
            path.unlink(missing_ok=True)  # back off: gc came first
            gc = self.gc_holder()
            if gc is not None and gc.dead():
                self._reclaim(gc)
                continue
            if time.monotonic() >= deadline:
                raise LockedError(
                    f"snap gc is running on this store ({gc.describe() if gc else 'starting'})",
                    hint="try again when it has finished",
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def _drop_lease(self) -> None:
        self._lease = None
        self._lease_path().unlink(missing_ok=True)

    def _rewrite_lease(self) -> None:
        lease = self._lease
        if lease is None:
            return
        # In place, not by a rename: a second copy needs room that a nearly full disk may not
        # have just when the commit takes its ref lock. A reader catching the write half-way
        # cannot parse the lease, and counts it as a live writer of unknown origin: safe.
        data = lease.to_json().encode("utf-8")
        path = self._lease_path()
        try:
            fd = os.open(path, os.O_WRONLY)
            try:
                if os.pwrite(fd, data, 0) != len(data):
                    raise OSError(errno.ENOSPC, "short write")
                os.ftruncate(fd, len(data))
            finally:
                os.close(fd)
        except OSError as exc:
            full = DiskFullError.of(exc, f"lock file {path.name}")
            if full is None:
                raise
            raise full from exc

    # -- ref locks (called by refs.DiskRefs) ---------------------------------------------------

    def took_ref_lock(self, path: Path) -> None:
        if self._lease is not None:
            self._lease.refs.append(path.relative_to(self.root).as_posix())
            self._rewrite_lease()

    def released_ref_lock(self, path: Path) -> None:
        lease = self._lease
        name = path.relative_to(self.root).as_posix()
        if lease is not None and name in lease.refs:
            lease.refs.remove(name)
            self._rewrite_lease()

    def reclaim_ref_lock(self, path: Path) -> bool:
        """Remove ``path`` (a ref lock file) if the lease naming it belongs to a dead process."""
        name = path.relative_to(self.root).as_posix()
        holders = [info for info in self.leases() if name in info.refs]
        if holders and all(info.dead() for info in holders):
            for info in holders:
                self._reclaim(info)
            return True
        return False

    # -- the gc lock ---------------------------------------------------------------------------

    @contextmanager
    def gc(self, wait: float | None = None) -> Iterator[None]:
        """Hold the exclusive gc lock, once no live writer holds a lease."""
        self._mkdir()
        path = self.dir / GC_LOCK
        deadline = time.monotonic() + (_wait_seconds() if wait is None else wait)
        while not _write_whole(path, self._new("gc").to_json(), exclusive=True):
            holder = LockInfo.read(path)
            if holder is None:  # just removed
                time.sleep(0.01)
            elif holder.dead():
                self._reclaim(holder)
            else:
                raise LockedError(f"another snap gc is running ({holder.describe()})", hint="wait for it to finish")
            if time.monotonic() >= deadline:
                raise LockedError(f"{path} cannot be taken", hint="run `snap unlock` if no snap command runs")
        try:
            delay = 0.01
            while True:
                live = []
                for info in self.leases():
                    if info.dead():
                        self._reclaim(info)
                    else:
                        live.append(info)
                if not live:
                    break
                if time.monotonic() >= deadline:
                    raise LockedError(
                        f"{len(live)} snap command(s) are writing to this store ({live[0].describe()})",
                        hint="run snap gc again when they have finished",
                    )
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
            yield
        finally:
            path.unlink(missing_ok=True)
