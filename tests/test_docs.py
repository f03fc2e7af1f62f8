"""Every command has help text and is documented in the README."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from snapgit.cli.app import app

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def command_names() -> list[str]:
    names = [c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands]
    names += [g.name for g in app.registered_groups]
    return names


def test_every_command_is_documented_and_has_help() -> None:
    names = command_names()
    assert {"init", "commit", "log", "show", "diff", "status", "merge", "restore", "checkout", "verify"} <= set(names)
    for name in names:
        assert f"`snap {name}" in README, f"snap {name} is not in the README"
        proc = subprocess.run([sys.executable, "-m", "snapgit.cli", name, "--help"], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert "Usage:" in proc.stdout and len(proc.stdout.splitlines()) > 3
