"""``push``: send a remote the objects it lacks, then move its refs.

1. Read the remote's refs (each with its etag) and decide, per ref pushed, what happens: new,
   fast-forward, up to date, or rejected (not a fast-forward, or the remote's commit unknown
   here: "fetch first"), unless forced. Any rejection stops the push before anything is sent.
2. Walk from the commits pushed towards what the remote has (its indexes, cached under
   ``.snapstore/remotes/NAME/``): a commit, snapshot tree, table or tree node the remote has is
   not entered, so the walk costs what changed, not the database. Objects are written children
   first into new packs (a node stored here as a delta stays one when its base is on the remote
   or sent before it; else it is sent whole).
3. Upload each pack as it is sealed, create-only, then its index. A killed push leaves whole
   packs (and perhaps one pack without its index: garbage); the next push finds their objects
   in the remote's indexes and does not send them again.
4. Move each ref last by compare-and-swap from the value read in step 1. A ref that moved
   meanwhile (another push won) is rejected; what was uploaded stays, unnamed and harmless.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from snapgit.errors import SnapError
from snapgit.objects import ObjType, Tag
from snapgit.ops.audit import actor, audited
from snapgit.ops.remotes import RemoteIndex, RemoteState, connect, default_remote, tracking_prefix
from snapgit.progress import Progress
from snapgit.remote.base import RemoteConflict, RemoteExists
from snapgit.remote.layout import RemoteRef, RemoteRepo
from snapgit.store.history import read_commit, read_root, read_table, walk
from snapgit.store.layout import Store
from snapgit.store.objectstore import PACK_MAX_BYTES, PACK_MAX_OBJECTS, DiskObjectStore
from snapgit.store.pack import DELTA, PackWriter, entry_base, entry_kind, full_entry
from snapgit.store.packindex import build_index_joined
from snapgit.store.refs import check_ref_name
from snapgit.tree.prolly import load_node

__all__ = ["PushRejected", "RefUpdate", "PushResult", "push"]


class PushRejected(SnapError):
    """A ref the remote has moved past, or that moved while pushing."""


@dataclass
class RefUpdate:
    ref: str  # refs/heads/main
    old: str | None  # the remote's id before (hex)
    new: str
    status: str  # "new", "fast-forward", "forced", "up to date"

    def to_json(self) -> dict:
        return {"ref": self.ref, "old": self.old, "new": self.new, "status": self.status}


@dataclass
class PushResult:
    remote: str
    url: str
    updates: list[RefUpdate] = field(default_factory=list)
    objects_sent: int = 0
    packs_sent: int = 0
    bytes_sent: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {
            "remote": self.remote,
            "url": self.url,
            "updates": [u.to_json() for u in self.updates],
            "objects_sent": self.objects_sent,
            "packs_sent": self.packs_sent,
            "bytes_sent": self.bytes_sent,
            "seconds": round(self.seconds, 3),
        }


def _refs_to_push(store: Store, names: list[str], all_branches: bool, tags: bool) -> dict[str, str]:
    """ref -> local id (hex) of what the user asked to push."""
    out: dict[str, str] = {}
    if all_branches:
        out.update(store.refs.list("refs/heads/"))
    if tags:
        out.update(store.refs.list("refs/tags/"))
    for name in names:
        candidates = [name] if name.startswith("refs/") else [f"refs/heads/{name}", f"refs/tags/{name}"]
        for ref in candidates:
            check_ref_name(ref)
            value = store.refs.read(ref)
            if value is not None:
                out[ref] = value
                break
        else:
            raise SnapError(f"no branch or tag {name!r} to push", hint="`snap branch` and `snap tag` list them")
    if not names and not all_branches and not tags:
        branch = store.refs.read_symbolic("HEAD")
        value = store.refs.read(branch) if branch else None
        if branch is None or value is None:
            raise SnapError(
                "nothing to push: HEAD is detached or its branch has no commit",
                hint="name what to push: `snap push REMOTE BRANCH`",
            )
        out[branch] = value
    return out


def _is_ancestor(objects: DiskObjectStore, old: bytes, new: bytes) -> bool:
    if old == new:
        return True
    return any(oid == old for oid, _ in walk(objects, [new]))


def _plan(
    store: Store, wanted: dict[str, str], remote_refs: dict[str, RemoteRef], force: bool, name: str
) -> list[RefUpdate]:
    updates = []
    for ref, new in sorted(wanted.items()):
        old = remote_refs.get(ref)
        if old is None:
            updates.append(RefUpdate(ref, None, new, "new"))
            continue
        if old.id == new:
            updates.append(RefUpdate(ref, old.id, new, "up to date"))
            continue
        short = ref.removeprefix("refs/heads/").removeprefix("refs/tags/")
        if force:
            updates.append(RefUpdate(ref, old.id, new, "forced"))
            continue
        if ref.startswith("refs/tags/"):
            raise PushRejected(
                f"rejected: tag {short} exists on {name} with another commit ({old.id[:12]})",
                hint="push it with --force to replace it there",
            )
        old_id = bytes.fromhex(old.id)
        known = store.objects.contains(old_id)
        if not known or not _is_ancestor(store.objects, old_id, _commit_of(store, new)):
            why = "has commits this store does not have" if not known else "has moved apart from yours"
            raise PushRejected(
                f"rejected: {short} on {name} {why}, not a fast-forward (fetch first)",
                hint=f"`snap pull {name} {short} --strategy S` merges them first; --force overwrites them",
            )
        updates.append(RefUpdate(ref, old.id, new, "fast-forward"))
    return updates


def _commit_of(store: Store, hex_id: str) -> bytes:
    oid = bytes.fromhex(hex_id)
    otype, data = store.objects.get(oid)
    if otype == ObjType.TAG:
        return Tag.decode(data).target
    return oid


_LEAF_BATCH = 64 * 1024  # records of pending leaves looked up at once


class _Sender:
    """Writes the objects the remote lacks into packs, children first, and uploads each pack as
    it is sealed (pack, then index)."""

    def __init__(
        self, store: Store, repo: RemoteRepo, state: RemoteState, index: RemoteIndex, progress: Progress | None
    ) -> None:
        self.objects: DiskObjectStore = store.objects
        self.tmp_dir: Path = store.objects.tmp_dir
        self.repo = repo
        self.state = state
        self.index = index
        self.sent: set[bytes] = set()
        # Leaves waiting for their records to be looked up on the remote in one batch (a look-up
        # reads every index once, whether for one leaf's hundred records or for thousands of
        # leaves'): leaf id -> its record ids. Flushed before a pack is sealed, so a leaf and its
        # records always land in the same pack as the nodes above them, or an earlier one.
        self.pending: dict[bytes, list[bytes]] = {}
        self.pending_records = 0
        self.flushing = False
        self.writer: PackWriter | None = None
        self.packs = 0
        self.bytes = 0
        self.count = 0
        self.progress = progress
        if progress is not None:
            progress.table("objects to send", None)

    def known(self, oid: bytes) -> bool:
        return oid in self.sent or oid in self.pending or self.index.has(oid)

    # -- walking

    def commits(self, tips: list[bytes]) -> None:
        """Every commit reachable from ``tips`` the remote lacks, parents before children."""
        order: list[bytes] = []
        seen: set[bytes] = set()
        stack: list[tuple[bytes, bool]] = [(t, False) for t in reversed(tips)]
        while stack:
            oid, done = stack.pop()
            if done:
                order.append(oid)
                continue
            if oid in seen or self.known(oid):
                continue
            seen.add(oid)
            stack.append((oid, True))
            for p in reversed(read_commit(self.objects, oid).parents):
                if p not in seen:
                    stack.append((p, False))
        for oid in order:
            commit = read_commit(self.objects, oid)
            self.root(commit.tree)
            self.emit(oid)

    def tag(self, oid: bytes) -> None:
        if self.known(oid):
            return
        otype, data = self.objects.get(oid)
        if otype == ObjType.TAG:
            self.commits([Tag.decode(data).target])
        else:
            self.commits([oid])
            return
        self.emit(oid)

    def root(self, oid: bytes) -> None:
        if self.known(oid):
            return
        for table_id in read_root(self.objects, oid).tables.values():
            if self.known(table_id):
                continue
            table = read_table(self.objects, table_id)
            if not self.known(table.schema):
                self.emit(table.schema)
            self.node(table.root)
            self.emit(table_id)
        self.emit(oid)

    def node(self, oid: bytes) -> None:
        if self.known(oid):
            return
        node = load_node(self.objects, oid)
        if node.level == 0:
            self.pending[oid] = node.ids
            self.pending_records += len(node.ids)
            if self.pending_records >= _LEAF_BATCH:
                self.flush_leaves()
            return
        for child in node.ids:
            self.node(child)
        self.emit(oid)

    def flush_leaves(self) -> None:
        """The pending leaves' records the remote lacks, then the leaves."""
        if not self.pending:
            return
        self.flushing = True
        try:
            fresh = [r for r in dict.fromkeys(r for ids in self.pending.values() for r in ids) if r not in self.sent]
            has = self.index.has_many(fresh)
            records = [r for r, h in zip(fresh, has, strict=True) if not h]
            del fresh, has
            for i in range(0, len(records), 4096):
                chunk = records[i : i + 4096]
                for rid, (otype, data) in zip(chunk, self.objects.get_many(chunk), strict=True):
                    self.add(rid, full_entry(otype, data), otype)
            leaves = list(self.pending)
            for leaf in leaves:
                self.emit(leaf)
                del self.pending[leaf]
            self.pending_records = 0
        finally:
            self.flushing = False

    def emit(self, oid: bytes) -> None:
        """Add an object stored whole or, when its base is on the remote or sent, as the delta
        it is stored as here."""
        entry = self._stored_entry(oid)
        if entry is None or (entry_kind(entry) == DELTA and not self.known(entry_base(entry))):
            otype, data = self.objects.get(oid)
            entry = full_entry(otype, data)
        self.add(oid, entry, entry[1])

    def _stored_entry(self, oid: bytes) -> bytes | None:
        for name in self.objects.pack_names():
            for ordinal in self.objects.index(name).candidates(oid):
                entry = self.objects.pack_reader(name).entry(ordinal)
                full, _ = self.objects.resolve_entry(name, entry)
                if hashlib.sha256(full).digest() == oid:
                    return entry
        return None

    # -- packs

    def add(self, oid: bytes, entry: bytes, otype: int) -> None:
        if self.writer is None:
            self.writer = PackWriter(self.tmp_dir / f"push-{os.urandom(8).hex()}.tmp")
        self.writer.add(oid, entry, 0 if otype == ObjType.RECORD else 1)
        self.sent.add(oid)
        self.count += 1
        if self.progress is not None and not self.count % 4096:
            self.progress.advance(4096)
        full = self.writer.count >= PACK_MAX_OBJECTS or self.writer.bytes_written >= PACK_MAX_BYTES
        if full and not self.flushing:
            self.seal()

    def seal(self) -> None:
        self.flush_leaves()
        writer, self.writer = self.writer, None
        if writer is None:
            return
        try:
            name = writer.finish()
            index = build_index_joined(name, writer.id_bytes)
            pack = writer.path.read_bytes()
        except BaseException:
            writer.abort()
            raise
        finally:
            writer.path.unlink(missing_ok=True)
        if self.repo.upload_pack(name, pack, index):
            self.packs += 1
            self.bytes += len(pack) + len(index)
        self.state.cache_index(name, index)
        self.state.hold([name])
        self.index.add(self.state.index_dir / f"pack-{name}.idx")

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()
            self.writer = None


def push(
    store: Store,
    remote: str | None = None,
    refs: list[str] | None = None,
    *,
    all_branches: bool = False,
    tags: bool = False,
    force: bool = False,
    progress: Progress | None = None,
) -> PushResult:
    started = time.monotonic()
    name = default_remote(store, remote)
    wanted = _refs_to_push(store, refs or [], all_branches, tags)
    who = actor(store)
    with audited(store, who, "push", {"remote": name, "refs": sorted(wanted), "force": force}) as entry:
        repo = RemoteRepo(connect(store, name))
        result = PushResult(name, repo.url)
        repo.create()
        remote_refs = repo.refs()
        result.updates = _plan(store, wanted, remote_refs, force, name)
        moving = [u for u in result.updates if u.status != "up to date"]
        if moving:
            state = RemoteState(store, name)
            index = state.sync(repo)
            sender = _Sender(store, repo, state, index, progress)
            try:
                for u in moving:
                    sender.tag(bytes.fromhex(u.new))
                sender.seal()
            finally:
                sender.abort()
                index.close()
            result.objects_sent, result.packs_sent, result.bytes_sent = sender.count, sender.packs, sender.bytes
            for u in moving:
                try:
                    repo.set_ref(u.ref, u.new, remote_refs.get(u.ref))
                except (RemoteConflict, RemoteExists):
                    raise PushRejected(
                        f"rejected: {u.ref.removeprefix('refs/heads/')} on {name} moved while pushing (fetch first)",
                        hint=f"another push won; `snap pull {name}` merges it, then push again",
                    ) from None
            heads = [u.ref for u in moving if u.ref.startswith("refs/heads/")]
            if heads:
                repo.set_head(heads[0])
        for u in result.updates:
            if u.ref.startswith("refs/heads/"):
                _track(store, name, u.ref, u.new, who)
        result.seconds = time.monotonic() - started
        entry.result = {"updates": [u.to_json() for u in result.updates], "bytes_sent": result.bytes_sent}
    return result


def _track(store: Store, remote: str, ref: str, new: str, who: str) -> None:
    """Move ``refs/remotes/REMOTE/<branch>`` to what the remote now holds."""
    tracking = tracking_prefix(remote) + ref.removeprefix("refs/heads/")
    old = store.refs.read(tracking)
    if old != new:
        store.refs.set_if_equals(tracking, old, new, who=who, message=f"push {remote}")
