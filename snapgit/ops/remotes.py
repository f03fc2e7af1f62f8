"""Remotes as a store knows them: their names and URLs, and what it remembers of each.

A remote is named in ``config.toml`` (``[remote.NAME] url = ...``, never a secret) and opened
by :func:`connect`, the one place a configured remote becomes a :class:`RemoteStore`. Beside the
config, ``.snapstore/remotes/NAME/`` keeps what the store learnt of it::

    indexes/pack-<name>.idx   copies of the remote's pack indexes (immutable, content-named):
                              what the remote has, so a push sends only the rest
    packs                     one pack name a line: the remote's packs whose objects this store
                              has (it pushed or fetched them), so a fetch downloads only the rest

Both are caches: deleting the folder costs one download of the indexes and, at the next fetch,
of packs the store already had. Remote-tracking refs are ``refs/remotes/NAME/<branch>``.
"""

from __future__ import annotations

import os
import re
import shutil
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snapgit.errors import NotFoundError, SnapError
from snapgit.ops.audit import actor, audited
from snapgit.passphrase import PassphraseSource
from snapgit.passphrase import get as get_passphrase
from snapgit.remote.base import RemoteStore
from snapgit.remote.crypto import key_names
from snapgit.remote.encrypted import EncryptedRemote, change_passphrase, set_up, unlock
from snapgit.remote.layout import RemoteRepo
from snapgit.remote.open import normalize_url, open_remote, probe_conditional_writes
from snapgit.store.layout import Store
from snapgit.store.packindex import IndexReader
from snapgit.store.privatefile import make_private_dirs, write_private

__all__ = [
    "RemoteInfo",
    "RemoteState",
    "RemoteIndex",
    "UnknownRemoteError",
    "add_remote",
    "remove_remote",
    "list_remotes",
    "connect",
    "connect_url",
    "default_remote",
    "tracking_prefix",
    "change_remote_passphrase",
    "forget_held_packs",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class UnknownRemoteError(NotFoundError):
    pass


@dataclass(frozen=True)
class RemoteInfo:
    name: str
    url: str
    encrypted: bool = False


def tracking_prefix(name: str) -> str:
    return f"refs/remotes/{name}/"


def _check_name(name: str) -> str:
    if not _NAME.match(name) or name.endswith(".lock"):
        raise SnapError(f"invalid remote name {name!r}", hint="use letters, digits, '.', '-' and '_'")
    return name


def list_remotes(store: Store) -> list[RemoteInfo]:
    return [RemoteInfo(n, r["url"], bool(r.get("encrypt"))) for n, r in sorted(store.config.remotes.items())]


def _settings(store: Store, name: str) -> dict:
    try:
        settings = store.config.remotes[name]
    except KeyError:
        known = ", ".join(sorted(store.config.remotes)) or "none"
        raise UnknownRemoteError(
            f"unknown remote {name!r} (configured: {known})",
            hint="add it with `snap remote add NAME URL`; `snap remote list` shows them",
        ) from None
    _check_name(name)  # config.toml may have been edited by hand: the name becomes a path
    return settings


def default_remote(store: Store, name: str | None) -> str:
    """The remote a command without one means: the only one, or ``origin``."""
    if name:
        _settings(store, name)
        return name
    remotes = store.config.remotes
    if "origin" in remotes:
        return "origin"
    if len(remotes) == 1:
        return next(iter(remotes))
    if not remotes:
        raise UnknownRemoteError("no remote is configured", hint="add one with `snap remote add NAME URL`")
    raise UnknownRemoteError(
        f"which remote? there are {len(remotes)} ({', '.join(sorted(remotes))}) and none is called origin",
        hint="name it: `snap push NAME`",
    )


def connect_url(
    url: str, settings: dict[str, Any] | None = None, passphrase: str | PassphraseSource | None = None
) -> RemoteStore:
    """The remote at a URL, through :func:`snapgit.remote.open.open_remote`; an encrypted one
    (it holds keys, or ``settings`` say ``encrypt``) unlocked with the passphrase
    (None: :func:`snapgit.passphrase.get`'s default source)."""
    settings = settings or {}
    return unlock(open_remote(url, settings), passphrase, expected=bool(settings.get("encrypt")))


def connect(store: Store, name: str, passphrase: str | PassphraseSource | None = None) -> RemoteStore:
    """The configured remote ``name``, opened. A remote found to be encrypted is remembered as
    such in the config (a clone learns it here), so that it is never again taken as plain."""
    settings = _settings(store, name)
    remote = connect_url(settings["url"], settings, passphrase)
    if isinstance(remote, EncryptedRemote) and not settings.get("encrypt"):
        settings["encrypt"] = True
        store.save_config()
    return remote


def add_remote(
    store: Store,
    name: str,
    url: str,
    *,
    cwd: Path | None = None,
    options: dict[str, Any] | None = None,
    encrypt: bool = False,
    passphrase: str | PassphraseSource | None = None,
) -> RemoteInfo:
    """Name a remote after checking it: reachable, and keeping conditional writes (a directory
    that does not exist yet is created, its parent must exist). Nothing is stored on failure.
    ``options`` are kept beside the URL in ``[remote.NAME]`` and handed to :func:`connect_url`
    (never a secret). ``encrypt``: set the remote up encrypted (remote/encrypted.py), or open it
    if it is already; a remote that turns out to be encrypted is unlocked with the passphrase
    either way, and ``encrypt = true`` is kept in its options."""
    _check_name(name)
    if name in store.config.remotes:
        raise SnapError(
            f"remote {name!r} exists ({store.config.remotes[name]['url']})",
            hint=f"remove it first with `snap remote remove {name}`",
        )
    url = normalize_url(url, cwd)
    with audited(store, actor(store), "remote-add", {"name": name, "url": url}):
        if not url.startswith("s3://"):
            path = Path(url)
            if not path.parent.is_dir():
                from snapgit.remote.base import RemoteNoBucket

                raise RemoteNoBucket(
                    f"cannot create remote directory {path}: {path.parent} does not exist",
                    hint="create the parent directory first, or check the path",
                )
            path.mkdir(mode=0o700, exist_ok=True)
        settings: dict[str, Any] = {**(options or {}), "url": url}
        raw = open_remote(url, settings)
        probe_conditional_writes(raw)
        remote = set_up(raw, passphrase) if encrypt else unlock(raw, passphrase, expected=False)
        RemoteRepo(remote).exists()  # a remote of another format is refused now, not at push
        if isinstance(remote, EncryptedRemote):
            settings["encrypt"] = True
        store.config.remotes[name] = settings
        try:
            store.save_config()
        except BaseException:
            del store.config.remotes[name]
            raise
    return RemoteInfo(name, url, isinstance(remote, EncryptedRemote))


def change_remote_passphrase(
    store: Store,
    name: str,
    *,
    old: str | PassphraseSource | None = None,
    new: str | PassphraseSource | None = None,
) -> tuple[str, str]:
    """Change the passphrase of the encrypted remote ``name`` (see
    :func:`snapgit.remote.encrypted.change_passphrase`): (old key id, new key id). ``old`` as
    for every command; ``new`` is asked with confirmation, from a source that must be given
    (a passphrase or a callable: the default source would answer with the old one)."""
    settings = _settings(store, name)
    if new is None:
        raise SnapError("no new passphrase given", hint="give the new passphrase")
    with audited(store, actor(store), "remote-passphrase", {"name": name}) as entry:
        raw = open_remote(settings["url"], settings)
        if not key_names(raw):
            raise SnapError(f"remote {name!r} is not encrypted", hint="`snap remote add NAME URL --encrypt` makes one")
        removed, made = change_passphrase(raw, get_passphrase(old), get_passphrase(new, confirm=True))
        entry.result = {"removed_key": removed, "new_key": made}
    return removed, made


def remove_remote(store: Store, name: str) -> RemoteInfo:
    """Forget a remote: its config, its remote-tracking refs and what was kept of it. The
    remote itself is not touched."""
    settings = _settings(store, name)
    with audited(store, actor(store), "remote-remove", {"name": name}):
        del store.config.remotes[name]
        store.save_config()
        for ref, value in store.refs.list(tracking_prefix(name)).items():
            store.refs.delete_if_equals(ref, value, who=actor(store), message=f"remote remove {name}")
        shutil.rmtree(RemoteState(store, name).root, ignore_errors=True)
    return RemoteInfo(name, settings["url"])


def forget_held_packs(store: Store) -> None:
    """Drop every remote's list of packs whose objects the store has: gc is about to remove
    objects, some perhaps of those packs. The next fetch rebuilds the list from the indexes."""
    for path in (store.root / "remotes").glob("*/packs"):
        path.unlink(missing_ok=True)


class RemoteState:
    """``.snapstore/remotes/NAME/``: the remote's cached indexes and the packs this store holds."""

    def __init__(self, store: Store, name: str) -> None:
        self.root = store.root / "remotes" / _check_name(name)
        self.index_dir = self.root / "indexes"

    def held_here(self, store: Store) -> set[str]:
        """:meth:`held`; when there is no list (gc dropped it), the remote packs of the cached
        indexes every object of which (by its 8-byte prefix) some local index has, remembered."""
        if (self.root / "packs").exists():
            return self.held()
        local = [store.objects.index(n) for n in store.objects.pack_names()]
        held = []
        for name in sorted(self.cached_indexes()):
            idx = IndexReader(self.index_dir / f"pack-{name}.idx")
            try:
                ordered = sorted(set(idx.prefixes))
            finally:
                idx.close()
            wanted = set(ordered)
            ordered_q = array("Q", ordered)
            found: set[int] = set()
            for r in local:
                found |= r.prefix_hits(wanted, ordered, ordered_q)
                if len(found) == len(wanted):
                    held.append(name)
                    break
        make_private_dirs(self.root)
        write_private(self.root / "packs", "".join(f"{n}\n" for n in held).encode())
        return set(held)

    def held(self) -> set[str]:
        try:
            text = (self.root / "packs").read_text("utf-8", "replace")
        except FileNotFoundError:
            return set()
        return {line for line in text.split("\n") if re.fullmatch(r"[0-9a-f]{64}", line)}

    def hold(self, names: Sequence[str]) -> None:
        """Remember that the store has every object of these remote packs (appended: a line is
        written whole, and a torn last line is skipped by :meth:`held`)."""
        if not names:
            return
        make_private_dirs(self.root)
        fd = os.open(self.root / "packs", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, "".join(f"{n}\n" for n in names).encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def cached_indexes(self) -> set[str]:
        try:
            return {
                p.name[5:-4] for p in self.index_dir.iterdir() if p.name.startswith("pack-") and p.name.endswith(".idx")
            }
        except FileNotFoundError:
            return set()

    def cache_index(self, name: str, data: bytes) -> None:
        make_private_dirs(self.index_dir)
        write_private(self.index_dir / f"pack-{name}.idx", data)

    def sync(self, repo: RemoteRepo) -> RemoteIndex:
        """The remote's visible packs, their indexes downloaded into the cache where missing."""
        visible, _garbage = repo.pack_names()
        have = self.cached_indexes()
        for name in sorted(visible - have):
            self.cache_index(name, repo.download_index(name))
        return RemoteIndex([self.index_dir / f"pack-{n}.idx" for n in sorted(visible)])


class RemoteIndex:
    """What a remote has, from its indexes: an id is there when some index has its 8-byte
    prefix (a false match would take 2**64 ids; the store's look-ups make the same bet)."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self._readers = [IndexReader(p) for p in paths]

    def add(self, path: Path) -> None:
        self._readers.append(IndexReader(path))

    @property
    def count(self) -> int:
        """Objects in the remote's indexes (one stored twice counts twice)."""
        return sum(r.count for r in self._readers)

    def has(self, oid: bytes) -> bool:
        return any(r.candidates(oid) for r in self._readers)

    def has_many(self, oids: Sequence[bytes]) -> list[bool]:
        if not oids or not self._readers:
            return [False] * len(oids)
        asked = [int.from_bytes(o[:8], "big") for o in oids]
        wanted = set(asked)
        ordered = sorted(wanted)
        ordered_q = array("Q", ordered)
        hits: set[int] = set()
        for r in self._readers:
            hits |= r.prefix_hits(wanted, ordered, ordered_q)
        return [p in hits for p in asked]

    def close(self) -> None:
        for r in self._readers:
            r.close()
        self._readers.clear()
