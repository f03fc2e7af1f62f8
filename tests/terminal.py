"""Run a program on a real pseudo-terminal and answer its prompts, as a person at a keyboard would.

``age`` reads a passphrase only from the terminal (``/dev/tty``), never from stdin or the
environment, and ``snap`` asks on a terminal when the environment gives no passphrase; both are
tested here through a pty that is the child's controlling terminal.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import time

import pytest

from conftest import IN_CI

__all__ = ["age_binary", "on_terminal"]


def age_binary() -> str:
    """The path of the ``age`` tool; skips the test without it (fails under CI, which installs it)."""
    path = shutil.which("age")
    if path is None:
        reason = "the age tool is not installed (Debian package age)"
        if IN_CI:
            pytest.fail(reason + " (CI=true: .ci/run installs it)", pytrace=False)
        pytest.skip(reason)
    return path


def on_terminal(
    argv: list[str], answers: list[str], *, cwd: str, env: dict[str, str], timeout: float = 120.0
) -> tuple[int, str]:
    """Run ``argv`` on a new pty; each time it prints a prompt ending in ``:`` (after what was
    answered so far), type the next answer and Enter. Returns (exit status, everything printed)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its controlling terminal and its stdin/stdout/stderr
        try:
            os.chdir(cwd)
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)
    seen = b""
    answered = 0
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                seen += data
            prompts = seen.lower().count(b"passphrase")
            if answered < len(answers) and prompts > answered and seen.rstrip().endswith(b":"):
                os.write(fd, answers[answered].encode() + b"\n")
                answered += 1
        else:
            os.kill(pid, 9)
            raise AssertionError(f"{argv[0]} did not finish in {timeout} s; it printed {seen!r}")
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), seen.decode("utf-8", "replace")
