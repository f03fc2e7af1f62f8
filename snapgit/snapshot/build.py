"""Building a snapshot of every table of a live database in one read transaction."""

# Re-exports until the code moves here from commit.py.
from snapgit.snapshot.commit import DuplicateKeyError, Incremental, paused_gc, snapshot_database

__all__ = ["DuplicateKeyError", "Incremental", "paused_gc", "snapshot_database"]
