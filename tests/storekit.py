"""Helpers of the store tests (gc, delta chains): a store in which only one tree stays
reachable, through a commit of its own; a table of spread integer keys on any engine."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import sqlalchemy as sa

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


def spread_keys_table(engine: sa.Engine, rows: int = 1500) -> sa.Table:
    """Table t (id BIGINT key, v VARCHAR(20)) of ``rows`` rows, ids 0, 7, 14, ...: a key range
    the scan pool cuts into chunks on any engine."""
    meta = sa.MetaData()
    t = sa.Table(
        "t", meta, sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False), sa.Column("v", sa.String(20))
    )
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(t.insert(), [{"id": i * 7, "v": f"v{i % 13}"} for i in range(rows)])
    return t
