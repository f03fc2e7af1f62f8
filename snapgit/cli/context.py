"""What every command module of the CLI shares: the global options' state and opening the store.

``app`` owns the global options and the error handling; the command modules (``app`` itself and
one module per group of commands, such as remotes or the web server) take the repository from
here, so that they need not import ``app`` nor each other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["State", "ask_new_passphrase", "ask_passphrase", "open_repo", "split_tables", "state"]


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
    if state.passphrase is None:  # typed once already in this command (a clone opens the remote twice)
        state.passphrase = _ask(confirm, new=False)
    return state.passphrase


def ask_new_passphrase(confirm: bool = True) -> str:
    """The passphrase to change to: SNAP_NEW_PASSPHRASE(_FILE), else typed twice at the terminal."""
    return _ask(True, new=True)


def _ask(confirm: bool, *, new: bool) -> str:
    import sys

    from snapgit.passphrase import NO_PASSPHRASE_HINT, PassphraseError, from_env

    value = from_env(new=new)
    if value is not None:
        return value
    what = "new passphrase" if new else "passphrase"
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        hint = (
            "set SNAP_NEW_PASSPHRASE or SNAP_NEW_PASSPHRASE_FILE, or run snap on a terminal"
            if new
            else NO_PASSPHRASE_HINT
        )
        raise PassphraseError(f"no {what} given, and no terminal to ask for one", hint=hint)
    from getpass import getpass

    value = getpass(f"{what.capitalize()}: ", stream=sys.stderr)
    if not value:
        raise PassphraseError(f"the {what} is empty", hint="give a passphrase of a few words")
    if confirm and getpass(f"{what.capitalize()} again: ", stream=sys.stderr) != value:
        raise PassphraseError(f"the {what}s do not match; nothing was written", hint="try again")
    return value
