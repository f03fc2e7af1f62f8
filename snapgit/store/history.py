"""Revisions and history: naming commits and walking their parents.

A revision is ``HEAD`` (or ``@``), a branch or tag name, a full ref (``refs/heads/main``), a
full id or a unique prefix of at least 4 hex digits, followed by any number of ``~N`` (N-th
first-parent ancestor) and ``^`` / ``^N`` (first / N-th parent) suffixes, as in git.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator

from snapgit.errors import CorruptError, NotFoundError, SnapError
from snapgit.objects import Commit, ObjType, Root, TableEntry, Tag
from snapgit.store.objectstore import ObjectReader, ObjectStore
from snapgit.store.refs import Refs, check_ref_name

__all__ = [
    "resolve",
    "read_commit",
    "read_root",
    "read_table",
    "walk",
    "merge_base",
    "AmbiguousRevisionError",
    "UnknownRevisionError",
]

_SUFFIX = re.compile(r"(~\d*|\^\d*)$")
_HEX = re.compile(r"^[0-9a-fA-F]{4,64}$")


class UnknownRevisionError(NotFoundError):
    pass


class AmbiguousRevisionError(SnapError):
    pass


def read_commit(objects: ObjectReader, oid: bytes) -> Commit:
    otype, data = objects.get(oid)
    if otype != ObjType.COMMIT:
        raise CorruptError(f"object {oid.hex()} is not a commit (type {otype})")
    return Commit.decode(data)


def read_root(objects: ObjectReader, oid: bytes) -> Root:
    otype, data = objects.get(oid)
    if otype != ObjType.ROOT:
        raise CorruptError(f"object {oid.hex()} is not a snapshot tree (type {otype})")
    return Root.decode(data)


def read_table(objects: ObjectReader, oid: bytes) -> TableEntry:
    otype, data = objects.get(oid)
    if otype != ObjType.TABLE:
        raise CorruptError(f"object {oid.hex()} is not a table object (type {otype})")
    return TableEntry.decode(data)


def _peel(objects: ObjectReader, oid: bytes, rev: str) -> bytes:
    """Follow annotated tags to the commit they name."""
    for _ in range(10):
        otype, data = objects.get(oid)
        if otype == ObjType.COMMIT:
            return oid
        if otype == ObjType.TAG:
            oid = Tag.decode(data).target
            continue
        raise UnknownRevisionError(f"revision {rev!r} names a {ObjType(otype).name.lower()}, not a commit")
    raise CorruptError(f"revision {rev!r}: tags nest too deeply")


def _valid_ref_name(name: str) -> bool:
    try:
        check_ref_name(name)
    except SnapError:
        return False
    return True


def _base(objects: ObjectStore, refs: Refs, name: str, rev: str) -> bytes:
    if name in ("HEAD", "@"):
        value = refs.read("HEAD")
        if value is None:
            branch = refs.read_symbolic("HEAD") or "HEAD"
            if refs.list("refs/heads"):  # only a new store, without any branch, has an empty HEAD
                raise CorruptError(
                    f"HEAD names branch {branch.removeprefix('refs/heads/')!r}, which does not exist",
                    hint="the store's HEAD file is damaged: write 'ref: refs/heads/BRANCH' into .snapstore/HEAD (see `snap branch`)",
                )
            raise UnknownRevisionError(
                f"HEAD has no commit yet (branch {branch.removeprefix('refs/heads/')} is empty)",
                hint="run `snap commit -m MESSAGE` first",
            )
        return bytes.fromhex(value)
    if _valid_ref_name(name):
        candidates = (
            [name] if name.startswith("refs/") else [f"refs/heads/{name}", f"refs/tags/{name}", f"refs/remotes/{name}"]
        )
        for ref in candidates:
            value = refs.read(ref)
            if value is not None:
                return _peel(objects, bytes.fromhex(value), rev)
    if _HEX.match(name):
        prefix = name.lower()
        matches = []
        for oid in objects.find_prefix(prefix):
            otype, _ = objects.get(oid)
            if otype in (ObjType.COMMIT, ObjType.TAG):
                matches.append(oid)
        if len(matches) == 1:
            return _peel(objects, matches[0], rev)
        if len(matches) > 1:
            shown = ", ".join(m.hex()[:12] for m in matches[:5])
            raise AmbiguousRevisionError(
                f"revision {name!r} is ambiguous: it matches {len(matches)} commits ({shown})",
                hint="give more digits",
            )
    raise UnknownRevisionError(
        f"unknown revision {rev!r}", hint="use a branch or tag name, HEAD, a commit id or a unique prefix of one"
    )


def resolve(objects: ObjectStore, refs: Refs, rev: str) -> bytes:
    """The commit id a revision names."""
    rev = rev.strip()
    if not rev:
        raise UnknownRevisionError("empty revision")
    suffixes: list[str] = []
    name = rev
    while True:
        m = _SUFFIX.search(name)
        if not m or m.start() == 0:
            break
        suffixes.append(m.group(1))
        name = name[: m.start()]
    oid = _base(objects, refs, name, rev)
    for s in reversed(suffixes):
        digits = s[1:]
        if s[0] == "~":
            steps, nth = (int(digits) if digits else 1), 1
        else:
            steps, nth = 1, (int(digits) if digits else 1)
        for _ in range(steps):
            if nth == 0:
                break
            parents = read_commit(objects, oid).parents
            if len(parents) < nth:
                raise UnknownRevisionError(f"revision {rev!r} goes past the first commit")
            oid = parents[nth - 1]
    return oid


def walk(objects: ObjectReader, starts: list[bytes]) -> Iterator[tuple[bytes, Commit]]:
    """Commits reachable from ``starts``, newest first (by commit time), each once."""
    seen: set[bytes] = set()
    heap: list[tuple[int, int, bytes, Commit]] = []
    counter = 0
    for s in starts:
        if s not in seen:
            seen.add(s)
            c = read_commit(objects, s)
            heapq.heappush(heap, (-c.time, counter, s, c))
            counter += 1
    while heap:
        _, _, oid, commit = heapq.heappop(heap)
        yield oid, commit
        for p in commit.parents:
            if p not in seen:
                seen.add(p)
                pc = read_commit(objects, p)
                counter += 1
                heapq.heappush(heap, (-pc.time, counter, p, pc))


def merge_base(objects: ObjectReader, a: bytes | None, b: bytes | None) -> bytes | None:
    """The newest commit that is an ancestor of both (None when they share no history)."""
    if a is None or b is None:
        return None
    ancestors = {oid for oid, _ in walk(objects, [a])}
    for oid, _ in walk(objects, [b]):
        if oid in ancestors:
            return oid
    return None
