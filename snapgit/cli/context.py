"""What every command module of the CLI shares: the global options' state and opening the store.

``app`` owns the global options and the error handling; the command modules (``app`` itself and
one module per group of commands, such as remotes or the web server) take the repository from
here, so that they need not import ``app`` nor each other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["State", "ask_passphrase", "open_repo", "split_tables", "state"]


class State:
    """What the global options chose, for the command that runs and for :func:`snapgit.cli.app.main`."""

    directory: Path = Path(".")
    debug: bool = False
    repo: Any = None
    passphrase: str | None = None  # typed at the terminal, kept for the rest of the command


state = State()


def open_repo():
    """The store of the directory the global options chose (imported here: ``--help`` needs none)."""
    from snapgit.repo import Repo

    state.repo = Repo.open(state.directory)
    return state.repo


def split_tables(tables: str | None) -> list[str] | None:
    """``--tables a,b`` as a list; None when the option was not given or names nothing."""
    if not tables:
        return None
    names = [t.strip() for t in tables.split(",") if t.strip()]
    return names or None


def ask_passphrase(confirm: bool = False) -> str:
    """The passphrase from the environment, else typed at the terminal (twice when ``confirm``,
    for encrypting: a typo would lock the data away). Ask before a progress bar starts."""
    import sys

    from snapgit.passphrase import NO_PASSPHRASE_HINT, PassphraseError, from_env

    value = from_env()
    if value is not None:
        return value
    if state.passphrase is not None:  # typed once already in this command (a clone asks twice)
        return state.passphrase
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise PassphraseError("no passphrase given, and no terminal to ask for one", hint=NO_PASSPHRASE_HINT)
    from getpass import getpass

    value = getpass("Passphrase: ", stream=sys.stderr)
    if not value:
        raise PassphraseError("the passphrase is empty", hint="give a passphrase of a few words")
    if confirm and getpass("Passphrase again: ", stream=sys.stderr) != value:
        raise PassphraseError("the passphrases do not match; nothing was written", hint="try again")
    state.passphrase = value
    return value
