"""Run `snap` in a forked child process: the real CLI entry point in a real process, without
paying ~0.6 s of interpreter start and imports per run.

The fault tests run `snap` hundreds of times (kill -9 at random moments, damage at random
offsets). A child forked from the test process already has snapgit, SQLAlchemy and the drivers
imported, so the time between start and kill is spent in snapgit's own work, where the crashes
are interesting, and a run costs a few milliseconds more than the work itself.

The child calls ``snapgit.cli.main()`` with its own argv, working directory, stdin from /dev/null
and stdout/stderr in files, and leaves with ``os._exit`` (never returning into pytest). The parent
must not hold open database connections across a fork (use NullPool engines or dispose them), and
must have no threads running (snapgit's pack writer joins its thread before a commit returns).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import snapgit
import snapgit.cli.app

# Everything a command may import lazily is imported once here, before any fork.
for _mod in pkgutil.walk_packages(snapgit.__path__, "snapgit."):
    importlib.import_module(_mod.name)
for _mod in (
    "sqlalchemy.dialects.sqlite",
    "sqlalchemy.dialects.postgresql",
    "sqlalchemy.dialects.mysql",
    "rich.console",
    "rich.table",
    "psycopg",
    "pymysql",
    "pymysql.cursors",
):
    importlib.import_module(_mod)

__all__ = ["Child", "start", "run"]


@dataclass
class Child:
    pid: int
    out: Path
    err: Path
    returncode: int | None = None
    killed: bool = False

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._status(status)
        return self.returncode

    def _status(self, status: int) -> None:
        if os.WIFSIGNALED(status):
            self.returncode = -os.WTERMSIG(status)
        else:
            self.returncode = os.WEXITSTATUS(status)

    def kill(self) -> bool:
        """SIGKILL it if it still runs; True when it was still running."""
        if self.poll() is not None:
            return False
        os.kill(self.pid, signal.SIGKILL)
        self.wait()
        self.killed = self.returncode == -signal.SIGKILL
        return self.killed

    def wait(self, timeout: float = 120) -> int:
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                raise TimeoutError(f"snap child {self.pid} did not finish in {timeout} s")
            time.sleep(0.002)
        assert self.returncode is not None
        return self.returncode

    def result(self, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        rc = self.wait(timeout)
        out, err = self.out.read_text(errors="replace"), self.err.read_text(errors="replace")
        self.out.unlink(missing_ok=True)
        self.err.unlink(missing_ok=True)
        return subprocess.CompletedProcess(["snap", *args], rc, out, err)


def start(
    cwd: Path,
    *args: str,
    env: dict[str, str] | None = None,
    call: Callable[[], int] | None = None,
    before: Callable[[], None] | None = None,
) -> Child:
    """Fork a child that runs ``snap ARGS`` in ``cwd`` (or ``call()``, whose result is the exit
    status); returns at once. ``before`` runs in the child first (e.g. to set a resource limit)."""
    fd_out, out = tempfile.mkstemp(prefix="snap-out-")
    fd_err, err = tempfile.mkstemp(prefix="snap-err-")
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never return into the test process
        code = 70
        try:
            os.chdir(cwd)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(fd_out, 1)
            os.dup2(fd_err, 2)
            sys.stdin = open(0, closefd=False)
            sys.stdout = open(1, "w", closefd=False, buffering=1)
            sys.stderr = open(2, "w", closefd=False, buffering=1)
            for key in ("SNAP_DATABASE_URL", "DATABASE_URL"):
                os.environ.pop(key, None)
            os.environ.update(env or {})
            sys.argv = ["snap", *args]
            if before is not None:
                before()
            try:
                if call is not None:
                    code = call()
                else:
                    snapgit.cli.main()
                    code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # noqa: BLE001 - a failure of the harness itself: shown, then exit 1
            import traceback

            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    os.close(fd_out)
    os.close(fd_err)
    return Child(pid, Path(out), Path(err))


def run(cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``snap ARGS`` in a forked child, to the end: like ``subprocess.run(..., capture_output=True)``."""
    return start(cwd, *args, env=env).result(list(args), timeout)
