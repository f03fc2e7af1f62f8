"""Stand-ins for forked.Shares in tests of the work two processes share out (a capture commit's
leaves to patch, a status's leaves to read): one that makes both processes take some, and one
that fails as making shared memory fails in a container without /dev/shm."""

from __future__ import annotations

import time

from snapgit.forked import Shares


class BothTake(Shares):
    """Shares whose front, the first time, waits until the other process has taken a chunk
    (up to ten seconds): so that both take some work, however long the fork takes."""

    def front(self) -> range | None:
        if self.ends()[0] == 0:  # the front has taken nothing yet
            deadline = time.monotonic() + 10
            while self.ends()[1] == self.n and time.monotonic() < deadline:
                time.sleep(0.001)
        return super().front()


def no_shared_memory(n: int, chunk: int) -> Shares:
    raise OSError(38, "Function not implemented")  # what sem_open says without /dev/shm
