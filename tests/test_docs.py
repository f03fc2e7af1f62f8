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


def test_a_start_builds_only_the_command_it_runs() -> None:
    """snap makes a click command of the one command it runs (typer would make all forty at
    each start); without one, or with a name no command has, it keeps all, for the listing and
    the suggestion. The subprocess runs show the same for what users see."""
    from snapgit.cli.app import _for_args

    def kept(*args: str) -> list[str]:
        only = _for_args(list(args))
        return [c.name or c.callback.__name__.replace("_", "-") for c in only.registered_commands] + [
            g.name for g in only.registered_groups
        ]

    everything = command_names()
    assert kept("commit", "-m", "x") == ["commit"]
    assert kept("-C", "log", "--debug", "status") == ["status"]  # -C's value is a directory named log
    assert kept("--debug", "-Cdir", "cat-object", "HEAD") == ["cat-object"]
    assert kept("remote", "add", "origin", "s3://b/p") == ["remote"]
    for args in [(), ("--help", "commit"), ("-h",), ("--version",), ("comit",), ("--", "commit"), ("-C", "d")]:
        assert kept(*args) == everything, args
    assert len(app.registered_commands) + len(app.registered_groups) == len(everything)  # app itself untouched
    typo = subprocess.run([sys.executable, "-m", "snapgit.cli", "comit"], capture_output=True, text=True)
    assert typo.returncode == 2 and "Did you mean 'commit'?" in typo.stderr
    listing = subprocess.run([sys.executable, "-m", "snapgit.cli", "--help"], capture_output=True, text=True)
    assert listing.returncode == 0 and all(f" {name} " in listing.stdout for name in everything)
