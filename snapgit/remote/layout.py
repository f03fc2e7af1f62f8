"""What snapgit keeps on a remote, and reading and writing it through a :class:`RemoteStore`.

::

    snapgit-remote               "snapgit remote 2\\n": the format; created by the first push
                                 (a remote of format 1 is read as it is, and marked as
                                 format 2 by the next push: its packs may be of version 2)
    HEAD                         "ref: refs/heads/<branch>\\n": the branch a clone checks out
    packs/pack-<name>.pack       a pack, byte for byte as in a store (store/pack.py)
    packs/pack-<name>.idx        its index (store/packindex.py); uploaded after the pack
    refs/heads/<branch>          "<64 hex digits>\\n", as in a store
    refs/tags/<tag>

Packs and indexes are content-named and never change; they are uploaded create-only, and a
pack is visible (listed by :meth:`RemoteRepo.pack_names`) once its index is there. A push
uploads its packs in the order it wrote them, and writes every object after the objects it names
(children before parents, a delta's base before the delta), so an object in a visible pack has
all its descendants in visible packs too: a later push or fetch can stop at any object the
remote has. Refs move last, by compare-and-swap on the etag read before (``put_if``), or
create-only for a new ref (``put_new``): a reader never sees a ref to a missing object.
Packs whose index never arrived (a killed push) are garbage that nothing names.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from snapgit.errors import SnapError
from snapgit.remote.base import RemoteCorrupt, RemoteExists, RemoteMissing, RemoteStore
from snapgit.store.packindex import IDX_MAGIC
from snapgit.store.refs import check_ref_name

__all__ = ["RemoteRepo", "RemoteRef", "is_ref_key", "FORMAT_KEY", "FORMAT_TEXT", "PACKS", "check_pack", "check_index"]

FORMAT_KEY = "snapgit-remote"
FORMAT_TEXT = b"snapgit remote 2\n"
# 2: packs of version 2 (store/pack.py: deltas may be patches). A remote of format 1 is one of
# format 2; a push marks it as 2 before its packs arrive, so that an earlier snapgit refuses it
# (with the message of RemoteRepo.exists) once it may hold packs that snapgit cannot read.
_EARLIER = (b"snapgit remote 1\n",)
PACKS = "packs/"
_HEX64 = re.compile(rb"^[0-9a-f]{64}\n$")
_PACK_KEY = re.compile(r"^packs/pack-([0-9a-f]{64})\.(pack|idx)$")


@dataclass(frozen=True)
class RemoteRef:
    name: str  # refs/heads/main
    id: str  # hex
    etag: str  # what a compare-and-swap of it must name


def check_pack(name: str, data: bytes, where: str) -> None:
    """A downloaded pack is whole: its bytes hash to its name (and its footer says the same)."""
    digest = hashlib.sha256(data[:-32]).digest() if len(data) > 32 else b""
    if digest.hex() != name or data[-32:] != digest:
        raise RemoteCorrupt(
            f"pack {name[:16]} on {where} is damaged or cut short ({len(data)} bytes fail its checksum)",
            hint="`snap verify --remote REMOTE --read-data` lists the damage; "
            "a store that has the history can push it to a new remote",
        )


def check_index(name: str, data: bytes, where: str) -> None:
    """A downloaded index is whole (its checksum holds) and is the index of pack ``name``."""
    ok = (
        len(data) > 64 + 16
        and data[:8] == IDX_MAGIC
        and hashlib.sha256(data[:-32]).digest() == data[-32:]
        and data[-64:-32].hex() == name
    )
    if not ok:
        raise RemoteCorrupt(
            f"index of pack {name[:16]} on {where} is damaged or cut short",
            hint="run `snap verify --remote` to see what else is damaged",
        )


def is_ref_key(key: str) -> bool:
    """Whether a remote key is a branch or tag a store may hold: ``refs/heads/<name>`` or
    ``refs/tags/<name>`` with a valid ref name (no ``..``, no lock files, ...)."""
    if not key.startswith(("refs/heads/", "refs/tags/")):
        return False
    try:
        check_ref_name(key)
    except SnapError:
        return False
    return True


class RemoteRepo:
    """A snapgit remote over a key-value :class:`RemoteStore`."""

    def __init__(self, remote: RemoteStore) -> None:
        self.remote = remote
        self.url = remote.url

    # -- format

    def exists(self) -> bool:
        """Whether a snapgit remote lives here (its format key is there, and of this version or
        an earlier one this version reads)."""
        return self._format() is not None

    def _format(self) -> bytes | None:
        try:
            text = self.remote.get(FORMAT_KEY)
        except RemoteMissing:
            return None
        if text != FORMAT_TEXT and text not in _EARLIER:
            found = text[:40].decode("utf-8", "replace").strip() or "(empty)"
            raise RemoteCorrupt(
                f"{self.url} holds a remote of format {found!r}; this snapgit reads "
                + " and ".join(repr(t.decode().strip()) for t in (*_EARLIER, FORMAT_TEXT)),
                hint="use the snapgit version that wrote it",
            )
        return text

    def create(self) -> None:
        """Write the format key (a remote's first push; another pusher may have done it first),
        or mark a remote of an earlier format as of this one (a push, before its packs)."""
        try:
            self.remote.put_new(FORMAT_KEY, FORMAT_TEXT)
        except RemoteExists:
            if self._format() in _EARLIER:  # checks the version too
                self.remote.put(FORMAT_KEY, FORMAT_TEXT)

    # -- refs

    def refs(self) -> dict[str, RemoteRef]:
        """Every branch and tag, each read with the etag a compare-and-swap names. Keys that
        are no valid ref name (which a store could not hold safely) are left out."""
        out = {}
        for key in sorted(self.remote.list("refs/")):
            if not is_ref_key(key):
                continue
            ref = self.read_ref(key)
            if ref is not None:
                out[key] = ref
        return out

    def read_ref(self, name: str) -> RemoteRef | None:
        # head before get: if the ref moves in between, the etag is the older one and a
        # compare-and-swap from it fails, as it must
        head = self.remote.head(name)
        if head is None:
            return None
        try:
            data = self.remote.get(name)
        except RemoteMissing:
            return None
        if not _HEX64.match(data):
            raise RemoteCorrupt(
                f"ref {name} on {self.url} is damaged: {data[:80]!r}",
                hint="write the right commit id into it, or push it again with --force",
            )
        return RemoteRef(name, data[:64].decode(), head[1])

    def set_ref(self, name: str, new: str, old: RemoteRef | None) -> None:
        """Move ``name`` to ``new`` if it still holds ``old`` (None: if it does not exist);
        :class:`RemoteConflict` or :class:`RemoteExists` when it moved meanwhile."""
        data = f"{new}\n".encode()
        if old is None:
            self.remote.put_new(name, data)
        else:
            self.remote.put_if(name, data, old.etag)

    def head_branch(self) -> str | None:
        """The branch the remote's HEAD names (``refs/heads/main``), or None."""
        try:
            text = self.remote.get("HEAD").decode("utf-8", "replace").strip()
        except RemoteMissing:
            return None
        name = text[len("ref: ") :]
        return name if text.startswith("ref: refs/heads/") and is_ref_key(name) else None

    def set_head(self, branch_ref: str) -> None:
        """Name the default branch, if none is named yet."""
        try:
            self.remote.put_new("HEAD", f"ref: {branch_ref}\n".encode())
        except RemoteExists:
            pass

    # -- packs

    def pack_names(self) -> tuple[set[str], set[str]]:
        """(packs with their index: visible, packs without one: garbage of a killed push). An
        index whose pack is gone counts as visible: reading it says what is missing."""
        packs, indexes = self.pack_files()
        return indexes, packs - indexes

    def pack_files(self) -> tuple[set[str], set[str]]:
        """(names of the pack files, names of the index files) under ``packs/``."""
        packs: set[str] = set()
        indexes: set[str] = set()
        for key in self.remote.list(PACKS):
            m = _PACK_KEY.match(key)
            if m:
                (packs if m.group(2) == "pack" else indexes).add(m.group(1))
        return packs, indexes

    @staticmethod
    def pack_key(name: str) -> str:
        return f"{PACKS}pack-{name}.pack"

    @staticmethod
    def index_key(name: str) -> str:
        return f"{PACKS}pack-{name}.idx"

    def upload_pack(self, name: str, pack: bytes, index: bytes) -> bool:
        """Upload a pack, then its index, both create-only. False when both were there already
        (an earlier, interrupted push sent them)."""
        sent = False
        try:
            self.remote.put_new(self.pack_key(name), pack)
            sent = True
        except RemoteExists:
            pass
        try:
            self.remote.put_new(self.index_key(name), index)
            sent = True
        except RemoteExists:
            pass
        return sent

    def download_index(self, name: str) -> bytes:
        data = self.remote.get(self.index_key(name))
        check_index(name, data, self.url)
        return data

    def download_pack(self, name: str) -> bytes:
        try:
            data = self.remote.get(self.pack_key(name))
        except RemoteMissing:
            raise RemoteCorrupt(
                f"pack {name[:16]} is missing on {self.url} (its index is there)",
                hint="run `snap verify --remote` to see what is affected",
            ) from None
        check_pack(name, data, self.url)
        return data
