"""Where a passphrase comes from, for encrypted export files and encrypted remotes.

A passphrase is given, in this order, by ``SNAP_PASSPHRASE`` (the passphrase itself),
``SNAP_PASSPHRASE_FILE`` (a file whose first line is the passphrase, as restic's
``--password-file``), or, in the ``snap`` command only, typed at a terminal. The library never
prompts: code that encrypts or decrypts takes a :data:`PassphraseSource`, a callable that is asked
only when a passphrase is really needed (an import of a plain file asks for none), and the CLI
hands it one that falls back to the terminal. :func:`environment` is the source without a terminal.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from snapgit.errors import SnapError

__all__ = [
    "PassphraseError",
    "PassphraseSource",
    "ENV_PASSPHRASE",
    "ENV_PASSPHRASE_FILE",
    "ENV_NEW_PASSPHRASE",
    "ENV_NEW_PASSPHRASE_FILE",
    "from_env",
    "environment",
    "get",
]

ENV_PASSPHRASE = "SNAP_PASSPHRASE"
ENV_PASSPHRASE_FILE = "SNAP_PASSPHRASE_FILE"
ENV_NEW_PASSPHRASE = "SNAP_NEW_PASSPHRASE"
ENV_NEW_PASSPHRASE_FILE = "SNAP_NEW_PASSPHRASE_FILE"

# confirm: True when encrypting (a terminal asks twice, so that a typo does not lock the data away)
PassphraseSource = Callable[[bool], str]

NO_PASSPHRASE_HINT = f"set {ENV_PASSPHRASE} or {ENV_PASSPHRASE_FILE}, or run snap on a terminal to type it"


class PassphraseError(SnapError):
    """No passphrase, an unusable one, or one that does not open what it should."""


def from_env(env: Mapping[str, str] | None = None, *, new: bool = False) -> str | None:
    """The passphrase the environment gives, or None when it gives none. ``new``: the one a
    passphrase is changed to (``SNAP_NEW_PASSPHRASE``, ``SNAP_NEW_PASSPHRASE_FILE``)."""
    env = os.environ if env is None else env
    var, file_var = (ENV_NEW_PASSPHRASE, ENV_NEW_PASSPHRASE_FILE) if new else (ENV_PASSPHRASE, ENV_PASSPHRASE_FILE)
    value = env.get(var)
    if value:
        return value
    path = env.get(file_var)
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            line = f.readline()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PassphraseError(f"cannot read {file_var} {path}: {why}") from None
    value = line.removesuffix("\n").removesuffix("\r")
    if not value:
        raise PassphraseError(f"the passphrase file {path} ({file_var}) is empty")
    return value


def environment(confirm: bool = False) -> str:
    """The environment's passphrase; :class:`PassphraseError` when it gives none."""
    value = from_env()
    if value is None:
        raise PassphraseError("no passphrase given", hint=NO_PASSPHRASE_HINT)
    return value


_default: list[PassphraseSource] = [environment]


def set_default(source: PassphraseSource) -> None:
    """Make ``source`` what :func:`get` asks when a caller passed no passphrase. The ``snap``
    command sets one that falls back to the terminal, so that the operations that open an
    encrypted remote (push, fetch, clone, ...) need not carry a passphrase through every call."""
    _default[0] = source


def get(passphrase: str | PassphraseSource | None, *, confirm: bool = False) -> str:
    """A passphrase from what an API caller passed: the passphrase itself, a source to ask, or
    None for the default source (the environment, unless :func:`set_default` chose another).
    An empty passphrase is refused: it would protect nothing."""
    if passphrase is None:
        value = _default[0](confirm)
    elif isinstance(passphrase, str):
        value = passphrase
    else:
        value = passphrase(confirm)
    if not value:
        raise PassphraseError("the passphrase is empty", hint="give a passphrase of a few words")
    return value
