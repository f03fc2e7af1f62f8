"""Long operations of the web pages, run in a worker thread while the page polls their progress.

A backup (a commit), a restore or a merge can take minutes on a big database: longer than a
browser or a reverse proxy waits for one response. So the request that starts one returns at
once with the job's page, the operation runs in a thread of its own, and the page asks for the
job's state every second (htmx polling; without JavaScript the page refreshes itself). A job is
a :class:`snapgit.progress.Progress` to the operation, so it sees the same per-table progress as
the CLI's bar.

Each job opens its own :class:`snapgit.repo.Repo`: the Repo methods take the store's writer
lease and the refs' locks exactly as the CLI does (and write the database in one transaction),
so a web restore and a CLI commit see each other whole or not at all; an operation refused
(a lock held by gc, a branch that moved) fails with its one-line error on the job's page.
Jobs are kept in memory only (the audit log is the lasting record), the oldest dropped past
:data:`KEEP`.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from snapgit.errors import SnapError

__all__ = ["Job", "Jobs", "KEEP"]

KEEP = 50


@dataclass
class Job:
    """One operation: what it is, how far it got, and how it ended."""

    id: str
    kind: str  # "backup", "restore", "merge", "continue"
    title: str
    role: str
    started: float = field(default_factory=time.time)
    state: str = "running"  # running, done, failed
    table: str | None = None
    table_total: int | None = None
    table_done: int = 0
    tables_seen: int = 0
    rows_done: int = 0
    result: Any = None
    error: str | None = None
    hint: str | None = None
    problems: list[str] = field(default_factory=list)
    finished: float | None = None

    # -- the Progress protocol (called from the worker thread; plain stores, read by the page)

    def table_started(self, name: str, total: int | None) -> None:
        self.table, self.table_total, self.table_done = name, total, 0
        self.tables_seen += 1

    def advance(self, rows: int) -> None:
        self.table_done += rows
        self.rows_done += rows

    @property
    def percent(self) -> int | None:
        if not self.table_total:
            return None
        return min(100, int(100 * self.table_done / self.table_total))

    @property
    def seconds(self) -> float:
        return (self.finished or time.time()) - self.started


class _JobProgress:
    """The Progress a job's operation reports to (``table`` is the protocol's name, and a Job
    already has a field of that name)."""

    def __init__(self, job: Job) -> None:
        self._job = job

    def table(self, name: str, total: int | None) -> None:
        self._job.table_started(name, total)

    def advance(self, rows: int) -> None:
        self._job.advance(rows)


class Jobs:
    """The jobs of one server: start one, look one up."""

    def __init__(self) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, kind: str, title: str, role: str, work: Callable[[Any], Any]) -> Job:
        """Run ``work(progress)`` in a new thread; its return value becomes ``job.result``."""
        job = Job(id=secrets.token_hex(8), kind=kind, title=title, role=role)
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > KEEP:
                self._jobs.popitem(last=False)
        thread = threading.Thread(target=self._run, args=(job, work), name=f"snap-web-{kind}", daemon=True)
        thread.start()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def recent(self) -> list[Job]:
        with self._lock:
            return list(reversed(self._jobs.values()))

    @staticmethod
    def _run(job: Job, work: Callable[[Any], Any]) -> None:
        try:
            job.result = work(_JobProgress(job))
            job.state = "done"  # after the result: a page that reads "done" finds the result set
        except SnapError as exc:
            lines = exc.message.splitlines()
            job.error, job.problems, job.hint = lines[0], lines[1:], exc.hint
            job.state = "failed"
        except Exception as exc:  # noqa: BLE001 - a bug must show on the page, not kill the thread silently
            job.error = f"internal error: {type(exc).__name__}: {exc}"
            job.state = "failed"
        finally:
            job.finished = time.time()
