"""An encrypted remote: a :class:`RemoteStore` that seals every value and key name on the way
out and opens and authenticates it on the way in, over any other :class:`RemoteStore`.

Keys (:mod:`snapgit.remote.crypto`) live in ``keys/`` beside what is stored. Every other key
``scope/rest`` (``packs/pack-<id>.pack``, ``refs/heads/main``) is stored as
``scope/<rest encrypted>``: the first component stays readable, so that listing the refs or the
packs stays one listing of one prefix, and the server learns only which of the few kinds an
object is (``packs``, ``refs``, ``probe``); a key without ``/`` (``HEAD``, the format key) is
stored under ``_/``. Values are sealed whole, bound to their key name.

What passes through unchanged is what the protocol's promises rest on: create-only and
compare-and-swap writes go to the same stored name, and their etags are the inner store's, so
two racing pushes still have exactly one winner. ``head`` reports the plaintext's size (the
sealed value's less the fixed overhead).

``get_range`` decrypts the whole value and returns the range: a value is sealed as one piece,
so a part of it cannot be authenticated alone. snapgit reads packs whole (fetch, verify), so
this costs nothing today; a reader of pack ranges would want packs sealed per object instead.
"""

from __future__ import annotations

from collections.abc import Iterator

from snapgit.passphrase import PassphraseSource
from snapgit.passphrase import get as get_passphrase
from snapgit.remote.base import RemoteError, RemoteStore
from snapgit.remote.crypto import KEYS, SEAL_OVERHEAD, MasterKey, create_key, key_names, open_key

__all__ = ["EncryptedRemote", "NO_SCOPE", "NoKeyError", "unlock", "set_up", "change_passphrase"]

NO_SCOPE = "_"  # where a key without "/" is stored


class EncryptedRemote:
    """``inner`` with every value and name encrypted by ``key`` (see the module docstring)."""

    def __init__(self, inner: RemoteStore, key: MasterKey) -> None:
        self.inner = inner
        self.key = key
        self.url = inner.url

    def stored_name(self, name: str) -> str:
        """The key under which the inner store holds ``name``."""
        return self._stored(name)

    def _stored(self, name: str) -> str:
        scope, sep, rest = name.partition("/")
        if name.startswith(KEYS) or (sep and scope == NO_SCOPE):
            raise RemoteError(f"{name!r} is reserved on an encrypted remote")
        if not sep:
            scope, rest = NO_SCOPE, name
        elif not rest:
            raise RemoteError(f"{name!r} is not a key name")
        return f"{scope}/{self.key.seal_name(scope, rest)}"

    def _name(self, stored: str) -> str | None:
        scope, _, rest = stored.partition("/")
        if scope == KEYS[:-1]:
            return None
        name = self.key.open_name(scope, rest)
        if name is None:
            return None  # not made by this key (a stray file): not part of this remote
        return name if scope == NO_SCOPE else f"{scope}/{name}"

    def get(self, key: str) -> bytes:
        return self.key.open(key, self.inner.get(self._stored(key)), self.url)

    def get_range(self, key: str, start: int, end: int) -> bytes:
        return self.get(key)[start:end]

    def head(self, key: str) -> tuple[int, str] | None:
        found = self.inner.head(self._stored(key))
        if found is None:
            return None
        size, etag = found
        return max(0, size - SEAL_OVERHEAD), etag

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(self._stored(key), self.key.seal(key, data))

    def put_new(self, key: str, data: bytes) -> str:
        return self.inner.put_new(self._stored(key), self.key.seal(key, data))

    def put_if(self, key: str, data: bytes, etag: str) -> str:
        return self.inner.put_if(self._stored(key), self.key.seal(key, data), etag)

    def list(self, prefix: str) -> Iterator[str]:
        scope, sep, _ = prefix.partition("/")
        # a prefix inside one scope lists that scope; a shorter one (rare) lists everything
        for stored in self.inner.list(f"{scope}/" if sep else ""):
            name = self._name(stored)
            if name is not None and name.startswith(prefix):
                yield name

    def delete(self, key: str) -> None:
        self.inner.delete(self._stored(key))


class NoKeyError(RemoteError):
    """A remote configured as encrypted that holds no key."""


def unlock(remote: RemoteStore, passphrase: str | PassphraseSource | None, *, expected: bool) -> RemoteStore:
    """``remote`` as it must be read: through :class:`EncryptedRemote` when it holds keys (the
    passphrase is asked for then, and only then), else as it is. ``expected``: the store's
    config says the remote is encrypted, so one without keys is refused rather than trusted: a
    server that dropped ``keys/`` must not make the next push go out in the clear."""
    if key_names(remote):
        return EncryptedRemote(remote, open_key(remote, get_passphrase(passphrase)))
    if expected:
        raise NoKeyError(
            f"{remote.url} holds no key, though this store knows it as encrypted; nothing was sent",
            hint="if its keys/ were deleted, what it holds cannot be read again; check the URL",
        )
    return remote


def set_up(remote: RemoteStore, passphrase: str | PassphraseSource | None, *, cheap: bool = False) -> EncryptedRemote:
    """Make ``remote`` an encrypted one: a new master key in ``keys/`` wrapped by the passphrase
    (asked twice on a terminal). A remote that already has keys is opened instead (a second
    store adding it); one that holds anything else is refused: it cannot be encrypted in place."""
    if key_names(remote):
        return EncryptedRemote(remote, open_key(remote, get_passphrase(passphrase)))
    if any(not k.startswith("probe/") for k in remote.list("")):
        raise RemoteError(
            f"{remote.url} is not empty and not encrypted: it cannot be encrypted in place",
            hint="give an empty directory or prefix for an encrypted remote",
        )
    return EncryptedRemote(remote, create_key(remote, get_passphrase(passphrase, confirm=True), cheap=cheap))


def change_passphrase(remote: RemoteStore, old: str, new: str) -> tuple[str, str]:
    """Make ``new`` the passphrase of ``remote`` in place of ``old``: a new key object wrapping
    the same master key, then the one ``old`` opened removed (nothing stored is re-encrypted).
    In that order, so that a failure in between leaves both passphrases working, never none.
    Returns (the removed key's id, the new one's)."""
    if new == old:
        raise RemoteError("the new passphrase is the old one", hint="give another")
    key = open_key(remote, old)
    made = create_key(remote, new, master=key)
    remote.delete(KEYS + key.key_id)
    return key.key_id, made.key_id
