"""Work handed to a forked process, with a pipe back: how snap uses a second core for reading.

A restore reads records ahead of the writes (snapgit.ops.readahead), a commit through the change
log reads its parent's leaves ahead of the edits (DiskObjectStore.read_ahead), and a status walks
to half of the logged keys in another process (:func:`aside`). Each forks (the process shares
what this one has open: reads go through pread, which has no file position to share), sends its
results through a pipe whose buffer is the only queue, and ends with ``os._exit``, running no
finalizer of what it inherited. A pipe that breaks (the caller is gone) just ends it; a child
that fails says so by a message of its own, or not at all (the caller then reads the pipe's end).
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # multiprocessing is imported when a process is forked: most commands never do
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

__all__ = ["Shares", "aside", "end", "fork", "send_batched"]

T = TypeVar("T")


def fork(target: Callable[..., None], *args: Any, pipe_bytes: int = 0) -> tuple[Connection, BaseProcess]:
    """A forked process running ``target(conn, *args)``, ``conn`` the writing end of a pipe
    whose reading end comes back with the process. ``pipe_bytes``: ask Linux for a pipe that
    large (up to its limit, 1 MB by default), so that the child can run further ahead."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    ours, theirs = ctx.Pipe(duplex=False)
    if pipe_bytes:
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(theirs.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), pipe_bytes)
    proc = ctx.Process(target=_main, args=(theirs, ours, target, args), daemon=True)
    proc.start()
    theirs.close()
    return ours, proc


def _main(conn: Connection, parent_end: Connection, target: Callable[..., None], args: tuple) -> None:
    parent_end.close()  # so a parent that dies breaks the pipe
    # What the parent left for its garbage collector is the parent's: collected here, a
    # finalizer (a database connection's close) would act on what the parent still uses.
    gc.freeze()
    code = 0
    try:
        target(conn, *args)
    except BaseException:  # noqa: BLE001 - a broken pipe, or a failure the target did not report
        code = 1
    finally:
        os._exit(code)


def end(conn: Connection, proc: BaseProcess) -> None:
    """Close our end of the pipe and see the process gone: one that does not end within a
    second of its pipe breaking is killed."""
    conn.close()
    proc.join(timeout=1)
    if proc.is_alive():
        proc.kill()
        proc.join()


@contextlib.contextmanager
def aside(fn: Callable[[], T]) -> Iterator[Callable[[], T | None]]:
    """Run ``fn`` in a forked process while the block runs; the block gets a function that
    waits for its result (sent back pickled), or None when it failed. The process is gone when
    the block ends, whether the result was asked for or not."""
    conn, proc = fork(_send_result, fn)

    def result() -> T | None:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return None
        return msg[1] if msg[0] == "ok" else None

    try:
        yield result
    finally:
        end(conn, proc)


def _send_result(conn: Connection, fn: Callable[[], Any]) -> None:
    conn.send(("ok", fn()))


def send_batched(conn: Connection, kind: str, items: Iterable[Any], size: Callable[[Any], int], limit: int) -> None:
    """Send ``items`` to the other process as ``(kind, [item, ...])`` messages of about
    ``limit`` bytes each (``size`` tells an item's), then ``("done",)``: the pipe's buffer is
    the only queue, so the sender waits while the reader is behind."""
    batch: list[Any] = []
    held = 0
    for item in items:
        batch.append(item)
        held += size(item)
        if held >= limit:
            conn.send((kind, batch))
            batch, held = [], 0
    if batch:
        conn.send((kind, batch))
    conn.send(("done",))


class Shares:
    """Items ``0 .. n - 1`` shared out in chunks between this process, which takes them from the
    front, and a process forked after this is made, which takes them from the back, until the
    two meet: whichever goes faster does more. (A forked process is the slower one as a rule:
    every page of the parent's objects it touches is copied on its first write, a reference
    count included.) The two ends are in memory both processes share, changed under a lock.

    A side that cannot take the lock within a second takes nothing more: the other process
    died holding it, or will take the rest itself."""

    def __init__(self, n: int, chunk: int) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        self._ends = ctx.RawArray("q", [0, n])  # the front's next item, the back's end
        self._lock = ctx.Lock()
        self.n = n
        self.chunk = chunk

    def ends(self) -> tuple[int, int]:
        """(the next item the front takes, the first item the back has taken: n before it takes any)."""
        with self._lock:
            return self._ends[0], self._ends[1]

    def front(self) -> range | None:
        """The next chunk from the front, for this process; None once the two have met."""
        return self._take(front=True)

    def back(self) -> range | None:
        """The next chunk from the back, for the forked process; None once the two have met."""
        return self._take(front=False)

    def _take(self, front: bool) -> range | None:
        if not self._lock.acquire(timeout=1.0):
            return None
        try:
            lo, hi = self._ends[0], self._ends[1]
            if lo >= hi:
                return None
            if front:
                self._ends[0] = min(lo + self.chunk, hi)
                return range(lo, self._ends[0])
            self._ends[1] = max(hi - self.chunk, lo)
            return range(self._ends[1], hi)
        finally:
            self._lock.release()
