"""Writing a snapshot: the root tree, the commit object, and the branch moved by compare-and-swap."""

# Re-exports until the code moves here from commit.py.
from snapgit.snapshot.commit import CommitResult, TableResult, commit_snapshot, default_author, now_micros, write_root

__all__ = ["CommitResult", "TableResult", "commit_snapshot", "default_author", "now_micros", "write_root"]
