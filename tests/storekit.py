"""Helpers of the store tests (gc, delta chains): a store in which only one tree stays
reachable, through a commit of its own."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from snapgit.objects import ObjType
from snapgit.repo import Repo
from snapgit.snapshot.record import commit_snapshot
from snapgit.store.history import read_commit
from snapgit.store.objectstore import DiskObjectStore


def keep_only_the_tree_of(repo: Repo, store_dir: Path, commit: bytes) -> bytes:
    """Make a parentless commit of ``commit``'s tree on branch ``orphan``, point HEAD at it, and
    remove main with its reflog: from then on nothing reaches the commits before. Returns the
    new commit's id."""
    orphan, _ = commit_snapshot(
        repo.objects,
        repo.refs,
        ref="refs/heads/orphan",
        expected_parent=None,
        tree_id=read_commit(repo.objects, commit).tree,
        author="t",
        message="orphan",
        meta={},
    )
    repo.refs.set_symbolic("HEAD", "refs/heads/orphan")
    os.unlink(store_dir / ".snapstore" / "refs" / "heads" / "main")
    (store_dir / ".snapstore" / "logs" / "refs" / "heads" / "main").unlink()
    return orphan


def node_id(data: bytes) -> bytes:
    """The id of a tree node whose encoded bytes are ``data``."""
    return hashlib.sha256(bytes((int(ObjType.NODE),)) + data).digest()


def disk_store(root: Path) -> DiskObjectStore:
    """An empty disk object store in ``root`` (its directories made)."""
    (root / "objects" / "pack").mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)
    return DiskObjectStore(root)
