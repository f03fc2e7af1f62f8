"""Branches and tags: names of commits, moved by compare-and-swap.

A branch is ``refs/heads/NAME`` and moves with each commit on it; HEAD names the current one
(or a commit, when detached). A tag is ``refs/tags/NAME``: a commit's id, or the id of an
annotated tag object (who tagged it, when, and a message) that names the commit. Every move is
recorded in the ref's reflog with who made it and why.
"""

from __future__ import annotations

from snapgit.errors import NotFoundError, SnapError
from snapgit.objects import ObjType, Tag, object_id
from snapgit.ops.audit import actor
from snapgit.snapshot.record import now_micros
from snapgit.store.history import resolve
from snapgit.store.layout import Store
from snapgit.store.refs import check_ref_name

__all__ = ["create_branch", "delete_branch", "create_tag"]


def create_branch(store: Store, name: str, rev: str = "HEAD") -> bytes:
    """Create branch ``name`` at ``rev``; returns the commit it names."""
    check_ref_name(name, "branch")
    oid = resolve(store.objects, store.refs, rev)
    ref = f"refs/heads/{name}"
    if store.refs.read(ref) is not None:
        raise SnapError(f"branch {name!r} already exists")
    store.refs.set_if_equals(ref, None, oid.hex(), who=actor(store), message=f"branch: created from {rev}")
    return oid


def delete_branch(store: Store, name: str) -> bytes:
    """Delete branch ``name`` (never the current one); returns the commit it named."""
    ref = f"refs/heads/{name}"
    value = store.refs.read(ref)
    if value is None:
        raise NotFoundError(f"branch {name!r} not found")
    if store.refs.read_symbolic("HEAD") == ref:
        raise SnapError(f"cannot delete branch {name!r}: HEAD is on it", hint="switch to another branch first")
    store.refs.delete_if_equals(ref, value, who=actor(store), message="branch: deleted")
    return bytes.fromhex(value)


def create_tag(store: Store, name: str, rev: str = "HEAD", message: str | None = None) -> bytes:
    """Tag ``rev`` as ``name``; with ``message`` an annotated tag. Returns what the ref holds."""
    check_ref_name(name, "tag")
    ref = f"refs/tags/{name}"
    if store.refs.read(ref) is not None:
        raise SnapError(f"tag {name!r} already exists")
    target = resolve(store.objects, store.refs, rev)
    oid = target
    who = actor(store)
    if message is not None:
        t, tz = now_micros()
        data = Tag(target, name, who, t, tz, message).encode()
        oid = object_id(ObjType.TAG, data)
        with store.objects.writer() as w:
            w.add(ObjType.TAG, data, oid)
    store.refs.set_if_equals(ref, None, oid.hex(), who=who, message=f"tag: {name}")
    return oid
