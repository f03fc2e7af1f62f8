"""Snapshotting a live database into the store: from a read transaction to a commit object.

Tables are read in key order (by several processes for big tables: ``scanpool``), rows encoded
and hashed, trees built and only new objects written; the row cache (``rowcache``) lets a commit
skip rows unchanged since the last one.
"""
