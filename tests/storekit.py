"""Helpers of the store tests (gc, delta chains): a store in which only one tree stays
reachable, through a commit of its own."""

from __future__ import annotations

import os
from pathlib import Path

from snapgit.repo import Repo
from snapgit.snapshot.record import commit_snapshot
from snapgit.store.history import read_commit


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
