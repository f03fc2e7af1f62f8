"""``fetch`` and ``clone``: bring a remote's packs and refs into a store.

A fetch lists the remote's packs, downloads those whose objects the store does not hold yet
(``.snapstore/remotes/NAME/packs`` names the ones it pushed or fetched) into ``tmp/``, and checks
each: the pack's bytes must hash to its name, the index's to its checksum, and both must parse
and agree on the object count. Once all arrived whole, they are published as a commit publishes
its packs (every pack renamed into place, then every index), so a failed or killed fetch leaves
nothing but whole packs, and the next one downloads only what is still missing. Remote-tracking refs (``refs/remotes/NAME/<branch>``) move last, once
every commit they name is readable here; remote tags the store lacks become local tags.

A clone is a new store, this fetch from ``origin``, a local branch at the remote's, and with
``restore`` the branch restored into the (new or empty) database.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from snapgit.errors import CorruptError, SnapError
from snapgit.ops.audit import actor, audited
from snapgit.ops.remotes import RemoteState, connect, default_remote, tracking_prefix
from snapgit.progress import Progress
from snapgit.remote.base import RemoteCorrupt
from snapgit.remote.layout import RemoteRef, RemoteRepo
from snapgit.store.layout import Store
from snapgit.store.pack import PackReader, fsync_dir
from snapgit.store.packindex import IndexReader
from snapgit.store.privatefile import open_private

__all__ = ["FetchResult", "fetch", "EmptyRemoteError"]


class EmptyRemoteError(SnapError):
    pass


@dataclass
class FetchResult:
    remote: str
    url: str
    refs: dict[str, str] = field(default_factory=dict)  # remote ref -> id (hex)
    updated: dict[str, tuple[str | None, str]] = field(default_factory=dict)  # local ref -> (old, new)
    packs_received: int = 0
    bytes_received: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "remote": self.remote,
            "url": self.url,
            "refs": self.refs,
            "updated": {r: {"old": o, "new": n} for r, (o, n) in self.updated.items()},
            "packs_received": self.packs_received,
            "bytes_received": self.bytes_received,
            "seconds": round(self.seconds, 3),
            "notes": self.notes,
        }


def _write_temp(store: Store, data: bytes, suffix: str) -> Path:
    tmp = store.objects.tmp_dir / f"fetch-{os.urandom(8).hex()}{suffix}"
    fd = open_private(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _download(store: Store, repo: RemoteRepo, name: str) -> tuple[Path, Path, bytes]:
    """Download and check one pack and its index into ``tmp/``: (the pack's file, the index's
    file, the index's bytes). Nothing of a pack that fails a check is kept."""
    index = repo.download_index(name)
    pack = repo.download_pack(name)
    ptmp = _write_temp(store, pack, ".pack.tmp")
    itmp = None
    try:
        itmp = _write_temp(store, index, ".idx.tmp")
        try:
            rd = PackReader(ptmp)
            try:
                idx = IndexReader(itmp)
                count = idx.count
                idx.close()
            finally:
                rd.close()
        except CorruptError as exc:
            raise RemoteCorrupt(f"pack {name[:16]} on {repo.url} is damaged: {exc}") from exc
        if rd.count != count:
            raise RemoteCorrupt(f"pack {name[:16]} on {repo.url} holds {rd.count} objects, its index {count}")
    except BaseException:
        ptmp.unlink(missing_ok=True)
        if itmp is not None:
            itmp.unlink(missing_ok=True)
        raise
    return ptmp, itmp, index


def _publish(store: Store, state: RemoteState, staged: list[tuple[str, Path, Path, bytes]]) -> None:
    """Publish downloaded packs as a commit publishes its own: every pack file, then every index
    (which makes its pack visible), so a killed fetch leaves the smallest window in which some
    of them are visible and others, holding what they name, not yet."""
    pack_dir = store.objects.pack_dir
    for name, ptmp, _itmp, _index in staged:
        final = pack_dir / f"pack-{name}.pack"
        if not final.exists():
            os.replace(ptmp, final)
            os.chmod(final, 0o400)
    fsync_dir(pack_dir)
    for name, _ptmp, itmp, _index in staged:
        final = pack_dir / f"pack-{name}.idx"
        if not final.exists():
            os.replace(itmp, final)
            os.chmod(final, 0o400)
    fsync_dir(pack_dir)
    for name, _ptmp, _itmp, index in staged:
        state.cache_index(name, index)  # what the remote has, for the next push
    state.hold([name for name, *_ in staged])


def fetch_into(store: Store, name: str, repo: RemoteRepo, progress: Progress | None = None) -> FetchResult:
    """The fetch itself (no audit line): packs, then remote-tracking refs and new tags."""
    started = time.monotonic()
    result = FetchResult(name, repo.url)
    if not repo.exists():
        result.seconds = time.monotonic() - started
        result.notes.append(f"{repo.url} is empty: nothing was pushed to it yet")
        return result
    remote_refs = repo.refs()
    result.refs = {r: v.id for r, v in remote_refs.items()}
    visible, _garbage = repo.pack_names()
    state = RemoteState(store, name)
    local = {p.name[5:-4] for p in store.objects.pack_dir.glob("pack-*.idx")}
    wanted = sorted(visible - state.held_here(store) - local)
    if progress is not None and wanted:
        progress.table("packs to fetch", len(wanted))
    staged: list[tuple[str, Path, Path, bytes]] = []
    try:
        for pack in wanted:
            ptmp, itmp, index = _download(store, repo, pack)
            staged.append((pack, ptmp, itmp, index))
            result.bytes_received += ptmp.stat().st_size + len(index)
            result.packs_received += 1
            if progress is not None:
                progress.advance(1)
        _publish(store, state, staged)
    finally:
        for _name, ptmp, itmp, _index in staged:
            ptmp.unlink(missing_ok=True)
            itmp.unlink(missing_ok=True)
    state.hold(sorted((visible & local) - state.held()))
    store.objects.refresh()
    _check_refs(store, repo, remote_refs)
    _update_refs(store, name, remote_refs, result)
    result.seconds = time.monotonic() - started
    return result


def _check_refs(store: Store, repo: RemoteRepo, remote_refs: dict[str, RemoteRef]) -> None:
    for ref in remote_refs.values():
        if not store.objects.contains(bytes.fromhex(ref.id)):
            raise RemoteCorrupt(
                f"{ref.name} on {repo.url} names {ref.id[:12]}, which none of its packs holds",
                hint="the remote is damaged: run `snap verify --remote`; push the branch again from a store that has it",
            )


def _update_refs(store: Store, name: str, remote_refs: dict[str, RemoteRef], result: FetchResult) -> None:
    who = actor(store)
    for ref in remote_refs.values():
        if ref.name.startswith("refs/heads/"):
            local = tracking_prefix(name) + ref.name.removeprefix("refs/heads/")
        elif ref.name.startswith("refs/tags/"):
            local = ref.name
            have = store.refs.read(local)
            if have is not None:
                if have != ref.id:
                    result.notes.append(f"tag {local[10:]} differs on {name}; the local one is kept")
                continue
        else:
            continue
        old = store.refs.read(local)
        if old != ref.id:
            store.refs.set_if_equals(local, old, ref.id, who=who, message=f"fetch {name}")
            result.updated[local] = (old, ref.id)


def fetch(store: Store, remote: str | None = None, progress: Progress | None = None) -> FetchResult:
    name = default_remote(store, remote)
    with audited(store, actor(store), "fetch", {"remote": name}) as entry:
        result = fetch_into(store, name, RemoteRepo(connect(store, name)), progress)
        entry.result = {"updated": sorted(result.updated), "bytes_received": result.bytes_received}
    return result


def clone_into(store: Store, branch: str | None, progress: Progress | None = None) -> tuple[FetchResult, str]:
    """Fetch ``origin`` into a new store and check out its branch (the remote's HEAD, else
    ``main``, else its only branch): (the fetch, the branch)."""
    repo = RemoteRepo(connect(store, "origin"))
    result = fetch_into(store, "origin", repo, progress)
    heads = {r.removeprefix("refs/heads/"): v for r, v in result.refs.items() if r.startswith("refs/heads/")}
    if not heads:
        raise EmptyRemoteError(f"{repo.url} has no branch to clone", hint="push one to it first: `snap push`")
    if branch is None:
        named = repo.head_branch()
        if named and named.removeprefix("refs/heads/") in heads:
            branch = named.removeprefix("refs/heads/")
        elif "main" in heads:
            branch = "main"
        else:
            branch = sorted(heads)[0]
    if branch not in heads:  # (every name in heads is a valid ref name: RemoteRepo.refs)
        raise SnapError(
            f"{repo.url} has no branch {branch!r} (it has {', '.join(sorted(heads))})", hint="pick one with --branch"
        )
    who = actor(store)
    store.refs.set_if_equals(f"refs/heads/{branch}", None, heads[branch], who=who, message=f"clone {repo.url}")
    store.refs.set_symbolic("HEAD", f"refs/heads/{branch}")
    return result, branch


def remove_new_store(root: Path, made_dir: Path | None) -> None:
    """Undo a clone that failed: the store it made (and the folder, if it made that too)."""
    shutil.rmtree(made_dir if made_dir is not None else root, ignore_errors=True)
