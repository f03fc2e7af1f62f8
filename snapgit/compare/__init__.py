"""Comparing snapshots: two-way diffs (``diff``) and three-way merge plans (``mergeplan``).

Pure functions over an object reader and table ids: they read trees and records, never a
database or a ref, so the same code diffs two commits, a commit and the live database, or plans
a merge that is then previewed, applied or stored as conflicts.
"""
